/**
 * Which of Istio's own Envoy extensions a proxy can load. istiod sends them to
 * every proxy because it only serves istio-proxy; Sextant also serves upstream
 * Envoy, which would reject the whole LDS/CDS update for one unknown filter.
 * So the decision is read from what the proxy says it was built with: Envoy
 * puts its extension names and config type URLs in `node.extensions` on the
 * first request. A node without that list (a bootstrap read offline, an Envoy
 * older than 1.16) is treated as istiod treats it when it says it is an Istio
 * proxy (ISTIO_VERSION metadata), and as plain Envoy otherwise. Pure.
 */
import type { ProxyView } from '@sextant/model';
import { nodeProxyConfig } from '../common.js';

/** Config type URLs of istio-proxy's filters, without `type.googleapis.com/` (as Envoy lists them). */
export const ISTIO_TYPE = {
  /** `istio.stats`, HTTP and network filter. */
  stats: 'stats.PluginConfig',
  /** The HTTP peer-metadata filter (`istio.metadata_exchange` on HCMs). */
  peerMetadata: 'io.istio.http.peer_metadata.Config',
  /** The TCP metadata exchange (`istio.metadata_exchange` network and upstream filter). */
  metadataExchange: 'envoy.tcp.metadataexchange.config.MetadataExchange',
  /** `istio.alpn`, the HTTP filter that offers istio-http/* ALPN upstream (traffic, not telemetry; gated the same way). */
  alpn: 'istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig',
} as const;

export interface IstioFilterSupport {
  stats: boolean;
  peerMetadata: boolean;
  metadataExchange: boolean;
  alpn: boolean;
}

const NONE: IstioFilterSupport = { stats: false, peerMetadata: false, metadataExchange: false, alpn: false };
const ALL: IstioFilterSupport = { stats: true, peerMetadata: true, metadataExchange: true, alpn: true };

/** What the proxy can load; see the module comment for nodes that send no extension list. */
export function istioFilterSupport(proxy: ProxyView): IstioFilterSupport {
  const ext = proxy.extensions;
  if (ext === undefined) return proxy.istioVersion ? ALL : NONE;
  if (ext.length === 0) return NONE;
  // Read per proxy, type and push (class keys, listeners, clusters): the node's list is parsed once per stream, so remember by it.
  let support = supportByExtensions.get(ext);
  if (!support) {
    const have = new Set(ext);
    support = { stats: have.has(ISTIO_TYPE.stats), peerMetadata: have.has(ISTIO_TYPE.peerMetadata), metadataExchange: have.has(ISTIO_TYPE.metadataExchange), alpn: have.has(ISTIO_TYPE.alpn) || have.has('istio.alpn') };
    supportByExtensions.set(ext, support);
  }
  return support;
}

const supportByExtensions = new WeakMap<readonly string[], IstioFilterSupport>();

/** A short key for proxy classes: proxies that differ here get different listeners and clusters. */
export function istioFilterSupportKey(proxy: ProxyView): string {
  const s = istioFilterSupport(proxy);
  return `${+s.stats}${+s.peerMetadata}${+s.metadataExchange}${+s.alpn}`;
}

/**
 * What of the proxy, beyond the rest of its class key, its telemetry reads:
 * the filters it can load, the labels and metadata istiod's tracing tags name
 * (canonical service and revision, mesh ID, NAMESPACE: istiod renders them as
 * literals per workload, buildServiceTags), and, when an OpenTelemetry or
 * Datadog tracer is configured, the node's cluster (the spans' service name). With
 * `serviceTags` false (no tracing anywhere in the push) the canonical labels
 * are left out: nothing renders them, so workloads of a class share listeners.
 */
export function telemetryClassKey(proxy: ProxyView, otelConfigured: boolean, serviceTags = true): string {
  const m = proxy.metadata;
  const canonical = serviceTags ? `${proxy.labels['service.istio.io/canonical-name'] ?? ''}\u0000${proxy.labels['service.istio.io/canonical-revision'] ?? ''}` : '\u0000';
  return `${istioFilterSupportKey(proxy)}\u0000${canonical}\u0000${m.MESH_ID ?? ''}\u0000${m.NAMESPACE ?? ''}\u0000${otelConfigured ? (proxy.nodeCluster ?? '') : ''}\u0000${proxyTracingKey(proxy)}`;
}

/**
 * The tracing of the proxy's own ProxyConfig (PROXY_CONFIG, e.g. from a pod's
 * proxy.istio.io/config annotation): its sampling, custom tags and limits go
 * into every HCM, so proxies that differ in it are different classes.
 */
function proxyTracingKey(proxy: ProxyView): string {
  const pc = nodeProxyConfig(proxy);
  return pc ? JSON.stringify(pc.tracing ?? {}) : '';
}
