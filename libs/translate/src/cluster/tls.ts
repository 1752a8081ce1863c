/**
 * Upstream TLS for clusters: DestinationRule `tls` and auto mTLS, as istiod
 * builds them (pilot/pkg/networking/core/cluster_tls.go). ISTIO_MUTUAL uses
 * the `default` and `ROOTCA` secrets pilot-agent serves over SDS.
 */
import type { ClientTLSSettings } from '@sextant/api';
import type { ProxyView } from '@sextant/model';
import { isH2Cluster, type MutableCluster } from './policy.js';
import type { CommonTlsContextJson, StringMatcherJson, TransportSocketJson, UpstreamTlsContextJson } from '@sextant/envoy';
import { rawBufferTransportSocket } from '../common.js';
import { sdsSecretConfigFor } from '../security/mtls.js';
import { anyOf, TYPE } from '../typed.js';

const ALPN_IN_MESH = ['istio-peer-exchange', 'istio'];
const ALPN_IN_MESH_H2 = ['istio-peer-exchange', 'istio', 'h2'];

export interface TlsInputs {
  tls: ClientTLSSettings | undefined;
  serviceAccounts: string[];
  sni: string;
  autoMtls: boolean;
  meshExternal: boolean;
  /** false when the destination cannot take mTLS (PeerAuthentication DISABLE, passthrough to plain workloads). */
  mtlsPossible: boolean;
  external: boolean;
  /**
   * The proxy the cluster is for: decides where `default`, `ROOTCA` and
   * `kubernetes://` secrets come from (pilot-agent's `sds-grpc`, or ADS for an
   * agentless proxy). Unset: Istio's default, `sds-grpc`.
   */
  proxy?: ProxyView | undefined;
}

function defaultCommonTls(): CommonTlsContextJson {
  return { tlsParams: { tlsMinimumProtocolVersion: 'TLSv1_2', tlsMaximumProtocolVersion: 'TLSv1_3' } };
}

function exact(sans: string[] | undefined): StringMatcherJson[] {
  return (sans ?? []).map((s) => ({ exact: s }));
}

/** Decides the effective TLS settings (istiod's buildUpstreamTLSSettings): returns settings and whether auto-detected. */
export function effectiveTls(i: TlsInputs): { tls: ClientTLSSettings | undefined; auto: boolean } {
  if (i.tls) {
    if (i.tls.mode !== 'ISTIO_MUTUAL') return { tls: i.tls, auto: false };
    return { tls: { mode: 'ISTIO_MUTUAL', sni: i.tls.sni || i.sni, subjectAltNames: i.tls.subjectAltNames ?? i.serviceAccounts }, auto: false };
  }
  if (i.meshExternal || !i.autoMtls || !i.mtlsPossible) return { tls: undefined, auto: false };
  return { tls: { mode: 'ISTIO_MUTUAL', sni: i.sni, subjectAltNames: i.serviceAccounts }, auto: true };
}

function upstreamTlsContext(mc: MutableCluster, tls: ClientTLSSettings, external: boolean, serviceAccounts: string[], proxy: ProxyView | undefined): UpstreamTlsContextJson | undefined {
  const sdsSecretConfigProxy = (name: string) => sdsSecretConfigFor(name, proxy);
  switch (tls.mode ?? 'DISABLE') {
    case 'DISABLE':
      return undefined;
    case 'ISTIO_MUTUAL': {
      const common = defaultCommonTls();
      common.tlsCertificateSdsSecretConfigs = [sdsSecretConfigProxy('default')];
      common.combinedValidationContext = {
        defaultValidationContext: tls.subjectAltNames && tls.subjectAltNames.length > 0 ? { matchSubjectAltNames: exact(tls.subjectAltNames) } : {},
        validationContextSdsSecretConfig: sdsSecretConfigProxy('ROOTCA'),
      };
      common.alpnProtocols = isH2Cluster(mc) ? ALPN_IN_MESH_H2 : ALPN_IN_MESH;
      return { commonTlsContext: common, sni: tls.sni || mc.cluster.name };
    }
    case 'SIMPLE':
    case 'MUTUAL': {
      const common = defaultCommonTls();
      const ctx: UpstreamTlsContextJson = { commonTlsContext: common };
      if (tls.sni) ctx.sni = tls.sni;
      else {
        mc.http ??= {};
        mc.http.upstreamHttpProtocolOptions = { ...(mc.http.upstreamHttpProtocolOptions ?? {}), autoSni: true };
      }
      if (!tls.sni && !(tls.subjectAltNames?.length) && !tls.insecureSkipVerify) {
        mc.http ??= {};
        mc.http.upstreamHttpProtocolOptions = { ...(mc.http.upstreamHttpProtocolOptions ?? {}), autoSanValidation: true };
      }
      const sans = external && !(tls.subjectAltNames?.length) ? serviceAccounts : tls.subjectAltNames;
      if (tls.credentialName) {
        common.tlsCertificateSdsSecretConfigs = tls.mode === 'MUTUAL' ? [sdsSecretConfigProxy(`kubernetes://${tls.credentialName}`)] : undefined;
        common.combinedValidationContext = {
          defaultValidationContext: sans && sans.length > 0 ? { matchSubjectAltNames: exact(sans) } : {},
          validationContextSdsSecretConfig: sdsSecretConfigProxy(`kubernetes://${tls.credentialName}-cacert`),
        };
      } else {
        const ca = tls.caCertificates || 'system';
        if (tls.mode === 'MUTUAL') {
          common.tlsCertificateSdsSecretConfigs = [sdsSecretConfigFor(`file-cert:${tls.clientCertificate}~${tls.privateKey}`)];
        }
        if (tls.insecureSkipVerify) common.validationContext = {};
        else {
          common.combinedValidationContext = {
            defaultValidationContext: sans && sans.length > 0 ? { matchSubjectAltNames: exact(sans) } : {},
            validationContextSdsSecretConfig: sdsSecretConfigFor(`file-root:${ca}`),
          };
        }
      }
      if (isH2Cluster(mc)) common.alpnProtocols = ['h2'];
      return ctx;
    }
  }
  return undefined;
}

/** Applies TLS to the cluster: a transport socket, or for auto mTLS the `tlsMode-istio` / `tlsMode-disabled` matches. */
export function applyUpstreamTls(mc: MutableCluster, i: TlsInputs): void {
  const { tls, auto } = effectiveTls(i);
  if (!tls) return;
  const ctx = upstreamTlsContext(mc, tls, i.external, i.serviceAccounts, i.proxy);
  if (!ctx) return;
  const socket: TransportSocketJson = { name: 'envoy.transport_sockets.tls', typedConfig: anyOf(TYPE.upstreamTls, ctx) };
  if (auto && mc.cluster.type !== 'ORIGINAL_DST') {
    mc.cluster.transportSocketMatches = [
      { name: 'tlsMode-istio', match: { tlsMode: 'istio' }, transportSocket: socket },
      { name: 'tlsMode-disabled', match: {}, transportSocket: rawBufferTransportSocket() },
    ];
    delete mc.cluster.transportSocket;
  } else {
    mc.cluster.transportSocket = socket;
  }
}
