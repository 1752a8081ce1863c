import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeJson, TypeUrl } from '@sextant/envoy';
import { parseObjects, translateConfig } from '../translate.js';
import { mergeMessage } from './merge.js';

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
  assert.deepEqual(names(outboundHttp(9080, 'ADD', lua)), [...base9080, 'envoy.filters.http.lua']);
  assert.deepEqual(names(outboundHttp(9080, 'INSERT_AFTER', lua)), [...base9080, 'envoy.filters.http.lua']);
  assert.deepEqual(names(outboundHttp(9080, 'REPLACE', lua)), [...base9080.slice(0, -1), 'envoy.filters.http.lua']);
  assert.deepEqual(names(outboundHttp(9080, 'REMOVE')), base9080.slice(0, -1));
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
  assert.deepEqual((extra.filterChains as Json[]).map((fc) => fc.name ?? ''), ['', 'second']);

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
  assert.match(byField.get('spec.configPatches[2].patch.operation')!.reason, /REMOVE is not supported for applyTo ROUTE_CONFIGURATION/);
  assert.match(byField.get('spec.configPatches[3].applyTo')!.reason, /EXTENSION_CONFIG/);
  assert.equal(out.issues.length, 4, JSON.stringify(out.issues));
  assert.equal(httpFilterNames(listener(out, '0.0.0.0_9080'))[0], 'envoy.filters.http.lua');
  assert.ok(!httpFilterNames(listener(out, '0.0.0.0_9080')).includes('x'));
});

test('proto merge on JSON: Any of another @type replaces, same @type merges; oneof members clear each other', () => {
  const cluster = {
    name: 'c',
    type: 'EDS',
    transportSocket: { name: 't', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'a', allowRenegotiation: true } },
  };
  const sameType = mergeMessage('envoy.config.cluster.v3.Cluster', cluster, { transportSocket: { typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'b' } } });
  assert.deepEqual(sameType.transportSocket, { name: 't', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'b', allowRenegotiation: true } });
  const otherType = mergeMessage('envoy.config.cluster.v3.Cluster', cluster, { transportSocket: { typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } } });
  assert.deepEqual(otherType.transportSocket, { name: 't', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } });
  const oneof = mergeMessage('envoy.config.cluster.v3.Cluster', cluster, { clusterType: { name: 'envoy.clusters.aggregate' } });
  assert.equal(oneof.type, undefined);
  assert.deepEqual(oneof.clusterType, { name: 'envoy.clusters.aggregate' });
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
