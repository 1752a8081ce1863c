import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '@sextant/api';
import { JwksResolver, blockedJwksAddress, fetchText } from './jwks.js';

const JWKS = (n: string) => JSON.stringify({ keys: [{ kty: 'RSA', e: 'AQAB', n }] });

/** A loopback server whose answer the test changes; `hits` counts requests by path. */
async function server(answer: () => { status: number; body: string }, port = 0): Promise<{ url: (p: string) => string; hits: Map<string, number>; close(): Promise<void>; port: number }> {
  const hits = new Map<string, number>();
  const s: Server = createServer((req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    const a = answer();
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
  const p = (s.address() as AddressInfo).port;
  return { url: (path) => `http://127.0.0.1:${p}${path}`, hits, port: p, close: () => new Promise((r) => s.close(() => r())) };
}

function waitFor<T>(get: () => T | undefined, what: string, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      const v = get();
      if (v !== undefined) return resolve(v);
      if (Date.now() > end) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

test('fetches once per URI, shares it, refreshes, reports changes, keeps keys when a refresh fails, forgets unused URIs', async () => {
  let body = { status: 200, body: JWKS('one') };
  const srv = await server(() => body);
  const changes: string[][] = [];
  const r = new JwksResolver({ log: silentLogger, refreshIntervalMs: 100, refreshOnFailureMs: 50, onChange: (k) => changes.push(k) });
  try {
    const uri = srv.url('/jwks');
    r.want(new Map([[uri, { jwksUri: uri, issuer: 'i', timeoutMs: 1000 }]]));
    r.want(new Map([[uri, { jwksUri: uri, issuer: 'i', timeoutMs: 1000 }]]));
    await waitFor(() => r.snapshot().get(uri), 'the first fetch');
    assert.equal(r.snapshot().get(uri), JWKS('one'));
    assert.equal(srv.hits.get('/jwks'), 1, 'one fetch for two wants of the same URI');
    assert.deepEqual(changes, [[uri]]);
    body = { status: 200, body: JWKS('two') };
    await waitFor(() => (r.snapshot().get(uri) === JWKS('two') ? true : undefined), 'the refresh');
    assert.deepEqual(changes, [[uri], [uri]]);
    body = { status: 503, body: '' };
    await waitFor(() => (r.errors().length ? true : undefined), 'a failed refresh');
    assert.equal(r.snapshot().get(uri), JWKS('two'), 'a failed refresh keeps the keys');
    r.want(new Map());
    assert.equal(r.snapshot().size, 0);
  } finally {
    r.stop();
    await srv.close();
  }
});

test('a URI that never answers has no keys (translation fails closed) and is retried until it does', async () => {
  let body = { status: 500, body: 'down' };
  const srv = await server(() => body);
  const r = new JwksResolver({ log: silentLogger, refreshIntervalMs: 60_000, refreshOnFailureMs: 30, onChange: () => undefined });
  try {
    const uri = srv.url('/jwks');
    r.want(new Map([[uri, { jwksUri: uri, issuer: 'i', timeoutMs: 1000 }]]));
    await waitFor(() => (r.errors().length ? true : undefined), 'the failure');
    assert.equal(r.snapshot().has(uri), false);
    assert.match(r.errors()[0]!.error, /status 500/);
    body = { status: 200, body: '{"not":"a jwks"}' };
    await waitFor(() => (/not a JWKS/.test(r.errors()[0]?.error ?? '') ? true : undefined), 'content checked');
    assert.equal(r.snapshot().has(uri), false);
    body = { status: 200, body: JWKS('ok') };
    await waitFor(() => r.snapshot().get(uri), 'the retry');
    assert.deepEqual(r.errors(), []);
  } finally {
    r.stop();
    await srv.close();
  }
});

test('OpenID discovery when a rule names only the issuer', async () => {
  let base = '';
  const s = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ jwks_uri: `${base}/keys` }));
    else if (req.url === '/keys') res.end(JWKS('oidc'));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  const r = new JwksResolver({ log: silentLogger, onChange: () => undefined });
  try {
    r.want(new Map([['openid:' + base, { issuer: base, timeoutMs: 1000 }]]));
    assert.equal(await waitFor(() => r.snapshot().get('openid:' + base), 'discovery'), JWKS('oidc'));
  } finally {
    r.stop();
    await new Promise((res) => s.close(res));
  }
});

test('link-local and metadata addresses are refused', async () => {
  assert.match(blockedJwksAddress('169.254.169.254') ?? '', /link-local/);
  assert.match(blockedJwksAddress('fe80::1') ?? '', /link-local/);
  assert.equal(blockedJwksAddress('127.0.0.1'), undefined);
  await assert.rejects(fetchText('http://169.254.169.254/latest', 500), /connection blocked/);
});
