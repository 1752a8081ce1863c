/**
 * DestinationRule and VirtualService policy through a real Envoy, served by
 * the real daemon (a sidecar with `captureMode: NONE` egress listeners bound
 * to 127.0.0.1, loopback backends):
 * - consistentHash: one header value always reaches the same backend, values
 *   spread over backends; a port-level cookie hash (with ttl and path) on the
 *   service's second port replaces the header hash there, and the rule's
 *   connection limits with it (istiod's port-level replacement);
 * - retries: with `previous_hosts`, the retry of a request that failed on one
 *   host lands on the other; a single hashed destination keeps its host
 *   (istiod leaves the predicate out);
 * - mirroring: the mirrored request reaches every mirror with the original
 *   Host (`disable_shadow_host_suffix_append`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort, httpGet, startHttpBackend, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

describe('traffic policy through a real Envoy: consistent hashing, port-level policy, retries, mirroring', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  const backends: HttpBackend[] = [];
  let sticky: HttpBackend[];
  let good: HttpBackend, bad: HttpBackend, main: HttpBackend, shadow: HttpBackend, shadow2: HttpBackend;
  let stickyHeaderPort: number, stickyCookiePort: number, flakyPort: number, mainPort: number, shadowPort: number;

  before(async () => {
    sticky = await Promise.all([1, 2, 3, 4].map((i) => startHttpBackend(`sticky-${i}`, `127.0.0.4${i}`)));
    good = await startHttpBackend('flaky-good', '127.0.0.51');
    bad = await startHttpBackend('flaky-bad', '127.0.0.52');
    bad.failNext(1_000_000, 503);
    main = await startHttpBackend('main', '127.0.0.61');
    shadow = await startHttpBackend('shadow', '127.0.0.62');
    shadow2 = await startHttpBackend('shadow2', '127.0.0.63');
    backends.push(...sticky, good, bad, main, shadow, shadow2);
    [stickyHeaderPort, stickyCookiePort, flakyPort, mainPort, shadowPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const egress = [stickyHeaderPort, stickyCookiePort, flakyPort, mainPort, shadowPort].map((p) => ({ port: { number: p, protocol: 'HTTP', name: `http-${p}` }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] }));
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        pod('client-abc', 'default', '127.0.0.1', { app: 'client' }),
        service('sticky', 'default', '10.96.5.10', [{ name: 'http-header', port: stickyHeaderPort }, { name: 'http-cookie', port: stickyCookiePort }]),
        ...sticky.flatMap((b) => workload({ svc: 'sticky', pod: `${b.name}-pod`, ip: b.host, labels: { app: 'sticky' }, ports: [{ name: 'http-header', port: b.port }, { name: 'http-cookie', port: b.port }] })),
        service('flaky', 'default', '10.96.5.11', [{ name: 'http', port: flakyPort }]),
        ...[good, bad].flatMap((b) => workload({ svc: 'flaky', pod: `${b.name}-pod`, ip: b.host, labels: { app: 'flaky' }, ports: [{ name: 'http', port: b.port }] })),
        service('main', 'default', '10.96.5.12', [{ name: 'http', port: mainPort }]),
        ...workload({ svc: 'main', pod: 'main-pod', ip: main.host, labels: { app: 'main' }, ports: [{ name: 'http', port: main.port }] }),
        service('shadow', 'default', '10.96.5.13', [{ name: 'http', port: shadowPort }]),
        ...workload({ svc: 'shadow', pod: 'shadow-pod', ip: shadow.host, labels: { app: 'shadow', version: 'v1' }, ports: [{ name: 'http', port: shadow.port }] }),
        ...workload({ svc: 'shadow', pod: 'shadow2-pod', ip: shadow2.host, labels: { app: 'shadow', version: 'v2' }, ports: [{ name: 'http', port: shadow2.port }] }),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('Sidecar', 'client', 'default', { workloadSelector: { labels: { app: 'client' } }, egress }),
        // The header hash for the service; its cookie port replaces the whole load balancer policy.
        istio('DestinationRule', 'sticky', 'default', {
          host: 'sticky',
          trafficPolicy: {
            loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } },
            connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } },
            portLevelSettings: [{ port: { number: stickyCookiePort }, loadBalancer: { consistentHash: { httpCookie: { name: 'sess', ttl: '60s', path: '/' } } } }],
          },
        }),
        // A ring with one entry per host: a retry that must avoid the hashed host deterministically takes the other one.
        istio('DestinationRule', 'flaky', 'default', { host: 'flaky', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-key', ringHash: { minimumRingSize: 2 } } } } }),
        istio('DestinationRule', 'shadow', 'default', { host: 'shadow', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
        istio('VirtualService', 'flaky', 'default', {
          hosts: ['flaky'],
          http: [
            { match: [{ uri: { prefix: '/avoid' } }], retries: { attempts: 1, retryOn: '5xx', retryIgnorePreviousHosts: true }, route: [{ destination: { host: 'flaky' } }] },
            { retries: { attempts: 1, retryOn: '5xx' }, route: [{ destination: { host: 'flaky' } }] },
          ],
        }),
        istio('VirtualService', 'main', 'default', {
          hosts: ['main'],
          http: [
            { match: [{ uri: { prefix: '/many' } }], mirrors: [{ destination: { host: 'shadow', subset: 'v1' } }, { destination: { host: 'shadow', subset: 'v2' }, percentage: { value: 100 } }], route: [{ destination: { host: 'main' } }] },
            { mirror: { host: 'shadow', subset: 'v1' }, mirrorPercentage: { value: 100 }, route: [{ destination: { host: 'main' } }] },
          ],
        }),
      ],
    });
    sextant = await startSextant({ configDir: cfg.dir });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'sidecar~127.0.0.1~client-abc.default~default.svc.cluster.local',
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE' },
    });
    for (const p of [stickyHeaderPort, stickyCookiePort, flakyPort, mainPort, shadowPort]) await envoy.waitForListener(`127.0.0.1_${p}`);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await Promise.all(backends.map((b) => b.close()));
    cfg?.remove();
  });

  test('header hash: each x-user value sticks to one backend over 15 requests; 12 values spread over several backends', async () => {
    const owner = new Map<string, string>();
    for (let u = 0; u < 12; u++) {
      const seen = new Set<string>();
      for (let i = 0; i < 15; i++) {
        const r = await httpGet(stickyHeaderPort, '/', { host: 'sticky', 'x-user': `user-${u}` });
        assert.equal(r.status, 200, r.body);
        seen.add(r.backend);
      }
      assert.equal(seen.size, 1, `user-${u} reached ${[...seen].join(', ')}`);
      owner.set(`user-${u}`, [...seen][0]!);
    }
    assert.ok(new Set(owner.values()).size >= 2, `every user on ${[...new Set(owner.values())].join(', ')}`);
  });

  test('port-level cookie hash on the second port: Envoy sets the cookie (ttl, path); the cookie sticks, the header hash does not apply there', async () => {
    const first = await httpGet(stickyCookiePort, '/', { host: 'sticky', 'x-user': 'user-0' });
    assert.equal(first.status, 200);
    const setCookie = first.headers['set-cookie'] ?? '';
    assert.match(setCookie, /^sess="?[^;"]+"?; Max-Age=60; Path=\//, setCookie);
    const cookie = setCookie.split(';')[0]!;
    const withCookie = new Set<string>();
    for (let i = 0; i < 15; i++) withCookie.add((await httpGet(stickyCookiePort, '/', { host: 'sticky', 'x-user': `other-${i}`, cookie })).backend);
    assert.deepEqual([...withCookie], [first.backend]);
    // One x-user value with different cookies lands on several backends: the header hash does not apply on this port.
    const byCookie = new Set<string>();
    for (let i = 0; i < 30 && byCookie.size < 2; i++) byCookie.add((await httpGet(stickyCookiePort, '/', { host: 'sticky', 'x-user': 'user-0', cookie: `sess=c${i}` })).backend);
    assert.ok(byCookie.size >= 2, 'the header hash still applied on the cookie port');
  });

  test('port-level policy replaces the rule\'s per port: the rule\'s connection limit overflows on the header port, not on the cookie port', async () => {
    const burst = (port: number) => Promise.all(Array.from({ length: 8 }, (_, i) => httpGet(port, `/?delay=400&i=${i}`, { host: 'sticky', cookie: `sess=b${i}` })));
    const limited = await burst(stickyHeaderPort);
    const overflowed = limited.filter((r) => r.status === 503);
    assert.ok(overflowed.length > 0, `no overflow on the header port: ${limited.map((r) => r.status).join(',')}`);
    assert.ok(overflowed.every((r) => r.headers['x-envoy-overloaded'] === 'true'), 'the 503s are circuit-breaker overflows');
    const free = await burst(stickyCookiePort);
    assert.deepEqual(free.map((r) => r.status), free.map(() => 200), 'the cookie port has no connection limit (its port-level entry sets none)');
  });

  test('retries: for keys hashed to the 503 host, previous_hosts sends the retry to the other host every time; without it (istiod\'s default with a hash) the retry stays', async () => {
    let hashedToBad = 0;
    // The two ring entries hash the backends' addresses, whose ports change every run, so the failing
    // host's share of the ring is anywhere in (0, 1): try keys until three land on it (bounded; all
    // 2,000 miss with probability about 1/2,000, and a key on the good host costs one fast request).
    for (let k = 0; k < 2000 && hashedToBad < 3; k++) {
      const headers = { host: 'flaky', 'x-key': `k${k}` };
      const before = bad.requests.length;
      const keep = await httpGet(flakyPort, '/keep', headers);
      const keepHits = bad.requests.length - before;
      if (keepHits === 0) {
        assert.equal(keep.backend, 'flaky-good');
        continue;
      }
      hashedToBad++;
      // No predicate: the retry goes back to the hashed host.
      assert.deepEqual([keep.status, keepHits], [503, 2], `key k${k} on /keep`);
      // previous_hosts: the one retry lands on the other host.
      const mid = bad.requests.length;
      const avoid = await httpGet(flakyPort, '/avoid', headers);
      assert.deepEqual([avoid.status, avoid.backend, bad.requests.length - mid], [200, 'flaky-good', 1], `key k${k} on /avoid`);
    }
    assert.ok(hashedToBad > 0, 'no key hashed to the failing host');
  });

  test('mirroring: the mirrored request arrives with the original Host, at every mirror', async () => {
    const tag = `m-${Date.now()}`;
    const r = await httpGet(mainPort, `/one?tag=${tag}`, { host: 'main' });
    assert.equal(r.backend, 'main');
    const m = await shadow.waitForRequest((q) => q.url.includes(tag), 15_000);
    assert.equal(m.headers.host, 'main');
    const r2 = await httpGet(mainPort, `/many?tag=${tag}-2`, { host: 'main:8080' });
    assert.equal(r2.backend, 'main');
    const [a, b] = await Promise.all([shadow.waitForRequest((q) => q.url.includes(`${tag}-2`), 15_000), shadow2.waitForRequest((q) => q.url.includes(`${tag}-2`), 15_000)]);
    assert.equal(a.headers.host, 'main:8080');
    assert.equal(b.headers.host, 'main:8080');
  });
});
