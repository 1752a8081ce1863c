/**
 * LDS for gateways (router proxies): Gateway servers → listeners
 * `<bind>_<port>` whose HCMs read RDS (route/gateway.ts), SDS secrets
 * `kubernetes://<credentialName>`, TLS passthrough (SNI → tcp_proxy) and TCP
 * servers, bound to VirtualServices by `gateways`. Pure.
 */
import type { L4MatchAttributes, RouteDestination } from '@sextant/api';
import type { FilterChainJson, FilterChainMatchJson, ListenerJson, TransportSocketJson } from '@sextant/envoy';
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';
import { admittedHosts, gatewayRouteName, gatewayServers, gatewayVirtualServices, HTTP_LIKE, isPassthrough, serverHosts, vsSpec, type GatewayServer } from '../gateway-servers.js';
import { hcmRds, listenerFilter, sdsDownstreamTls, socketAddress, tcpProxy } from './filters.js';
import { destinationCluster } from '../route/translate.js';
import { credentialSecretName } from '../names.js';
import { securityHttpFilters, securityNetworkFilters } from '../security/filters.js';
import { gatewayClientCertSettings } from '../security/xfcc.js';

/** The L4 match fields shared by VirtualService tcp and tls rules. */
type L4Match = Pick<L4MatchAttributes, 'port' | 'gateways' | 'sourceLabels'>;

function l4Target(vs: IstioConfig, route: RouteDestination[], gs: GatewayServer, push: PushContext): string | Array<{ name: string; weight: number }> {
  const clusterOf = (d: RouteDestination) => destinationCluster(d.destination, push.serviceByHostname(d.destination.host, vs.namespace), gs.server.port.number);
  if (route.length === 1) return clusterOf(route[0]!);
  return route.filter((d) => d.weight).map((d) => ({ name: clusterOf(d), weight: d.weight ?? 0 }));
}

function l4MatchApplies(m: L4Match | undefined, gs: GatewayServer, proxy: ProxyView): boolean {
  if (!m) return true;
  if (m.port && m.port !== gs.server.port.number) return false;
  if (m.gateways?.length && !m.gateways.includes(gs.gatewayName)) return false;
  for (const [k, v] of Object.entries(m.sourceLabels ?? {})) if (proxy.labels[k] !== v) return false;
  return true;
}

/** TLS passthrough chains: one per matching VirtualService tls rule, SNI → tcp_proxy. */
function passthroughChains(push: PushContext, proxy: ProxyView, gs: GatewayServer): FilterChainJson[] {
  const chains: FilterChainJson[] = [];
  const seenSni = new Set<string>();
  for (const vs of gatewayVirtualServices(push, proxy, gs.gatewayName)) {
    if (!admittedHosts(gs, vs).length) continue;
    for (const rule of vsSpec(vs).tls ?? []) {
      for (const m of rule.match ?? []) {
        if (!l4MatchApplies(m, gs, proxy)) continue;
        const snis = (m.sniHosts ?? []).filter((s) => !seenSni.has(s));
        if (!snis.length || !rule.route?.length) continue;
        snis.forEach((s) => seenSni.add(s));
        chains.push({
          filterChainMatch: { serverNames: snis },
          filters: [...securityNetworkFilters(push, proxy), tcpProxy(`${gs.bind}_${gs.port}`, l4Target(vs, rule.route, gs, push))],
        });
      }
    }
  }
  return chains;
}

/** The tcp_proxy target of a TCP (or terminated TLS) server: the first VirtualService tcp rule that applies. */
function tcpTarget(push: PushContext, proxy: ProxyView, gs: GatewayServer): string | Array<{ name: string; weight: number }> | undefined {
  for (const vs of gatewayVirtualServices(push, proxy, gs.gatewayName)) {
    if (!admittedHosts(gs, vs).length) continue;
    for (const rule of vsSpec(vs).tcp ?? []) {
      const ok = !rule.match?.length || rule.match.some((m) => l4MatchApplies(m, gs, proxy));
      if (ok && rule.route?.length) return l4Target(vs, rule.route, gs, push);
    }
  }
  return undefined;
}

function serverNames(gs: GatewayServer): string[] | undefined {
  const names = serverHosts(gs).map((h) => h.host);
  return names.includes('*') ? undefined : names;
}

function tlsSocket(gs: GatewayServer, http: boolean): TransportSocketJson | undefined {
  const t = gs.server.tls ?? {};
  const cred: string | undefined = t.credentialName ?? t.credentialNames?.[0];
  if (!cred) return undefined;
  const mutual = t.mode === 'MUTUAL' || t.mode === 'OPTIONAL_MUTUAL';
  return sdsDownstreamTls(credentialSecretName(cred), {
    caSecret: mutual ? credentialSecretName(`${cred}-cacert`) : undefined,
    requireClientCertificate: t.mode === 'MUTUAL',
    alpn: http ? ['h2', 'http/1.1'] : undefined,
    minVersion: t.minProtocolVersion,
    maxVersion: t.maxProtocolVersion,
    cipherSuites: t.cipherSuites,
  });
}

/** Listeners for a router proxy: one per bind address and port. */
export function buildGatewayListeners(push: PushContext, proxy: ProxyView): ListenerJson[] {
  const byListener = new Map<string, GatewayServer[]>();
  for (const gs of gatewayServers(push, proxy)) {
    if (!Number.isInteger(gs.port) || gs.port <= 0) continue;
    const name = `${gs.bind}_${gs.port}`;
    byListener.set(name, [...(byListener.get(name) ?? []), gs]);
  }
  const out: ListenerJson[] = [];
  for (const [name, servers] of [...byListener].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const first = servers[0]!;
    const chains: FilterChainJson[] = [];
    let needTlsInspector = false;
    const httpRoutes = new Set<string>();
    for (const gs of servers) {
      const stat = `outbound_${gs.bind}_${gs.port}`;
      if (HTTP_LIKE.has(gs.protocol)) {
        const rn = gatewayRouteName(gs);
        if (httpRoutes.has(rn)) continue; // plaintext HTTP servers on a port share one chain
        httpRoutes.add(rn);
        chains.push({ filters: [hcmRds(stat, rn, { useRemoteAddress: true, securityFilters: securityHttpFilters(push, proxy), hcm: gatewayClientCertSettings(proxy) })] });
      } else if (gs.protocol === 'HTTPS' && !isPassthrough(gs.server)) {
        needTlsInspector = true;
        const sock = tlsSocket(gs, true);
        if (!sock) continue;
        const fcm: FilterChainMatchJson = {};
        const sn = serverNames(gs);
        if (sn) fcm.serverNames = sn;
        chains.push({ filterChainMatch: fcm, transportSocket: sock, filters: [hcmRds(stat, gatewayRouteName(gs), { useRemoteAddress: true, securityFilters: securityHttpFilters(push, proxy), hcm: gatewayClientCertSettings(proxy) })] });
      } else if ((gs.protocol === 'TLS' || gs.protocol === 'HTTPS') && isPassthrough(gs.server)) {
        needTlsInspector = true;
        chains.push(...passthroughChains(push, proxy, gs));
      } else if (gs.protocol === 'TLS') {
        needTlsInspector = true;
        const target = tcpTarget(push, proxy, gs);
        const sock = tlsSocket(gs, false);
        if (!target || !sock) continue;
        const fcm: FilterChainMatchJson = {};
        const sn = serverNames(gs);
        if (sn) fcm.serverNames = sn;
        chains.push({ filterChainMatch: fcm, transportSocket: sock, filters: [...securityNetworkFilters(push, proxy), tcpProxy(stat, target)] });
      } else {
        const target = tcpTarget(push, proxy, gs);
        if (target) chains.push({ filters: [...securityNetworkFilters(push, proxy), tcpProxy(stat, target)] });
      }
    }
    if (chains.length === 0) continue;
    const l: ListenerJson = {
      name,
      address: socketAddress(first.bind, first.port),
      filterChains: chains,
      trafficDirection: 'OUTBOUND',
    };
    if (needTlsInspector) l.listenerFilters = [listenerFilter.tlsInspector()];
    out.push(l);
  }
  return out;
}

