import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { silentLogger, type ValidationIssue } from '@sextant/api';
import { KubeClient } from '@sextant/sources';
import { createStatusWriter } from './status.js';

/** A stand-in for the /status subresource that records patches and answers with the next queued status code (200 when none). */
async function statusServer() {
  const patches: Array<{ method: string; url: string; contentType: string | undefined; body: Record<string, unknown> }> = [];
  const codes: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      patches.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
      const code = codes.shift() ?? 200;
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(code === 200 ? {} : { kind: 'Status', code, reason: code === 409 ? 'Conflict' : 'InternalError', message: 'test' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { client: new KubeClient({ server: { url, token: 't' } }), patches, codes, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const vs = (status?: unknown) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: 'cart', namespace: 'shop', resourceVersion: '7', generation: 3 },
  spec: {},
  ...(status ? { status } : {}),
});
const issue: ValidationIssue = { kind: 'VirtualService', namespace: 'shop', name: 'cart', field: 'spec.http[0].match[0].uri.regex', reason: '"(" is not a valid regex' };

test('only the leader writes; an invalid object gets IST0106 and a Reconciled=False condition naming the field; valid again clears it', async () => {
  const s = await statusServer();
  const w = createStatusWriter({ client: s.client, log: silentLogger });
  try {
    w.observe(vs(), [issue]);
    assert.equal(w.pending(), 1);
    await w.idle();
    assert.equal(s.patches.length, 0, 'not the leader: nothing written');
    w.start();
    await w.idle();
    assert.equal(s.patches.length, 1);
    const p = s.patches[0]!;
    assert.equal(p.method, 'PATCH');
    assert.equal(p.url, '/apis/networking.istio.io/v1/namespaces/shop/virtualservices/cart/status');
    assert.equal(p.contentType, 'application/merge-patch+json');
    const body = p.body as { metadata: { resourceVersion: string }; status: { validationMessages: Array<Record<string, unknown>>; conditions: Array<Record<string, unknown>> } };
    assert.equal(body.metadata.resourceVersion, '7');
    assert.deepEqual(body.status.validationMessages[0]?.['type'], { code: 'IST0106', name: 'SchemaValidationError' });
    assert.equal(body.status.validationMessages[0]?.['level'], 'ERROR');
    const cond = body.status.conditions[0]!;
    assert.equal(cond['type'], 'Reconciled');
    assert.equal(cond['status'], 'False');
    assert.equal(cond['reason'], 'SchemaValidationError');
    assert.equal(cond['observedGeneration'], 3);
    assert.match(String(cond['message']), /spec\.http\[0\]\.match\[0\]\.uri\.regex: "\(" is not a valid regex/);

    // The informer's echo of the write: in sync, nothing more.
    w.observe(vs(body.status), [issue]);
    await w.idle();
    assert.equal(s.patches.length, 1);
    assert.equal(w.pending(), 0);

    // Valid again, with someone else's condition next to ours: only ours is removed.
    const other = { type: 'Other', status: 'True' };
    w.observe(vs({ ...body.status, conditions: [...body.status.conditions, other] }), []);
    await w.idle();
    assert.equal(s.patches.length, 2);
    assert.deepEqual(s.patches[1]!.body['status'], { conditions: [other], validationMessages: null });
    assert.deepEqual(w.stats(), { marked: 1, cleared: 1, failures: 0, abandoned: 0, rejected: 0, patchesApplied: 0 });

    // Not an Istio kind, or valid with no status: ignored.
    w.observe({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', namespace: 'shop' } }, [issue]);
    w.observe(vs(), []);
    assert.equal(w.pending(), 0);
  } finally {
    await w.stop();
    await s.close();
  }
});

test('failed writes are retried a bounded number of times and never throw; a deleted object is dropped', async () => {
  const s = await statusServer();
  const w = createStatusWriter({ client: s.client, log: silentLogger, retryMs: 5, maxAttempts: 3 });
  try {
    w.start();
    s.codes.push(500, 500, 500, 500);
    w.observe(vs(), [issue]);
    await w.idle();
    assert.equal(s.patches.length, 3, 'three attempts, then given up');
    assert.deepEqual(w.stats(), { marked: 0, cleared: 0, failures: 3, abandoned: 1, rejected: 0, patchesApplied: 0 });
    assert.equal(w.pending(), 0);

    s.codes.splice(0);
    s.codes.push(500, 200);
    w.observe(vs(), [issue]);
    await w.idle();
    assert.equal(w.stats().marked, 1, 'a retry after one failure succeeds');

    s.codes.push(404);
    w.observe({ ...vs(), metadata: { name: 'gone', namespace: 'shop', resourceVersion: '9' } }, [issue]);
    await w.idle();
    assert.equal(w.pending(), 0, 'a 404 drops the object');
    assert.equal(w.stats().abandoned, 1);
  } finally {
    await w.stop();
    await s.close();
  }
});

test('a proxy rejection is written as Reconciled=False/ProxyRejected (object read back first), kept across informer echoes, and cleared', async () => {
  const requests: Array<{ method: string; url: string; body: Record<string, any> }> = [];
  let live: Record<string, unknown> = vs();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? (JSON.parse(text) as Record<string, any>) : {};
      requests.push({ method: req.method ?? '', url: req.url ?? '', body });
      if (req.method === 'PATCH') live = { ...live, status: body['status'] };
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(live));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const w = createStatusWriter({ client: new KubeClient({ server: { url, token: 't' } }), log: silentLogger });
  try {
    w.start();
    // Core kinds have no Istio status: ignored.
    w.setRejection({ kind: 'Service', namespace: 'shop', name: 'cart' }, 'rejected');
    await w.idle();
    assert.equal(requests.length, 0);

    w.setRejection({ kind: 'VirtualService', namespace: 'shop', name: 'cart' }, 'Envoy rejected RDS 9080 built from this object (proxy p): bad header');
    await w.idle();
    assert.deepEqual(requests.map((r) => `${r.method} ${r.url}`), [
      'GET /apis/networking.istio.io/v1/namespaces/shop/virtualservices/cart',
      'PATCH /apis/networking.istio.io/v1/namespaces/shop/virtualservices/cart/status',
    ]);
    const cond = requests[1]!.body['status'].conditions[0];
    assert.equal(cond.type, 'Reconciled');
    assert.equal(cond.status, 'False');
    assert.equal(cond.reason, 'ProxyRejected');
    assert.equal(cond.message, 'Envoy rejected RDS 9080 built from this object (proxy p): bad header');
    assert.equal(requests[1]!.body['status'].validationMessages, null, 'no analysis message for a rejection');

    // The informer's echo keeps it (no write); the same text again is not rewritten.
    w.observe(live, []);
    w.setRejection({ kind: 'VirtualService', namespace: 'shop', name: 'cart' }, 'Envoy rejected RDS 9080 built from this object (proxy p): bad header');
    await w.idle();
    assert.equal(requests.length, 2);

    // No proxy rejects it any more: the condition goes.
    w.setRejection({ kind: 'VirtualService', namespace: 'shop', name: 'cart' }, undefined);
    await w.idle();
    assert.equal(requests.at(-1)!.method, 'PATCH');
    assert.equal(requests.at(-1)!.body['status'].conditions, null);
    assert.deepEqual(w.stats(), { marked: 0, cleared: 1, failures: 0, abandoned: 0, rejected: 1, patchesApplied: 0 });
  } finally {
    await w.stop();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('an EnvoyFilter gets PatchesApplied next to a ProxyRejected condition; each is set and cleared without touching the other', async () => {
  const requests: Array<{ method: string; url: string; body: Record<string, any> }> = [];
  let live: Record<string, unknown> = { apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', metadata: { name: 'lua', namespace: 'shop', resourceVersion: '3', generation: 2 }, spec: {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? (JSON.parse(text) as Record<string, any>) : {};
      requests.push({ method: req.method ?? '', url: req.url ?? '', body });
      if (req.method === 'PATCH') live = { ...live, status: body['status'] };
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(live));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const w = createStatusWriter({ client: new KubeClient({ server: { url, token: 't' } }), log: silentLogger });
  const types = () => ((live['status'] as { conditions?: Array<{ type: string; reason: string }> | null } | undefined)?.conditions ?? []).map((c) => `${c.type}/${c.reason}`);
  try {
    w.start();
    const ef = { namespace: 'shop', name: 'lua' };
    w.setPatchesApplied(ef, { status: 'False', reason: 'NotApplied', message: '1 of 2 patches did not apply: spec.configPatches[1] (CLUSTER MERGE) matched nothing' });
    await w.idle();
    assert.equal(requests.at(-1)!.url, '/apis/networking.istio.io/v1alpha3/namespaces/shop/envoyfilters/lua/status');
    const cond = requests.at(-1)!.body['status'].conditions[0];
    assert.deepEqual([cond.type, cond.status, cond.reason, cond.observedGeneration], ['PatchesApplied', 'False', 'NotApplied', 2]);
    assert.ok(cond.lastTransitionTime);
    // The informer's echo and the same condition again write nothing.
    const n = requests.length;
    w.observe(live, []);
    w.setPatchesApplied(ef, { status: 'False', reason: 'NotApplied', message: '1 of 2 patches did not apply: spec.configPatches[1] (CLUSTER MERGE) matched nothing' });
    await w.idle();
    assert.equal(requests.length, n);
    // A NACK adds its own condition; PatchesApplied stays.
    w.setRejection({ kind: 'EnvoyFilter', namespace: 'shop', name: 'lua' }, 'Envoy rejected LDS x built from this object (proxy p): bad');
    await w.idle();
    assert.deepEqual(types(), ['Reconciled/ProxyRejected', 'PatchesApplied/NotApplied']);
    w.setPatchesApplied(ef, { status: 'True', reason: 'Applied', message: 'all 2 patches matched in the config built for connected proxies' });
    await w.idle();
    assert.deepEqual(types(), ['Reconciled/ProxyRejected', 'PatchesApplied/Applied']);
    w.setRejection({ kind: 'EnvoyFilter', namespace: 'shop', name: 'lua' }, undefined);
    await w.idle();
    assert.deepEqual(types(), ['PatchesApplied/Applied']);
    w.setPatchesApplied(ef, undefined);
    await w.idle();
    assert.deepEqual(types(), []);
  } finally {
    await w.stop();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
