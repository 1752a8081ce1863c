/**
 * Envoy config for Istio's telemetry, as istiod writes it: the `istio.stats`
 * and `istio.metadata_exchange` filters, access logs (meshConfig.accessLogFile
 * and the Telemetry API's providers) and HCM tracing (meshConfig defaults and
 * the Telemetry API's zipkin/OpenTelemetry/... providers). Pure.
 */
import type { ProxyView, PushContext } from '@sextant/model';
import { nodeProxyConfig } from '../common.js';
import { lookupServiceCluster } from '../cluster/lookup.js';
import { applicableTelemetries, fetchProvider, mergeLogs, mergeMetrics, mergeTracing, providerKind, workloadMode, type ExtensionProvider, type Json, type ListenerClass, type MetricsConfig, type TracingSpec } from './telemetries.js';

const T = 'type.googleapis.com/';
export const TELEMETRY_TYPE = {
  stats: `${T}stats.PluginConfig`,
  typedStruct: `${T}udpa.type.v1.TypedStruct`,
  peerMetadata: `${T}io.istio.http.peer_metadata.Config`,
  metadataExchange: `${T}envoy.tcp.metadataexchange.config.MetadataExchange`,
  fileAccessLog: `${T}envoy.extensions.access_loggers.file.v3.FileAccessLog`,
  otelAccessLog: `${T}envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig`,
  celFilter: `${T}envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter`,
  zipkin: `${T}envoy.config.trace.v3.ZipkinConfig`,
  openTelemetry: `${T}envoy.config.trace.v3.OpenTelemetryConfig`,
  datadog: `${T}envoy.config.trace.v3.DatadogConfig`,
  skywalking: `${T}envoy.config.trace.v3.SkyWalkingConfig`,
  uuid: `${T}envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig`,
  grpcStats: `${T}envoy.extensions.filters.http.grpc_stats.v3.FilterConfig`,
} as const;

export const STATS_FILTER = 'istio.stats';
export const MX_FILTER = 'istio.metadata_exchange';
export const GRPC_STATS_FILTER = 'envoy.filters.http.grpc_stats';

/**
 * Envoy's gRPC stats filter as istiod puts it in every HCM it builds
 * (xdsfilters.GrpcStats): message counts into filter state, which istio.stats
 * reads for `istio_request_messages_total`/`istio_response_messages_total`,
 * and no per-method stats (unbounded stat names).
 */
export const GRPC_STATS: Json = { name: GRPC_STATS_FILTER, typedConfig: { '@type': TELEMETRY_TYPE.grpcStats, emitFilterState: true, statsForAllMethods: false } };

// ---- peer metadata ----

const typedStruct = (typeUrl: string, value: Json) => ({ '@type': TELEMETRY_TYPE.typedStruct, typeUrl, value });

/** The HTTP peer-metadata filter: inbound discovers the downstream peer, others the upstream one. */
export function httpMetadataExchange(cls: ListenerClass, skipExternalClusters: boolean): Json {
  const discovery = [{ istio_headers: {} }, { workload_discovery: {} }];
  const value =
    cls === 'SIDECAR_INBOUND'
      ? { downstream_discovery: discovery, downstream_propagation: [{ istio_headers: {} }] }
      : { upstream_discovery: discovery, upstream_propagation: [{ istio_headers: skipExternalClusters ? { skip_external_clusters: true } : {} }] };
  return { name: MX_FILTER, typedConfig: typedStruct(TELEMETRY_TYPE.peerMetadata, value) };
}

/** The TCP metadata exchange, as a listener filter (inbound) and as an upstream cluster filter. */
export function tcpMetadataExchange(): Json {
  return { name: MX_FILTER, typedConfig: typedStruct(TELEMETRY_TYPE.metadataExchange, { protocol: 'istio-peer-exchange', enable_discovery: true }) };
}

// ---- stats ----

const PROMETHEUS_NAME: Record<string, string> = {
  REQUEST_COUNT: 'requests_total',
  REQUEST_DURATION: 'request_duration_milliseconds',
  REQUEST_SIZE: 'request_bytes',
  RESPONSE_SIZE: 'response_bytes',
  TCP_OPENED_CONNECTIONS: 'tcp_connections_opened_total',
  TCP_CLOSED_CONNECTIONS: 'tcp_connections_closed_total',
  TCP_SENT_BYTES: 'tcp_sent_bytes_total',
  TCP_RECEIVED_BYTES: 'tcp_received_bytes_total',
  GRPC_REQUEST_MESSAGES: 'request_messages_total',
  GRPC_RESPONSE_MESSAGES: 'response_messages_total',
};

/** istio.stats config for one listener class, or undefined when metrics are off there. */
function statsConfig(cls: ListenerClass, m: MetricsConfig): Json | undefined {
  const mode = cls === 'SIDECAR_INBOUND' ? m.server : m.client;
  if (mode.disabled) return undefined;
  const cfg: Json = { '@type': TELEMETRY_TYPE.stats };
  if (cls === 'SIDECAR_INBOUND' || cls === 'GATEWAY') cfg.disableHostHeaderFallback = true;
  if (m.reportingInterval) cfg.tcpReportingDuration = m.reportingInterval;
  const metrics = mode.overrides.map((o) => {
    const mc: Json = { name: PROMETHEUS_NAME[o.name] ?? o.name };
    const dims: Record<string, string> = {};
    const remove: string[] = [];
    for (const t of o.tags) {
      if (t.remove) remove.push(t.name);
      else dims[t.name] = t.value;
    }
    if (Object.keys(dims).length) mc.dimensions = dims;
    if (remove.length) mc.tagsToRemove = remove;
    if (o.disabled) mc.drop = true;
    return mc;
  });
  if (metrics.length) cfg.metrics = metrics;
  return cfg;
}

/** The istio.stats filters (one per prometheus metrics provider in effect) for a listener class. */
export function statsFilters(push: PushContext, proxy: ProxyView, cls: ListenerClass): Json[] {
  const applied = applicableTelemetries(push, proxy);
  const merged = mergeMetrics(push, applied.metrics);
  const out: Json[] = [];
  for (const name of [...merged.keys()].sort()) {
    const p = fetchProvider(push, name);
    if (!p || providerKind(p) !== 'prometheus') continue;
    const cfg = statsConfig(cls, merged.get(name)!);
    if (cfg) out.push({ name: STATS_FILTER, typedConfig: cfg });
  }
  return out;
}

// ---- access logs ----

/** istiod's default text format (model.EnvoyTextLogFormat). */
export const ENVOY_TEXT_LOG_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% ' +
  '%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ' +
  '%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

/** istiod's default JSON format (model.EnvoyJSONLogFormatIstio). */
export const ENVOY_JSON_LOG_FORMAT: Record<string, string> = {
  start_time: '%START_TIME%',
  route_name: '%ROUTE_NAME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER_RAW%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
};

const REQ_WITHOUT_QUERY = { name: 'envoy.formatter.req_without_query', typedConfig: { '@type': `${T}envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery` } };
const textFormat = (f: string) => (f === '' ? ENVOY_TEXT_LOG_FORMAT : f.endsWith('\n') ? f : `${f}\n`);
const formatters = (values: string[]) => (values.some((v) => v.includes('%REQ_WITHOUT_QUERY')) ? [REQ_WITHOUT_QUERY] : []);

function fileLog(path: string, logFormat: Json): Json {
  return { name: 'envoy.access_loggers.file', typedConfig: { '@type': TELEMETRY_TYPE.fileAccessLog, path, logFormat } };
}

function textLogFormat(text: string, omitEmptyValues = false): Json {
  const f = textFormat(text);
  const out: Json = { textFormatSource: { inlineString: f } };
  if (omitEmptyValues) out.omitEmptyValues = true;
  const fm = formatters([f]);
  if (fm.length) out.formatters = fm;
  return out;
}

function jsonLogFormat(fields: Json, omitEmptyValues = false): Json {
  const out: Json = { jsonFormat: fields, jsonFormatOptions: {} };
  if (omitEmptyValues) out.omitEmptyValues = true;
  const fm = formatters(Object.values(fields).map(String));
  if (fm.length) out.formatters = fm;
  return out;
}

/** meshConfig.accessLogFile/accessLogFormat/accessLogEncoding as an access log (FileAccessLogFromMeshConfig). */
export function meshFileAccessLog(push: PushContext, path: string): Json {
  const mesh = push.mesh as Json;
  const format = String(mesh.accessLogFormat ?? '');
  if (mesh.accessLogEncoding === 'JSON') {
    let fields: Json = ENVOY_JSON_LOG_FORMAT;
    if (format) {
      try {
        const parsed = JSON.parse(format) as unknown;
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) fields = parsed as Json;
      } catch {
        // istiod logs the error and keeps its default format; so does Sextant.
      }
    }
    return fileLog(path, jsonLogFormat(fields));
  }
  return fileLog(path, textLogFormat(format));
}

/** The access log of one Telemetry API provider, or undefined for providers that are not access loggers or cannot be built. */
function providerAccessLog(push: PushContext, p: ExtensionProvider): Json | undefined {
  const f = p.envoyFileAccessLog as Json | undefined;
  if (f) {
    if (p.name === 'envoy' && !f.logFormat && !f.omitEmptyValues) return meshFileAccessLog(push, String(f.path ?? ''));
    const path = String(f.path || '/dev/stdout');
    const lf = f.logFormat as Json | undefined;
    if (lf?.labels !== undefined) return fileLog(path, jsonLogFormat(Object.keys(lf.labels ?? {}).length ? lf.labels : ENVOY_JSON_LOG_FORMAT, f.omitEmptyValues === true));
    return fileLog(path, textLogFormat(String(lf?.text ?? ''), f.omitEmptyValues === true));
  }
  const o = p.envoyOtelAls as Json | undefined;
  if (o) {
    const found = lookupServiceCluster(push, String(o.service ?? ''), Number(o.port ?? 0));
    if (typeof found === 'string') return undefined;
    const text = String(o.logFormat?.text || '') || ENVOY_TEXT_LOG_FORMAT;
    const labels = (o.logFormat?.labels ?? {}) as Record<string, unknown>;
    const cfg: Json = {
      '@type': TELEMETRY_TYPE.otelAccessLog,
      commonConfig: {
        logName: String(o.logName || 'otel_envoy_accesslog'),
        grpcService: { envoyGrpc: { clusterName: found.cluster, authority: found.hostname } },
        transportApiVersion: 'V3',
        filterStateObjectsToLog: ['upstream_peer', 'downstream_peer', 'wasm.upstream_peer', 'wasm.upstream_peer_id', 'wasm.downstream_peer', 'wasm.downstream_peer_id'],
      },
      disableBuiltinLabels: true,
      body: { stringValue: text },
    };
    const keys = Object.keys(labels).sort();
    if (keys.length) cfg.attributes = { values: keys.map((k) => ({ key: k, value: { stringValue: String(labels[k] ?? '') } })) };
    const fm = formatters([text, ...Object.values(labels).map(String)]);
    if (fm.length) cfg.formatters = fm;
    return { name: 'envoy.access_loggers.open_telemetry', typedConfig: cfg };
  }
  return undefined;
}

const celFilter = (expression: string): Json => ({ extensionFilter: { name: 'envoy.access_loggers.extension_filters.cel', typedConfig: { '@type': TELEMETRY_TYPE.celFilter, expression } } });
const andFilter = (fs: Json[]): Json | undefined => (fs.length === 0 ? undefined : fs.length === 1 ? fs[0] : { andFilter: { filters: fs } });
/** Listener-level access logs only report connections no chain matched (response flag NR). */
const NR_FILTER: Json = { responseFlagFilter: { flags: ['NR'] } };

/**
 * The access logs for an HCM, tcp_proxy or listener of a class. `listener`
 * adds istiod's NR filter. Telemetry API providers win over meshConfig's
 * accessLogFile once any Telemetry (or a default provider) configures logging.
 */
export function accessLogs(push: PushContext, proxy: ProxyView, cls: ListenerClass, listener = false): Json[] {
  const mesh = push.mesh as Json;
  if (listener && mesh.disableEnvoyListenerLog === true) return [];
  const applied = applicableTelemetries(push, proxy);
  const defaults = ((mesh.defaultProviders ?? {}).accessLogging ?? []) as string[];
  const cfgs: Array<{ provider: string; al: Json; spec: { disabled: boolean; filter?: Json | undefined } }> = [];
  if (applied.logging.length > 0 || defaults.length > 0) {
    for (const [name, spec] of mergeLogs(push, applied.logging, workloadMode(cls))) {
      const p = fetchProvider(push, name);
      if (!p) continue;
      const al = providerAccessLog(push, p);
      if (al) cfgs.push({ provider: p.name, al, spec });
    }
  }
  // Nothing from the Telemetry API (not even a disabled provider): meshConfig.accessLogFile, as istiod falls back.
  if (cfgs.length === 0) {
    const file = String(mesh.accessLogFile ?? '');
    if (!file) return [];
    const al = meshFileAccessLog(push, file);
    return [listener ? { ...al, filter: NR_FILTER } : al];
  }
  cfgs.sort((a, b) => (a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : 0));
  const out: Json[] = [];
  for (const c of cfgs) {
    if (c.spec.disabled) continue;
    const filters: Json[] = listener ? [NR_FILTER] : [];
    if (c.spec.filter && typeof c.spec.filter.expression === 'string') filters.push(celFilter(c.spec.filter.expression));
    const filter = andFilter(filters);
    out.push(filter ? { ...c.al, filter } : c.al);
  }
  return out;
}

// ---- tracing ----

const RBAC = 'envoy.filters.http.rbac';
const dryRunTag = (tag: string, key: string) => ({ tag, metadata: { kind: { request: {} }, metadataKey: { key: RBAC, path: [{ key }] } } });
const POLICY_TAGS = [
  dryRunTag('istio.authorization.dry_run.allow_policy.name', 'istio_dry_run_allow_shadow_effective_policy_id'),
  dryRunTag('istio.authorization.dry_run.allow_policy.result', 'istio_dry_run_allow_shadow_engine_result'),
  dryRunTag('istio.authorization.dry_run.deny_policy.name', 'istio_dry_run_deny_shadow_effective_policy_id'),
  dryRunTag('istio.authorization.dry_run.deny_policy.result', 'istio_dry_run_deny_shadow_engine_result'),
];

/** The values of istiod's per-workload tracing tags `istio.canonical_revision` and `istio.canonical_service` (buildServiceTags). */
export function canonicalTagValues(proxy: ProxyView): { 'istio.canonical_revision': string; 'istio.canonical_service': string } {
  return { 'istio.canonical_revision': proxy.labels['service.istio.io/canonical-revision'] || 'latest', 'istio.canonical_service': proxy.labels['service.istio.io/canonical-name'] || 'unknown' };
}

function serviceTags(proxy: ProxyView): Json[] {
  const raw = proxy.metadata;
  const lit = (tag: string, value: string) => ({ tag, literal: { value } });
  const canonical = canonicalTagValues(proxy);
  return [
    lit('istio.canonical_revision', canonical['istio.canonical_revision']),
    lit('istio.canonical_service', canonical['istio.canonical_service']),
    lit('istio.mesh_id', raw.MESH_ID || 'unknown'),
    lit('istio.namespace', raw.NAMESPACE || 'default'),
    lit('istio.cluster_id', raw.CLUSTER_ID || 'unknown'),
  ];
}

/** The proxy's ProxyConfig tracing: its node's (nodeProxyConfig), else meshConfig.defaultConfig. */
function proxyTracing(push: PushContext, proxy: ProxyView): Json {
  const pc = nodeProxyConfig(proxy);
  if (pc) return (pc.tracing ?? {}) as Json;
  return (((push.mesh as Json).defaultConfig ?? {}).tracing ?? {}) as Json;
}

function proxySampling(push: PushContext, proxy: ProxyView): number {
  const s = Number(proxyTracing(push, proxy).sampling ?? 0);
  if (s !== 0 && Number.isFinite(s)) return s > 100 ? 1 : s;
  return 1; // PILOT_TRACE_SAMPLING's default
}

function tagsFromConfig(tags: Record<string, Json>, fromTelemetry: boolean, proxy: ProxyView): Json[] {
  const out: Json[] = [];
  for (const [tag, t] of Object.entries(tags ?? {})) {
    if (!t) continue;
    if (t.environment) out.push({ tag, environment: { name: t.environment.name, ...(t.environment.defaultValue ? { defaultValue: t.environment.defaultValue } : {}) } });
    else if (t.header) out.push({ tag, requestHeader: { name: t.header.name, ...(t.header.defaultValue ? { defaultValue: t.header.defaultValue } : {}) } });
    else if (t.literal) out.push({ tag, literal: { value: t.literal.value } });
    else if (fromTelemetry && t.formatter && versionAtLeast(proxy, 1, 29)) out.push({ tag, value: t.formatter.value });
  }
  return out;
}

function customTags(push: PushContext, proxy: ProxyView, spec: TracingSpec | undefined): Json[] {
  const pt = proxyTracing(push, proxy);
  let tags: Json[] = [];
  const istioTags = spec ? spec.enableIstioTags : pt.enableIstioTags !== false;
  if (istioTags) tags = [...serviceTags(proxy), ...POLICY_TAGS];
  const provided = spec?.customTags ?? {};
  if (Object.keys(provided).length === 0) tags.push(...tagsFromConfig((pt.customTags ?? {}) as Record<string, Json>, false, proxy));
  else tags.push(...tagsFromConfig(provided, true, proxy));
  return tags.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

/** ISTIO_VERSION as major.minor, undefined when absent (istiod's nil IstioVersion). */
function istioVersion(proxy: ProxyView): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(proxy.istioVersion);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}
function versionAtLeast(proxy: ProxyView, major: number, minor: number): boolean {
  const v = istioVersion(proxy);
  return v !== undefined && (v[0] > major || (v[0] === major && v[1] >= minor));
}

/** The provider's HCM tracing config, or a reason it cannot be built. */
function providerTracing(push: PushContext, proxy: ProxyView, p: ExtensionProvider): Json | string {
  const serviceCluster = proxy.nodeCluster ?? '';
  const z = p.zipkin as Json | undefined;
  if (z) {
    const found = lookupServiceCluster(push, String(z.service ?? ''), Number(z.port ?? 0));
    if (typeof found === 'string') return found;
    const path = String(z.path || '/api/v2/spans');
    const cfg: Json = { '@type': TELEMETRY_TYPE.zipkin, collectorEndpointVersion: 'HTTP_JSON', traceId128bit: z.enable64bitTraceId !== true, sharedSpanContext: false };
    // istiod writes collector_service (with a timeout and headers) for proxies from 1.29 on, and
    // trace_context_option from 1.28; the Envoy API Sextant is built with (@grpc/grpc-js-xds) has
    // neither field, so every proxy gets the collector fields istiod gives older ones.
    cfg.collectorCluster = found.cluster;
    cfg.collectorEndpoint = path;
    cfg.collectorHostname = found.hostname;
    const out: Json = { provider: { name: 'envoy.tracers.zipkin', typedConfig: cfg } };
    if (z.maxTagLength) out.maxPathTagLength = Number(z.maxTagLength);
    return out;
  }
  const o = p.opentelemetry as Json | undefined;
  if (o) {
    const found = lookupServiceCluster(push, String(o.service ?? ''), Number(o.port ?? 0));
    if (typeof found === 'string') return found;
    const cfg: Json = { '@type': TELEMETRY_TYPE.openTelemetry };
    if (serviceCluster) cfg.serviceName = serviceCluster;
    if (o.http) {
      const path = String(o.http.path ?? '');
      const svc: Json = { httpUri: { uri: joinPath(found.hostname, path), cluster: found.cluster, ...(o.http.timeout ? { timeout: o.http.timeout } : {}) } };
      const headers = (o.http.headers ?? []) as Json[];
      if (headers.length) svc.requestHeadersToAdd = headers.map((h) => ({ appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: h.name, value: String(h.value ?? '') } }));
      cfg.httpService = svc;
    } else {
      const grpc: Json = { envoyGrpc: { clusterName: found.cluster, authority: found.hostname } };
      if (o.grpc?.timeout) grpc.timeout = o.grpc.timeout;
      const md = (o.grpc?.initialMetadata ?? []) as Json[];
      if (md.length) grpc.initialMetadata = md.map((h) => ({ key: h.name, value: String(h.value ?? '') }));
      cfg.grpcService = grpc;
    }
    const out: Json = { provider: { name: 'envoy.tracers.opentelemetry', typedConfig: cfg } };
    if (o.maxTagLength) out.maxPathTagLength = Number(o.maxTagLength);
    return out;
  }
  const d = p.datadog as Json | undefined;
  if (d) {
    const found = lookupServiceCluster(push, String(d.service ?? ''), Number(d.port ?? 0));
    if (typeof found === 'string') return found;
    // istiod's datadogConfig: the node's cluster names the service.
    const cfg: Json = { '@type': TELEMETRY_TYPE.datadog, collectorCluster: found.cluster, serviceName: serviceCluster, collectorHostname: found.hostname };
    const out: Json = { provider: { name: 'envoy.tracers.datadog', typedConfig: cfg } };
    if (d.maxTagLength) out.maxPathTagLength = Number(d.maxTagLength);
    return out;
  }
  const sw = p.skywalking as Json | undefined;
  if (sw) {
    const found = lookupServiceCluster(push, String(sw.service ?? ''), Number(sw.port ?? 0));
    if (typeof found === 'string') return found;
    // istiod always spawns an upstream span for SkyWalking (its segments need the exit span).
    return {
      spawnUpstreamSpan: true,
      provider: { name: 'envoy.tracers.skywalking', typedConfig: { '@type': TELEMETRY_TYPE.skywalking, grpcService: { envoyGrpc: { clusterName: found.cluster, authority: found.hostname } } } },
    };
  }
  return `provider ${p.name} (${providerKind(p)}) is not a tracing provider Sextant renders`;
}

/** url.JoinPath(host, path) as istiod uses it for OTLP/HTTP: host and path joined by one slash. */
function joinPath(host: string, path: string): string {
  const p = path.replace(/^\/+/, '');
  return p ? `${host}/${p}` : host;
}

/**
 * HCM `tracing` and `requestIdExtension` for a class (istiod's configureTracing).
 * `tracing` undefined: no tracing on this HCM.
 */
export function hcmTracing(push: PushContext, proxy: ProxyView, cls: ListenerClass): { tracing?: Json; requestIdExtension: Json } {
  const uuid = (sampling: boolean) => ({ typedConfig: { '@type': TELEMETRY_TYPE.uuid, useRequestIdForTraceSampling: sampling } });
  const applied = applicableTelemetries(push, proxy);
  const merged = mergeTracing(push, applied.tracing);
  const pt = proxyTracing(push, proxy);
  const sampling = (pct: number) => ({ clientSampling: { value: 100 }, randomSampling: { value: pct }, overallSampling: { value: 100 } });
  if (!merged) {
    if ((push.mesh as Json).enableTracing === false) return { requestIdExtension: uuid(true) };
    const tracing: Json = { ...sampling(proxySampling(push, proxy)), customTags: customTags(push, proxy, undefined) };
    if (pt.maxPathTagLength) tracing.maxPathTagLength = Number(pt.maxPathTagLength);
    return { tracing, requestIdExtension: uuid(true) };
  }
  const spec = cls === 'SIDECAR_INBOUND' ? merged.server : merged.client;
  if (spec.disabled) return { requestIdExtension: uuid(true) };
  let tracing: Json = {};
  if (spec.provider) {
    const built = providerTracing(push, proxy, spec.provider);
    if (typeof built === 'string') return { requestIdExtension: uuid(true) };
    tracing = built;
    // PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY (default true): gateways start a child span per upstream request.
    if (proxy.type === 'router') tracing.spawnUpstreamSpan = true;
  }
  Object.assign(tracing, sampling(spec.randomSamplingPercentage ?? proxySampling(push, proxy)));
  tracing.customTags = customTags(push, proxy, spec);
  if (tracing.maxPathTagLength === undefined && pt.maxPathTagLength) tracing.maxPathTagLength = Number(pt.maxPathTagLength);
  if (spec.disableContextPropagation && versionAtLeast(proxy, 1, 30)) tracing.noContextPropagation = true;
  return { tracing, requestIdExtension: uuid(spec.useRequestIdForTraceSampling) };
}
