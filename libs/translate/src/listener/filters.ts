/** Building blocks of listeners: HCM with RDS, tcp_proxy, listener filters, TLS sockets. Pure. */

import type { ConfigSourceJson, HttpConnectionManagerJson, HttpFilterJson, ListenerFilterJson, NetworkFilterJson, AddressJson, TcpProxyJson, CommonTlsContextJson, TlsParametersJson, TlsParameters_TlsProtocolJson, TransportSocketJson } from '@sextant/envoy';
import type { MeshConfig } from '@sextant/model';
import { anyOf, TYPE } from '../typed.js';

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
  tlsInspector: (): ListenerFilterJson => ({ name: 'envoy.filters.listener.tls_inspector', typedConfig: anyOf(TYPE.tlsInspector) }),
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

/** A downstream TLS transport socket whose certificate (and CA for MUTUAL) come from SDS secrets. */
export function sdsDownstreamTls(certSecret: string, opts: { caSecret?: string; requireClientCertificate?: boolean; alpn?: string[]; minVersion?: string; maxVersion?: string; cipherSuites?: string[] } = {}): TransportSocketJson {
  const common: CommonTlsContextJson = {
    tlsCertificateSdsSecretConfigs: [{ name: certSecret, sdsConfig: ADS_CONFIG_SOURCE }],
  };
  if (opts.alpn?.length) common.alpnProtocols = opts.alpn;
  const params: TlsParametersJson = {};
  const min = envoyTlsProtocol(opts.minVersion);
  const max = envoyTlsProtocol(opts.maxVersion);
  if (min) params.tlsMinimumProtocolVersion = min;
  if (max) params.tlsMaximumProtocolVersion = max;
  if (opts.cipherSuites?.length) params.cipherSuites = opts.cipherSuites;
  if (Object.keys(params).length) common.tlsParams = params;
  if (opts.caSecret)
    common.combinedValidationContext = {
      defaultValidationContext: {},
      validationContextSdsSecretConfig: { name: opts.caSecret, sdsConfig: ADS_CONFIG_SOURCE },
    };
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: anyOf(TYPE.downstreamTls, { commonTlsContext: common, requireClientCertificate: !!opts.requireClientCertificate }),
  };
}
