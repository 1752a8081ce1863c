import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '@sextant/api';
import { createAdminServer, createMetrics, createMonitoringServer, isLoopbackPeer, type AdminServerOptions, type ProxyState } from './index.js';

const noDebug: AdminServerOptions['debug'] = { syncz: () => [], proxy: () => undefined, configIssues: () => [], pushStatus: () => ({}) };
const base = { host: '127.0.0.1', port: 0, isReady: () => true, log: silentLogger, systemNamespace: 'istio-system', debug: noDebug };

function proxy(id: string, namespace: string): ProxyState {
  return { connectionId: `c-${id}`, proxyId: id, delta: false, node: { id }, namespace, types: [] };
}

/** GET from a chosen local address, so the server sees a peer other than 127.0.0.1. */
function get(host: string, port: number, path: string, localAddress: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, localAddress, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('/ready answers 503 until every source synced, then 200', async () => {
  let ready = false;
  const app = createAdminServer({ ...base, isReady: () => ready });
  assert.equal((await app.inject({ url: '/ready' })).statusCode, 503);
  ready = true;
  assert.equal((await app.inject({ url: '/ready' })).statusCode, 200);
  await app.close();
});

test('/debug/config_dump needs a proxyID, 404s for unknown proxies, and answers an Envoy ConfigDump', async () => {
  const p = proxy('sidecar~10.0.0.1~a-1.ns1~ns1.svc.cluster.local', 'ns1');
  const app = createAdminServer({ ...base, debug: { ...noDebug, proxy: (id) => (id === p.proxyId || id === 'a-1.ns1' ? p : undefined) } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  assert.equal((await app.inject({ url: '/debug/config_dump' })).statusCode, 400);
  assert.equal((await app.inject({ url: '/debug/config_dump?proxyID=nope' })).statusCode, 404);
  const ok = await app.inject({ url: '/debug/config_dump?proxyID=a-1.ns1' });
  assert.equal(ok.statusCode, 200);
  const types = (ok.json() as { configs: Array<{ '@type': string }> }).configs.map((c) => c['@type'].split('.').pop());
  assert.deepEqual(types, ['BootstrapConfigDump', 'ClustersConfigDump', 'EndpointsConfigDump', 'ListenersConfigDump', 'ScopedRoutesConfigDump', 'RoutesConfigDump', 'SecretsConfigDump']);
  const own = await app.inject({ url: `/debug/sextant_dump?proxyID=${encodeURIComponent(p.proxyId)}` });
  assert.equal((own.json() as { proxyId: string }).proxyId, p.proxyId);
  await app.close();
});

test('loopback means 127.0.0.1 and ::1 only', () => {
  for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopbackPeer(a), a);
  for (const a of ['127.0.0.3', '10.0.0.1', '::ffff:10.0.0.1', undefined]) assert.ok(!isLoopbackPeer(a), String(a));
});

test('/debug/* from a non-loopback peer needs a valid token; system-namespace callers read all, others only their namespace\'s dumps', async () => {
  const tokens: Record<string, { namespace: string; serviceAccount: string }> = {
    admin: { namespace: 'istio-system', serviceAccount: 'istiod-reader' },
    app: { namespace: 'ns1', serviceAccount: 'default' },
  };
  const mine = proxy('sidecar~10.0.0.1~a-1.ns1~ns1.svc.cluster.local', 'ns1');
  const theirs = proxy('sidecar~10.0.0.2~b-1.ns2~ns2.svc.cluster.local', 'ns2');
  const app = createAdminServer({
    ...base,
    host: '127.0.0.2',
    authenticate: async (t) => {
      const c = tokens[t];
      if (!c) throw new Error('token not authenticated');
      return c;
    },
    debug: { ...noDebug, syncz: () => [{ proxyId: 'x' }], proxy: (id) => [mine, theirs].find((p) => p.proxyId === id) },
  });
  await app.listen({ host: '127.0.0.2', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const remote = (path: string, token?: string) => get('127.0.0.2', port, path, '127.0.0.3', token);
  try {
    // Loopback: open.
    assert.equal((await get('127.0.0.2', port, '/debug/syncz', '127.0.0.1')).status, 200);
    // Not loopback: no token, a bad token.
    assert.equal((await remote('/debug/syncz')).status, 401);
    assert.equal((await remote('/debug')).status, 401);
    assert.equal((await remote(`/debug/config_dump?proxyID=${encodeURIComponent(mine.proxyId)}`)).status, 401);
    const bad = await remote('/debug/syncz', 'forged');
    assert.equal(bad.status, 401);
    assert.doesNotMatch(bad.body, /not authenticated/, 'the reason is logged, not returned');
    // /ready stays open.
    assert.equal((await remote('/ready')).status, 200);
    // The system namespace reads everything.
    assert.equal((await remote('/debug/syncz', 'admin')).status, 200);
    assert.equal((await remote(`/debug/config_dump?proxyID=${encodeURIComponent(theirs.proxyId)}`, 'admin')).status, 200);
    // Another namespace: only config dumps, only of its own proxies.
    assert.equal((await remote('/debug/syncz', 'app')).status, 403);
    assert.equal((await remote(`/debug/config_dump?proxyID=${encodeURIComponent(mine.proxyId)}`, 'app')).status, 200);
    assert.equal((await remote(`/debug/config_dump?proxyID=${encodeURIComponent(theirs.proxyId)}`, 'app')).status, 404);
  } finally {
    await app.close();
  }
});

test('without an authenticator, non-loopback /debug callers are refused (fails closed)', async () => {
  const app = createAdminServer({ ...base, host: '127.0.0.2' });
  await app.listen({ host: '127.0.0.2', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  try {
    assert.equal((await get('127.0.0.2', port, '/debug/syncz', '127.0.0.3', 'anything')).status, 401);
  } finally {
    await app.close();
  }
});

test('a debug response that would carry a private key is withheld', async () => {
  const pem = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n';
  for (const leak of [pem, Buffer.from(pem).toString('base64'), Buffer.from(`x${pem}`).toString('base64'), Buffer.from(`xy${pem}`).toString('base64')]) {
    const app = createAdminServer({ ...base, debug: { ...noDebug, pushStatus: () => ({ leak }) } });
    const res = await app.inject({ url: '/debug/push_status' });
    assert.equal(res.statusCode, 500);
    assert.ok(!res.body.includes(leak));
    await app.close();
  }
});

test('/metrics serves istiod-named metrics in Prometheus text format', async () => {
  const metrics = createMetrics();
  metrics.xdsPushes.labels('cds').inc(3);
  const app = createMonitoringServer(metrics.registry);
  const res = await app.inject({ url: '/metrics' });
  assert.equal(res.statusCode, 200);
  assert.match(res.body, /pilot_xds_pushes\{type="cds"\} 3/);
  await app.close();
});

test('the auth check follows the route, not the raw URL: percent-encoded debug paths are refused too', async () => {
  const app = createAdminServer({ ...base, host: '127.0.0.2', debug: { ...noDebug, syncz: () => [{ secret: 'x' }] } });
  await app.listen({ host: '127.0.0.2', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  try {
    for (const path of ['/debug/syncz', '/%64ebug/syncz', '/debug/%73yncz', '/debug/syncz/', '/debug//syncz', '/debug/syncz?x=/ready']) {
      const r = await get('127.0.0.2', port, path, '127.0.0.3');
      assert.ok(r.status === 401 || r.status === 404, `${path}: ${r.status} ${r.body}`);
      assert.ok(!r.body.includes('secret'), path);
    }
  } finally {
    await app.close();
  }
});
