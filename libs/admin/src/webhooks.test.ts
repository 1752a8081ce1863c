import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { recordingLogger, silentLogger, type LogEntry } from '@sextant/api';
import { injectionDecision, type InjectOptions, type JsonPatchOp } from './inject.js';
import { registerWebhooks } from './webhooks.js';

const injectOpts: InjectOptions = { hub: 'docker.io/istio', tag: '1.24.0', discoveryAddress: 'istiod.istio-system.svc:15012', trustDomain: 'cluster.local' };

function app(nsLabels: Record<string, Record<string, string>> = {}) {
  const a = Fastify();
  registerWebhooks(a, {
    inject: injectOpts,
    namespaceLabels: (ns) => nsLabels[ns],
    log: silentLogger,
  });
  return a;
}

function admission(object: unknown, extra: Record<string, unknown> = {}) {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', operation: 'CREATE', object, ...extra } };
}

/** A minimal RFC 6902 applier for add/replace, enough to check the patch on a real pod shape. */
function applyPatch(doc: unknown, ops: JsonPatchOp[]): unknown {
  const out = structuredClone(doc) as Record<string, unknown>;
  for (const op of ops) {
    const segs = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = segs.pop()!;
    let cur: any = out;
    for (const s of segs) {
      assert.ok(cur[s] !== undefined, `patch path ${op.path} has a missing parent`);
      cur = cur[s];
    }
    if (Array.isArray(cur)) {
      if (last === '-') cur.push(op.value);
      else if (op.op === 'add') cur.splice(Number(last), 0, op.value);
      else cur[Number(last)] = op.value;
    } else {
      if (op.op === 'replace') assert.ok(last in cur, `replace of missing ${op.path}`);
      cur[last] = op.value;
    }
  }
  return out;
}

const pod = (labels: Record<string, string> = {}, annotations?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    generateName: 'reviews-v1-7d8f9c-',
    namespace: 'bookinfo',
    labels: { app: 'reviews', version: 'v1', ...labels },
    ...(annotations ? { annotations } : {}),
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-v1-7d8f9c', controller: true }],
  },
  spec: { serviceAccountName: 'bookinfo-reviews', containers: [{ name: 'reviews', image: 'reviews:1', ports: [{ containerPort: 9080, protocol: 'TCP' }] }] },
});

describe('/validate', () => {
  test('a bad VirtualService is denied with field-level messages', async () => {
    const vs = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'bookinfo' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' }, weight: 'heavy' }] }] },
    };
    const res = await app().inject({ method: 'POST', url: '/validate', payload: admission(vs, { kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' } }) });
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.response.uid, 'u-1');
    assert.equal(body.response.allowed, false);
    assert.equal(body.response.status.code, 400);
    assert.match(body.response.status.message, /VirtualService bookinfo\/reviews: spec\.http\[0\]\.route\[0\]\.weight: /);
  });

  test('a good DestinationRule is allowed; unknown kinds and deletes are allowed', async () => {
    const dr = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'r', namespace: 'bookinfo' }, spec: { host: 'reviews' } };
    const a = app();
    assert.equal((await a.inject({ method: 'POST', url: '/validate', payload: admission(dr) })).json().response.allowed, true);
    const other = { apiVersion: 'example.io/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { anything: 1 } };
    assert.equal((await a.inject({ method: 'POST', url: '/validate', payload: admission(other, { kind: { kind: 'Widget' } }) })).json().response.allowed, true);
    assert.equal((await a.inject({ method: 'POST', url: '/validate', payload: admission(null, { operation: 'DELETE' }) })).json().response.allowed, true);
  });

  test('a malformed review is a 400, not a crash', async () => {
    const res = await app().inject({ method: 'POST', url: '/validate', payload: { hello: 'world' } });
    assert.equal(res.statusCode, 400);
  });
});

describe('/inject', () => {
  test('a pod in a namespace labelled istio-injection=enabled gets the sidecar', async () => {
    const res = await app({ bookinfo: { 'istio-injection': 'enabled' } }).inject({ method: 'POST', url: '/inject', payload: admission(pod(), { namespace: 'bookinfo', kind: { kind: 'Pod' } }) });
    const r = res.json().response;
    assert.equal(r.allowed, true);
    assert.equal(r.patchType, 'JSONPatch');
    const ops = JSON.parse(Buffer.from(r.patch, 'base64').toString()) as JsonPatchOp[];
    const out = applyPatch(pod(), ops) as any;
    assert.deepEqual(out.spec.containers.map((c: any) => c.name), ['reviews', 'istio-proxy']);
    assert.deepEqual(out.spec.initContainers.map((c: any) => c.name), ['istio-init']);
    const proxy = out.spec.containers[1];
    assert.equal(proxy.image, 'docker.io/istio/proxyv2:1.24.0');
    assert.deepEqual(proxy.args.slice(0, 2), ['proxy', 'sidecar']);
    const env = Object.fromEntries(proxy.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    assert.equal(env.CA_ADDR, 'istiod.istio-system.svc:15012');
    assert.equal(JSON.parse(env.PROXY_CONFIG).discoveryAddress, 'istiod.istio-system.svc:15012');
    assert.deepEqual(env.POD_NAME, { fieldRef: { fieldPath: 'metadata.name' } });
    assert.deepEqual(env.INSTANCE_IP, { fieldRef: { fieldPath: 'status.podIP' } });
    assert.deepEqual(env.SERVICE_ACCOUNT, { fieldRef: { fieldPath: 'spec.serviceAccountName' } });
    assert.equal(env.ISTIO_META_WORKLOAD_NAME, 'reviews-v1');
    assert.equal(env.ISTIO_META_OWNER, 'kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews-v1');
    assert.deepEqual(JSON.parse(env.ISTIO_META_POD_PORTS), [{ containerPort: 9080, protocol: 'TCP' }]);
    const vols = Object.fromEntries(out.spec.volumes.map((v: any) => [v.name, v]));
    for (const v of ['istio-envoy', 'istio-data', 'istio-podinfo', 'istio-token', 'istiod-ca-cert']) assert.ok(vols[v], v);
    assert.equal(vols['istio-token'].projected.sources[0].serviceAccountToken.audience, 'istio-ca');
    assert.equal(vols['istiod-ca-cert'].configMap.name, 'istio-ca-root-cert');
    const mounts = new Set(proxy.volumeMounts.map((m: any) => m.name));
    for (const m of mounts) assert.ok(vols[m as string], `mount ${String(m)} has a volume`);
    assert.equal(out.metadata.labels['security.istio.io/tlsMode'], 'istio');
    assert.equal(out.metadata.labels['service.istio.io/canonical-name'], 'reviews');
    assert.equal(out.metadata.labels['service.istio.io/canonical-revision'], 'v1');
    const status = JSON.parse(out.metadata.annotations['sidecar.istio.io/status']);
    assert.deepEqual(status.containers, ['istio-proxy']);
    assert.deepEqual(status.initContainers, ['istio-init']);
    assert.equal(status.revision, 'default');
  });

  test('existing annotations and volumes are patched per key; a second pass does not inject twice', async () => {
    const p = { ...pod({}, { 'a/b': 'c' }) };
    (p.spec as any).volumes = [{ name: 'data', emptyDir: {} }];
    const a = app({ bookinfo: { 'istio-injection': 'enabled' } });
    const r = (await a.inject({ method: 'POST', url: '/inject', payload: admission(p, { namespace: 'bookinfo' }) })).json().response;
    const out = applyPatch(p, JSON.parse(Buffer.from(r.patch, 'base64').toString())) as any;
    assert.equal(out.metadata.annotations['a/b'], 'c');
    assert.ok(out.metadata.annotations['sidecar.istio.io/status']);
    assert.deepEqual(out.spec.volumes[0], { name: 'data', emptyDir: {} });
    const again = (await a.inject({ method: 'POST', url: '/inject', payload: admission(out, { namespace: 'bookinfo' }) })).json().response;
    assert.equal(again.patch, undefined);
  });

  test('pods in unlabelled namespaces or opting out are left alone', async () => {
    const a = app({ bookinfo: { 'istio-injection': 'enabled' }, plain: {} });
    const plain = (await a.inject({ method: 'POST', url: '/inject', payload: admission({ ...pod(), metadata: { ...pod().metadata, namespace: 'plain' } }, { namespace: 'plain' }) })).json().response;
    assert.equal(plain.allowed, true);
    assert.equal(plain.patch, undefined);
    const optOut = (await a.inject({ method: 'POST', url: '/inject', payload: admission(pod({ 'sidecar.istio.io/inject': 'false' }), { namespace: 'bookinfo' }) })).json().response;
    assert.equal(optOut.patch, undefined);
  });

  test('decision table: revisions and the pod flag', () => {
    const d = (labels: Record<string, string>, ns: Record<string, string> | undefined, revision?: string) => injectionDecision(pod(labels), 'bookinfo', ns, { revision }).inject;
    assert.equal(d({}, { 'istio-injection': 'enabled' }), true);
    assert.equal(d({}, { 'istio-injection': 'enabled' }, 'canary'), false);
    assert.equal(d({}, { 'istio.io/rev': 'canary' }, 'canary'), true);
    assert.equal(d({}, { 'istio.io/rev': 'canary' }), false);
    assert.equal(d({}, { 'istio.io/rev': 'default' }), true);
    assert.equal(d({ 'sidecar.istio.io/inject': 'true' }, {}), true);
    assert.equal(d({ 'sidecar.istio.io/inject': 'true' }, { 'istio-injection': 'disabled' }), false);
    assert.equal(d({ 'sidecar.istio.io/inject': 'false' }, { 'istio-injection': 'enabled' }), false);
    assert.equal(d({ 'istio.io/rev': 'canary' }, { 'istio-injection': 'enabled' }, 'canary'), true);
    assert.equal(d({}, undefined), false);
  });
});

describe('AdmissionReview hygiene (both hooks)', () => {
  const vs = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'bookinfo' }, spec: { hosts: ['reviews'], tcp: [{ route: [{ destination: { host: 'reviews' } }] }] } };
  const refused: Array<[string, unknown, RegExp]> = [
    ['a number as uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 5, operation: 'CREATE', object: vs } }, /^request\.uid: expected a non-empty string, got the number 5$/],
    ['an object as uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: { a: 1 }, operation: 'CREATE', object: vs } }, /^request\.uid: expected a non-empty string, got a map$/],
    ['an empty uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '', operation: 'CREATE', object: vs } }, /^request\.uid: expected a non-empty string, got a string ""$/],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /^request: expected the AdmissionRequest object, got nothing$/],
    ['another apiVersion', { apiVersion: 'admission.k8s.io/v2', kind: 'AdmissionReview', request: { uid: 'u', operation: 'CREATE', object: vs } }, /^unsupported AdmissionReview apiVersion a string "admission\.k8s\.io\/v2"; Sextant accepts "admission\.k8s\.io\/v1" and "admission\.k8s\.io\/v1beta1"$/],
    ['no apiVersion', { kind: 'AdmissionReview', request: { uid: 'u', operation: 'CREATE', object: vs } }, /^unsupported AdmissionReview apiVersion nothing; /],
    ['another kind', { apiVersion: 'admission.k8s.io/v1', kind: 'ConversionReview', request: { uid: 'u' } }, /^expected kind "AdmissionReview", got a string "ConversionReview"$/],
    ['a list', [1, 2], /^expected an AdmissionReview object, got a list$/],
  ];
  for (const path of ['/validate', '/inject']) {
    for (const [name, payload, message] of refused) {
      test(`${path}: ${name} is refused with 400 and says why`, async () => {
        const res = await app().inject({ method: 'POST', url: path, payload: payload as object });
        assert.equal(res.statusCode, 400);
        const body = res.json();
        assert.equal(body.kind, 'Status');
        assert.equal(body.code, 400);
        assert.match(body.message, message);
      });
    }
    test(`${path}: a body that is not JSON is refused with 400`, async () => {
      const res = await app().inject({ method: 'POST', url: path, headers: { 'content-type': 'application/json' }, payload: '{"apiVersion":' });
      assert.equal(res.statusCode, 400);
      assert.match(res.json().message, /^the request body is not JSON: /);
    });
    test(`${path}: a body over Istio's 6 MiB limit is refused with 413 before it is parsed`, async () => {
      const res = await app().inject({ method: 'POST', url: path, headers: { 'content-type': 'application/json' }, payload: `"${'x'.repeat(6 * 1024 * 1024)}"` });
      assert.equal(res.statusCode, 413);
    });
  }

  test('a chunked body (no content-length) is cut off with 413 once it passes 6 MiB', async () => {
    const a = app();
    await a.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { port } = a.server.address() as AddressInfo;
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/validate', method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        // The server may close the connection as soon as it has answered; that is not a failure here.
        req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
        const chunk = Buffer.alloc(1024 * 1024, 0x20);
        for (let i = 0; i < 7; i++) req.write(chunk);
        req.end();
      });
      assert.equal(status, 413);
    } finally {
      await a.close();
    }
  });

  test('a v1beta1 review is answered as v1beta1, a v1 review as v1', async () => {
    const a = app({ bookinfo: { 'istio-injection': 'enabled' } });
    for (const version of ['admission.k8s.io/v1beta1', 'admission.k8s.io/v1']) {
      const v = await a.inject({ method: 'POST', url: '/validate', payload: { ...admission(vs), apiVersion: version } });
      assert.equal(v.statusCode, 200);
      assert.deepEqual(v.json(), { apiVersion: version, kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true } });
      const i = await a.inject({ method: 'POST', url: '/inject', payload: { ...admission(pod(), { namespace: 'bookinfo', kind: { kind: 'Pod' } }), apiVersion: version } });
      assert.equal(i.statusCode, 200);
      assert.equal(i.json().apiVersion, version);
      assert.equal(i.json().response.uid, 'u-1');
      assert.equal(i.json().response.patchType, 'JSONPatch');
    }
  });
});

describe('the webhook worker pool bounds every review', () => {
  const hostile = (fields: number) => {
    const spec: Record<string, unknown> = { hosts: ['reviews'] };
    for (let i = 0; i < fields; i++) spec[`f${i}`] = i;
    return admission({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'h', namespace: 'bookinfo' }, spec });
  };

  test('a review past the deadline gets 503, its worker is stopped, and the pool answers the next review', async () => {
    const entries: LogEntry[] = [];
    const a = Fastify();
    registerWebhooks(a, { log: recordingLogger(entries), limits: { deadlineMs: 1, maxThreads: 1 } });
    try {
      const res = await a.inject({ method: 'POST', url: '/validate', payload: hostile(50_000) });
      assert.equal(res.statusCode, 503);
      assert.match(res.json().message, /^Sextant did not finish this review within 1 ms$/);
      assert.ok(entries.some((e) => e.level === 'warn' && e.msg === 'admission review not answered within the deadline; its worker was stopped' && e.hook === 'validate'));
    } finally {
      await a.close();
    }
    const b = app();
    const ok = await b.inject({ method: 'POST', url: '/validate', payload: hostile(1_000) });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.json().response.allowed, false);
    await b.close();
  });

  test('a review that needs more than a worker\'s heap gets 500, the process lives on, and the pool answers the next review', async () => {
    const entries: LogEntry[] = [];
    const a = Fastify();
    registerWebhooks(a, { log: recordingLogger(entries), limits: { workerHeapMb: 16, maxThreads: 1 } });
    try {
      const res = await a.inject({ method: 'POST', url: '/validate', payload: hostile(100_000) });
      assert.equal(res.statusCode, 500);
      assert.match(res.json().message, /^Sextant could not process the review: .*memory limit/);
      assert.ok(entries.some((e) => e.level === 'error' && e.hook === 'validate' && typeof e.err === 'string' && /memory limit/.test(e.err)));
      const ok = await a.inject({ method: 'POST', url: '/validate', payload: hostile(10) });
      assert.equal(ok.statusCode, 200);
      assert.equal(ok.json().response.allowed, false);
    } finally {
      await a.close();
    }
  });

  test('reviews beyond the workers and the queue get 429 instead of piling up', async () => {
    const a = Fastify();
    const outcomes: string[] = [];
    registerWebhooks(a, { log: silentLogger, limits: { maxThreads: 1, maxQueue: 1 }, onResult: (_h, o) => outcomes.push(o) });
    try {
      await a.ready();
      const payload = JSON.stringify(hostile(50_000));
      const codes = await Promise.all(
        Array.from({ length: 6 }, () => a.inject({ method: 'POST', url: '/validate', headers: { 'content-type': 'application/json' }, payload }).then((r) => r.statusCode)),
      );
      assert.ok(codes.includes(429), `status codes ${codes.join(', ')}`);
      assert.ok(codes.includes(200), `status codes ${codes.join(', ')}`);
      assert.equal(outcomes.filter((o) => o === 'error').length, codes.filter((c) => c === 429).length);
    } finally {
      await a.close();
    }
  });
});
