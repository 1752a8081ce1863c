/**
 * PeerAuthentication on `virtualInbound`'s passthrough chains (ports no
 * Service or Sidecar ingress declares), as istiod builds them
 * (listener_inbound.go buildInboundPassthroughChains, filterchain_options.go
 * with protocol AUTO): one set of chains for the workload's mode, plus one set
 * matched on `destinationPort` for each port-level mode of a port the
 * workload does not declare (sidecars with inbound mTLS; MOSN and the
 * `plaintextInbound` hook keep plaintext catch-alls). Chains are named `virtualInbound` (TCP) and
 * `virtualInbound-catchall-http` (HTTP):
 *
 * - STRICT: mTLS only: HTTP over TLS with Istio's HTTP ALPNs, any other TLS
 *   as TCP, both terminated; plaintext matches nothing and is closed;
 * - PERMISSIVE: mTLS HTTP (Istio's HTTP ALPNs) and mTLS TCP
 *   (`istio-peer-exchange`, `istio`) terminated, plaintext HTTP and TCP, and
 *   any other TLS passed through untouched;
 * - DISABLE: plaintext HTTP and TCP only.
 *
 * Pure.
 */
import type { FilterChainJson, FilterChainMatchJson, TransportSocketJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { autoChainOptions, inboundMtlsContext, TLS_TRANSPORT_SOCKET } from './mtls.js';
import { peerAuthenticationForProxy, type MtlsMode } from './peer-auth.js';

/** getFilterChainMatchOptions(mode, AUTO): the same table as a sniffed port's (mtls.ts). */
export const passthroughOptions = autoChainOptions;

export interface PassthroughFilters {
  http: () => FilterChainJson['filters'];
  tcp: () => FilterChainJson['filters'];
}

/**
 * The passthrough chains of `virtualInbound`. `declaredPorts` are the
 * workload's inbound ports (they have their own chains); `secure` false keeps
 * them plaintext (the `plaintextInbound` hook).
 */
export function passthroughChains(push: PushContext, proxy: ProxyView, declaredPorts: ReadonlySet<number>, filters: PassthroughFilters, secure = true): FilterChainJson[] {
  if (!secure) {
    // Inbound TLS off (plaintextInbound, MOSN): plaintext HTTP by the HTTP inspector's ALPN, everything else as TCP.
    return [
      { name: 'virtualInbound-catchall-http', filterChainMatch: { applicationProtocols: ['http/1.1', 'h2c'] }, filters: filters.http() },
      { name: 'virtualInbound', filters: filters.tcp() },
    ];
  }
  const pa = peerAuthenticationForProxy(push, proxy);
  const settings: Array<{ port: number; mode: MtlsMode }> = [{ port: 0, mode: pa.mode }];
  for (const [port, mode] of [...pa.perPort].sort(([a], [b]) => a - b)) if (!declaredPorts.has(port)) settings.push({ port, mode });
  const out: FilterChainJson[] = [];
  for (const s of settings) {
    for (const o of passthroughOptions(s.mode)) {
      const fcm: FilterChainMatchJson = { ...(s.port ? { destinationPort: s.port } : {}), transportProtocol: o.transport, ...(o.alpn ? { applicationProtocols: [...o.alpn] } : {}) };
      const ts: TransportSocketJson | undefined = o.tls ? { name: TLS_TRANSPORT_SOCKET, typedConfig: inboundMtlsContext(push, proxy, o.protocol) } : undefined;
      out.push({
        name: o.protocol === 'http' ? 'virtualInbound-catchall-http' : 'virtualInbound',
        filterChainMatch: fcm,
        filters: o.protocol === 'http' ? filters.http() : filters.tcp(),
        ...(ts ? { transportSocket: ts } : {}),
      });
    }
  }
  return out;
}
