/**
 * Istio ingress gateway traffic management end to end: the real daemon
 * serving a config folder, a real Envoy as a router (`router~...` node with
 * `istio: ingressgateway` labels), and real HTTP through the Gateway listener
 * to loopback backends that record what they receive. Covers weights, header
 * match, prefix rewrite, redirect, retries, timeout, fault abort and delay,
 * mirroring, and a live edit of the config folder.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { distribution, freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { listeners, rdsName, routeConfigs } from './fixtures/dump.js';
import { configDir, istio, meshPlaintext, namespace, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const HOST = 'shop.example.com';

function virtualService(opts: { v1Weight: number; v2Weight: number }): K8sObject {
  const web = (subset: string) => ({ destination: { host: 'web', subset, port: { number: 8000 } } });
  return istio('VirtualService', 'shop', 'default', {
    hosts: [HOST],
    gateways: ['shop-gateway'],
    http: [
      { name: 'by-header', match: [{ headers: { 'x-user': { exact: 'tester' } } }], route: [web('v2')] },
      { name: 'rewrite', match: [{ uri: { prefix: '/old/' } }], rewrite: { uri: '/new/' }, route: [web('v1')] },
      { name: 'redirect', match: [{ uri: { exact: '/redirect' } }], redirect: { uri: '/elsewhere', authority: 'other.example.com' } },
      { name: 'retry', match: [{ uri: { prefix: '/flaky' } }], retries: { attempts: 3, retryOn: '503' }, route: [{ destination: { host: 'flaky' } }] },
      { name: 'no-retry', match: [{ uri: { prefix: '/fragile' } }], retries: { attempts: 0 }, route: [{ destination: { host: 'flaky' } }] },
      { name: 'timeout', match: [{ uri: { prefix: '/slow' } }], timeout: '0.4s', route: [web('v1')] },
      { name: 'abort', match: [{ uri: { prefix: '/fault/abort' } }], fault: { abort: { httpStatus: 418, percentage: { value: 100 } } }, route: [web('v1')] },
      { name: 'delay', match: [{ uri: { prefix: '/fault/delay' } }], fault: { delay: { fixedDelay: '1s', percentage: { value: 100 } } }, route: [web('v1')] },
      { name: 'mirror', match: [{ uri: { prefix: '/mirror' } }], route: [web('v1')], mirror: { host: 'mirror' }, mirrorPercentage: { value: 100 } },
      {
        name: 'split',
        route: [
          { ...web('v1'), weight: opts.v1Weight },
          { ...web('v2'), weight: opts.v2Weight },
        ],
      },
    ],
  });
}

describe('ingress gateway: Gateway + VirtualService through a real Envoy', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  const backends: HttpBackend[] = [];
  let v1: HttpBackend, v2: HttpBackend, flaky: HttpBackend, mirror: HttpBackend;
  let gatewayPort: number;

  const get = (path: string, headers: Record<string, string> = {}) => httpGet(gatewayPort, path, { host: HOST, ...headers });

  before(async () => {
    v1 = await startHttpBackend('web-v1', '127.0.0.11');
    v2 = await startHttpBackend('web-v2', '127.0.0.12');
    flaky = await startHttpBackend('flaky', '127.0.0.13');
    mirror = await startHttpBackend('mirror', '127.0.0.14');
    backends.push(v1, v2, flaky, mirror);
    // The gateway Service maps port 80 to the pod's port, as istio-ingressgateway maps 80 → 8080;
    // istiod binds the listener on the target port.
    gatewayPort = await freePort();
    const k8s: K8sObject[] = [
      namespace('default'),
      namespace('istio-system'),
      service('istio-ingressgateway', 'istio-system', '10.96.0.50', [{ name: 'http2', port: 80, targetPort: gatewayPort }], { istio: 'ingressgateway' }, { istio: 'ingressgateway' }),
      ...workload({ svc: 'istio-ingressgateway', namespace: 'istio-system', pod: 'istio-ingressgateway-xyz', ip: '127.0.0.1', labels: { istio: 'ingressgateway', app: 'istio-ingressgateway' }, ports: [{ name: 'http2', port: gatewayPort }] }),
      service('web', 'default', '10.96.1.10', [{ name: 'http', port: 8000, targetPort: 8080 }]),
      ...workload({ svc: 'web', pod: 'web-v1-a', ip: v1.host, labels: { app: 'web', version: 'v1' }, ports: [{ name: 'http', port: v1.port }] }),
      ...workload({ svc: 'web', pod: 'web-v2-b', ip: v2.host, labels: { app: 'web', version: 'v2' }, ports: [{ name: 'http', port: v2.port }] }),
      service('flaky', 'default', '10.96.1.11', [{ name: 'http', port: 8000 }]),
      ...workload({ svc: 'flaky', pod: 'flaky-c', ip: flaky.host, labels: { app: 'flaky' }, ports: [{ name: 'http', port: flaky.port }] }),
      service('mirror', 'default', '10.96.1.12', [{ name: 'http', port: 8000 }]),
      ...workload({ svc: 'mirror', pod: 'mirror-d', ip: mirror.host, labels: { app: 'mirror' }, ports: [{ name: 'http', port: mirror.port }] }),
    ];
    const istioCfg: K8sObject[] = [
      meshPlaintext(),
      istio('Gateway', 'shop-gateway', 'default', {
        selector: { istio: 'ingressgateway' },
        servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: [HOST] }],
      }),
      istio('DestinationRule', 'web', 'default', {
        host: 'web',
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
      }),
    ];
    cfg = configDir({ 'kubernetes.yaml': k8s, 'istio.yaml': istioCfg, 'vs.yaml': [virtualService({ v1Weight: 70, v2Weight: 30 })] });
    sextant = await startSextant({ configDir: cfg.dir });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'router~127.0.0.1~istio-ingressgateway-xyz.istio-system~istio-system.svc.cluster.local',
      metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway', app: 'istio-ingressgateway' } },
    });
    await envoy.waitForListener(`0.0.0.0_${gatewayPort}`);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await Promise.all(backends.map((b) => b.close()));
    cfg?.remove();
  });

  test('listener is bound on the gateway Service targetPort, with RDS http.<port>', async () => {
    const dump = await envoy!.configDump();
    const l = listeners(dump).get(`0.0.0.0_${gatewayPort}`);
    assert.ok(l, `listener 0.0.0.0_${gatewayPort} in ${[...listeners(dump).keys()]}`);
    assert.equal(rdsName(l), `http.${gatewayPort}`);
    const rc = routeConfigs(dump).get(`http.${gatewayPort}`)?.config;
    assert.ok(rc, `route config http.${gatewayPort} in ${[...routeConfigs(dump).keys()]}`);
    // istiod names gateway virtual hosts by the server port (80), not the translated listener port.
    assert.deepEqual(rc.virtual_hosts.map((v: { name: string; domains: string[] }) => [v.name, v.domains]), [[`${HOST}:80`, [HOST]]]);
  });

  test('a host the Gateway does not admit gets 404', async () => {
    const r = await httpGet(gatewayPort, '/', { host: 'nope.example.com' });
    assert.equal(r.status, 404);
    assert.equal(r.backend, '');
  });

  test('weights 70/30 hold within ±5% over 2000 requests', async () => {
    const counts = await distribution(2000, async () => {
      const r = await get('/split');
      assert.equal(r.status, 200, r.body);
      return r.backend;
    });
    const a = counts.get('web-v1') ?? 0;
    const b = counts.get('web-v2') ?? 0;
    assert.equal(a + b, 2000, JSON.stringify([...counts]));
    assert.ok(Math.abs(a / 2000 - 0.7) <= 0.05, `web-v1 got ${a}/2000`);
    assert.ok(Math.abs(b / 2000 - 0.3) <= 0.05, `web-v2 got ${b}/2000`);
  });

  test('header match sends x-user: tester to v2 only', async () => {
    for (let i = 0; i < 20; i++) assert.equal((await get('/split', { 'x-user': 'tester' })).backend, 'web-v2');
    const other = await distribution(40, async () => (await get('/split', { 'x-user': 'someone-else' })).backend, 4);
    assert.ok((other.get('web-v1') ?? 0) > 0, 'a non-matching header falls through to the split');
  });

  test('prefix rewrite: /old/x reaches the backend as /new/x', async () => {
    const r = await get('/old/thing?q=1');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).url, '/new/thing?q=1');
  });

  test('redirect: 301 to the new authority and path, backend untouched', async () => {
    const before = backends.reduce((n, b) => n + b.requests.length, 0);
    const r = await get('/redirect');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'http://other.example.com/elsewhere');
    assert.equal(backends.reduce((n, b) => n + b.requests.length, 0), before);
  });

  test('retries: a backend failing twice with 503 is retried to success', async () => {
    const start = flaky.requests.length;
    flaky.failNext(2, 503);
    const r = await get('/flaky/once');
    assert.equal(r.status, 200, r.body);
    assert.equal(r.backend, 'flaky');
    assert.equal(flaky.requests.length - start, 3, 'two failures and one success');
    // Negative control: with retries off, the first 503 comes back to the client.
    flaky.failNext(1, 503);
    const r2 = await get('/fragile');
    assert.equal(r2.status, 503);
    assert.equal(flaky.requests.length - start, 4);
  });

  test('timeout: a backend slower than 0.4s gets 504; a fast one 200', async () => {
    const slow = await get('/slow?delay=3000');
    assert.equal(slow.status, 504, slow.body);
    assert.ok(slow.ms < 2500, `took ${slow.ms} ms`);
    const fast = await get('/slow?delay=10');
    assert.equal(fast.status, 200);
  });

  test('fault abort: 418 from Envoy, the backend never sees it', async () => {
    const r = await get('/fault/abort');
    assert.equal(r.status, 418);
    assert.equal(r.backend, '');
    assert.ok(!v1.requests.some((q) => q.url.startsWith('/fault/abort')));
  });

  test('fault delay: 1s added before the backend answers', async () => {
    const r = await get('/fault/delay');
    assert.equal(r.status, 200);
    assert.equal(r.backend, 'web-v1');
    assert.ok(r.ms >= 950, `took ${r.ms} ms`);
  });

  test('mirror: the mirror backend sees a copy with the original Host (istiod: DISABLE_SHADOW_HOST_SUFFIX), the client gets v1', async () => {
    const r = await get('/mirror/copy-me');
    assert.equal(r.backend, 'web-v1');
    const seen = await mirror.waitForRequest((q) => q.url === '/mirror/copy-me');
    assert.equal(seen.headers.host, HOST);
  });

  test('a VirtualService edit in the folder reaches the running Envoy (no restart)', async () => {
    const routeVersion = async () => routeConfigs(await envoy!.configDump()).get(`http.${gatewayPort}`)?.version ?? '';
    const before = await routeVersion();
    cfg.write('vs.yaml', [virtualService({ v1Weight: 0, v2Weight: 100 })]);
    await until(routeVersion, (v) => v !== '' && v !== before, 'a new http route version in Envoy');
    // Once switched, every request goes to v2.
    const counts = await distribution(100, async () => (await get('/split')).backend, 8);
    assert.deepEqual([...counts], [['web-v2', 100]]);
  });
});
