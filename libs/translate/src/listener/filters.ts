/** Building blocks of listeners: HCM with RDS, tcp_proxy, listener filters, TLS sockets. Pure. */
import { TYPE } from '../route/translate.js';

type Json = Record<string, any>;

/** Aggregated config source: RDS and SDS come over the same ADS stream. */
export const ADS_CONFIG_SOURCE: Json = { ads: {}, initialFetchTimeout: '0s', resourceApiVersion: 'V3' };

/** The HTTP filters istiod puts on outbound and gateway HCMs that Sextant implements: cors, fault, router. */
export function httpFilters(): Json[] {
  return [
    { name: 'envoy.filters.http.cors', typedConfig: { '@type': TYPE.corsFilter } },
    { name: 'envoy.filters.http.fault', typedConfig: { '@type': TYPE.fault } },
    { name: 'envoy.filters.http.router', typedConfig: { '@type': TYPE.router } },
  ];
}

/** An http_connection_manager network filter reading `routeConfigName` over ADS. */
export function hcmRds(statPrefix: string, routeConfigName: string, opts: { useRemoteAddress?: boolean; http2?: boolean; securityFilters?: Json[] } = {}): Json {
  const cfg: Json = {
    '@type': TYPE.hcm,
    statPrefix,
    rds: { configSource: ADS_CONFIG_SOURCE, routeConfigName },
    // Security filters (authorization, authentication) come before the others, as istiod orders them.
    httpFilters: [...(opts.securityFilters ?? []), ...httpFilters()],
    useRemoteAddress: !!opts.useRemoteAddress,
    normalizePath: true,
    mergeSlashes: true,
    pathWithEscapedSlashesAction: 'KEEP_UNCHANGED',
    upgradeConfigs: [{ upgradeType: 'websocket' }],
    streamIdleTimeout: '0s',
  };
  if (opts.http2) cfg.codecType = 'HTTP2';
  return { name: 'envoy.filters.network.http_connection_manager', typedConfig: cfg };
}

/** A tcp_proxy network filter to one cluster, or to weighted clusters. */
export function tcpProxy(statPrefix: string, target: string | Array<{ name: string; weight: number }>): Json {
  const cfg: Json = { '@type': TYPE.tcpProxy, statPrefix };
  if (typeof target === 'string') cfg.cluster = target;
  else cfg.weightedClusters = { clusters: target };
  return { name: 'envoy.filters.network.tcp_proxy', typedConfig: cfg };
}

export const listenerFilter = {
  originalDst: (): Json => ({ name: 'envoy.filters.listener.original_dst', typedConfig: { '@type': TYPE.originalDst } }),
  tlsInspector: (): Json => ({ name: 'envoy.filters.listener.tls_inspector', typedConfig: { '@type': TYPE.tlsInspector } }),
  httpInspector: (): Json => ({ name: 'envoy.filters.listener.http_inspector', typedConfig: { '@type': TYPE.httpInspector } }),
};

export function socketAddress(address: string, port: number): Json {
  return { socketAddress: { address, portValue: port } };
}

/** A downstream TLS transport socket whose certificate (and CA for MUTUAL) come from SDS secrets. */
export function sdsDownstreamTls(certSecret: string, opts: { caSecret?: string; requireClientCertificate?: boolean; alpn?: string[]; minVersion?: string; maxVersion?: string; cipherSuites?: string[] } = {}): Json {
  const common: Json = {
    tlsCertificateSdsSecretConfigs: [{ name: certSecret, sdsConfig: ADS_CONFIG_SOURCE }],
  };
  if (opts.alpn?.length) common.alpnProtocols = opts.alpn;
  const params: Json = {};
  if (opts.minVersion) params.tlsMinimumProtocolVersion = opts.minVersion;
  if (opts.maxVersion) params.tlsMaximumProtocolVersion = opts.maxVersion;
  if (opts.cipherSuites?.length) params.cipherSuites = opts.cipherSuites;
  if (Object.keys(params).length) common.tlsParams = params;
  if (opts.caSecret)
    common.combinedValidationContext = {
      defaultValidationContext: {},
      validationContextSdsSecretConfig: { name: opts.caSecret, sdsConfig: ADS_CONFIG_SOURCE },
    };
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: { '@type': TYPE.downstreamTls, commonTlsContext: common, requireClientCertificate: !!opts.requireClientCertificate },
  };
}
