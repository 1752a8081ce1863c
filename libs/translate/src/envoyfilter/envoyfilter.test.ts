import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeJson, TypeUrl } from '@sextant/envoy';
import { parseObjects, translateConfig } from '../translate.js';
import { PushContext, parseProxy } from '@sextant/model';
import { insertedExtensionConfigs } from './apply.js';
import { mergeAnyWithAny, mergeMessage } from './merge.js';
import { patchesFor } from './select.js';
import { buildExtensionConfigs } from '../generator/ecds.js';
import { generateForProxy } from '../generator/index.js';
import { envoyFilterPatchesApplied } from './index.js';

type Json = Record<string, any>;

const LUA = 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua';
const HCM = 'envoy.filters.network.http_connection_manager';
const NODE = 'sidecar~10.1.0.5~web-0.shop~shop.svc.cluster.local';

/** The mesh every case starts from: two HTTP services, a workload of one of them. */
const base: Json[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 8080, targetPort: 8080 }] },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'api', namespace: 'shop' },
    spec: { clusterIP: '10.96.0.11', selector: { app: 'api' }, ports: [{ name: 'http', port: 9080 }] },
  },
  {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-x', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080 }],
    endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } }],
  },
];

function envoyFilter(name: string, spec: Json, namespace = 'shop', created = '2026-01-01T00:00:00Z'): Json {
  return { apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', metadata: { name, namespace, creationTimestamp: created }, spec };
}

function run(extra: Json[], opts: { metadata?: Json; nodeId?: string } = {}) {
  const { objects, issues } = parseObjects([...base, ...extra]);
  assert.deepEqual(issues, [], 'fixture objects must be valid');
  const out = translateConfig({ objects, nodeId: opts.nodeId ?? NODE, metadata: { LABELS: { app: 'web' }, ISTIO_VERSION: '1.24.1', ...(opts.metadata ?? {}) } });
  // Whatever the patches did, the server must be able to encode it.
  for (const l of out.lds ?? []) encodeJson(TypeUrl.Listener, l);
  for (const c of out.cds ?? []) encodeJson(TypeUrl.Cluster, c);
  for (const r of out.rds ?? []) encodeJson(TypeUrl.RouteConfiguration, r);
  return out;
}

const listener = (out: { lds?: unknown[] }, name: string) => (out.lds as Json[]).find((l) => l.name === name)!;
const hcmOf = (l: Json) => (l.filterChains as Json[]).flatMap((fc) => fc.filters as Json[]).find((f) => f.name === HCM)!.typedConfig;
const httpFilterNames = (l: Json) => (hcmOf(l).httpFilters as Json[]).map((f) => f.name);
const luaValue = (code: string) => ({ name: 'envoy.filters.http.lua', typed_config: { '@type': LUA, default_source_code: { inline_string: code } } });
const outboundHttp = (port: number, operation: string, value?: Json, sub = 'envoy.filters.http.router') =>
  envoyFilter(`f-${operation.toLowerCase().replace('_', '-')}`, {
    configPatches: [
      {
        applyTo: 'HTTP_FILTER',
        match: { context: 'SIDECAR_OUTBOUND', listener: { portNumber: port, filterChain: { filter: { name: HCM, subFilter: { name: sub } } } } },
        patch: { operation, ...(value ? { value } : {}) },
      },
    ],
  });

test('HTTP_FILTER INSERT_BEFORE router puts a Lua filter before the router of the matched port only', () => {
  const before = run([]);
  const out = run([outboundHttp(9080, 'INSERT_BEFORE', luaValue('function envoy_on_response(h) end'))]);
  const names = httpFilterNames(listener(out, '0.0.0.0_9080'));
  assert.deepEqual(names, [...httpFilterNames(listener(before, '0.0.0.0_9080')).slice(0, -1), 'envoy.filters.http.lua', 'envoy.filters.http.router']);
  const lua = (hcmOf(listener(out, '0.0.0.0_9080')).httpFilters as Json[]).find((f) => f.name === 'envoy.filters.http.lua')!;
  assert.deepEqual(lua.typedConfig, { '@type': LUA, defaultSourceCode: { inlineString: 'function envoy_on_response(h) end' } });
  // Port 8080's outbound listener and the inbound side are untouched.
  assert.deepEqual(listener(out, '0.0.0.0_8080'), listener(before, '0.0.0.0_8080'));
  assert.deepEqual(listener(out, 'virtualInbound'), listener(before, 'virtualInbound'));
  assert.deepEqual(out.issues, []);
});

test('HTTP_FILTER operations: INSERT_AFTER, INSERT_FIRST, ADD, REPLACE, REMOVE, MERGE', () => {
  const base9080 = httpFilterNames(listener(run([]), '0.0.0.0_9080'));
  const lua = luaValue('x');
  const names = (f: Json) => httpFilterNames(listener(run([f]), '0.0.0.0_9080'));
  assert.deepEqual(names(outboundHttp(9080, 'INSERT_FIRST', lua)), ['envoy.filters.http.lua', ...base9080]);
  // What would leave a filter after the terminal router (or none) is what Envoy rejects with the whole
  // listener update: skipped for that chain and reported (istiod sends it and the proxy NACKs).
  for (const f of [outboundHttp(9080, 'ADD', lua), outboundHttp(9080, 'INSERT_AFTER', lua), outboundHttp(9080, 'REPLACE', lua), outboundHttp(9080, 'REMOVE')]) {
    const out = run([f]);
    assert.deepEqual(httpFilterNames(listener(out, '0.0.0.0_9080')), base9080);
    assert.equal(out.issues.length, 1, JSON.stringify(out.issues));
    assert.match(out.issues[0]!.reason, /terminal envoy\.filters\.http\.router filter, which Envoy rejects/);
  }
  // Replacing the router with a router is fine.
  const router2 = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', suppress_envoy_headers: true } };
  assert.deepEqual(names(outboundHttp(9080, 'REPLACE', router2)), base9080);
  // ADD with filterClass: istiod does not read filterClass, so it is an ADD after the router.
  const authz = outboundHttp(9080, 'ADD', lua);
  authz.spec.configPatches[0].patch.filterClass = 'AUTHZ';
  const withClass = run([authz]);
  assert.deepEqual(httpFilterNames(listener(withClass, '0.0.0.0_9080')), base9080);
  assert.match(withClass.issues[0]!.reason, /filterClass is not read by istiod/);
  // INSERT_BEFORE a filter that is not there changes nothing (istiod).
  assert.deepEqual(names(outboundHttp(9080, 'INSERT_BEFORE', lua, 'no.such.filter')), base9080);
  // MERGE into the router: same @type merges fields.
  const merged = run([outboundHttp(9080, 'MERGE', { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', suppress_envoy_headers: true } })]);
  const router = (hcmOf(listener(merged, '0.0.0.0_9080')).httpFilters as Json[]).at(-1)!;
  assert.equal(router.name, 'envoy.filters.http.router');
  assert.equal(router.typedConfig.suppressEnvoyHeaders, true);
});

test('NETWORK_FILTER MERGE into the HCM merges its typed_config; INSERT_FIRST and REMOVE edit the chain', () => {
  const before = run([]);
  const merge = envoyFilter('hcm', {
    configPatches: [
      {
        applyTo: 'NETWORK_FILTER',
        match: { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9080, filterChain: { filter: { name: HCM } } } },
        patch: {
          operation: 'MERGE',
          value: { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', server_name: 'patched', common_http_protocol_options: { idle_timeout: '7s' } } },
        },
      },
    ],
  });
  const hcm = hcmOf(listener(run([merge]), '0.0.0.0_9080'));
  const orig = hcmOf(listener(before, '0.0.0.0_9080'));
  assert.equal(hcm.serverName, 'patched');
  assert.equal(hcm.commonHttpProtocolOptions.idleTimeout, '7s');
  // Everything else of the generated HCM is kept (message merge, not replace).
  assert.deepEqual(hcm.httpFilters, orig.httpFilters);
  assert.deepEqual(hcm.rds, orig.rds);

  const remove = envoyFilter('rm', { configPatches: [{ applyTo: 'NETWORK_FILTER', match: { listener: { portNumber: 9080, filterChain: { filter: { name: HCM } } } }, patch: { operation: 'REMOVE' } }] });
  const l = listener(run([remove]), '0.0.0.0_9080');
  assert.ok((l.filterChains as Json[]).every((fc) => (fc.filters as Json[]).every((f) => f.name !== HCM)));

  const first = envoyFilter('first', {
    configPatches: [{ applyTo: 'NETWORK_FILTER', match: { listener: { portNumber: 9080 } }, patch: { operation: 'INSERT_FIRST', value: { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'x', cluster: 'BlackHoleCluster' } } } }],
  });
  for (const fc of listener(run([first]), '0.0.0.0_9080').filterChains as Json[]) assert.equal(fc.filters[0].name, 'envoy.filters.network.tcp_proxy');
});

test('LISTENER and FILTER_CHAIN: MERGE, ADD, REMOVE', () => {
  const patches = envoyFilter('listeners', {
    configPatches: [
      { applyTo: 'LISTENER', match: { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9080 } }, patch: { operation: 'MERGE', value: { per_connection_buffer_limit_bytes: 4096 } } },
      { applyTo: 'LISTENER', match: { context: 'SIDECAR_OUTBOUND', listener: { name: '0.0.0.0_8080' } }, patch: { operation: 'REMOVE' } },
      {
        applyTo: 'LISTENER',
        match: { context: 'SIDECAR_OUTBOUND' },
        patch: { operation: 'ADD', value: { name: 'extra', address: { socket_address: { address: '127.0.0.1', port_value: 19000 } }, filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'extra', cluster: 'BlackHoleCluster' } }] }] } },
      },
      { applyTo: 'FILTER_CHAIN', match: { context: 'SIDECAR_OUTBOUND', listener: { name: 'extra' } }, patch: { operation: 'ADD', value: { name: 'second', filter_chain_match: { destination_port: 1 } } } },
    ],
  });
  const out = run([patches]);
  assert.equal(listener(out, '0.0.0.0_9080').perConnectionBufferLimitBytes, 4096);
  assert.equal(listener(out, '0.0.0.0_8080'), undefined);
  const extra = listener(out, 'extra');
  assert.deepEqual(extra.address, { socketAddress: { address: '127.0.0.1', portValue: 19000 } });
  // An ADDed listener is appended after the generated ones are patched: the FILTER_CHAIN ADD does not reach it (istiod).
  assert.deepEqual((extra.filterChains as Json[]).map((fc) => fc.name ?? ''), ['']);

  const removeChains = envoyFilter('fc', { configPatches: [{ applyTo: 'FILTER_CHAIN', match: { context: 'SIDECAR_INBOUND', listener: { portNumber: 8080 } }, patch: { operation: 'REMOVE' } }] });
  const before = listener(run([]), 'virtualInbound');
  const after = listener(run([removeChains]), 'virtualInbound');
  assert.ok((before.filterChains as Json[]).some((fc) => fc.filterChainMatch?.destinationPort === 8080));
  assert.ok(!(after.filterChains as Json[]).some((fc) => fc.filterChainMatch?.destinationPort === 8080));
  assert.equal((after.filterChains as Json[]).length, (before.filterChains as Json[]).filter((fc) => fc.filterChainMatch?.destinationPort !== 8080).length);
});

test('CLUSTER: MERGE by service and port, ADD, REMOVE; inbound context only touches inbound clusters', () => {
  const before = run([]);
  const out = run([
    envoyFilter('clusters', {
      configPatches: [
        { applyTo: 'CLUSTER', match: { context: 'SIDECAR_OUTBOUND', cluster: { service: 'api.shop.svc.cluster.local', portNumber: 9080 } }, patch: { operation: 'MERGE', value: { connect_timeout: '3s', circuit_breakers: { thresholds: [{ max_connections: 7 }] } } } },
        { applyTo: 'CLUSTER', match: { context: 'SIDECAR_OUTBOUND', cluster: { name: 'outbound|8080||web.shop.svc.cluster.local' } }, patch: { operation: 'REMOVE' } },
        { applyTo: 'CLUSTER', patch: { operation: 'ADD', value: { name: 'added', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'added', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } }] }] } } } },
        { applyTo: 'CLUSTER', match: { context: 'SIDECAR_INBOUND' }, patch: { operation: 'MERGE', value: { per_connection_buffer_limit_bytes: 1234 } } },
      ],
    }),
  ]);
  const cds = out.cds as Json[];
  const api = cds.find((c) => c.name === 'outbound|9080||api.shop.svc.cluster.local')!;
  const apiBefore = (before.cds as Json[]).find((c) => c.name === api.name)!;
  assert.equal(api.connectTimeout, '3s');
  // Repeated fields append (proto merge): the generated thresholds are kept, the patch's follows.
  assert.deepEqual(api.circuitBreakers.thresholds, [...(apiBefore.circuitBreakers?.thresholds ?? []), { maxConnections: 7 }]);
  assert.equal(cds.find((c) => c.name === 'outbound|8080||web.shop.svc.cluster.local'), undefined);
  assert.equal(cds.find((c) => c.name === 'added')?.type, 'STATIC');
  for (const c of cds) {
    const inbound = String(c.name).startsWith('inbound|') || c.name === 'InboundPassthroughCluster';
    assert.equal(c.perConnectionBufferLimitBytes === 1234, inbound, String(c.name));
  }
  assert.ok(cds.some((c) => String(c.name).startsWith('inbound|')));
});

test('ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE patches', () => {
  const before = run([]);
  const rc9080 = (o: { rds?: unknown[] }) => (o.rds as Json[]).find((r) => r.name === '9080')!;
  const vhName = 'api.shop.svc.cluster.local:9080';
  const out = run([
    envoyFilter('routes', {
      configPatches: [
        { applyTo: 'ROUTE_CONFIGURATION', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 9080 } }, patch: { operation: 'MERGE', value: { request_headers_to_add: [{ header: { key: 'x-ef', value: '1' } }] } } },
        { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 9080 } }, patch: { operation: 'ADD', value: { name: 'extra', domains: ['extra.example'], routes: [{ match: { prefix: '/' }, direct_response: { status: 204 } }] } } },
        { applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 9080, vhost: { name: vhName } } }, patch: { operation: 'INSERT_FIRST', value: { name: 'health', match: { path: '/healthz' }, direct_response: { status: 200 } } } },
        { applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 9080, vhost: { name: vhName, route: { action: 'ROUTE' } } } }, patch: { operation: 'MERGE', value: { route: { timeout: '9s' } } } },
        { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 8080 } }, patch: { operation: 'REMOVE' } },
      ],
    }),
  ]);
  const rc = rc9080(out);
  assert.deepEqual(rc.requestHeadersToAdd.at(-1), { header: { key: 'x-ef', value: '1' } });
  assert.equal(rc.virtualHosts.at(-1).name, 'extra');
  const vh = (rc.virtualHosts as Json[]).find((v) => v.name === vhName)!;
  const vhBefore = (rc9080(before).virtualHosts as Json[]).find((v) => v.name === vhName)!;
  assert.equal(vh.routes[0].name, 'health');
  assert.equal(vh.routes.length, vhBefore.routes.length + 1);
  for (const r of vh.routes.slice(1)) assert.equal(r.route.timeout, '9s');
  assert.equal(vh.routes[0].route, undefined);
  assert.deepEqual((out.rds as Json[]).find((r) => r.name === '8080')!.virtualHosts, []);
});

test('selection: workloadSelector, namespaces, context, proxy version, metadata, priority order', () => {
  const lua = luaValue('x');
  const insert = (name: string, ns: string, spec: Json, match: Json = {}) =>
    envoyFilter(name, { ...spec, configPatches: [{ applyTo: 'HTTP_FILTER', match: { context: 'SIDECAR_OUTBOUND', ...match, listener: { portNumber: 9080 } }, patch: { operation: 'INSERT_FIRST', value: { ...lua, name } } }] }, ns);
  const first = (f: Json[], meta: Json = {}) => httpFilterNames(listener(run(f, { metadata: meta }), '0.0.0.0_9080'))[0];
  assert.equal(first([insert('sel', 'shop', { workloadSelector: { labels: { app: 'web' } } })]), 'sel');
  assert.notEqual(first([insert('other', 'shop', { workloadSelector: { labels: { app: 'api' } } })]), 'other');
  assert.notEqual(first([insert('elsewhere', 'default', {})]), 'elsewhere');
  assert.equal(first([insert('root', 'istio-system', {})]), 'root');
  assert.notEqual(first([insert('gw', 'shop', {}, { context: 'GATEWAY' })]), 'gw');
  assert.equal(first([insert('v', 'shop', {}, { proxy: { proxyVersion: '^1\\.24.*' } })]), 'v');
  assert.notEqual(first([insert('v', 'shop', {}, { proxy: { proxyVersion: '^1\\.25.*' } })]), 'v');
  assert.equal(first([insert('m', 'shop', {}, { proxy: { metadata: { TIER: 'gold' } } })], { TIER: 'gold' }), 'm');
  assert.notEqual(first([insert('m', 'shop', {}, { proxy: { metadata: { TIER: 'gold' } } })], { TIER: 'silver' }), 'm');
  // Applied in priority order (each INSERT_FIRST goes in front): the last applied is first.
  const ordered = httpFilterNames(listener(run([insert('late', 'istio-system', { priority: 10 }), insert('early', 'shop', { priority: -5 }), insert('mid', 'istio-system', {})]), '0.0.0.0_9080'));
  assert.deepEqual(ordered.slice(0, 3), ['late', 'mid', 'early']);
});

test('a patch that cannot apply is reported on its EnvoyFilter and the rest still applies', () => {
  const out = run([
    envoyFilter('bad', {
      configPatches: [
        outboundHttp(9080, 'INSERT_BEFORE', { name: 'x', typed_config: { '@type': 'type.googleapis.com/example.NotKnown', a: 1 } }).spec.configPatches[0],
        { applyTo: 'CLUSTER', patch: { operation: 'MERGE', value: { no_such_field: 1 } } },
        { applyTo: 'ROUTE_CONFIGURATION', patch: { operation: 'REMOVE' } },
        { applyTo: 'EXTENSION_CONFIG', patch: { operation: 'ADD', value: { name: 'e' } } },
        outboundHttp(9080, 'INSERT_FIRST', luaValue('ok')).spec.configPatches[0],
      ],
    }),
  ]);
  const byField = new Map(out.issues.map((i) => [i.field, i]));
  for (const i of out.issues) assert.deepEqual([i.kind, i.namespace, i.name], ['EnvoyFilter', 'shop', 'bad']);
  assert.match(byField.get('spec.configPatches[0].patch.value')!.reason, /example\.NotKnown/);
  assert.match(byField.get('spec.configPatches[1].patch.value')!.reason, /no_such_field/);
  assert.match(byField.get('spec.configPatches[2].patch.operation')!.reason, /REMOVE is ignored for applyTo ROUTE_CONFIGURATION/);
  // EXTENSION_CONFIG ADD is served over ECDS (generator/ecds.ts): nothing to report.
  assert.equal(out.issues.length, 3, JSON.stringify(out.issues));
  assert.equal(httpFilterNames(listener(out, '0.0.0.0_9080'))[0], 'envoy.filters.http.lua');
  assert.ok(!httpFilterNames(listener(out, '0.0.0.0_9080')).includes('x'));
});

test('proto merge on JSON: a nested Any is replaced whatever its @type; oneof members clear each other; mergeAnyWithAny needs one @type', () => {
  const cluster = {
    name: 'c',
    type: 'EDS',
    transportSocket: { name: 't', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'a', allowRenegotiation: true } },
  };
  // proto.Merge of an Any sets its type URL and bytes: istiod's merge replaces it.
  const sameType = mergeMessage('envoy.config.cluster.v3.Cluster', cluster, { transportSocket: { typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'b' } } });
  assert.deepEqual(sameType.transportSocket, { name: 't', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'b' } });
  const otherType = mergeMessage('envoy.config.cluster.v3.Cluster', cluster, { transportSocket: { typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } } });
  assert.deepEqual(otherType.transportSocket, { name: 't', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } });
  const oneof = mergeMessage('envoy.config.cluster.v3.Cluster', cluster, { clusterType: { name: 'envoy.clusters.aggregate' } });
  assert.equal(oneof.type, undefined);
  assert.deepEqual(oneof.clusterType, { name: 'envoy.clusters.aggregate' });
  // A filter's typed_config MERGE (MergeAnyWithAny) merges the packed messages.
  assert.deepEqual(mergeAnyWithAny(cluster.transportSocket.typedConfig, { '@type': cluster.transportSocket.typedConfig['@type'], sni: 'b' }), { ...cluster.transportSocket.typedConfig, sni: 'b' });
  assert.throws(() => mergeAnyWithAny(cluster.transportSocket.typedConfig, { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' }), /cannot merge/);
});

test('gateways: GATEWAY context, targetRefs selection, gateway route configuration match', () => {
  const gwObjects: Json[] = [
    ...base,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: 'ingress', namespace: 'istio-system' },
      spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] },
    },
  ];
  const patch = (name: string, spec: Json) => envoyFilter(name, spec, 'istio-system');
  const rcMerge = (key: string) => ({ applyTo: 'ROUTE_CONFIGURATION', match: { context: 'GATEWAY', routeConfiguration: { portNumber: 8080 } }, patch: { operation: 'MERGE', value: { response_headers_to_add: [{ header: { key: key, value: '1' } }] } } });
  const { objects, issues } = parseObjects([
    ...gwObjects,
    patch('by-ref', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }], configPatches: [rcMerge('x-by-ref')] }),
    patch('other-ref', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'other' }], configPatches: [rcMerge('x-other-ref')] }),
    patch('sidecar-only', { configPatches: [{ ...rcMerge('x-sidecar'), match: { context: 'SIDECAR_OUTBOUND' } }] }),
    patch('gw-filter', { configPatches: [{ applyTo: 'HTTP_FILTER', match: { context: 'GATEWAY', listener: { portNumber: 8080 } }, patch: { operation: 'INSERT_FIRST', value: luaValue('gw') } }] }),
  ]);
  assert.deepEqual(issues, []);
  const out = translateConfig({
    objects,
    nodeId: 'router~10.1.0.9~ingress-0.istio-system~istio-system.svc.cluster.local',
    metadata: { LABELS: { istio: 'ingressgateway', 'gateway.networking.k8s.io/gateway-name': 'gw' } },
  });
  const rc = (out.rds as Json[]).find((r) => r.name === 'http.8080')!;
  assert.deepEqual((rc.responseHeadersToAdd as Json[]).map((h) => h.header.key), ['x-by-ref']);
  assert.equal(httpFilterNames(listener(out, '0.0.0.0_8080'))[0], 'envoy.filters.http.lua');
  for (const l of out.lds ?? []) encodeJson(TypeUrl.Listener, l);
});

// ---------------------------------------------------------------- per cell of docs/envoyfilter.md

const one = (applyTo: string, match: Json, patch: Json, name = 'cell') => envoyFilter(name, { configPatches: [{ applyTo, match, patch }] });
const lf = (name: string) => ({ name, typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } });
const listenerFilterNames = (out: { lds?: unknown[] }, name = 'virtualInbound') => ((listener(out, name).listenerFilters ?? []) as Json[]).map((f) => f.name);
const INBOUND_LF = ['envoy.filters.listener.original_dst', 'envoy.filters.listener.tls_inspector', 'envoy.filters.listener.http_inspector'];

test('LISTENER_FILTER: ADD, INSERT_FIRST, INSERT_BEFORE/AFTER with and without a listener filter match, REPLACE, REMOVE, MERGE', () => {
  assert.deepEqual(listenerFilterNames(run([])), INBOUND_LF);
  const lfCase = (operation: string, listenerFilter?: string, value: Json | undefined = lf('x')) =>
    listenerFilterNames(run([one('LISTENER_FILTER', { context: 'SIDECAR_INBOUND', listener: { name: 'virtualInbound', ...(listenerFilter ? { listenerFilter } : {}) } }, { operation, ...(value ? { value } : {}) })]));
  const [dst, tls, http] = INBOUND_LF as [string, string, string];
  assert.deepEqual(lfCase('ADD'), [dst, tls, http, 'x']);
  assert.deepEqual(lfCase('INSERT_FIRST'), ['x', dst, tls, http]);
  assert.deepEqual(lfCase('INSERT_BEFORE', tls), [dst, 'x', tls, http]);
  assert.deepEqual(lfCase('INSERT_AFTER', tls), [dst, tls, 'x', http]);
  // Without a listener filter match INSERT_BEFORE prepends and INSERT_AFTER appends; a match that is not there changes nothing.
  assert.deepEqual(lfCase('INSERT_BEFORE'), ['x', dst, tls, http]);
  assert.deepEqual(lfCase('INSERT_AFTER'), [dst, tls, http, 'x']);
  assert.deepEqual(lfCase('INSERT_AFTER', 'no.such'), INBOUND_LF);
  assert.deepEqual(lfCase('REPLACE', http), [dst, tls, 'x']);
  assert.deepEqual(lfCase('REPLACE'), INBOUND_LF);
  assert.deepEqual(lfCase('REMOVE', http, undefined), [dst, tls]);
  assert.deepEqual(lfCase('REMOVE', undefined, undefined), INBOUND_LF);
  // Context: an outbound patch does not touch virtualInbound.
  assert.deepEqual(listenerFilterNames(run([one('LISTENER_FILTER', { context: 'SIDECAR_OUTBOUND' }, { operation: 'ADD', value: lf('x') })])), INBOUND_LF);
  // MERGE: into the listener filters of the patch's @type, names kept.
  const merged = run([one('LISTENER_FILTER', { context: 'SIDECAR_INBOUND', listener: { listenerFilter: tls } }, { operation: 'MERGE', value: { name: 'renamed', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', enable_ja3_fingerprinting: true } } })]);
  const t = (listener(merged, 'virtualInbound').listenerFilters as Json[]).find((f) => f.name === tls)!;
  assert.equal(t.typedConfig.enableJa3Fingerprinting, true);
  assert.deepEqual(listenerFilterNames(merged), INBOUND_LF);
  assert.deepEqual(merged.issues, []);
});

test('NETWORK_FILTER: each operation with and without a filter match (istiod semantics)', () => {
  const TCP = 'envoy.filters.network.tcp_proxy';
  const RBAC = { name: 'envoy.filters.network.rbac', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC', stat_prefix: 'x' } };
  const names = (out: { lds?: unknown[] }) => ((listener(out, 'virtualOutbound').filterChains as Json[])[0]!.filters as Json[]).map((f) => f.name);
  const nf = (operation: string, filter?: string, value: Json | undefined = RBAC) =>
    names(run([one('NETWORK_FILTER', { context: 'SIDECAR_OUTBOUND', listener: { name: 'virtualOutbound', ...(filter ? { filterChain: { filter: { name: filter } } } : {}) } }, { operation, ...(value ? { value } : {}) })]));
  const R = 'envoy.filters.network.rbac';
  assert.deepEqual(nf('ADD'), [TCP, R]);
  assert.deepEqual(nf('INSERT_FIRST'), [R, TCP]);
  assert.deepEqual(nf('INSERT_BEFORE', TCP), [R, TCP]);
  assert.deepEqual(nf('INSERT_AFTER', TCP), [TCP, R]);
  assert.deepEqual(nf('INSERT_BEFORE'), [R, TCP]);
  assert.deepEqual(nf('INSERT_AFTER'), [TCP, R]);
  assert.deepEqual(nf('INSERT_BEFORE', 'no.such'), [TCP]);
  assert.deepEqual(nf('REPLACE', TCP), [R]);
  assert.deepEqual(nf('REPLACE'), [TCP]);
  assert.deepEqual(nf('REMOVE', TCP, undefined), []);
  // REMOVE without a filter match removes nothing (istiod), not every filter.
  assert.deepEqual(nf('REMOVE', undefined, undefined), [TCP]);
  // MERGE of another @type cannot merge: reported, the filter kept.
  const bad = run([one('NETWORK_FILTER', { context: 'SIDECAR_OUTBOUND', listener: { name: 'virtualOutbound', filterChain: { filter: { name: TCP } } } }, { operation: 'MERGE', value: RBAC })]);
  assert.deepEqual(names(bad), [TCP]);
  assert.match(bad.issues.map((i) => i.reason).join('\n'), /cannot merge/);
  // MERGE renames and merges the typed_config.
  const ok = run([one('NETWORK_FILTER', { context: 'SIDECAR_OUTBOUND', listener: { name: 'virtualOutbound', filterChain: { filter: { name: TCP } } } }, { operation: 'MERGE', value: { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', max_connect_attempts: 3 } } })]);
  const tcp = ((listener(ok, 'virtualOutbound').filterChains as Json[]).find((fc) => fc.name === 'virtualOutbound-catchall-tcp')!.filters as Json[])[0]!;
  assert.equal(tcp.typedConfig.maxConnectAttempts, 3);
  assert.equal(tcp.typedConfig.cluster, 'PassthroughCluster');
});

test('HTTP_FILTER: INSERT_BEFORE without a sub-filter match prepends; INSERT_AFTER of a missing filter changes nothing; MERGE runs after the list operations', () => {
  const base9080 = httpFilterNames(listener(run([]), '0.0.0.0_9080'));
  const http = (operation: string, value: Json, sub?: string, name = 'h') =>
    one('HTTP_FILTER', { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9080, filterChain: { filter: { name: HCM, ...(sub ? { subFilter: { name: sub } } : {}) } } } }, { operation, value }, name);
  const names = (...f: Json[]) => httpFilterNames(listener(run(f), '0.0.0.0_9080'));
  assert.deepEqual(names(http('INSERT_BEFORE', luaValue('x'))), ['envoy.filters.http.lua', ...base9080]);
  assert.deepEqual(names(http('INSERT_AFTER', luaValue('x'), 'no.such')), base9080);
  // A MERGE into the Lua filter of an earlier-listed EnvoyFilter still reaches the filter a later one inserts.
  const merge = http('MERGE', { typed_config: { '@type': LUA, default_source_code: { inline_string: 'merged' } } }, 'envoy.filters.http.lua', 'a-merge');
  const out = run([merge, http('INSERT_FIRST', luaValue('x'), undefined, 'b-insert')]);
  const lua = (hcmOf(listener(out, '0.0.0.0_9080')).httpFilters as Json[])[0]!;
  assert.equal(lua.typedConfig.defaultSourceCode.inlineString, 'merged');
  // Inbound context: the inbound HTTP chains, not the outbound listeners.
  const inbound = run([one('HTTP_FILTER', { context: 'SIDECAR_INBOUND', listener: { portNumber: 8080, filterChain: { filter: { name: HCM } } } }, { operation: 'INSERT_FIRST', value: luaValue('in') })]);
  const chains = (listener(inbound, 'virtualInbound').filterChains as Json[]).filter((fc) => fc.filterChainMatch?.destinationPort === 8080);
  assert.ok(chains.length > 0);
  for (const fc of chains) assert.equal(fc.filters.at(-1).typedConfig.httpFilters[0].name, 'envoy.filters.http.lua');
  assert.deepEqual(httpFilterNames(listener(inbound, '0.0.0.0_8080')), httpFilterNames(listener(run([]), '0.0.0.0_8080')));
});

test('operations istiod ignores are skipped and reported; INSERT_* on a non-list applyTo is ADD', () => {
  const before = run([]);
  const out = run([
    envoyFilter('ignored', {
      configPatches: [
        { applyTo: 'CLUSTER', match: { cluster: { name: 'BlackHoleCluster' } }, patch: { operation: 'REPLACE', value: { name: 'BlackHoleCluster', type: 'STATIC', connect_timeout: '9s' } } },
        { applyTo: 'LISTENER', match: { listener: { name: 'virtualOutbound' } }, patch: { operation: 'REPLACE', value: { name: 'virtualOutbound' } } },
        { applyTo: 'FILTER_CHAIN', match: { listener: { name: 'virtualOutbound' } }, patch: { operation: 'REPLACE', value: { name: 'r' } } },
        { applyTo: 'HTTP_ROUTE', patch: { operation: 'REPLACE', value: { match: { prefix: '/' }, direct_response: { status: 200 } } } },
        { applyTo: 'BOOTSTRAP', patch: { operation: 'MERGE', value: { node: { id: 'x' } } } },
        { applyTo: 'CLUSTER', patch: { operation: 'INSERT_FIRST', value: { name: 'inserted', type: 'STATIC', connect_timeout: '1s' } } },
        { applyTo: 'FILTER_CHAIN', match: { context: 'SIDECAR_OUTBOUND', listener: { name: 'virtualOutbound' } }, patch: { operation: 'INSERT_FIRST', value: { name: 'fc-first', filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'x', cluster: 'BlackHoleCluster' } }] } } },
      ],
    }),
  ]);
  const fields = out.issues.map((i) => `${i.field}: ${i.reason}`).sort();
  assert.deepEqual(fields.map((f) => f.split(':')[0]), ['spec.configPatches[0].patch.operation', 'spec.configPatches[1].patch.operation', 'spec.configPatches[2].patch.operation', 'spec.configPatches[3].patch.operation', 'spec.configPatches[4].applyTo']);
  assert.match(fields[4]!, /BOOTSTRAP is deprecated and ignored/);
  assert.deepEqual((out.cds as Json[]).find((c) => c.name === 'BlackHoleCluster'), (before.cds as Json[]).find((c) => c.name === 'BlackHoleCluster'));
  // INSERT_FIRST on CLUSTER / FILTER_CHAIN: appended, as ADD.
  assert.equal((out.cds as Json[]).at(-1)!.name, 'inserted');
  assert.deepEqual((listener(out, 'virtualOutbound').filterChains as Json[]).map((fc) => fc.name), ['virtualOutbound-blackhole', 'virtualOutbound-catchall-tcp', 'fc-first']);
  assert.deepEqual(out.rds, before.rds);
});

test('CLUSTER: MERGE of a transport socket merges only the socket (istiod); ADD of ANY context is added once on a sidecar, SIDECAR_INBOUND adds too, GATEWAY does not', () => {
  const tls = (sni: string) => ({ name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni } });
  const out = run([
    one('CLUSTER', { cluster: { name: 'outbound|9080||api.shop.svc.cluster.local' } }, { operation: 'MERGE', value: { transport_socket: tls('a.example'), connect_timeout: '4s' } }, 'ts'),
    one('CLUSTER', { cluster: { name: 'outbound|9080||api.shop.svc.cluster.local' } }, { operation: 'MERGE', value: { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', allow_renegotiation: true } } } }, 'ts2'),
    envoyFilter('adds', {
      configPatches: ['ANY', 'SIDECAR_INBOUND', 'SIDECAR_OUTBOUND', 'GATEWAY'].map((context) => ({
        applyTo: 'CLUSTER',
        match: { context },
        patch: { operation: 'ADD', value: { name: `added-${context}`, type: 'STATIC', connect_timeout: '1s' } },
      })),
    }),
  ]);
  const api = (out.cds as Json[]).find((c) => c.name === 'outbound|9080||api.shop.svc.cluster.local')!;
  const apiBefore = (run([]).cds as Json[]).find((c) => c.name === api.name)!;
  // The cluster's socket matches hold a socket of the patch's name: only its typed_config merges, the rest of the patch (connect_timeout) is not used.
  assert.equal(api.connectTimeout, apiBefore.connectTimeout);
  const tlsMatch = (c: Json) => (c.transportSocketMatches as Json[]).find((m) => m.name === 'tlsMode-istio')!.transportSocket.typedConfig;
  assert.deepEqual(tlsMatch(api), { ...tlsMatch(apiBefore), sni: 'a.example', allowRenegotiation: true });
  // A cluster without a socket of that name gets the patch's socket, again without the rest of the patch.
  const pt = run([one('CLUSTER', { cluster: { name: 'PassthroughCluster' } }, { operation: 'MERGE', value: { transport_socket: tls('b.example'), connect_timeout: '4s' } })]);
  const passthrough = (pt.cds as Json[]).find((c) => c.name === 'PassthroughCluster')!;
  assert.deepEqual(passthrough.transportSocket, { name: 'envoy.transport_sockets.tls', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'b.example' } });
  assert.notEqual(passthrough.connectTimeout, '4s');
  const added = (out.cds as Json[]).map((c) => String(c.name)).filter((n) => n.startsWith('added-'));
  assert.deepEqual(added.sort(), ['added-ANY', 'added-SIDECAR_INBOUND', 'added-SIDECAR_OUTBOUND']);
});

test('VIRTUAL_HOST REPLACE and INSERT_FIRST (as ADD); HTTP_ROUTE INSERT_BEFORE/AFTER by route match, INSERT_FIRST needs a matching route, MERGE/REMOVE before inserts', () => {
  const vhName = 'api.shop.svc.cluster.local:9080';
  const rc9080 = (o: { rds?: unknown[] }) => (o.rds as Json[]).find((r) => r.name === '9080')!;
  const vhost = (o: { rds?: unknown[] }) => (rc9080(o).virtualHosts as Json[]).find((v) => v.name === vhName)!;
  const routeNames = (o: { rds?: unknown[] }) => (vhost(o).routes as Json[]).map((r) => r.name);
  const r = (name: string) => ({ name, match: { prefix: `/${name}` }, direct_response: { status: 204 } });
  const hr = (operation: string, route: Json | undefined, value?: Json, name = 'hr') =>
    one('HTTP_ROUTE', { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 9080, vhost: { name: vhName, ...(route ? { route } : {}) } } }, { operation, ...(value ? { value } : {}) }, name);
  assert.deepEqual(routeNames(run([])), ['default']);
  assert.deepEqual(routeNames(run([hr('INSERT_BEFORE', { name: 'default' }, r('x'))])), ['x', 'default']);
  assert.deepEqual(routeNames(run([hr('INSERT_AFTER', { name: 'default' }, r('x'))])), ['default', 'x']);
  assert.deepEqual(routeNames(run([hr('INSERT_AFTER', undefined, r('x'))])), ['default', 'x']);
  assert.deepEqual(routeNames(run([hr('INSERT_BEFORE', undefined, r('x'))])), ['x', 'default']);
  assert.deepEqual(routeNames(run([hr('INSERT_FIRST', { name: 'nope' }, r('x'))])), ['default']);
  assert.deepEqual(routeNames(run([hr('INSERT_FIRST', { action: 'ROUTE' }, r('x'))])), ['x', 'default']);
  assert.deepEqual(routeNames(run([hr('ADD', undefined, r('x'))])), ['default', 'x']);
  // REMOVE of the route a later EnvoyFilter inserts before: the REMOVE runs first, so the insert finds nothing.
  assert.deepEqual(routeNames(run([hr('INSERT_BEFORE', { name: 'default' }, r('x'), 'a'), hr('REMOVE', { name: 'default' }, undefined, 'b')])), []);
  // Action match: DIRECT_RESPONSE does not match the generated ROUTE action.
  const merged = run([hr('MERGE', { action: 'DIRECT_RESPONSE' }, { route: { timeout: '9s' } })]);
  assert.deepEqual(vhost(merged), vhost(run([])));
  // VIRTUAL_HOST REPLACE, then the HTTP_ROUTE patches act on the replacement.
  const replaced = run([
    one('VIRTUAL_HOST', { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 9080, vhost: { name: vhName } } }, { operation: 'REPLACE', value: { name: vhName, domains: ['api'], routes: [r('only')] } }, 'a'),
    hr('ADD', undefined, r('added'), 'b'),
  ]);
  assert.deepEqual(routeNames(replaced), ['only', 'added']);
  assert.deepEqual(vhost(replaced).domains, ['api']);
  const first = run([one('VIRTUAL_HOST', { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 9080 } }, { operation: 'INSERT_FIRST', value: { name: 'extra', domains: ['extra'] } })]);
  assert.equal((rc9080(first).virtualHosts as Json[]).at(-1)!.name, 'extra');
});

test('ordering as istiod: priority, then the root namespace first, then creation time, then name.namespace', () => {
  const ins = (name: string, ns: string, created: string, priority?: number) =>
    envoyFilter(name, { ...(priority !== undefined ? { priority } : {}), configPatches: [{ applyTo: 'HTTP_FILTER', match: { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9080 } }, patch: { operation: 'INSERT_FIRST', value: { ...luaValue('x'), name } } }] }, ns, created);
  const order = (...f: Json[]) => httpFilterNames(listener(run(f), '0.0.0.0_9080')).slice(0, f.length).reverse();
  // The root namespace's filter applies before the workload namespace's even though it is newer.
  assert.deepEqual(order(ins('ns-old', 'shop', '2026-01-01T00:00:00Z'), ins('root-new', 'istio-system', '2026-06-01T00:00:00Z')), ['root-new', 'ns-old']);
  // Priority wins over the root namespace.
  assert.deepEqual(order(ins('ns', 'shop', '2026-06-01T00:00:00Z', -1), ins('root', 'istio-system', '2026-01-01T00:00:00Z')), ['ns', 'root']);
  // Same namespace: creation time, then name.
  assert.deepEqual(order(ins('b', 'shop', '2026-01-01T00:00:00Z'), ins('a', 'shop', '2026-02-01T00:00:00Z')), ['b', 'a']);
  assert.deepEqual(order(ins('b', 'shop', '2026-01-01T00:00:00Z'), ins('a', 'shop', '2026-01-01T00:00:00Z')), ['a', 'b']);
});

test('proxy match: no ISTIO_VERSION never matches a version regex; a regex over 1024 characters matches nothing; one RE2 cannot compile applies everywhere and is reported (RE2: the regex engine istiod uses); metadata compares exactly', () => {
  const ins = (proxy: Json) => one('HTTP_FILTER', { context: 'SIDECAR_OUTBOUND', proxy, listener: { portNumber: 9080 } }, { operation: 'INSERT_FIRST', value: luaValue('x') });
  const hit = (proxy: Json, metadata: Json = {}) => httpFilterNames(listener(run([ins(proxy)], { metadata }), '0.0.0.0_9080'))[0] === 'envoy.filters.http.lua';
  assert.equal(hit({ proxyVersion: '.*' }), true);
  assert.equal(hit({ proxyVersion: '.*' }, { ISTIO_VERSION: '' }), false);
  assert.equal(hit({ proxyVersion: '^1\\.24' }, { ISTIO_VERSION: '1.24.1' }), true);
  assert.equal(hit({ proxyVersion: '^1\\.24' }, { ISTIO_VERSION: '1.25.0' }), false);
  assert.equal(hit({ proxyVersion: `1|${'x'.repeat(1024)}` }), false);
  const bad = run([ins({ proxyVersion: '(' })]);
  assert.equal(httpFilterNames(listener(bad, '0.0.0.0_9080'))[0], 'envoy.filters.http.lua');
  assert.match(bad.issues.map((i) => `${i.field} ${i.reason}`).join(), /match\.proxy\.proxyVersion invalid regex.*every proxy version/);
  // RE2, as istiod's Go regexp, not JavaScript's RegExp: Go's inline flags compile and match
  // (JavaScript refuses `(?i)`, which would make the patch apply to every version)...
  assert.equal(hit({ proxyVersion: '(?i)^1\\.24-DEV' }, { ISTIO_VERSION: '1.24-dev' }), true);
  assert.equal(hit({ proxyVersion: '(?i)^1\\.24-DEV' }, { ISTIO_VERSION: '1.25.0' }), false);
  // ...and lookahead, which JavaScript accepts, does not compile in RE2: ignored and reported.
  const lookahead = run([ins({ proxyVersion: '^1\\.(?=25)' })], { metadata: { ISTIO_VERSION: '1.24.1' } });
  assert.equal(httpFilterNames(listener(lookahead, '0.0.0.0_9080'))[0], 'envoy.filters.http.lua');
  assert.match(lookahead.issues.map((i) => `${i.field} ${i.reason}`).join(), /match\.proxy\.proxyVersion invalid regex/);
  assert.equal(hit({ metadata: { TIER: 'gold' } }, { TIER: 'gold' }), true);
  assert.equal(hit({ metadata: { TIER: 'gold' } }, { TIER: 'gold-plus' }), false);
  assert.equal(hit({ metadata: { TIER: 'gold' } }), false);
});

test('targetRefs: only Gateway API gateways of the filter namespace; a sidecar ignores targetRefs filters', () => {
  const gwObjects: Json[] = [
    ...base,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } },
    { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'ingress', namespace: 'shop' }, spec: { selector: { app: 'gw' }, servers: [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] } },
  ];
  const patch = (name: string, ns: string, ref: Json) =>
    envoyFilter(name, { targetRefs: [ref], configPatches: [{ applyTo: 'ROUTE_CONFIGURATION', patch: { operation: 'MERGE', value: { response_headers_to_add: [{ header: { key: name, value: '1' } }] } } }] }, ns);
  const G = 'gateway.networking.k8s.io';
  const { objects, issues } = parseObjects([
    ...gwObjects,
    patch('same-ns', 'shop', { group: G, kind: 'Gateway', name: 'gw' }),
    patch('root-ns', 'istio-system', { group: G, kind: 'Gateway', name: 'gw' }),
    patch('no-group', 'shop', { kind: 'Gateway', name: 'gw' }),
  ]);
  assert.deepEqual(issues, []);
  const keys = (nodeId: string, labels: Json) => {
    const out = translateConfig({ objects, nodeId, metadata: { LABELS: labels } });
    return [...new Set((out.rds as Json[]).flatMap((r) => ((r.responseHeadersToAdd ?? []) as Json[]).map((h) => h.header.key)))];
  };
  assert.deepEqual(keys('router~10.1.0.9~gw-0.shop~shop.svc.cluster.local', { app: 'gw', 'gateway.networking.k8s.io/gateway-name': 'gw' }), ['same-ns']);
  assert.deepEqual(keys(NODE, { app: 'web', 'gateway.networking.k8s.io/gateway-name': 'other' }), []);
  assert.deepEqual(keys(NODE, { app: 'web' }), []);
});

test('EXTENSION_CONFIG: ADD patches named by the proxy are what an ECDS response would carry', () => {
  const { objects } = parseObjects([...base, one('EXTENSION_CONFIG', {}, { operation: 'ADD', value: { name: 'ext-a', typed_config: { '@type': LUA, default_source_code: { inline_string: 'a' } } } })]);
  const push = PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'test' });
  const patches = patchesFor(push, push.resolveProxy(parseProxy(NODE, { LABELS: { app: 'web' }, ISTIO_VERSION: '1.24.1' })));
  assert.deepEqual(insertedExtensionConfigs(patches, ['ext-a', 'ext-b']), [{ name: 'ext-a', typedConfig: { '@type': LUA, defaultSourceCode: { inlineString: 'a' } } }]);
  assert.deepEqual(insertedExtensionConfigs(patches, ['ext-b']), []);
});

test('ECDS: buildExtensionConfigs serves the named EXTENSION_CONFIG ADDs to sidecars and gateways, one resource per name (the first patch wins)', () => {
  const ext = (name: string, code: string, priority?: number) =>
    envoyFilter(`ef-${code}`, { ...(priority !== undefined ? { priority } : {}), configPatches: [{ applyTo: 'EXTENSION_CONFIG', patch: { operation: 'ADD', value: { name, typed_config: { '@type': LUA, default_source_code: { inline_string: code } } } } }] });
  const { objects } = parseObjects([...base, ext('ext-a', 'late', 5), ext('ext-a', 'early', -5), ext('ext-b', 'b')]);
  const push = PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'test' });
  const sidecar = push.resolveProxy(parseProxy(NODE, { LABELS: { app: 'web' } }));
  const code = (ecs: Json[]) => ecs.map((e) => `${e.name}=${e.typedConfig.defaultSourceCode.inlineString}`);
  assert.deepEqual(code(buildExtensionConfigs(push, sidecar, ['ext-a', 'ext-b', 'ext-c'])), ['ext-a=early', 'ext-b=b']);
  assert.deepEqual(buildExtensionConfigs(push, sidecar, []), []);
  // Proxyless gRPC is not patched by EnvoyFilters (as istiod's grpc generator serves no ECDS).
  const grpcClient = push.resolveProxy(parseProxy(NODE, { LABELS: { app: 'web' }, GENERATOR: 'grpc' }));
  assert.deepEqual(buildExtensionConfigs(push, grpcClient, ['ext-a']), []);
});

test('CLUSTER: a SIDECAR_INBOUND service match is against the services of the inbound cluster\'s port (its name carries none)', () => {
  const byService = (service: string) =>
    ((run([one('CLUSTER', { context: 'SIDECAR_INBOUND', cluster: { service, portNumber: 8080 } }, { operation: 'MERGE', value: { per_connection_buffer_limit_bytes: 4321 } })]).cds as Json[]).find((c) => c.name === 'inbound|8080||')!.perConnectionBufferLimitBytes);
  assert.equal(byService('web.shop.svc.cluster.local'), 4321);
  assert.equal(byService('api.shop.svc.cluster.local'), undefined);
});

test('gateways: a route configuration portNumber match is against the Gateway server ports routed by it (istiod\'s gateway port map)', () => {
  const objects0: Json[] = [
    ...base,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'istio-ingressgateway', namespace: 'istio-system' }, spec: { clusterIP: '10.96.0.99', selector: { istio: 'ingressgateway' }, ports: [{ name: 'http2', port: 80, targetPort: 8080 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'igw-x', namespace: 'istio-system', labels: { 'kubernetes.io/service-name': 'istio-ingressgateway' } },
      addressType: 'IPv4',
      ports: [{ name: 'http2', port: 8080 }],
      endpoints: [{ addresses: ['10.1.0.9'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'ingress-0', namespace: 'istio-system' } }],
    },
    { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'ingress', namespace: 'istio-system' }, spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] } },
  ];
  const merge = (name: string, portNumber: number) =>
    envoyFilter(name, { configPatches: [{ applyTo: 'ROUTE_CONFIGURATION', match: { context: 'GATEWAY', routeConfiguration: { portNumber } }, patch: { operation: 'MERGE', value: { response_headers_to_add: [{ header: { key: name, value: '1' } }] } } }] }, 'istio-system');
  const { objects, issues } = parseObjects([...objects0, merge('by-server-port', 80), merge('by-target-port', 8080)]);
  assert.deepEqual(issues, []);
  const out = translateConfig({ objects, nodeId: 'router~10.1.0.9~ingress-0.istio-system~istio-system.svc.cluster.local', metadata: { LABELS: { istio: 'ingressgateway' } } });
  const rc = (out.rds as Json[]).find((r) => r.name === 'http.8080');
  assert.ok(rc, (out.rds as Json[]).map((r) => r.name).join());
  assert.deepEqual(((rc.responseHeadersToAdd ?? []) as Json[]).map((h) => h.header.key), ['by-server-port']);
});

test('status: the patches that matched something in a built config are recorded per push; one that matched nothing is not', () => {
  const { objects } = parseObjects([
    ...base,
    envoyFilter('mixed', {
      configPatches: [
        { applyTo: 'HTTP_FILTER', match: { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9080, filterChain: { filter: { name: HCM, subFilter: { name: 'envoy.filters.http.router' } } } } }, patch: { operation: 'INSERT_BEFORE', value: luaValue('x') } },
        { applyTo: 'HTTP_FILTER', match: { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9999, filterChain: { filter: { name: HCM, subFilter: { name: 'envoy.filters.http.router' } } } } }, patch: { operation: 'INSERT_BEFORE', value: luaValue('y') } },
        { applyTo: 'CLUSTER', match: { cluster: { service: 'api.shop.svc.cluster.local' } }, patch: { operation: 'MERGE', value: { per_connection_buffer_limit_bytes: 1 } } },
        { applyTo: 'CLUSTER', match: { cluster: { service: 'nothing.shop.svc.cluster.local' } }, patch: { operation: 'REMOVE' } },
        { applyTo: 'EXTENSION_CONFIG', patch: { operation: 'ADD', value: { name: 'ext', typed_config: { '@type': LUA, default_source_code: { inline_string: 'e' } } } } },
      ],
    }),
  ]);
  const push = PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'test' });
  const proxy = push.resolveProxy(parseProxy(NODE, { LABELS: { app: 'web' } }));
  assert.deepEqual([...envoyFilterPatchesApplied(push)], []);
  generateForProxy(push, proxy, 'lds');
  generateForProxy(push, proxy, 'cds');
  assert.deepEqual([...envoyFilterPatchesApplied(push)].sort(), ['shop/mixed#0', 'shop/mixed#2']);
  buildExtensionConfigs(push, proxy, ['other']);
  assert.ok(!envoyFilterPatchesApplied(push).has('shop/mixed#4'));
  buildExtensionConfigs(push, proxy, ['ext']);
  assert.ok(envoyFilterPatchesApplied(push).has('shop/mixed#4'));
});
