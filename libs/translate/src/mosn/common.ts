/** Names and small rewrites shared by the MOSN profile's builders. */
import type { ProxyView } from '@sextant/model';
import { mosnSdsPath } from './detect.js';

export type Json = Record<string, any>;

/** The reason prefix of every issue the MOSN profile reports. */
export const NOT_SUPPORTED = 'not supported by MOSN';

/** The inbound passthrough cluster name MOSN looks for by name (istio1106 conv INGRESS_CLUSTER). */
export const MOSN_INBOUND_PASSTHROUGH = 'InboundPassthroughClusterIpv4';
/**
 * Where tombstoned listeners send traffic: a STATIC cluster without hosts.
 * MOSN skips a tcp_proxy to `BlackHoleCluster` by name (and then has no
 * filter chain at all), so the tombstone needs a cluster of its own.
 */
export const MOSN_TOMBSTONE_CLUSTER = 'MosnBlackHoleCluster';

/** The SDS config source MOSN can dial: gRPC over the Unix socket at `path` (googleGrpc.target_uri is the path). */
export function mosnSdsConfig(proxy: ProxyView): Json {
  return {
    apiConfigSource: {
      apiType: 'GRPC',
      transportApiVersion: 'V3',
      grpcServices: [{ googleGrpc: { targetUri: mosnSdsPath(proxy), statPrefix: 'sdsstat' } }],
    },
    resourceApiVersion: 'V3',
  };
}

/** A deep copy with every `sdsConfig` pointed at the proxy's SDS Unix socket. */
export function withMosnSds<T>(value: T, proxy: ProxyView): T {
  const sds = mosnSdsConfig(proxy);
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const out: Json = {};
      for (const [k, x] of Object.entries(v as Json)) out[k] = k === 'sdsConfig' ? structuredClone(sds) : walk(x);
      return out;
    }
    return v;
  };
  return walk(value) as T;
}

/** Parses `/apis/networking.istio.io/v1/namespaces/<ns>/virtual-service/<name>` from a route's istio metadata. */
export function virtualServiceOf(route: Json): { namespace: string; name: string } | undefined {
  const cfg = route.metadata?.filterMetadata?.istio?.config;
  if (typeof cfg !== 'string') return undefined;
  const m = /^\/apis\/networking\.istio\.io\/[^/]+\/namespaces\/([^/]+)\/virtual-service\/([^/]+)$/.exec(cfg);
  return m ? { namespace: m[1]!, name: m[2]! } : undefined;
}
