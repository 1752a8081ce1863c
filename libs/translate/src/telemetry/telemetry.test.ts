import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeJson, TypeUrl } from '@sextant/envoy';
import type { MeshConfig } from '@sextant/model';
import { parseObjects, translateConfig } from '../translate.js';
import { ENVOY_TEXT_LOG_FORMAT } from './build.js';

type Json = Record<string, any>;

const HCM = 'envoy.filters.network.http_connection_manager';
const NODE = 'sidecar~10.1.0.5~web-0.shop~shop.svc.cluster.local';

/** An istio-proxy's node.extensions (the parts that matter) and an upstream Envoy's. */
const ISTIO_PROXY_EXTENSIONS = [
  { name: 'istio.stats', typeUrls: ['stats.PluginConfig'] },
  { name: 'envoy.filters.http.peer_metadata', typeUrls: ['io.istio.http.peer_metadata.Config'] },
  { name: 'envoy.filters.network.metadata_exchange', typeUrls: ['envoy.tcp.metadataexchange.config.MetadataExchange'] },
  { name: 'envoy.filters.http.router', typeUrls: ['envoy.extensions.filters.http.router.v3.Router'] },
];
const UPSTREAM_ENVOY_EXTENSIONS = [{ name: 'envoy.filters.http.router', typeUrls: ['envoy.extensions.filters.http.router.v3.Router'] }];

const base: Json[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 8080 }] } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'shop' }, spec: { clusterIP: '10.96.0.12', selector: { app: 'db' }, ports: [{ name: 'tcp', port: 5432 }] } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'zipkin', namespace: 'istio-system' }, spec: { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 9411 }] } },
  {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-x', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080 }],
    endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } }],
  },
];

const telemetry = (name: string, namespace: string, spec: Json, created = '2026-01-01T00:00:00Z'): Json => ({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name, namespace, creationTimestamp: created }, spec });

function run(extra: Json[], opts: { mesh?: Json; extensions?: typeof ISTIO_PROXY_EXTENSIONS; metadata?: Json; node?: string } = {}) {
  const { objects, issues } = parseObjects([...base, ...extra]);
  assert.deepEqual(issues, [], 'fixture objects must be valid');
  const out = translateConfig({
    objects,
    nodeId: opts.node ?? NODE,
    metadata: { LABELS: { app: 'web', 'service.istio.io/canonical-name': 'web' }, NAMESPACE: 'shop', ISTIO_VERSION: '1.31.0', CLUSTER_ID: 'Kubernetes', ...(opts.metadata ?? {}) },
    meshConfig: (opts.mesh ?? {}) as MeshConfig,
    ...(opts.extensions ? { node: { cluster: 'web.shop', extensions: opts.extensions } } : {}),
  });
  // The server must be able to encode whatever telemetry added.
  for (const l of out.lds ?? []) encodeJson(TypeUrl.Listener, l);
  for (const c of out.cds ?? []) encodeJson(TypeUrl.Cluster, c);
  return out;
}

const listener = (out: { lds?: unknown[] }, name: string) => (out.lds as Json[]).find((l) => l.name === name)!;
const hcmOf = (l: Json) => (l.filterChains as Json[]).flatMap((fc) => fc.filters as Json[]).find((f) => f.name === HCM)!.typedConfig as Json;
const names = (fs: Json[]) => fs.map((f) => f.name);
const inboundHttpHcm = (out: { lds?: unknown[] }) => {
  const chains = listener(out, 'virtualInbound').filterChains as Json[];
  return (chains.flatMap((c) => c.filters as Json[]).find((f) => f.name === HCM && f.typedConfig.statPrefix !== 'InboundPassthroughCluster') ?? chains.flatMap((c) => c.filters as Json[]).find((f) => f.name === HCM))!.typedConfig as Json;
};
const everything = (out: Json) => JSON.stringify([out.lds, out.cds]);

const PROMETHEUS: Json = { defaultProviders: { metrics: ['prometheus'] } };

test("a node advertising Istio's extensions gets istiod's istio.stats and peer-metadata filters", () => {
  const override = telemetry('metrics', 'shop', {
    metrics: [
      {
        providers: [{ name: 'prometheus' }],
        overrides: [
          { match: { metric: 'REQUEST_COUNT', mode: 'CLIENT' }, tagOverrides: { request_host: { operation: 'UPSERT', value: 'request.host' }, response_flags: { operation: 'REMOVE' } } },
          { match: { metric: 'REQUEST_SIZE' }, disabled: true },
        ],
      },
    ],
  });
  const out = run([override], { mesh: PROMETHEUS, extensions: ISTIO_PROXY_EXTENSIONS });
  const outbound = hcmOf(listener(out, '0.0.0.0_8080'));
  const filters = outbound.httpFilters as Json[];
  assert.equal(filters[0]!.name, 'istio.metadata_exchange');
  assert.deepEqual(filters[0]!.typedConfig, {
    '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
    typeUrl: 'type.googleapis.com/io.istio.http.peer_metadata.Config',
    value: { upstream_discovery: [{ istio_headers: {} }, { workload_discovery: {} }], upstream_propagation: [{ istio_headers: {} }] },
  });
  assert.deepEqual(names(filters).slice(-2), ['istio.stats', 'envoy.filters.http.router']);
  // Client side: REQUEST_COUNT's tags and REQUEST_SIZE dropped, as istiod's generateStatsConfig writes them.
  assert.deepEqual(filters.at(-2)!.typedConfig, {
    '@type': 'type.googleapis.com/stats.PluginConfig',
    metrics: [
      { name: 'requests_total', dimensions: { request_host: 'request.host' }, tagsToRemove: ['response_flags'] },
      { name: 'request_bytes', drop: true },
    ],
  });
  // Server side: no host header fallback, only the override for both modes.
  const inbound = inboundHttpHcm(out);
  const inFilters = inbound.httpFilters as Json[];
  assert.equal(inFilters[0]!.typedConfig.typeUrl, 'type.googleapis.com/io.istio.http.peer_metadata.Config');
  assert.deepEqual(Object.keys(inFilters[0]!.typedConfig.value).sort(), ['downstream_discovery', 'downstream_propagation']);
  const inStats = inFilters.find((f) => f.name === 'istio.stats')!;
  assert.deepEqual(inStats.typedConfig, { '@type': 'type.googleapis.com/stats.PluginConfig', disableHostHeaderFallback: true, metrics: [{ name: 'request_bytes', drop: true }] });
  // Inbound chains read the peer's metadata first; outbound clusters exchange it upstream.
  for (const c of listener(out, 'virtualInbound').filterChains as Json[]) if ((c.filters as Json[]).length) assert.equal(c.filters[0].name, 'istio.metadata_exchange', JSON.stringify(c.filterChainMatch));
  const cluster = (out.cds as Json[]).find((c) => c.name === 'outbound|8080||web.shop.svc.cluster.local')!;
  assert.deepEqual(names(cluster.filters), ['istio.metadata_exchange']);
  // TCP: istio.stats right before the TCP proxy.
  const tcp = (listener(out, '10.96.0.12_5432').filterChains as Json[])[0]!.filters as Json[];
  assert.deepEqual(names(tcp), ['istio.stats', 'envoy.filters.network.tcp_proxy']);
});

test("every HCM of sidecars and gateways carries istiod's gRPC stats filter, before fault and cors (and istio.stats)", () => {
  const GRPC_STATS = { name: 'envoy.filters.http.grpc_stats', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig', emitFilterState: true, statsForAllMethods: false } };
  for (const extensions of [ISTIO_PROXY_EXTENSIONS, UPSTREAM_ENVOY_EXTENSIONS]) {
    const out = run([], { mesh: PROMETHEUS, extensions });
    const hcms = (out.lds as Json[]).flatMap((l) => [...((l.filterChains ?? []) as Json[]), ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])]).flatMap((c) => (c.filters ?? []) as Json[]).filter((f) => f.name === HCM);
    assert.ok(hcms.length >= 3, 'outbound, inbound and passthrough HCMs');
    for (const h of hcms) {
      const fs = h.typedConfig.httpFilters as Json[];
      assert.deepEqual(fs.filter((f) => f.name === GRPC_STATS.name), [GRPC_STATS], h.typedConfig.statPrefix);
      const at = names(fs).indexOf(GRPC_STATS.name);
      assert.equal(names(fs)[at + 1], 'envoy.filters.http.fault', `${h.typedConfig.statPrefix}: ${names(fs).join(',')}`);
    }
  }
  // A gateway's HCMs too (istiod's gateway listeners use the same HCM builder).
  const gw = run(
    [
      { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'istio-system' }, spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] } },
    ],
    { extensions: UPSTREAM_ENVOY_EXTENSIONS, node: 'router~10.1.0.9~gw-0.istio-system~istio-system.svc.cluster.local', metadata: { LABELS: { istio: 'ingressgateway' }, NAMESPACE: 'istio-system' } },
  );
  const gwHcm = hcmOf(listener(gw, '0.0.0.0_8080'));
  assert.ok(names(gwHcm.httpFilters).includes('envoy.filters.http.grpc_stats'), names(gwHcm.httpFilters).join(','));
});

test('a node whose extension list lacks them (upstream Envoy) gets none of Istio’s filters, even with ISTIO_VERSION', () => {
  const out = run([], { mesh: PROMETHEUS, extensions: UPSTREAM_ENVOY_EXTENSIONS });
  assert.doesNotMatch(everything(out), /istio\.stats|istio\.metadata_exchange|stats\.PluginConfig|peer_metadata/);
  assert.deepEqual(names(hcmOf(listener(out, '0.0.0.0_8080')).httpFilters).at(-1), 'envoy.filters.http.router');
});

test('a node with no extension list is treated as istiod treats it: Istio proxies get the filters, others not', () => {
  assert.match(everything(run([], { mesh: PROMETHEUS })), /istio\.stats/);
  assert.doesNotMatch(everything(run([], { mesh: PROMETHEUS, metadata: { ISTIO_VERSION: undefined } })), /istio\.stats|istio\.metadata_exchange/);
  // No metrics provider (istiod's default MeshConfig): peer metadata but no stats filter.
  const none = everything(run([], { extensions: ISTIO_PROXY_EXTENSIONS }));
  assert.doesNotMatch(none, /istio\.stats/);
  assert.match(none, /istio\.metadata_exchange/);
});

test('metrics disabled for all by a Telemetry drop the stats filter; a workload Telemetry re-enables the server side', () => {
  const off = telemetry('off', 'istio-system', { metrics: [{ providers: [{ name: 'prometheus' }], overrides: [{ disabled: true }] }] });
  assert.doesNotMatch(everything(run([off], { mesh: PROMETHEUS, extensions: ISTIO_PROXY_EXTENSIONS })), /istio\.stats/);
  const on = telemetry('web-on', 'shop', { selector: { matchLabels: { app: 'web' } }, metrics: [{ overrides: [{ match: { mode: 'SERVER', metric: 'REQUEST_COUNT' }, disabled: false }] }] });
  const out = run([off, on], { mesh: PROMETHEUS, extensions: ISTIO_PROXY_EXTENSIONS });
  assert.ok(!names(hcmOf(listener(out, '0.0.0.0_8080')).httpFilters).includes('istio.stats'));
  assert.ok(names(inboundHttpHcm(out).httpFilters).includes('istio.stats'));
});

test('meshConfig.accessLogFile gives every HCM and TCP proxy istiod’s file access log; the catch-all listeners log NR only', () => {
  const out = run([], { mesh: { accessLogFile: '/dev/stdout' } });
  const al = hcmOf(listener(out, '0.0.0.0_8080')).accessLog as Json[];
  assert.deepEqual(al, [
    {
      name: 'envoy.access_loggers.file',
      typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/dev/stdout', logFormat: { textFormatSource: { inlineString: ENVOY_TEXT_LOG_FORMAT } } },
    },
  ]);
  const tcp = ((listener(out, '10.96.0.12_5432').filterChains as Json[])[0]!.filters as Json[]).find((f) => f.name === 'envoy.filters.network.tcp_proxy')!;
  assert.deepEqual(tcp.typedConfig.accessLog, al);
  assert.deepEqual(listener(out, 'virtualOutbound').accessLog, [{ ...al[0]!, filter: { responseFlagFilter: { flags: ['NR'] } } }]);
  // JSON encoding with a format of its own.
  const json = run([], { mesh: { accessLogFile: '/tmp/a.log', accessLogEncoding: 'JSON', accessLogFormat: '{"m":"%REQ(:METHOD)%"}' } });
  assert.deepEqual(hcmOf(listener(json, '0.0.0.0_8080')).accessLog[0].typedConfig.logFormat, { jsonFormat: { m: '%REQ(:METHOD)%' }, jsonFormatOptions: {} });
});

test('Telemetry accessLogging: a provider replaces accessLogFile, with its CEL filter; disabling it removes the log', () => {
  const mesh = { accessLogFile: '/dev/stdout', extensionProviders: [{ name: 'file-log', envoyFileAccessLog: { path: '/tmp/x.log', logFormat: { text: '%REQ(:PATH)%' } } }] };
  const withFilter = telemetry('logs', 'shop', { accessLogging: [{ providers: [{ name: 'file-log' }], filter: { expression: 'response.code >= 400' } }] });
  const out = run([withFilter], { mesh });
  assert.deepEqual(hcmOf(listener(out, '0.0.0.0_8080')).accessLog, [
    {
      name: 'envoy.access_loggers.file',
      typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/tmp/x.log', logFormat: { textFormatSource: { inlineString: '%REQ(:PATH)%\n' } } },
      filter: { extensionFilter: { name: 'envoy.access_loggers.extension_filters.cel', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter', expression: 'response.code >= 400' } } },
    },
  ]);
  const disabled = telemetry('logs', 'shop', { accessLogging: [{ providers: [{ name: 'file-log' }], disabled: true }] });
  const off = run([disabled], { mesh });
  assert.equal(hcmOf(listener(off, '0.0.0.0_8080')).accessLog, undefined);
  assert.equal(listener(off, 'virtualOutbound').accessLog, undefined);
  // Only for the mode it names: SERVER leaves the client side with accessLogFile's log.
  const server = telemetry('logs', 'shop', { accessLogging: [{ match: { mode: 'SERVER' }, providers: [{ name: 'file-log' }] }] });
  const s = run([server], { mesh });
  assert.equal(hcmOf(listener(s, '0.0.0.0_8080')).accessLog[0].typedConfig.path, '/dev/stdout');
  assert.equal(inboundHttpHcm(s).accessLog[0].typedConfig.path, '/tmp/x.log');
});

test("Telemetry tracing: Datadog (the node's cluster as service name) and SkyWalking (always an upstream span) as istiod renders them", () => {
  const mesh = {
    extensionProviders: [
      { name: 'dd', datadog: { service: 'zipkin.istio-system.svc.cluster.local', port: 9411, maxTagLength: 99 } },
      { name: 'sw', skywalking: { service: 'zipkin.istio-system.svc.cluster.local', port: 9411 } },
      { name: 'dd-missing', datadog: { service: 'nowhere.istio-system.svc.cluster.local', port: 8126 } },
    ],
  };
  const tracing = (provider: string) => telemetry('tracing', 'istio-system', { tracing: [{ providers: [{ name: provider }], randomSamplingPercentage: 50 }] });
  const dd = hcmOf(listener(run([tracing('dd')], { mesh, extensions: UPSTREAM_ENVOY_EXTENSIONS }), '0.0.0.0_8080')).tracing;
  assert.deepEqual(dd.provider, {
    name: 'envoy.tracers.datadog',
    typedConfig: { '@type': 'type.googleapis.com/envoy.config.trace.v3.DatadogConfig', collectorCluster: 'outbound|9411||zipkin.istio-system.svc.cluster.local', serviceName: 'web.shop', collectorHostname: 'zipkin.istio-system.svc.cluster.local' },
  });
  assert.equal(dd.maxPathTagLength, 99);
  assert.deepEqual(dd.randomSampling, { value: 50 });
  assert.equal(dd.spawnUpstreamSpan, undefined);
  const sw = hcmOf(listener(run([tracing('sw')], { mesh }), '0.0.0.0_8080')).tracing;
  assert.deepEqual(sw.provider, {
    name: 'envoy.tracers.skywalking',
    typedConfig: { '@type': 'type.googleapis.com/envoy.config.trace.v3.SkyWalkingConfig', grpcService: { envoyGrpc: { clusterName: 'outbound|9411||zipkin.istio-system.svc.cluster.local', authority: 'zipkin.istio-system.svc.cluster.local' } } },
  });
  assert.equal(sw.spawnUpstreamSpan, true);
  assert.equal(sw.maxPathTagLength, undefined);
  // A collector not in the registry: no tracing, as istiod.
  assert.equal(hcmOf(listener(run([tracing('dd-missing')], { mesh }), '0.0.0.0_8080')).tracing, undefined);
});

test('Telemetry tracing: the zipkin provider, sampling and custom tags as istiod renders them', () => {
  const mesh = { extensionProviders: [{ name: 'zipkin', zipkin: { service: 'zipkin.istio-system.svc.cluster.local', port: 9411 } }] };
  const t = telemetry('tracing', 'istio-system', {
    tracing: [{ providers: [{ name: 'zipkin' }], randomSamplingPercentage: 100, customTags: { team: { literal: { value: 'shop' } }, pod: { environment: { name: 'POD_NAME', defaultValue: 'x' } }, user: { header: { name: 'x-user' } } } }],
  });
  const out = run([t], { mesh });
  const hcm = hcmOf(listener(out, '0.0.0.0_8080'));
  assert.deepEqual(hcm.tracing.provider, {
    name: 'envoy.tracers.zipkin',
    typedConfig: {
      '@type': 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig',
      collectorEndpointVersion: 'HTTP_JSON',
      traceId128bit: true,
      sharedSpanContext: false,
      // istiod's pre-1.29 form (see build.ts: the newer collector_service is not in Sextant's Envoy API).
      collectorCluster: 'outbound|9411||zipkin.istio-system.svc.cluster.local',
      collectorEndpoint: '/api/v2/spans',
      collectorHostname: 'zipkin.istio-system.svc.cluster.local',
    },
  });
  assert.deepEqual([hcm.tracing.clientSampling, hcm.tracing.randomSampling, hcm.tracing.overallSampling], [{ value: 100 }, { value: 100 }, { value: 100 }]);
  const tags = hcm.tracing.customTags as Json[];
  assert.deepEqual(tags.map((x) => x.tag), [...tags.map((x) => x.tag)].sort());
  assert.deepEqual(tags.find((x) => x.tag === 'team'), { tag: 'team', literal: { value: 'shop' } });
  assert.deepEqual(tags.find((x) => x.tag === 'pod'), { tag: 'pod', environment: { name: 'POD_NAME', defaultValue: 'x' } });
  assert.deepEqual(tags.find((x) => x.tag === 'user'), { tag: 'user', requestHeader: { name: 'x-user' } });
  assert.deepEqual(tags.find((x) => x.tag === 'istio.canonical_service'), { tag: 'istio.canonical_service', literal: { value: 'web' } });
  assert.deepEqual(hcm.requestIdExtension, { typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig', useRequestIdForTraceSampling: true } });
  // A namespace Telemetry overrides the sampling only.
  const zero = telemetry('zero', 'shop', { tracing: [{ randomSamplingPercentage: 0 }] });
  const old = run([t, zero], { mesh, metadata: { ISTIO_VERSION: '1.27.0' } });
  const tr = hcmOf(listener(old, '0.0.0.0_8080')).tracing;
  assert.deepEqual(tr.randomSampling, { value: 0 });
  assert.equal(tr.provider.typedConfig.collectorCluster, 'outbound|9411||zipkin.istio-system.svc.cluster.local');
  // disableSpanReporting turns tracing off on that side.
  const off = run([t, telemetry('off', 'shop', { tracing: [{ match: { mode: 'CLIENT' }, disableSpanReporting: true }] })], { mesh });
  assert.equal(hcmOf(listener(off, '0.0.0.0_8080')).tracing, undefined);
  assert.ok(inboundHttpHcm(off).tracing.provider);
});

test('without Telemetry tracing, HCMs get istiod’s legacy tracing (1% sampling, Istio tags), and none with enableTracing false', () => {
  const hcm = hcmOf(listener(run([]), '0.0.0.0_8080'));
  assert.deepEqual(hcm.tracing.randomSampling, { value: 1 });
  assert.equal(hcm.tracing.provider, undefined);
  assert.equal(hcmOf(listener(run([], { mesh: { enableTracing: false } }), '0.0.0.0_8080')).tracing, undefined);
});

test('scopes: a Telemetry selecting another workload, or a Gateway by targetRefs, does not apply to this sidecar', () => {
  const mesh = { extensionProviders: [{ name: 'file-log', envoyFileAccessLog: { path: '/tmp/x.log' } }] };
  const other = telemetry('other', 'shop', { selector: { matchLabels: { app: 'api' } }, accessLogging: [{ providers: [{ name: 'file-log' }] }] });
  const gw = telemetry('gw', 'shop', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'web' }], accessLogging: [{ providers: [{ name: 'file-log' }] }] });
  const elsewhere = telemetry('ns', 'legacy', { accessLogging: [{ providers: [{ name: 'file-log' }] }] });
  const out = run([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'legacy' } }, other, gw, elsewhere], { mesh });
  assert.equal(hcmOf(listener(out, '0.0.0.0_8080')).accessLog, undefined);
  const mine = telemetry('mine', 'shop', { selector: { matchLabels: { app: 'web' } }, accessLogging: [{ providers: [{ name: 'file-log' }] }] });
  assert.equal(hcmOf(listener(run([mine], { mesh }), '0.0.0.0_8080')).accessLog[0].typedConfig.path, '/tmp/x.log');
});

test('telemetry class key: canonical labels split classes only when some tracing can render istiod per-workload tags', async () => {
  const { pushContext, proxyIn, istio } = await import('@sextant/testing/push');
  const { telemetryKeyFor } = await import('./index.js');
  const labels = (name: string) => ({ LABELS: { app: name, 'service.istio.io/canonical-name': name, 'service.istio.io/canonical-revision': 'v1' } });
  const keys = (push: ReturnType<typeof pushContext>) => [telemetryKeyFor(push, proxyIn(push, { metadata: labels('a') })), telemetryKeyFor(push, proxyIn(push, { metadata: labels('b') }))];
  // Mesh default: tracing on, the tags (istio.canonical_service …) are literals per workload.
  const [a, b] = keys(pushContext([]));
  assert.notEqual(a, b);
  // Tracing off everywhere: nothing renders the labels.
  const [c, d] = keys(pushContext([], { meshConfig: { enableTracing: false } as MeshConfig }));
  assert.equal(c, d);
  // Off in the mesh config but configured by a Telemetry: split again.
  const [e, f] = keys(pushContext([istio('Telemetry', 'istio-system', 'mesh-default', { tracing: [{ randomSamplingPercentage: 10 }] })], { meshConfig: { enableTracing: false } as MeshConfig }));
  assert.notEqual(e, f);
});
