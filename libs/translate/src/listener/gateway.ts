/**
 * LDS for gateways (router proxies): Gateway servers → listeners
 * `<bind>_<port>` whose HCMs read RDS (route/gateway.ts), SDS secrets
 * `kubernetes://<credentialName>`, TLS passthrough (SNI → tcp_proxy) and TCP
 * servers, bound to VirtualServices by `gateways`. Pure.
 */
import type { L4MatchAttributes, RouteDestination } from '@sextant/api';
import type { FilterChainJson, FilterChainMatchJson, HttpConnectionManagerJson, ListenerJson, TransportSocketJson } from '@sextant/envoy';
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';
import { admittedHosts, gatewayRouteName, gatewayServers, gatewayVirtualServices, HTTP_LIKE, isPassthrough, serverHosts, vsSpec, type GatewayServer } from '../gateway-servers.js';
import { hcmRds, listenerFilter, sdsDownstreamTls, socketAddress, tcpProxy } from './filters.js';
import { destinationCluster } from '../route/translate.js';
import { credentialSecretName } from '../names.js';
import { nodeProxyConfig, toProtoDuration } from '../common.js';
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

/**
 * The terminating TLS socket of a server (istiod's BuildListenerTLSContext
 * with credential names): every certificate of `credentialNames` (else
 * `credentialName`) over SDS, the CA of the first for MUTUAL and
 * OPTIONAL_MUTUAL, client SANs, and ALPN h2/http/1.1 for HTTPS and TLS servers alike.
 */
function tlsSocket(gs: GatewayServer): TransportSocketJson | undefined {
  const t = gs.server.tls ?? {};
  const creds: string[] = t.credentialNames?.length ? t.credentialNames : t.credentialName ? [t.credentialName] : [];
  const cred = creds[0];
  if (!cred) return undefined;
  const mutual = t.mode === 'MUTUAL' || t.mode === 'OPTIONAL_MUTUAL';
  return sdsDownstreamTls(creds.map(credentialSecretName), {
    caSecret: mutual ? credentialSecretName(`${cred}-cacert`) : undefined,
    requireClientCertificate: t.mode === 'MUTUAL',
    alpn: ['h2', 'http/1.1'],
    minVersion: t.minProtocolVersion,
    maxVersion: t.maxProtocolVersion,
    cipherSuites: t.cipherSuites,
    subjectAltNames: t.subjectAltNames,
  });
}

/** istiod's PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT default: a TLS handshake on a gateway chain must finish in 15 s. */
export const GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT = '15s';

type Json = Record<string, any>;

/** The proxy's ProxyConfig: its node's (nodeProxyConfig), else meshConfig.defaultConfig. */
function proxyConfigOf(push: PushContext, proxy: ProxyView): Json {
  return nodeProxyConfig(proxy) ?? (((push.mesh as Json).defaultConfig ?? {}) as Json);
}

/** Node metadata HTTP10 "1" lets a gateway accept HTTP/1.0 (istiod's enableHTTP10; PILOT_HTTP10 is off). */
const acceptsHttp10 = (proxy: ProxyView): boolean => String(proxy.metadata.raw['HTTP10'] ?? '') === '1';

/**
 * What of a router proxy, beyond its class key, its gateway HCMs read:
 * HTTP10 metadata and the ProxyConfig's proxyHeaders and gatewayTopology.
 */
export function gatewayHcmKey(push: PushContext, proxy: ProxyView): string {
  if (proxy.type !== 'router') return '';
  const pc = proxyConfigOf(push, proxy);
  return JSON.stringify([acceptsHttp10(proxy), proxy.metadata.raw['IDLE_TIMEOUT'] ?? null, pc.proxyHeaders ?? null, nodeProxyConfig(proxy)?.gatewayTopology ?? null]);
}

/**
 * istiod's gateway HCM settings (buildGatewayConnectionManager): the Server
 * header `istio-envoy` (ProxyConfig proxyHeaders.server may rename it, or
 * disable it: Envoy then passes the upstream's header through), empty HTTP/1
 * options (HTTP/1.0 accepted with HTTP10 metadata), request IDs unless
 * proxyHeaders.requestId is disabled.
 */
export function gatewayHcmSettings(push: PushContext, proxy: ProxyView): Partial<HttpConnectionManagerJson> {
  const ph = (proxyConfigOf(push, proxy).proxyHeaders ?? {}) as Json;
  const out: Partial<HttpConnectionManagerJson> = {};
  const server = (ph.server ?? {}) as Json;
  const disabled = server.disabled === true || server.disabled?.value === true;
  if (disabled) out.serverHeaderTransformation = 'PASS_THROUGH';
  else out.serverName = typeof server.value === 'string' && server.value !== '' ? server.value : 'istio-envoy';
  out.httpProtocolOptions = acceptsHttp10(proxy) ? { acceptHttp10: true } : {};
  const requestId = (ph.requestId ?? {}) as Json;
  if (requestId.disabled === true || requestId.disabled?.value === true) out.generateRequestId = false;
  const xfp = (ph.xForwardedPort ?? {}) as Json;
  if (xfp.enabled === true || xfp.enabled?.value === true) out.appendXForwardedPort = true;
  // IDLE_TIMEOUT node metadata (a Go duration) bounds idle downstream connections, as on every istiod HCM.
  const idle = toProtoDuration(String(proxy.metadata.raw['IDLE_TIMEOUT'] ?? '') || undefined);
  if (idle) out.commonHttpProtocolOptions = { idleTimeout: idle };
  return out;
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
  const hcm = { ...gatewayClientCertSettings(proxy), ...gatewayHcmSettings(push, proxy) };
  for (const [name, servers] of [...byListener].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const first = servers[0]!;
    const chains: FilterChainJson[] = [];
    const httpRoutes = new Set<string>();
    for (const gs of servers) {
      const stat = `outbound_${gs.bind}_${gs.port}`;
      if (HTTP_LIKE.has(gs.protocol)) {
        const rn = gatewayRouteName(gs);
        if (httpRoutes.has(rn)) continue; // plaintext HTTP servers on a port share one chain
        httpRoutes.add(rn);
        chains.push({ filters: [hcmRds(stat, rn, { useRemoteAddress: true, securityFilters: securityHttpFilters(push, proxy), hcm, mesh: push.mesh })] });
      } else if (gs.protocol === 'HTTPS' && !isPassthrough(gs.server)) {
        const sock = tlsSocket(gs);
        if (!sock) continue;
        const fcm: FilterChainMatchJson = {};
        const sn = serverNames(gs);
        if (sn) fcm.serverNames = sn;
        chains.push({ filterChainMatch: fcm, transportSocket: sock, filters: [hcmRds(stat, gatewayRouteName(gs), { useRemoteAddress: true, securityFilters: securityHttpFilters(push, proxy), hcm, mesh: push.mesh })] });
      } else if ((gs.protocol === 'TLS' || gs.protocol === 'HTTPS') && isPassthrough(gs.server)) {
        chains.push(...passthroughChains(push, proxy, gs));
      } else if (gs.protocol === 'TLS') {
        const target = tcpTarget(push, proxy, gs);
        const sock = tlsSocket(gs);
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
      // Every gateway chain bounds its TLS handshake (istiod sets it on plaintext chains too).
      filterChains: chains.map((c) => ({ ...c, transportSocketConnectTimeout: GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT })),
      trafficDirection: 'OUTBOUND',
      // istiod's MAX_CONNECTIONS_PER_SOCKET_EVENT_LOOP default: accept one connection per wakeup, spreading them over workers.
      maxConnectionsToAcceptPerSocketEvent: 1,
    };
    // A TLS inspector when a chain matches SNI or terminates TLS with ALPN (istiod's buildGatewayListener).
    if (chains.some((c) => c.filterChainMatch?.serverNames?.length || c.transportSocket)) l.listenerFilters = [listenerFilter.tlsInspector()];
    out.push(l);
  }
  return out;
}

