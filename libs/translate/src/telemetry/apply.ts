/**
 * Puts Istio's telemetry into the listeners and clusters a generator built,
 * where istiod's listener and cluster builders put it: access logs on HCMs,
 * tcp_proxies and the catch-all listeners; HCM tracing and request-ID
 * settings; `istio.metadata_exchange` first and `istio.stats` last (before the
 * router or the TCP proxy) in each chain; the upstream metadata exchange on
 * outbound clusters. Runs before EnvoyFilters patch the result, as in istiod.
 * Istio's own filters only go to proxies that can load them (./support.ts). Pure.
 */
import type { ClusterJson, ListenerJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND, VIRTUAL_OUTBOUND } from '../names.js';
import { accessLogs, GRPC_STATS, GRPC_STATS_FILTER, hcmTracing, httpMetadataExchange, MX_FILTER, statsFilters, tcpMetadataExchange } from './build.js';
import { istioFilterSupport } from './support.js';
import type { Json, ListenerClass } from './telemetries.js';

const HCM = 'envoy.filters.network.http_connection_manager';
const TCP_PROXY = 'envoy.filters.network.tcp_proxy';
const ROUTER = 'envoy.filters.http.router';
/** istiod's HCM order: ... grpc_web, grpc_stats, istio.alpn, fault, cors, istio.stats, router; grpc_stats goes before the first of these present. */
const AFTER_GRPC_STATS = ['istio.alpn', 'envoy.filters.http.fault', 'envoy.filters.http.cors', ROUTER];
/** Filters that end a network filter stack; istio.stats goes before the first of them. */
const TERMINAL = new Set([TCP_PROXY, 'envoy.filters.network.mongo_proxy', 'envoy.filters.network.redis_proxy', 'envoy.filters.network.mysql_proxy']);

function listenerClass(proxy: ProxyView, l: ListenerJson): ListenerClass {
  if (proxy.type === 'router') return 'GATEWAY';
  return l.name === VIRTUAL_INBOUND || l.trafficDirection === 'INBOUND' ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

/** Per-class results, computed once per call (every chain of a class gets the same). */
class ClassTelemetry {
  private readonly cache = new Map<string, unknown>();
  constructor(
    private readonly push: PushContext,
    private readonly proxy: ProxyView,
  ) {}
  private once<T>(key: string, f: () => T): T {
    if (!this.cache.has(key)) this.cache.set(key, f());
    return this.cache.get(key) as T;
  }
  accessLogs(cls: ListenerClass, listener = false): Json[] {
    return this.once(`al|${cls}|${listener}`, () => accessLogs(this.push, this.proxy, cls, listener));
  }
  stats(cls: ListenerClass): Json[] {
    return this.once(`stats|${cls}`, () => (istioFilterSupport(this.proxy).stats ? statsFilters(this.push, this.proxy, cls) : []));
  }
  tracing(cls: ListenerClass): { tracing?: Json; requestIdExtension: Json } {
    return this.once(`tr|${cls}`, () => hcmTracing(this.push, this.proxy, cls));
  }
}

const skipMxHeaders = (push: PushContext) => ((push.mesh as Json).defaultConfig?.proxyHeaders?.metadataExchangeHeaders?.mode ?? '') === 'IN_MESH';

function patchHcm(push: PushContext, proxy: ProxyView, t: ClassTelemetry, cls: ListenerClass, f: Json): Json {
  const hcm = { ...(f.typedConfig as Json) };
  // istiod ends HCM stat prefixes with ';' (util.DelimitedStatsPrefix), which its stats tag extraction relies on.
  if (typeof hcm.statPrefix === 'string' && !hcm.statPrefix.endsWith(';')) hcm.statPrefix = `${hcm.statPrefix};`;
  const al = t.accessLogs(cls);
  if (al.length) hcm.accessLog = [...((hcm.accessLog ?? []) as Json[]), ...al];
  const tr = t.tracing(cls);
  if (tr.tracing) hcm.tracing = tr.tracing;
  hcm.requestIdExtension = tr.requestIdExtension;
  let filters = [...((hcm.httpFilters ?? []) as Json[])];
  if (istioFilterSupport(proxy).peerMetadata && !filters.some((x) => x.name === MX_FILTER)) filters.unshift(httpMetadataExchange(cls, skipMxHeaders(push)));
  if (!filters.some((x) => x.name === GRPC_STATS_FILTER)) {
    const at = filters.findIndex((x) => AFTER_GRPC_STATS.includes(String(x.name)));
    const i = at < 0 ? filters.length : at;
    filters = [...filters.slice(0, i), GRPC_STATS, ...filters.slice(i)];
  }
  const stats = t.stats(cls);
  if (stats.length) {
    const i = filters.findIndex((x) => x.name === ROUTER);
    filters = i < 0 ? [...filters, ...stats] : [...filters.slice(0, i), ...stats, ...filters.slice(i)];
  }
  hcm.httpFilters = filters;
  return { ...f, typedConfig: hcm };
}

function patchChain(push: PushContext, proxy: ProxyView, t: ClassTelemetry, cls: ListenerClass, chain: Json, blackhole: boolean): Json {
  let filters = [...((chain.filters ?? []) as Json[])];
  if (filters.length === 0) return chain;
  const isHttp = filters.some((f) => f.name === HCM);
  const tcpIndex = filters.findIndex((f) => f.name === TCP_PROXY);
  if (!isHttp && tcpIndex < 0) return chain;
  filters = filters.map((f) => {
    if (f.name === HCM) return patchHcm(push, proxy, t, cls, f);
    if (f.name === TCP_PROXY && !blackhole) {
      const cfg = { ...(f.typedConfig as Json) };
      // Gateways name a single-destination TCP proxy's stats after its cluster, as istiod does.
      if (cls === 'GATEWAY' && typeof cfg.cluster === 'string') cfg.statPrefix = cfg.cluster;
      const al = t.accessLogs(cls);
      if (al.length) cfg.accessLog = [...((cfg.accessLog ?? []) as Json[]), ...al];
      return { ...f, typedConfig: cfg };
    }
    return f;
  });
  if (!isHttp) {
    const stats = t.stats(cls);
    if (stats.length) {
      const i = filters.findIndex((f) => TERMINAL.has(String(f.name)));
      filters = [...filters.slice(0, i), ...stats, ...filters.slice(i)];
    }
  }
  // Inbound chains read the downstream peer's metadata first, before RBAC.
  if (cls === 'SIDECAR_INBOUND' && istioFilterSupport(proxy).metadataExchange && !filters.some((f) => f.name === MX_FILTER)) filters.unshift(tcpMetadataExchange());
  return { ...chain, filters };
}

/** The listeners with Istio's telemetry added (see the module comment). */
export function applyTelemetryToListeners(push: PushContext, proxy: ProxyView, listeners: ListenerJson[]): ListenerJson[] {
  const t = new ClassTelemetry(push, proxy);
  return listeners.map((l) => {
    const cls = listenerClass(proxy, l);
    const port = (l.address as Json | undefined)?.socketAddress?.portValue as number | undefined;
    const chains = ((l.filterChains ?? []) as Json[]).map((c) => patchChain(push, proxy, t, cls, c, port !== undefined && (c.filterChainMatch as Json | undefined)?.destinationPort === port && (l.name === VIRTUAL_INBOUND || l.name === VIRTUAL_OUTBOUND)));
    const out: Json = { ...l, filterChains: chains };
    if (l.defaultFilterChain) out.defaultFilterChain = patchChain(push, proxy, t, cls, l.defaultFilterChain as Json, false);
    // istiod logs unmatched connections (NR) on the catch-all listeners and on gateways.
    if (l.name === VIRTUAL_INBOUND || l.name === VIRTUAL_OUTBOUND || cls === 'GATEWAY') {
      const al = t.accessLogs(cls, true);
      if (al.length) out.accessLog = [...((l.accessLog ?? []) as Json[]), ...al];
    }
    return out as ListenerJson;
  });
}

/** Outbound service clusters and PassthroughCluster get the upstream metadata exchange, when the proxy can load it. */
/** A cluster with the metadata exchange filter, per cluster object: shared clusters stay shared (one object, encoded once). */
const withExchange = new WeakMap<ClusterJson, ClusterJson>();

export function applyTelemetryToClusters(proxy: ProxyView, clusters: ClusterJson[]): ClusterJson[] {
  if (!istioFilterSupport(proxy).metadataExchange) return clusters;
  return clusters.map((c) => {
    const name = c.name ?? '';
    if (!name.startsWith('outbound|') && name !== PASSTHROUGH_CLUSTER) return c;
    const filters = (c.filters ?? []) as Json[];
    if (filters.some((f) => f.name === MX_FILTER)) return c;
    let out = withExchange.get(c);
    if (!out) withExchange.set(c, (out = { ...c, filters: [...filters, tcpMetadataExchange()] } as ClusterJson));
    return out;
  });
}
