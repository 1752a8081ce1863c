/**
 * EnvoyFilter against a real Envoy: the real daemon serves a sidecar (no
 * traffic capture, an egress listener bound to 127.0.0.1:<port>) an
 * EnvoyFilter that inserts a Lua HTTP filter before the router; the filter
 * adds a response header, seen on real requests through Envoy. Deleting the
 * EnvoyFilter from the config folder removes the filter from the running
 * Envoy, and the header with it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'node:http';
import { freePort, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { listeners } from './fixtures/dump.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { debugJson, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const withVersion = (apiVersion: string, o: K8sObject): K8sObject => ({ ...o, apiVersion });

describe('EnvoyFilter: a Lua filter inserted before the router acts on real requests', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let backend: HttpBackend;
  let port: number;

  // EnvoyFilter is served as v1alpha3 only.
  const luaFilter = withVersion('networking.istio.io/v1alpha3', istio('EnvoyFilter', 'add-header', 'default', {
    workloadSelector: { labels: { app: 'productpage' } },
    configPatches: [
      {
        applyTo: 'HTTP_FILTER',
        match: {
          context: 'SIDECAR_OUTBOUND',
          listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } },
        },
        patch: {
          operation: 'INSERT_BEFORE',
          value: {
            name: 'envoy.filters.http.lua',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua',
              default_source_code: { inline_string: 'function envoy_on_response(handle)\n  handle:headers():add("x-envoyfilter", "lua")\nend\n' },
            },
          },
        },
      },
    ],
  }));
  // A new connection per request: connections accepted before a listener update keep its old filters until drained.
  const get = () =>
    new Promise<{ status: number; headers: Record<string, unknown>; backend: unknown }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: 'reviews' }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, backend: res.headers['x-backend'] }));
      });
      req.setTimeout(20_000, () => req.destroy(new Error('no answer within 20 s')));
      req.on('error', reject);
      req.end();
    });
  const httpFilters = async (): Promise<string[]> => {
    const l = listeners(await envoy!.configDump()).get(`127.0.0.1_${port}`) as Record<string, any> | undefined;
    const hcm = (l?.filter_chains ?? []).flatMap((fc: Record<string, any>) => fc.filters ?? []).find((f: Record<string, any>) => f.name === 'envoy.filters.network.http_connection_manager');
    return (hcm?.typed_config?.http_filters ?? []).map((f: { name: string }) => f.name);
  };

  before(async () => {
    backend = await startHttpBackend('reviews-v1', '127.0.0.31');
    port = await freePort();
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        pod('productpage-v1-abc', 'default', '127.0.0.1', { app: 'productpage', version: 'v1' }),
        service('reviews', 'default', '10.96.3.13', [{ name: 'http', port }]),
        ...workload({ svc: 'reviews', pod: 'reviews-v1-pod', ip: backend.host, labels: { app: 'reviews' }, ports: [{ name: 'http', port: backend.port }] }),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('Sidecar', 'productpage', 'default', {
          workloadSelector: { labels: { app: 'productpage' } },
          egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] }],
        }),
      ],
      'envoyfilter.yaml': [luaFilter],
    });
    sextant = await startSextant({ configDir: cfg.dir });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'sidecar~127.0.0.1~productpage-v1-abc.default~default.svc.cluster.local',
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE' },
    });
    await envoy.waitForListener(`127.0.0.1_${port}`);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await backend?.close();
    cfg?.remove();
  });

  test('Envoy accepted the patched listener: Lua sits right before the router', async () => {
    const names = await httpFilters();
    assert.deepEqual(names.slice(-2), ['envoy.filters.http.lua', 'envoy.filters.http.router'], names.join(','));
  });

  test('a request through Envoy carries the header the Lua filter adds', async () => {
    const r = await get();
    assert.equal(r.status, 200);
    assert.equal(r.backend, 'reviews-v1');
    assert.equal(r.headers['x-envoyfilter'], 'lua');
  });

  test('a patch with an @type Sextant does not know is reported on /debug/config_issues; the other filter still acts', async () => {
    const bad = withVersion('networking.istio.io/v1alpha3', istio('EnvoyFilter', 'bad-type', 'default', {
      configPatches: [{ applyTo: 'HTTP_FILTER', match: { context: 'SIDECAR_OUTBOUND' }, patch: { operation: 'INSERT_FIRST', value: { name: 'example', typed_config: { '@type': 'type.googleapis.com/example.NotAFilter' } } } }],
    }));
    cfg.write('envoyfilter.yaml', [luaFilter, bad]);
    type Issues = { semantic: Array<{ kind: string; namespace: string; name: string; field: string; reason: string }> };
    const issues = await until(() => debugJson(sextant!.httpUrl, '/debug/config_issues') as Promise<Issues>, (i) => i.semantic.some((x) => x.name === 'bad-type'), 'the bad EnvoyFilter reported');
    const mine = issues.semantic.find((i) => i.name === 'bad-type')!;
    assert.deepEqual([mine.kind, mine.namespace, mine.field], ['EnvoyFilter', 'default', 'spec.configPatches[0].patch.value']);
    assert.match(mine.reason, /example\.NotAFilter/);
    const names = await httpFilters();
    assert.ok(!names.includes('example'), names.join(','));
    assert.deepEqual(names.slice(-2), ['envoy.filters.http.lua', 'envoy.filters.http.router']);
    assert.equal((await get()).headers['x-envoyfilter'], 'lua');
  });

  test('deleting the EnvoyFilter removes the filter from the running Envoy, and the header', async () => {
    cfg.write('envoyfilter.yaml', []);
    await until(httpFilters, (names) => names.length > 0 && !names.includes('envoy.filters.http.lua'), 'the listener without the Lua filter');
    const r = await get();
    assert.equal(r.status, 200);
    assert.equal(r.backend, 'reviews-v1');
    assert.equal(r.headers['x-envoyfilter'], undefined);
  });
});
