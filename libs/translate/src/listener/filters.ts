/** Building blocks of listeners: HCM with RDS, tcp_proxy, listener filters, TLS sockets. Pure. */

import type { ConfigSourceJson, FilterChainJson, HttpConnectionManagerJson, HttpFilterJson, ListenerFilterJson, ListenerJson, NetworkFilterJson, AddressJson, TcpProxyJson, CommonTlsContextJson, TlsParametersJson, TlsParameters_TlsProtocolJson, TransportSocketJson } from '@sextant/envoy';
import type { MeshConfig } from '@sextant/model';
import { anyOf, TYPE, unpackAny } from '../typed.js';

/** Aggregated config source: RDS and SDS come over the same ADS stream. */
export const ADS_CONFIG_SOURCE: ConfigSourceJson = { ads: {}, initialFetchTimeout: '0s', resourceApiVersion: 'V3' };

/** The HTTP filters istiod puts on every HCM that Sextant implements, in istiod's order: fault, cors, router. */
export function httpFilters(): HttpFilterJson[] {
  return [
    { name: 'envoy.filters.http.fault', typedConfig: anyOf(TYPE.fault) },
    { name: 'envoy.filters.http.cors', typedConfig: anyOf(TYPE.corsFilter) },
    { name: 'envoy.filters.http.router', typedConfig: anyOf(TYPE.router) },
  ];
}

/**
 * istiod's HCM settings for every listener class (buildHTTPConnectionManager):
 * WebSocket upgrades, no stream idle timeout, 100-continue proxied, and path
 * normalization from meshConfig `pathNormalization` (BASE by default: RFC 3986
 * normalization; MERGE_SLASHES also merges slashes; DECODE_AND_MERGE_SLASHES
 * also unescapes %2F and %5C; NONE: none). Escaped slashes are kept otherwise.
 */
export function hcmDefaults(mesh?: Pick<MeshConfig, 'pathNormalization'>): HttpConnectionManagerJson {
  const n = mesh?.pathNormalization?.normalization ?? 'BASE';
  const cfg: HttpConnectionManagerJson = {
    useRemoteAddress: false,
    normalizePath: n !== 'NONE',
    pathWithEscapedSlashesAction: n === 'DECODE_AND_MERGE_SLASHES' ? 'UNESCAPE_AND_FORWARD' : 'KEEP_UNCHANGED',
    upgradeConfigs: [{ upgradeType: 'websocket' }],
    streamIdleTimeout: '0s',
    proxy100Continue: true,
  };
  if (n === 'MERGE_SLASHES' || n === 'DECODE_AND_MERGE_SLASHES') cfg.mergeSlashes = true;
  return cfg;
}

/** istiod's inbound HCM settings: the common ones, and the server name the workload's responses carry. */
export function inboundHcmDefaults(mesh?: Pick<MeshConfig, 'pathNormalization'>): HttpConnectionManagerJson {
  return { ...hcmDefaults(mesh), serverName: 'istio-envoy' };
}

/** The inbound routes' retry policy (istiod): a request reset before it reached the application is retried. */
export const INBOUND_RETRY_POLICY = { retryOn: 'reset-before-request', numRetries: 2 } as const;

/** The name of istio-proxy's ALPN override filter. */
export const ISTIO_ALPN_FILTER = 'istio.alpn';

/**
 * istio-proxy's `istio.alpn` filter as istiod configures it: towards an
 * upstream with Istio mTLS, offer `istio-http/1.0`, `istio-http/1.1` or
 * `istio-h2` (then `istio` and the plain value), so the server sidecar picks
 * its HTTP chain and reports the protocol. Clusters whose DestinationRule
 * sets SIMPLE or MUTUAL TLS opt out (metadata `istio.alpn_override: "false"`).
 */
export function istioAlpnFilter(): HttpFilterJson {
  return {
    name: ISTIO_ALPN_FILTER,
    typedConfig: anyOf(TYPE.istioAlpn, {
      alpnOverride: [
        { alpnOverride: ['istio-http/1.0', 'istio', 'http/1.0'] },
        { upstreamProtocol: 'HTTP11', alpnOverride: ['istio-http/1.1', 'istio', 'http/1.1'] },
        { upstreamProtocol: 'HTTP2', alpnOverride: ['istio-h2', 'istio', 'h2'] },
      ],
    }),
  };
}

/**
 * Adds `istio.alpn` to every outbound and gateway HCM (not inbound ones), in
 * istiod's place: after the gRPC stats filter, before fault and CORS. Only for
 * proxies that can load it (telemetry/support.ts): upstream Envoy would reject
 * the whole listener update. Pure; listeners without an HCM come back as they are.
 */
export function withIstioAlpnFilter(listeners: ListenerJson[], supported: boolean): ListenerJson[] {
  if (!supported) return listeners;
  const patchChain = (chain: FilterChainJson): FilterChainJson => {
    if (!chain.filters?.some((f) => f.name === HCM_FILTER)) return chain;
    return {
      ...chain,
      filters: chain.filters.map((f) => {
        const hcm = f.name === HCM_FILTER ? unpackAny(f.typedConfig, TYPE.hcm) : undefined;
        if (!hcm || hcm.httpFilters?.some((h) => h.name === ISTIO_ALPN_FILTER)) return f;
        const filters = [...(hcm.httpFilters ?? [])];
        let at = filters.findIndex((h) => h.name === 'envoy.filters.http.fault' || h.name === 'envoy.filters.http.cors' || h.name === 'envoy.filters.http.router');
        if (at < 0) at = filters.length;
        filters.splice(at, 0, istioAlpnFilter());
        return { ...f, typedConfig: anyOf(TYPE.hcm, { ...hcm, httpFilters: filters }) };
      }),
    };
  };
  return listeners.map((l) => {
    if (l.trafficDirection === 'INBOUND' || l.name === 'virtualInbound') return l;
    const out: ListenerJson = { ...l, filterChains: (l.filterChains ?? []).map(patchChain) };
    if (l.defaultFilterChain) out.defaultFilterChain = patchChain(l.defaultFilterChain);
    return out;
  });
}

const HCM_FILTER = 'envoy.filters.network.http_connection_manager';

/** An http_connection_manager network filter reading `routeConfigName` over ADS. */
export function hcmRds(statPrefix: string, routeConfigName: string, opts: { useRemoteAddress?: boolean; securityFilters?: HttpFilterJson[]; hcm?: Partial<HttpConnectionManagerJson>; mesh?: Pick<MeshConfig, 'pathNormalization'> } = {}): NetworkFilterJson {
  const cfg: HttpConnectionManagerJson = {
    statPrefix,
    rds: { configSource: ADS_CONFIG_SOURCE, routeConfigName },
    // Security filters (authorization, authentication) come before the others, as istiod orders them.
    httpFilters: [...(opts.securityFilters ?? []), ...httpFilters()],
    ...hcmDefaults(opts.mesh),
    // Sidecars keep the caller's address out of XFF decisions (istiod's useRemoteAddress false); gateways use it.
    useRemoteAddress: !!opts.useRemoteAddress,
  };
  // Extra HCM settings from the caller (gateway XFCC).
  Object.assign(cfg, opts.hcm ?? {});
  return { name: 'envoy.filters.network.http_connection_manager', typedConfig: anyOf(TYPE.hcm, cfg) };
}

/** A tcp_proxy network filter to one cluster, or to weighted clusters. */
export function tcpProxy(statPrefix: string, target: string | Array<{ name: string; weight: number }>): NetworkFilterJson {
  const cfg: TcpProxyJson = { statPrefix };
  if (typeof target === 'string') cfg.cluster = target;
  else cfg.weightedClusters = { clusters: target };
  return { name: 'envoy.filters.network.tcp_proxy', typedConfig: anyOf(TYPE.tcpProxy, cfg) };
}

/** Envoy's Mongo proxy filter, which istiod puts before tcp_proxy on MONGO ports (protocol stats; the bytes pass unchanged). */
export function mongoProxy(statPrefix: string): NetworkFilterJson {
  return { name: 'envoy.filters.network.mongo_proxy', typedConfig: anyOf(TYPE.mongoProxy, { statPrefix }) };
}

export const listenerFilter = {
  originalDst: (): ListenerFilterJson => ({ name: 'envoy.filters.listener.original_dst', typedConfig: anyOf(TYPE.originalDst) }),
  // istiod's TLS inspector reads the ClientHello with a 512-byte first read (Envoy's default buffer is 64 KiB).
  tlsInspector: (): ListenerFilterJson => ({ name: 'envoy.filters.listener.tls_inspector', typedConfig: anyOf(TYPE.tlsInspector, { initialReadBufferSize: 512 }) }),
  httpInspector: (): ListenerFilterJson => ({ name: 'envoy.filters.listener.http_inspector', typedConfig: anyOf(TYPE.httpInspector) }),
};

export function socketAddress(address: string, port: number): AddressJson {
  return { socketAddress: { address, portValue: port } };
}

/**
 * Istio spells TLS versions `TLSV1_2`, Envoy's enum `TLSv1_2`: passed through
 * unchanged, Envoy's JSON would not parse and the listener would be dropped.
 */
export function envoyTlsProtocol(istio: string | undefined): TlsParameters_TlsProtocolJson | undefined {
  switch (istio) {
    case 'TLS_AUTO': return 'TLS_AUTO';
    case 'TLSV1_0': return 'TLSv1_0';
    case 'TLSV1_1': return 'TLSv1_1';
    case 'TLSV1_2': return 'TLSv1_2';
    case 'TLSV1_3': return 'TLSv1_3';
    default: return undefined;
  }
}

/**
 * Where gateway credentials (`kubernetes://…`) come from: ADS, with Envoy's
 * default initial fetch timeout (istiod's SDSAdsConfig). A Secret that does
 * not exist then holds the listener back for at most that long instead of
 * forever; its TLS chains fail handshakes until the Secret appears.
 */
export const CREDENTIAL_SDS_CONFIG_SOURCE: ConfigSourceJson = { ads: {}, resourceApiVersion: 'V3' };

/** A downstream TLS transport socket whose certificates (and CA for MUTUAL) come from SDS secrets. */
export function sdsDownstreamTls(certSecret: string | string[], opts: { caSecret?: string; requireClientCertificate?: boolean; alpn?: string[]; minVersion?: string; maxVersion?: string; cipherSuites?: string[]; subjectAltNames?: string[] } = {}): TransportSocketJson {
  const common: CommonTlsContextJson = {
    tlsCertificateSdsSecretConfigs: (Array.isArray(certSecret) ? certSecret : [certSecret]).map((name) => ({ name, sdsConfig: CREDENTIAL_SDS_CONFIG_SOURCE })),
  };
  if (opts.alpn?.length) common.alpnProtocols = opts.alpn;
  const params: TlsParametersJson = {};
  const min = envoyTlsProtocol(opts.minVersion);
  const max = envoyTlsProtocol(opts.maxVersion);
  if (min) params.tlsMinimumProtocolVersion = min;
  if (max) params.tlsMaximumProtocolVersion = max;
  if (opts.cipherSuites?.length) params.cipherSuites = opts.cipherSuites;
  if (Object.keys(params).length) common.tlsParams = params;
  const sans = (opts.subjectAltNames ?? []).map((exact) => ({ exact }));
  if (opts.caSecret)
    common.combinedValidationContext = {
      defaultValidationContext: sans.length ? { matchSubjectAltNames: sans } : {},
      validationContextSdsSecretConfig: { name: opts.caSecret, sdsConfig: CREDENTIAL_SDS_CONFIG_SOURCE },
    };
  else if (sans.length) common.validationContext = { matchSubjectAltNames: sans };
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: anyOf(TYPE.downstreamTls, { commonTlsContext: common, requireClientCertificate: !!opts.requireClientCertificate }),
  };
}
