/**
 * Mesh mTLS on the server side, as istiod renders it
 * (pilot/pkg/networking/core/filterchain_options.go, listener_inbound.go,
 * pilot/pkg/security/authn/utils, pilot/pkg/security/model):
 *
 * - per inbound port, the filter chains for the port's PeerAuthentication mode
 *   (STRICT: TLS only; PERMISSIVE: mTLS chains matched on `transportProtocol: tls`
 *   and Istio's ALPN values, plus plaintext chains; DISABLE: plaintext only);
 * - the `DownstreamTlsContext` those chains terminate with: client certificate
 *   required, certificate from SDS `default`, roots from SDS `ROOTCA`, peer SAN
 *   matched on `spiffe://<trust domain>/` (and each trust domain alias);
 * - where SDS comes from for this proxy: pilot-agent's `sds-grpc` cluster
 *   (Istio's default) or, for an agentless proxy, ADS itself.
 *
 * Pure.
 */
import type { FilterChainMatchJson, SdsSecretConfigJson, TlsParameters_TlsProtocolJson, TransportSocketJson } from '@sextant/envoy';
import { anyOf, TYPE, type AnyOf } from '../typed.js';
import type { ProxyView, PushContext } from '@sextant/model';
import type { InboundTlsHook } from '../listener/inbound.js';
import { mtlsModeForPort, type MtlsMode } from './peer-auth.js';
import { ROOT_SECRET, WORKLOAD_SECRET } from '../names.js';

/** MeshConfig fields only mTLS reads (beyond the model's MeshConfig subset). */
interface MeshMtlsFields {
  trustDomainAliases?: string[];
  meshMTLS?: { minProtocolVersion?: string; cipherSuites?: string[] };
}
const meshMtls = (push: PushContext): MeshMtlsFields => push.mesh as MeshMtlsFields;

export const DOWNSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';

/** Istio's ALPN values (pilot/pkg/networking/core/listener.go, networking/util). */
export const ALPN = {
  /** What a sidecar client offers for mTLS to a mesh workload (TCP and, without Istio's ALPN filter, HTTP). */
  inMeshWithMxc: ['istio-peer-exchange', 'istio'],
  /** What the `istio.alpn` filter sets per upstream HTTP protocol. */
  mtlsHttp: ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'],
  /** Every ALPN a mesh client may offer over mTLS: the PERMISSIVE mTLS chain match. */
  allIstioMtls: ['istio', 'istio-peer-exchange', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2'],
  /** Server ALPN on HTTP chains. */
  http: ['h2', 'http/1.1'],
  /** Server ALPN on TCP chains (metadata exchange on). */
  downstreamWithMxc: ['istio-peer-exchange', 'h2', 'http/1.1'],
  /** Plaintext HTTP as the HTTP inspector reports it. */
  plaintextHttp: ['http/1.1', 'h2c'],
} as const;

/** istiod's server-side cipher suites for sidecars (authn/utils SupportedCiphers). */
export const SUPPORTED_CIPHERS = [
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'AES256-GCM-SHA384',
  'AES128-GCM-SHA256',
];

export const SDS_CLUSTER = 'sds-grpc';

/** Node metadata a proxy sets to fetch `default`/`ROOTCA` from Sextant over ADS instead of from pilot-agent. */
export const AGENTLESS_METADATA_KEY = 'SEXTANT_AGENTLESS';

/** True when the proxy opted into agentless SDS (`SEXTANT_AGENTLESS: "true"`, with or without the `ISTIO_META_` prefix). */
export function isAgentless(proxy: ProxyView | undefined): boolean {
  if (!proxy) return false;
  const raw = proxy.metadata.raw ?? {};
  const v = raw[AGENTLESS_METADATA_KEY] ?? raw[`ISTIO_META_${AGENTLESS_METADATA_KEY}`];
  return v === true || (typeof v === 'string' && v.toLowerCase() === 'true');
}

/**
 * The SDS reference for a secret, for this proxy. Istio's default: pilot-agent
 * on the `sds-grpc` cluster (a UDS in the pod). Agentless proxies: ADS, so the
 * secret comes over the same stream as the rest of the config. `default` and
 * `ROOTCA` get initialFetchTimeout 0s, as in istiod: for Envoy 0 means "no
 * timeout", so a listener or cluster using them stays warming until the
 * secret arrives rather than coming up without its certificate.
 */
export function sdsSecretConfigFor(name: string, proxy?: ProxyView): SdsSecretConfigJson {
  const waitForSecret = name === WORKLOAD_SECRET || name === ROOT_SECRET ? { initialFetchTimeout: '0s' } : {};
  if (isAgentless(proxy)) return { name, sdsConfig: { ads: {}, ...waitForSecret, resourceApiVersion: 'V3' } };
  return {
    name,
    sdsConfig: {
      apiConfigSource: {
        apiType: 'GRPC',
        setNodeOnFirstMessageOnly: true,
        transportApiVersion: 'V3',
        grpcServices: [{ envoyGrpc: { clusterName: SDS_CLUSTER } }],
      },
      ...waitForSecret,
      resourceApiVersion: 'V3',
    },
  };
}

/** Trust domains a peer certificate may come from: the mesh's and its aliases (istiod's TrustDomainsForValidation). */
export function trustDomainsForValidation(push: PushContext): string[] {
  const aliases = meshMtls(push).trustDomainAliases ?? [];
  return [...new Set([push.trustDomain, ...aliases].filter((t) => typeof t === 'string' && t !== ''))];
}

function minTlsVersion(push: PushContext): TlsParameters_TlsProtocolJson {
  const v = meshMtls(push).meshMTLS?.minProtocolVersion;
  return v === 'TLSV1_3' ? 'TLSv1_3' : 'TLSv1_2';
}

/**
 * The DownstreamTlsContext of an inbound mTLS chain (istiod's BuildInboundTLS):
 * HTTP chains offer `h2, http/1.1`; TCP chains add `istio-peer-exchange`.
 */
export function inboundMtlsContext(push: PushContext, proxy: ProxyView, protocol: 'http' | 'tcp'): AnyOf<typeof TYPE.downstreamTls> {
  const configured = meshMtls(push).meshMTLS?.cipherSuites;
  const ciphers = configured?.length ? configured : SUPPORTED_CIPHERS;
  const sans = trustDomainsForValidation(push).map((td) => ({ prefix: `spiffe://${td}/` }));
  return anyOf(TYPE.downstreamTls, {
    commonTlsContext: {
      tlsParams: { tlsMinimumProtocolVersion: minTlsVersion(push), tlsMaximumProtocolVersion: 'TLSv1_3', cipherSuites: [...ciphers] },
      alpnProtocols: protocol === 'http' ? [...ALPN.http] : [...ALPN.downstreamWithMxc],
      tlsCertificateSdsSecretConfigs: [sdsSecretConfigFor(WORKLOAD_SECRET, proxy)],
      combinedValidationContext: {
        defaultValidationContext: sans.length ? { matchSubjectAltNames: sans } : {},
        validationContextSdsSecretConfig: sdsSecretConfigFor(ROOT_SECRET, proxy),
      },
    },
    requireClientCertificate: true,
  });
}

export interface InboundChainSecurity {
  transportSocket?: TransportSocketJson;
  filterChainMatch?: FilterChainMatchJson;
  /** The chain's protocol where the port's is detected (`auto`): an HCM chain or a TCP one. */
  protocol?: 'http' | 'tcp';
}

/** A port's protocol as the inbound chains see it: declared HTTP, declared TCP, or detected per connection (sniffed). */
export type InboundChainProtocol = 'http' | 'tcp' | 'auto';

/** One filter chain match option of istiod's table for protocol AUTO. */
export interface AutoChainOption {
  protocol: 'http' | 'tcp';
  transport: 'tls' | 'raw_buffer';
  alpn?: readonly string[];
  /** Terminates mTLS. */
  tls?: boolean;
}

/**
 * istiod's getFilterChainMatchOptions(mode, AUTO): the chains of a sniffed
 * port and of the passthrough chains. HTTP is told from TCP by ALPN: Istio's
 * HTTP ALPNs over mTLS, the HTTP inspector's `http/1.1`/`h2c` in plaintext
 * (HTTP/1.0 goes to the TCP chain, as istiod without PILOT_HTTP10).
 */
export function autoChainOptions(mode: MtlsMode): AutoChainOption[] {
  switch (mode) {
    case 'STRICT':
      return [
        { protocol: 'http', transport: 'tls', alpn: ALPN.mtlsHttp, tls: true },
        { protocol: 'tcp', transport: 'tls', tls: true },
      ];
    case 'PERMISSIVE':
      return [
        { protocol: 'http', transport: 'tls', alpn: ALPN.mtlsHttp, tls: true },
        { protocol: 'http', transport: 'raw_buffer', alpn: ALPN.plaintextHttp },
        { protocol: 'tcp', transport: 'tls', alpn: ALPN.inMeshWithMxc, tls: true },
        { protocol: 'tcp', transport: 'raw_buffer' },
        { protocol: 'tcp', transport: 'tls' },
      ];
    case 'DISABLE':
      return [
        { protocol: 'http', transport: 'raw_buffer', alpn: ALPN.plaintextHttp },
        { protocol: 'tcp', transport: 'raw_buffer' },
      ];
  }
}

/**
 * The filter chain matches for one inbound port in a mode (istiod's
 * getFilterChainMatchOptions), each with its TLS termination or none. A
 * sniffed port (`auto`) gets HTTP and TCP chains, each marked with its protocol.
 */
export function inboundChainsForMode(push: PushContext, proxy: ProxyView, mode: MtlsMode, protocol: InboundChainProtocol): InboundChainSecurity[] {
  const tls = (p: 'http' | 'tcp'): TransportSocketJson => ({ name: TLS_TRANSPORT_SOCKET, typedConfig: inboundMtlsContext(push, proxy, p) });
  if (protocol === 'auto') {
    return autoChainOptions(mode).map((o) => ({
      protocol: o.protocol,
      filterChainMatch: { transportProtocol: o.transport, ...(o.alpn ? { applicationProtocols: [...o.alpn] } : {}) },
      ...(o.tls ? { transportSocket: tls(o.protocol) } : {}),
    }));
  }
  const mtlsChain = (alpn?: readonly string[]): InboundChainSecurity => ({
    filterChainMatch: { ...(alpn ? { applicationProtocols: [...alpn] } : {}), transportProtocol: 'tls' },
    transportSocket: tls(protocol),
  });
  const plaintext: InboundChainSecurity = { filterChainMatch: { transportProtocol: 'raw_buffer' } };
  switch (mode) {
    case 'STRICT':
      return [mtlsChain()];
    case 'DISABLE':
      return [plaintext];
    case 'PERMISSIVE':
      if (protocol === 'http') return [mtlsChain(ALPN.allIstioMtls), plaintext];
      // TCP: mTLS from a sidecar, plaintext, and a client's own TLS passed through untouched.
      return [mtlsChain(ALPN.allIstioMtls), plaintext, { filterChainMatch: { transportProtocol: 'tls' } }];
  }
}

/** The inbound security hook for sidecars: PeerAuthentication resolved per workload port. */
export const mtlsInbound: InboundTlsHook = (push, proxy, port, protocol = 'tcp') =>
  inboundChainsForMode(push, proxy, mtlsModeForPort(push, proxy, port), protocol);
