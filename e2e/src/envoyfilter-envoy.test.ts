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
import { freePort, getOnNewConnection, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { type RunningEnvoy } from './envoy.js';
import { listeners } from './fixtures/dump.js';
import { configDir, istio, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { productpagePod, productpageSidecar, startProductpageProxy } from './fixtures/productpage.js';
import { debugJson, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const withVersion = (apiVersion: string, o: K8sObject): K8sObject => ({ ...o, apiVersion });
const HCM = 'envoy.filters.network.http_connection_manager';

/** productpage whose bound egress listener on <port> reaches one reviews backend, with these EnvoyFilters. */
const reviewsConfig = (port: number, backend: HttpBackend, envoyFilters: K8sObject[]): ConfigDir =>
  configDir({
    'kubernetes.yaml': [
      ...productpagePod(),
      service('reviews', 'default', '10.96.3.13', [{ name: 'http', port }]),
      ...workload({ svc: 'reviews', pod: 'reviews-v1-pod', ip: backend.host, labels: { app: 'reviews' }, ports: [{ name: 'http', port: backend.port }] }),
    ],
    'istio.yaml': productpageSidecar(port),
    'envoyfilter.yaml': envoyFilters,
  });

/** The HTTP filter names of a listener's HTTP connection manager, in order. */
const httpFilterNames = (listener: Record<string, any> | undefined): string[] => {
  const hcm = (listener?.filter_chains ?? []).flatMap((fc: Record<string, any>) => fc.filters ?? []).find((f: Record<string, any>) => f.name === HCM);
  return (hcm?.typed_config?.http_filters ?? []).map((f: { name: string }) => f.name);
};

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
  const get = async () => {
    const r = await getOnNewConnection(port, '/', 'reviews');
    return { ...r, backend: r.headers['x-backend'] };
  };
  const httpFilters = async (): Promise<string[]> => httpFilterNames(listeners(await envoy!.configDump()).get(`127.0.0.1_${port}`) as Record<string, any> | undefined);

  before(async () => {
    backend = await startHttpBackend('reviews-v1', '127.0.0.31');
    port = await freePort();
    cfg = reviewsConfig(port, backend, [luaFilter]);
    ({ sextant, envoy } = await startProductpageProxy(cfg.dir, port));
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

/**
 * The order istiod applies EnvoyFilters in and its proxy matches, seen on real
 * requests: Lua filters, each appending its letter to the request header
 * `x-order` the backend echoes, inserted by EnvoyFilters of different
 * priorities, namespaces and creation times; one whose `proxyVersion` does not
 * match the node's ISTIO_VERSION stays out. A LISTENER_FILTER patch reaches
 * the running listener, and an ADD with `filterClass: AUTHZ` (which istiod
 * does not read: the filter would land after the router and Envoy would
 * reject the listeners) is reported instead of breaking the proxy.
 */
describe('EnvoyFilter: ordering, proxy version and listener filters on a real Envoy', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let backend: HttpBackend;
  let port: number;
  const ROUTER = 'envoy.filters.http.router';

  const lua = (letter: string) => ({
    name: `lua-${letter}`,
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua',
      default_source_code: { inline_string: `function envoy_on_request(h)\n  local v = h:headers():get("x-order") or ""\n  h:headers():replace("x-order", v .. "${letter}")\nend\n` },
    },
  });
  const filter = (name: string, ns: string, created: string, spec: Record<string, unknown>): K8sObject => {
    const o = withVersion('networking.istio.io/v1alpha3', istio('EnvoyFilter', name, ns, spec));
    return { ...o, metadata: { ...o.metadata, creationTimestamp: created } as K8sObject['metadata'] };
  };
  const httpPatch = (operation: string, letter: string, extra: Record<string, unknown> = {}, sub?: string) => ({
    applyTo: 'HTTP_FILTER',
    match: { context: 'SIDECAR_OUTBOUND', ...extra, listener: { filterChain: { filter: { name: HCM, ...(sub ? { subFilter: { name: sub } } : {}) } } } },
    patch: { operation, value: lua(letter) },
  });
  // Applied in istiod's order: priority -10 (p); then at priority 0 the root namespace's (r) before the
  // workload namespace's although it is the newest, and those by creation time (a, then b); then priority 100 (v).
  const filters = (): K8sObject[] => [
    filter('order-b', 'default', '2026-03-01T00:00:00Z', { configPatches: [httpPatch('INSERT_FIRST', 'b')] }),
    filter('order-a', 'default', '2026-02-01T00:00:00Z', { configPatches: [httpPatch('INSERT_BEFORE', 'a', {}, ROUTER)] }),
    filter('order-root', 'istio-system', '2026-04-01T00:00:00Z', { configPatches: [httpPatch('INSERT_FIRST', 'r')] }),
    filter('order-prio', 'default', '2026-05-01T00:00:00Z', { priority: -10, configPatches: [httpPatch('INSERT_FIRST', 'p')] }),
    filter('version-hit', 'default', '2026-01-01T00:00:00Z', { priority: 100, configPatches: [httpPatch('INSERT_BEFORE', 'v', { proxy: { proxyVersion: '^1\\.31' } }, ROUTER)] }),
    filter('version-miss', 'default', '2026-01-01T00:00:00Z', { configPatches: [httpPatch('INSERT_FIRST', 'X', { proxy: { proxyVersion: '^1\\.99' } })] }),
    filter('tls-inspector', 'default', '2026-01-01T00:00:00Z', {
      configPatches: [
        {
          applyTo: 'LISTENER_FILTER',
          match: { context: 'SIDECAR_OUTBOUND', listener: { portNumber: port } },
          patch: { operation: 'INSERT_FIRST', value: { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } } },
        },
      ],
    }),
    filter('authz-add', 'default', '2026-01-01T00:00:00Z', { configPatches: [{ ...httpPatch('ADD', 'Z'), patch: { operation: 'ADD', filterClass: 'AUTHZ', value: lua('Z') } }] }),
  ];
  const listener = async () => listeners(await envoy!.configDump()).get(`127.0.0.1_${port}`) as Record<string, any> | undefined;
  const httpFilters = async (): Promise<string[]> => httpFilterNames(await listener());
  const order = async (): Promise<string> => {
    const r = await httpGet(port, '/', { host: 'reviews' });
    assert.equal(r.status, 200, r.body);
    return String((JSON.parse(r.body) as { headers: Record<string, unknown> }).headers['x-order'] ?? '');
  };

  before(async () => {
    backend = await startHttpBackend('reviews-v1', '127.0.0.32');
    port = await freePort();
    cfg = reviewsConfig(port, backend, filters());
    ({ sextant, envoy } = await startProductpageProxy(cfg.dir, port, { ISTIO_VERSION: '1.31.0' }));
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await backend?.close();
    cfg?.remove();
  });

  test('Lua filters run in the order istiod applies their EnvoyFilters; the one for another proxy version is absent', async () => {
    const names = await httpFilters();
    assert.deepEqual([names[0], names[1], names[2]], ['lua-b', 'lua-r', 'lua-p'], names.join(','));
    assert.deepEqual(names.slice(-3), ['lua-a', 'lua-v', ROUTER], names.join(','));
    assert.ok(!names.includes('lua-X'), names.join(','));
    assert.equal(await order(), 'brpav');
  });

  test('a LISTENER_FILTER INSERT_FIRST reaches the running listener, which still serves requests', async () => {
    const l = await listener();
    assert.equal((l?.listener_filters ?? [])[0]?.name, 'envoy.filters.listener.tls_inspector', JSON.stringify(l?.listener_filters));
    assert.equal((await httpGet(port, '/', { host: 'reviews' })).backend, 'reviews-v1');
  });

  test('ADD with filterClass AUTHZ would follow the router: reported on /debug/config_issues, the proxy keeps its config', async () => {
    type Issues = { semantic: Array<{ kind: string; namespace: string; name: string; field: string; reason: string }> };
    const issues = await until(() => debugJson(sextant!.httpUrl, '/debug/config_issues') as Promise<Issues>, (i) => i.semantic.some((x) => x.name === 'authz-add'), 'the filterClass ADD reported');
    const mine = issues.semantic.find((i) => i.name === 'authz-add')!;
    assert.deepEqual([mine.kind, mine.namespace, mine.field], ['EnvoyFilter', 'default', 'spec.configPatches[0]']);
    assert.match(mine.reason, /after the terminal envoy\.filters\.http\.router filter.*filterClass/);
    assert.ok(!(await httpFilters()).includes('lua-Z'));
    assert.equal(await order(), 'brpav');
  });

  test('raising a filter\'s priority moves it on the running Envoy', async () => {
    const next = filters().map((f) => (f.metadata.name === 'order-b' ? { ...f, spec: { ...(f.spec as Record<string, unknown>), priority: -20 } } : f));
    cfg.write('envoyfilter.yaml', next);
    // b is now applied first, so the later INSERT_FIRSTs (r, p) go in front of it.
    await until(order, (o) => o === 'rpbav', 'the reordered Lua filters', 30_000);
  });
});
