/**
 * LDS for MOSN v1.6.1, from the sidecar listeners Envoy gets. What MOSN's
 * istio1106 converter reads, and how each Envoy-only construct is rewritten:
 * - `bind_to_port` is read only from the legacy `deprecated_v1` field: a
 *   listener that must not bind carries `deprecated_v1.bind_to_port: false`
 *   (else MOSN binds every `<VIP>_<port>` listener and exits on the first VIP);
 * - listener filters are ignored (only original_dst is understood, and only
 *   virtualInbound uses it), and a bound listener serves only its first usable
 *   filter chain: a sniffed port becomes one HTTP connection manager chain
 *   (MOSN's `Auto` codec tells HTTP/1, HTTP/2, Dubbo and bolt apart);
 * - the inbound passthrough is recognised by the name `InboundPassthroughClusterIpv4`;
 * - SDS is dialled over a Unix socket.
 */
import type { ListenerJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { MOSN_INBOUND_PASSTHROUGH, withMosnSds, type Json } from './common.js';

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

function mosnListener(l: Json): Json {
  const out: Json = { ...l };
  if (l.bindToPort === false) out.deprecatedV1 = { bindToPort: false };
  const isVirtual = !!l.useOriginalDst;
  if (l.name === 'virtualInbound') {
    // MOSN matches virtualInbound's redirected connections with original_dst (falling back to local).
    const keep = ((l.listenerFilters ?? []) as Json[]).filter((f) => f.name === ORIGINAL_DST);
    if (keep.length) out.listenerFilters = keep;
    else delete out.listenerFilters;
    return renameInboundPassthrough(out) as Json;
  }
  delete out.listenerFilters;
  delete out.listenerFiltersTimeout;
  delete out.continueOnListenerFiltersTimeout;
  if (!isVirtual && l.trafficDirection === 'OUTBOUND') {
    const chains = (l.filterChains ?? []) as Json[];
    const http = chains.find((c) => ((c.filters ?? []) as Json[]).some((f) => f.name === HCM));
    if (http && chains.length > 1) {
      // A sniffed port: one HCM chain, without the ALPN match the inspectors fed.
      const { filterChainMatch: _m, ...chain } = http;
      out.filterChains = [chain];
    }
  }
  return out;
}

/** The MOSN form of a sidecar's listeners. */
export function mosnListeners(_push: PushContext, proxy: ProxyView, listeners: ListenerJson[]): ListenerJson[] {
  return listeners.map((l) => withMosnSds(mosnListener(l as Json), proxy) as ListenerJson);
}
