/**
 * LDS for MOSN v1.6.1, from the sidecar listeners Envoy gets. What MOSN's
 * istio1106 converter reads, and how each Envoy-only construct is rewritten:
 * - `bind_to_port` is read only from the legacy `deprecated_v1` field: a
 *   listener that must not bind carries `deprecated_v1.bind_to_port: false`
 *   (else MOSN binds every `<VIP>_<port>` listener and exits on the first VIP);
 * - listener filters are ignored (only original_dst is understood, and only
 *   virtualInbound uses it), and a bound listener serves only its first usable
 *   filter chain: an HTTP or sniffed port becomes one HTTP connection manager
 *   chain without the ALPN match and default chain Envoy gets (MOSN's `Auto`
 *   codec tells HTTP/1, HTTP/2, Dubbo and bolt apart);
 * - the inbound passthrough is recognised by the name `InboundPassthroughClusterIpv4`;
 * - SDS is dialled over a Unix socket;
 * - a bound inbound listener (Sidecar ingress) under PERMISSIVE has a TLS and a
 *   plaintext chain, told apart by the TLS inspector; MOSN would serve only
 *   the first. It keeps the mTLS chain alone (plaintext refused), and the
 *   PeerAuthentication behind it is reported for the proxy.
 */
import type { ValidationIssue } from '@sextant/api';
import type { ListenerJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { peerAuthenticationForProxy } from '../security/peer-auth.js';
import { MOSN_INBOUND_PASSTHROUGH, NOT_SUPPORTED, withMosnSds, type Json } from './common.js';

const HCM = 'envoy.filters.network.http_connection_manager';
const ORIGINAL_DST = 'envoy.filters.listener.original_dst';

/** Renames the inbound passthrough cluster (and route configuration) everywhere in a value. */
function renameInboundPassthrough(v: unknown): unknown {
  if (v === 'InboundPassthroughCluster') return MOSN_INBOUND_PASSTHROUGH;
  if (Array.isArray(v)) return v.map(renameInboundPassthrough);
  if (v && typeof v === 'object') {
    const out: Json = {};
    for (const [k, x] of Object.entries(v as Json)) out[k] = renameInboundPassthrough(x);
    return out;
  }
  return v;
}

/** A bound inbound listener whose chains mix mTLS and plaintext (PERMISSIVE): the mTLS chain, or undefined when not mixed. */
function boundInboundMtlsOnly(l: Json): Json[] | undefined {
  if (l.trafficDirection !== 'INBOUND' || l.useOriginalDst || l.bindToPort === false || l.name === 'virtualInbound') return undefined;
  const chains = (l.filterChains ?? []) as Json[];
  const tls = chains.find((c) => c.transportSocket);
  if (!tls || chains.every((c) => c.transportSocket)) return undefined;
  return [tls];
}

/**
 * The issue for a PERMISSIVE bound inbound listener: names the PeerAuthentication
 * that set the mode (workload port level, workload, namespace, mesh), or the
 * mesh default when none did.
 */
function permissiveIssue(push: PushContext, proxy: ProxyView, l: Json): ValidationIssue {
  const port = Number(l.address?.socketAddress?.portValue);
  const eff = peerAuthenticationForProxy(push, proxy);
  const effect = `${NOT_SUPPORTED} on the bound inbound listener ${l.name} (MOSN serves only one filter chain of a bound listener): this MOSN proxy requires mTLS there and refuses plaintext`;
  const find = (ref: string | undefined) => {
    if (!ref) return undefined;
    const [ns, name] = ref.split('/') as [string, string];
    return push.configs('PeerAuthentication', ns).find((p) => p.name === name);
  };
  const wl = find(eff.from.workload);
  if (wl && (wl.spec.portLevelMtls as Json | undefined)?.[String(port)]?.mode) {
    return { kind: 'PeerAuthentication', namespace: wl.namespace, name: wl.name, field: `spec.portLevelMtls.${port}.mode`, reason: `PERMISSIVE ${effect}` };
  }
  for (const pa of [wl, find(eff.from.namespace), find(eff.from.mesh)]) {
    if (pa && (pa.spec.mtls as Json | undefined)?.mode && (pa.spec.mtls as Json).mode !== 'UNSET') {
      return { kind: 'PeerAuthentication', namespace: pa.namespace, name: pa.name, field: 'spec.mtls.mode', reason: `PERMISSIVE ${effect}` };
    }
  }
  return { kind: 'PeerAuthentication', namespace: push.mesh.rootNamespace, name: '(none: mesh default)', field: 'spec.mtls.mode', reason: `PERMISSIVE (the default) ${effect}` };
}

function mosnListener(l: Json): Json {
  const out: Json = { ...l };
  if (l.bindToPort === false) out.deprecatedV1 = { bindToPort: false };
  const isVirtual = !!l.useOriginalDst;
  if (l.name === 'virtualInbound') {
    // MOSN matches virtualInbound's redirected connections with original_dst (falling back to local); its
    // converter was written for listeners that also set use_original_dst, which Envoy's no longer has (as istiod).
    out.useOriginalDst = true;
    delete out.maxConnectionsToAcceptPerSocketEvent; // as on virtualOutbound: MOSN's converter has no such setting
    const keep = ((l.listenerFilters ?? []) as Json[]).filter((f) => f.name === ORIGINAL_DST);
    if (keep.length) out.listenerFilters = keep;
    else delete out.listenerFilters;
    return renameInboundPassthrough(out) as Json;
  }
  delete out.listenerFilters;
  delete out.listenerFiltersTimeout;
  delete out.continueOnListenerFiltersTimeout;
  const mtlsOnly = boundInboundMtlsOnly(l);
  if (mtlsOnly) out.filterChains = mtlsOnly;
  if (!isVirtual && l.trafficDirection === 'OUTBOUND') {
    const chains = (l.filterChains ?? []) as Json[];
    const http = chains.find((c) => ((c.filters ?? []) as Json[]).some((f) => f.name === HCM));
    // No default chain: MOSN serves one chain of a listener (listener filters are ignored).
    delete out.defaultFilterChain;
    if (http) {
      // An HTTP or sniffed port: one HCM chain, without the ALPN match the inspectors fed.
      const { filterChainMatch: _m, ...chain } = http;
      out.filterChains = [chain];
    }
    // MOSN's converter predates the chains' handshake timeout.
    out.filterChains = ((out.filterChains ?? []) as Json[]).map(({ transportSocketConnectTimeout: _t, ...c }) => c);
  }
  if (l.name === 'virtualOutbound') {
    // MOSN serves one chain: keep the catch-all, not the chain dropping traffic sent to 15001 itself.
    out.filterChains = ((l.filterChains ?? []) as Json[]).filter((c) => c.filterChainMatch?.destinationPort === undefined);
    delete out.maxConnectionsToAcceptPerSocketEvent;
  }
  return out;
}

/** The MOSN form of a sidecar's listeners; `issues` receives what MOSN cannot express in them. */
export function mosnListeners(push: PushContext, proxy: ProxyView, listeners: ListenerJson[], issues?: ValidationIssue[]): ListenerJson[] {
  return listeners.map((l) => {
    if (issues && boundInboundMtlsOnly(l as Json)) issues.push(permissiveIssue(push, proxy, l as Json));
    return withMosnSds(mosnListener(l as Json), proxy) as ListenerJson;
  });
}
