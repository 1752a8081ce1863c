/**
 * The Telemetry API as istiod resolves it for one proxy (pilot/pkg/model/telemetry.go):
 * which Telemetry objects apply (root namespace, then the proxy's namespace,
 * then those selecting the workload), and how their metrics, accessLogging
 * and tracing sections merge with meshConfig's default providers. Pure.
 */
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

/** Listener classes, as istiod names them: what a Telemetry `mode` (CLIENT/SERVER) matches. */
export type ListenerClass = 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND' | 'GATEWAY';
export type WorkloadMode = 'CLIENT' | 'SERVER';

export function workloadMode(cls: ListenerClass): WorkloadMode {
  return cls === 'SIDECAR_INBOUND' ? 'SERVER' : 'CLIENT';
}

/** An extension provider of meshConfig (`{name, prometheus: {}}`, `{name, zipkin: {...}}`, ...). */
export type ExtensionProvider = Json & { name: string };

/** istiod's built-in providers (mesh.DefaultMeshConfig); meshConfig entries of the same name replace them. */
const BUILTIN_PROVIDERS: ExtensionProvider[] = [
  { name: 'prometheus', prometheus: {} },
  { name: 'stackdriver', stackdriver: {} },
  { name: 'envoy', envoyFileAccessLog: { path: '/dev/stdout' } },
];

const providersByPush = new WeakMap<PushContext, ExtensionProvider[]>();

/** meshConfig.extensionProviders merged over the built-ins as istiod's ApplyMeshConfig merges them. */
export function extensionProviders(push: PushContext): ExtensionProvider[] {
  let out = providersByPush.get(push);
  if (out) return out;
  out = BUILTIN_PROVIDERS.map((p) => ({ ...p }));
  for (const p of ((push.mesh as Json).extensionProviders ?? []) as Json[]) {
    if (!p || typeof p.name !== 'string') continue;
    const i = out.findIndex((e) => e.name === p.name);
    if (i >= 0) out[i] = p as ExtensionProvider;
    else out.push(p as ExtensionProvider);
  }
  providersByPush.set(push, out);
  return out;
}

/** The provider a Telemetry names (case-insensitive, as istiod's fetchProvider). */
export function fetchProvider(push: PushContext, name: string): ExtensionProvider | undefined {
  const n = name.toLowerCase();
  return extensionProviders(push).find((p) => p.name.toLowerCase() === n);
}

export function defaultProviders(push: PushContext, section: 'metrics' | 'accessLogging' | 'tracing'): string[] {
  return (((push.mesh as Json).defaultProviders ?? {})[section] ?? []) as string[];
}

/** The provider's kind: the one key besides `name` (`prometheus`, `zipkin`, `envoyFileAccessLog`, ...). */
export function providerKind(p: ExtensionProvider): string {
  return Object.keys(p).find((k) => k !== 'name') ?? '';
}

const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

const hasSelector = (spec: Json) => Object.keys((spec.selector as Json | undefined)?.matchLabels ?? {}).length > 0 || ((spec.targetRefs as unknown[] | undefined)?.length ?? 0) > 0 || spec.targetRef !== undefined;

/** Whether a Telemetry with a selector or targetRefs applies to the proxy (istiod's PolicyMatcher). */
function selects(spec: Json, proxy: ProxyView): boolean {
  const refs = ((spec.targetRefs as Json[] | undefined) ?? (spec.targetRef ? [spec.targetRef as Json] : []));
  if (refs.length > 0) {
    // Only a Kubernetes Gateway's deployment is selected by targetRefs (sidecars never are).
    const gw = proxy.labels[GATEWAY_NAME_LABEL];
    return gw !== undefined && refs.some((r) => r.kind === 'Gateway' && (r.group ?? 'gateway.networking.k8s.io') === 'gateway.networking.k8s.io' && r.name === gw);
  }
  const labels = ((spec.selector as Json | undefined)?.matchLabels ?? {}) as Record<string, string>;
  return Object.entries(labels).every(([k, v]) => proxy.labels[k] === v);
}

/** The Telemetries in scope for a proxy, in istiod's order (later ones override): root, namespace, workload. */
export interface AppliedTelemetries {
  /** The objects that contributed, for reports and class keys. */
  objects: IstioConfig[];
  metrics: Json[];
  /** accessLogging sections, grouped per object (istiod merges them object by object). */
  logging: Json[][];
  tracing: Json[];
}

export function applicableTelemetries(push: PushContext, proxy: ProxyView): AppliedTelemetries {
  const root = push.mesh.rootNamespace ?? 'istio-system';
  const out: AppliedTelemetries = { objects: [], metrics: [], logging: [], tracing: [] };
  const add = (t: IstioConfig) => {
    const spec = t.spec as Json;
    out.objects.push(t);
    out.metrics.push(...((spec.metrics ?? []) as Json[]));
    if (((spec.accessLogging ?? []) as Json[]).length > 0) out.logging.push(spec.accessLogging as Json[]);
    out.tracing.push(...((spec.tracing ?? []) as Json[]));
  };
  // The first namespace-wide Telemetry (oldest) of a namespace is its only one that counts.
  const nsWide = (ns: string) => push.configs('Telemetry', ns).find((t) => !hasSelector(t.spec as Json));
  const rootWide = nsWide(root);
  if (rootWide) add(rootWide);
  if (proxy.namespace !== root) {
    const w = nsWide(proxy.namespace);
    if (w) add(w);
  }
  for (const t of push.configs('Telemetry', proxy.namespace)) if (hasSelector(t.spec as Json) && selects(t.spec as Json, proxy)) add(t);
  return out;
}

const providerNames = (refs: unknown): string[] => ((refs ?? []) as Json[]).map((r) => String(r.name ?? ''));

// ---- metrics (mergeMetrics) ----

export interface MetricOverride {
  name: string;
  disabled: boolean;
  /** Sorted by tag name. */
  tags: Array<{ name: string; remove: boolean; value: string }>;
}
export interface MetricModeConfig {
  disabled: boolean;
  /** Sorted by metric name. */
  overrides: MetricOverride[];
}
export interface MetricsConfig {
  client: MetricModeConfig;
  server: MetricModeConfig;
  reportingInterval?: string | undefined;
}

/** Istio's metric enum names, ALL_METRICS excluded, sorted (what ALL_METRICS and an empty match expand to). */
const ALL_METRICS = ['GRPC_REQUEST_MESSAGES', 'GRPC_RESPONSE_MESSAGES', 'REQUEST_COUNT', 'REQUEST_DURATION', 'REQUEST_SIZE', 'RESPONSE_SIZE', 'TCP_CLOSED_CONNECTIONS', 'TCP_OPENED_CONNECTIONS', 'TCP_RECEIVED_BYTES', 'TCP_SENT_BYTES'];

const modesOf = (mode: unknown): WorkloadMode[] => (mode === 'CLIENT' || mode === 'SERVER' ? [mode] : ['CLIENT', 'SERVER']);
const isAllMetrics = (match: Json | undefined) => match?.customMetric === undefined && (match?.metric === undefined || match.metric === 'ALL_METRICS');
const matchesOf = (match: Json | undefined): string[] => (match?.customMetric !== undefined ? [String(match.customMetric)] : match?.metric !== undefined && match.metric !== 'ALL_METRICS' ? [String(match.metric)] : ALL_METRICS);

/** The metrics providers in effect and their per-mode overrides. */
export function mergeMetrics(push: PushContext, metrics: Json[]): Map<string, MetricsConfig> {
  type Override = { disabled?: boolean | undefined; tags?: Record<string, Json> };
  const providers = new Map<string, Map<WorkloadMode, Map<string, Override>>>();
  const defaults = defaultProviders(push, 'metrics');
  if (metrics.length === 0) for (const dp of defaults) providers.set(dp, new Map());
  let inScopeNames = defaults;
  for (const m of metrics) {
    const names = providerNames(m.providers);
    if (names.length > 0) inScopeNames = names;
  }
  const inScope = new Set(inScopeNames);
  let parent = defaults;
  const disabledAll = new Set<string>();
  const intervals = new Map<string, string>();
  for (const m of metrics) {
    let names = providerNames(m.providers);
    if (names.length === 0) names = parent;
    parent = names;
    for (const provider of names) {
      if (!inScope.has(provider)) continue;
      if (m.reportingInterval) intervals.set(provider, String(m.reportingInterval));
      if (!providers.has(provider)) providers.set(provider, new Map([['CLIENT', new Map()], ['SERVER', new Map()]]));
      const mp = providers.get(provider)!;
      for (const o of (m.overrides ?? []) as Json[]) {
        if (isAllMetrics(o.match) && o.disabled === true) {
          for (const mode of modesOf(o.match?.mode)) disabledAll.add(`${provider}/${mode}`);
          continue;
        }
        for (const mode of modesOf(o.match?.mode)) {
          disabledAll.delete(`${provider}/${mode}`);
          if (!mp.has(mode)) mp.set(mode, new Map());
          for (const metric of matchesOf(o.match)) {
            const cur: Override = { ...(mp.get(mode)!.get(metric) ?? {}) };
            if (o.disabled !== undefined && o.disabled !== null) cur.disabled = o.disabled;
            for (const [k, v] of Object.entries((o.tagOverrides ?? {}) as Record<string, Json>)) cur.tags = { ...(cur.tags ?? {}), [k]: v };
            mp.get(mode)!.set(metric, cur);
          }
        }
      }
    }
  }
  const out = new Map<string, MetricsConfig>();
  for (const [provider, modes] of providers) {
    const cfg: MetricsConfig = { client: { disabled: false, overrides: [] }, server: { disabled: false, overrides: [] }, reportingInterval: intervals.get(provider) };
    for (const [mode, byMetric] of modes) {
      const target = mode === 'CLIENT' ? cfg.client : cfg.server;
      if (disabledAll.has(`${provider}/${mode}`)) {
        target.disabled = true;
        continue;
      }
      for (const [metric, o] of byMetric) {
        const tags = Object.entries(o.tags ?? {})
          .map(([name, t]) => (t.operation === 'REMOVE' ? { name, remove: true, value: '' } : { name, remove: false, value: String(t.value ?? '') }))
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        target.overrides.push({ name: metric, disabled: o.disabled === true, tags });
      }
    }
    const byName = (a: MetricOverride, b: MetricOverride) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    cfg.client.overrides.sort(byName);
    cfg.server.overrides.sort(byName);
    out.set(provider, cfg);
  }
  return out;
}

// ---- access logging (mergeLogs) ----

export interface LoggingSpec {
  disabled: boolean;
  filter?: Json | undefined;
}

const matchMode = (match: Json | undefined, mode: WorkloadMode) => !match || match.mode === undefined || match.mode === 'CLIENT_AND_SERVER' || match.mode === mode;

/** The access-log providers in effect for a mode, with their filter or disabled. */
export function mergeLogs(push: PushContext, logs: Json[][], mode: WorkloadMode): Map<string, LoggingSpec> {
  const out = new Map<string, LoggingSpec>();
  const defaults = defaultProviders(push, 'accessLogging');
  if (logs.length === 0) {
    for (const dp of defaults) out.set(dp, { disabled: false });
    return out;
  }
  let names = defaults;
  const filters = new Map<string, LoggingSpec>();
  for (const group of logs) {
    const found = new Set<string>();
    for (const p of group) {
      if (!matchMode(p.match, mode)) continue;
      const sub = providerNames(p.providers);
      for (const n of sub) {
        found.add(n);
        filters.set(n, { disabled: false, filter: p.filter });
      }
    }
    if (found.size > 0) names = [...found];
  }
  const inScope = new Set(names);
  let parent = defaults;
  for (const group of logs) {
    for (const m of group) {
      let pn = providerNames(m.providers);
      if (pn.length === 0) pn = parent;
      parent = pn;
      for (const provider of pn) {
        if (!inScope.has(provider) || !matchMode(m.match, mode)) continue;
        if (m.disabled === true) out.set(provider, { disabled: true });
        else out.set(provider, filters.get(provider) ?? { disabled: false });
      }
    }
  }
  return out;
}

// ---- tracing (Telemetries.Tracing) ----

export interface TracingSpec {
  provider?: ExtensionProvider | undefined;
  disabled: boolean;
  randomSamplingPercentage?: number | undefined;
  customTags?: Record<string, Json> | undefined;
  useRequestIdForTraceSampling: boolean;
  enableIstioTags: boolean;
  disableContextPropagation: boolean;
}

/** Client and server tracing specs; undefined when no Telemetry and no default provider configure tracing. */
export function mergeTracing(push: PushContext, tracing: Json[]): { client: TracingSpec; server: TracingSpec } | undefined {
  const defaults = defaultProviders(push, 'tracing');
  if (tracing.length === 0 && defaults.length === 0) return undefined;
  const client: TracingSpec = { disabled: false, useRequestIdForTraceSampling: true, enableIstioTags: true, disableContextPropagation: false };
  const server: TracingSpec = { ...client };
  if (defaults.length > 0) client.provider = server.provider = fetchProvider(push, defaults[0]!);
  for (const m of tracing) {
    const specs = m.match?.mode === 'CLIENT' ? [client] : m.match?.mode === 'SERVER' ? [server] : [client, server];
    const names = providerNames(m.providers);
    for (const s of specs) {
      if (names.length > 0) s.provider = fetchProvider(push, names[0]!);
      if (m.disableSpanReporting !== undefined && m.disableSpanReporting !== null) s.disabled = m.disableSpanReporting === true;
      if (m.customTags !== undefined) s.customTags = m.customTags as Record<string, Json>;
      if (m.randomSamplingPercentage !== undefined && m.randomSamplingPercentage !== null) s.randomSamplingPercentage = Number(m.randomSamplingPercentage);
      if (m.useRequestIdForTraceSampling !== undefined && m.useRequestIdForTraceSampling !== null) s.useRequestIdForTraceSampling = m.useRequestIdForTraceSampling === true;
      if (m.enableIstioTags !== undefined && m.enableIstioTags !== null) s.enableIstioTags = m.enableIstioTags === true;
      if (m.disableContextPropagation !== undefined && m.disableContextPropagation !== null) s.disableContextPropagation = m.disableContextPropagation === true;
    }
  }
  if (!client.provider) client.disabled = true;
  if (!server.provider) server.disabled = true;
  return { client, server };
}
