/** Small builders shared by cluster and endpoint translation (names are in names.ts). */
import type { JsonObject, TransportSocketJson } from '@sextant/envoy';
import type { Service } from '@sextant/model';
import { anyOf, TYPE } from './typed.js';

export const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export function rawBufferTransportSocket(): TransportSocketJson {
  return { name: 'envoy.transport_sockets.raw_buffer', typedConfig: anyOf(TYPE.rawBuffer) };
}

/** `filterMetadata.istio.services` entry for a service. */
export function serviceMetadata(svc: Service): JsonObject {
  return { host: svc.hostname, name: svc.attributes.name, namespace: svc.attributes.namespace };
}

/** The `config` metadata value istiod writes for the VirtualService behind a TCP or TLS filter chain. */
export function virtualServiceConfigPath(namespace: string, name: string): string {
  return `/apis/networking.istio.io/v1/namespaces/${namespace}/virtual-service/${name}`;
}

/** The `config` metadata value istiod writes for the DestinationRule that shaped a cluster. */
export function destinationRuleConfigPath(namespace: string, name: string): string {
  return `/apis/networking.istio.io/v1/namespaces/${namespace}/destination-rule/${name}`;
}

/** Envoy's max uint32, the circuit breaker "unlimited" istiod uses. */
export const MAX_UINT32 = 4294967295;

/** Converts a Go duration (`1.5s`, `100ms`, `1m`) to proto3 JSON (`1.500s`); undefined when malformed. */
export function toProtoDuration(d: string | undefined): string | undefined {
  if (d === undefined) return undefined;
  const unit: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let secs = 0;
  let matched = '';
  for (const m of d.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g)) {
    secs += Number(m[1]) * unit[m[2]!]!;
    matched += m[0];
  }
  if (matched !== d || matched === '') return undefined;
  const nanos = Math.round(secs * 1e9);
  const whole = Math.floor(nanos / 1e9);
  const frac = nanos % 1e9;
  if (frac === 0) return `${whole}s`;
  return `${whole}.${String(frac).padStart(9, '0').replace(/0+$/, '')}s`;
}

const nodeProxyConfigs = new WeakMap<object, Record<string, any> | null>();

/**
 * The proxy's own ProxyConfig from its node metadata (PROXY_CONFIG, or the
 * ISTIO_META_ spelling; pilot-agent sends a struct, a JSON string is read
 * too), or undefined when it sends none. Parsed once per metadata object:
 * gateway HCMs, XFCC, tracing and the class keys all read it.
 */
export function nodeProxyConfig(proxy: { metadata: { raw: Record<string, unknown> } }): Record<string, any> | undefined {
  const raw = proxy.metadata.raw;
  let pc = nodeProxyConfigs.get(raw);
  if (pc === undefined) {
    let v: unknown = raw['PROXY_CONFIG'] ?? raw['ISTIO_META_PROXY_CONFIG'];
    if (typeof v === 'string') {
      try {
        v = JSON.parse(v);
      } catch {
        v = undefined;
      }
    }
    pc = v && typeof v === 'object' ? (v as Record<string, any>) : null;
    nodeProxyConfigs.set(raw, pc);
  }
  return pc ?? undefined;
}
