/**
 * `google.protobuf.Any` fields, typed. protobuf-es types an Any's JSON form
 * as `{ "@type"?: string }` only; Sextant writes the packed message's fields
 * next to `@type`, so `anyOf` checks them against the message's JSON type
 * for that type URL, and `unpackAny` reads them back.
 */
import type {
  AnyJson,
  CaresDnsResolverConfigJson,
  CorsFilterJson,
  CorsFilterPolicyJson,
  DownstreamTlsContextJson,
  HTTPFaultJson,
  HttpConnectionManagerJson,
  IstioAlpnFilterConfigJson,
  PreviousPrioritiesConfigJson,
  TcpProxyJson,
  TlsInspectorJson,
  MongoProxyJson,
  UpstreamTlsContextJson,
  UpstreamsHttpProtocolOptionsJson,
} from '@sextant/envoy';

/** Type URLs of the messages translation packs into `Any`. */
export const TYPE = {
  fault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
  cors: 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
  corsFilter: 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  mongoProxy: 'type.googleapis.com/envoy.extensions.filters.network.mongo_proxy.v3.MongoProxy',
  tlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  httpInspector: 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
  originalDst: 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
  downstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  previousHosts: 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate',
  previousPriorities: 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  rawBuffer: 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer',
  httpProtocolOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  caresDnsResolver: 'type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig',
  /** istio-proxy's own `istio.alpn` HTTP filter (only for proxies that have it: telemetry/support.ts). */
  istioAlpn: 'type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig',
} as const;

/** A message with no fields Sextant sets (marker filters such as the router or the listener inspectors). */
type Empty = Record<string, never>;

/** The JSON type of the message behind each type URL. */
export interface TypedConfigs {
  [TYPE.fault]: HTTPFaultJson;
  [TYPE.cors]: CorsFilterPolicyJson;
  [TYPE.corsFilter]: CorsFilterJson;
  [TYPE.router]: Empty;
  [TYPE.hcm]: HttpConnectionManagerJson;
  [TYPE.tcpProxy]: TcpProxyJson;
  [TYPE.mongoProxy]: MongoProxyJson;
  [TYPE.tlsInspector]: TlsInspectorJson;
  [TYPE.httpInspector]: Empty;
  [TYPE.originalDst]: Empty;
  [TYPE.downstreamTls]: DownstreamTlsContextJson;
  [TYPE.previousHosts]: Empty;
  [TYPE.previousPriorities]: PreviousPrioritiesConfigJson;
  [TYPE.upstreamTls]: UpstreamTlsContextJson;
  [TYPE.rawBuffer]: Empty;
  [TYPE.httpProtocolOptions]: UpstreamsHttpProtocolOptionsJson;
  [TYPE.caresDnsResolver]: CaresDnsResolverConfigJson;
  [TYPE.istioAlpn]: IstioAlpnFilterConfigJson;
}

export type TypeUrlOf = keyof TypedConfigs;

/** An `Any` in proto3 JSON: `@type`, then the message's own fields. */
export type AnyOf<U extends TypeUrlOf> = AnyJson & { '@type': U } & TypedConfigs[U];

export function anyOf<U extends TypeUrlOf>(typeUrl: U, value?: TypedConfigs[U]): AnyOf<U> {
  return { '@type': typeUrl, ...value } as AnyOf<U>;
}

/** The message in an `Any` when it is of `typeUrl`, else undefined. */
export function unpackAny<U extends TypeUrlOf>(any: AnyJson | undefined, typeUrl: U): TypedConfigs[U] | undefined {
  return any?.['@type'] === typeUrl ? (any as AnyOf<U>) : undefined;
}
