/**
 * Gateways (router proxies): Gateway servers → listeners `<bind>_<port>`, RDS
 * `http.<port>` / `https.<port>.<portName>.<gateway>.<namespace>`, SDS secrets
 * `kubernetes://<credentialName>`, TLS passthrough (SNI → tcp_proxy) and TCP
 * servers, bound to VirtualServices by `gateways`. Pure.
 */
import type { ListenerJson, RouteConfigurationJson } from '@sextant/envoy';
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';
import { hcmRds, listenerFilter, sdsDownstreamTls, socketAddress, tcpProxy } from './listener-filters.js';
import { buildHTTPRoutesForVirtualService, destinationCluster, isCatchAllRoute, outboundClusterName, type RouteOptions } from './route-translate.js';
import { mergeDelegates, resolveVirtualService, vsGateways } from './virtual-service.js';
import { securityHttpFilters, securityNetworkFilters } from './security/index.js';

type Json = Record<string, any>;

const HTTP_LIKE = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

export interface GatewayServer {
  gateway: IstioConfig;
  /** `namespace/name`, as VirtualServices name gateways. */
  gatewayName: string;
  server: Json;
  index: number;
  /** The listener port: the server port translated through the gateway Service's targetPort. */
  port: number;
  protocol: string;
  bind: string;
}

/** Services with this label keep Gateway server ports untranslated (istiod's DisableGatewayPortTranslationLabel). */
export const DISABLE_GATEWAY_PORT_TRANSLATION = 'networking.istio.io/disable-gateway-port-translation';

/**
 * The ports a server listens on (istiod's resolvePorts): a Gateway server port
 * is the port of the gateway's Service, so the listener binds the target port
 * of every Service port with that number that selects this proxy's pod
 * (istio-ingressgateway maps 80 → 8080); without one, the number itself.
 */
export function resolveGatewayPorts(push: PushContext, proxy: ProxyView, number: number): number[] {
  const ports = new Set<number>();
  for (const si of push.serviceInstancesForProxy(proxy)) {
    if (si.service.attributes.labels?.[DISABLE_GATEWAY_PORT_TRANSLATION] !== undefined) continue;
    if (si.servicePort.port === number && si.endpoint.endpointPort) ports.add(si.endpoint.endpointPort);
  }
  return ports.size ? [...ports].sort((a, b) => a - b) : [number];
}

/** Servers of every Gateway that selects this proxy, one per listener port they resolve to. */
export function gatewayServers(push: PushContext, proxy: ProxyView): GatewayServer[] {
  const out: GatewayServer[] = [];
  for (const gw of push.gatewaysForProxy(proxy)) {
    ((gw.spec.servers ?? []) as Json[]).forEach((server, index) => {
      const number = Number(server.port?.number);
      for (const port of Number.isInteger(number) && number > 0 ? resolveGatewayPorts(push, proxy, number) : [number]) {
        out.push({
          gateway: gw,
          gatewayName: `${gw.namespace}/${gw.name}`,
          server,
          index,
          port,
          protocol: String(server.port?.protocol ?? '').toUpperCase(),
          bind: server.bind || '0.0.0.0',
        });
      }
    });
  }
  return out;
}

function isPassthrough(s: Json): boolean {
  return s.tls?.mode === 'PASSTHROUGH' || s.tls?.mode === 'AUTO_PASSTHROUGH';
}

/** The RDS name istiod gives a server (GatewayRDSRouteName); '' for servers without HTTP routing. */
export function gatewayRouteName(gs: GatewayServer): string {
  const bind = gs.server.bind ? `.${gs.server.bind}` : '';
  if (HTTP_LIKE.has(gs.protocol)) return `http.${gs.port}${bind}`;
  if (gs.protocol === 'HTTPS' && !isPassthrough(gs.server))
    return `https.${gs.server.port.number}.${gs.server.port.name ?? ''}.${gs.gateway.name}.${gs.gateway.namespace}${bind}`;
  return '';
}

/** Server hosts split into namespace and DNS name (`ns/host`; no namespace = any). */
function serverHosts(gs: GatewayServer): Array<{ ns: string; host: string }> {
  return ((gs.server.hosts ?? []) as string[]).map((h) => {
    const i = h.indexOf('/');
    if (i < 0) return { ns: '*', host: h.toLowerCase() };
    const ns = h.slice(0, i);
    return { ns: ns === '.' ? gs.gateway.namespace : ns, host: h.slice(i + 1).toLowerCase() };
  });
}

function wildcardMatch(pattern: string, host: string): boolean {
  if (pattern === '*' || pattern === host) return true;
  return pattern.startsWith('*.') && host.endsWith(pattern.slice(1));
}

/** The more specific of two intersecting host names, or undefined. */
function intersect(a: string, b: string): string | undefined {
  if (wildcardMatch(a, b)) return b;
  if (wildcardMatch(b, a)) return a;
  return undefined;
}

function gatewayVirtualServices(push: PushContext, proxy: ProxyView, gatewayName: string): IstioConfig[] {
  const all = push.virtualServices(proxy, [gatewayName]).map((v) => resolveVirtualService(v, push.domainSuffix));
  const delegates = push.configs('VirtualService').filter((v) => !((v.spec.hosts ?? []) as string[]).length).map((v) => resolveVirtualService(v, push.domainSuffix));
  const seen = new Set(all.map((v) => `${v.namespace}/${v.name}`));
  const merged = mergeDelegates([...all, ...delegates.filter((d) => !seen.has(`${d.namespace}/${d.name}`))], push.mesh.defaultVirtualServiceExportTo).virtualServices;
  return merged.filter((vs) => vsGateways(vs).includes(gatewayName));
}

/** Hosts of a VS that a server admits (namespace and host patterns), most specific form. */
function admittedHosts(gs: GatewayServer, vs: IstioConfig): string[] {
  const out: string[] = [];
  for (const vh of (vs.spec.hosts ?? []) as string[]) {
    for (const sh of serverHosts(gs)) {
      if (sh.ns !== '*' && sh.ns !== vs.namespace) continue;
      const i = intersect(sh.host, vh.toLowerCase());
      if (i && !out.includes(i)) out.push(i);
    }
  }
  return out;
}

/** A gateway route configuration (`http.<port>` or `https.<port>...`). */
export function buildGatewayRoute(push: PushContext, proxy: ProxyView, routeName: string): RouteConfigurationJson | undefined {
  const servers = gatewayServers(push, proxy).filter((gs) => gatewayRouteName(gs) === routeName);
  if (servers.length === 0) return undefined;
  const vhosts = new Map<string, Json>();
  const httpsRedirectHosts: Array<{ host: string; port: number }> = [];
  for (const gs of servers) {
    if (gs.server.tls?.httpsRedirect) {
      for (const sh of serverHosts(gs)) httpsRedirectHosts.push({ host: sh.host, port: gs.server.port.number });
    }
    const opts: RouteOptions = {
      proxy,
      listenPort: gs.server.port.number,
      gatewayNames: new Set([gs.gatewayName]),
      isTLS: gs.protocol === 'HTTPS',
      domainSuffix: push.domainSuffix,
      lookupService: (h) => push.serviceByHostname(h, gs.gateway.namespace),
    };
    for (const vs of gatewayVirtualServices(push, proxy, gs.gatewayName)) {
      const hosts = admittedHosts(gs, vs);
      if (!hosts.length) continue;
      const routes = buildHTTPRoutesForVirtualService(vs, opts);
      if (!routes.length) continue;
      for (const h of hosts) {
        // Virtual hosts are named by the server port (istiod), not the translated listener port.
        const name = `${h}:${gs.server.port.number}`;
        const existing = vhosts.get(name);
        if (existing) existing.routes.push(...routes.map((r) => structuredClone(r)));
        else vhosts.set(name, { name, domains: [h], routes: routes.map((r) => structuredClone(r)), includeRequestAttemptCount: true });
      }
    }
  }
  for (const { host, port } of httpsRedirectHosts) {
    const name = `${host}:${port}`;
    const v = vhosts.get(name);
    if (v) v.requireTls = 'ALL';
    else vhosts.set(name, { name, domains: [host], routes: [], requireTls: 'ALL', includeRequestAttemptCount: true });
  }
  let list = [...vhosts.values()];
  for (const v of list) {
    // Catch-all routes go last (istiod's SortVHostRoutes); drop exact duplicates after the first catch-all.
    const normal = (v.routes as Json[]).filter((r) => !isCatchAllRoute(r));
    const catchAll = (v.routes as Json[]).filter((r) => isCatchAllRoute(r));
    v.routes = [...normal, ...catchAll.slice(0, 1)];
  }
  if (list.length === 0) {
    const port = servers[0]!.port;
    list = [{ name: `blackhole:${port}`, domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, directResponse: { status: 404 } }] }];
  }
  list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    name: routeName,
    virtualHosts: list,
    validateClusters: false,
    maxDirectResponseBodySizeBytes: 1048576,
    ignorePortInHostMatching: true,
  } as RouteConfigurationJson;
}

function l4Target(vs: IstioConfig, route: Json[], gs: GatewayServer, push: PushContext): string | Array<{ name: string; weight: number }> {
  const clusterOf = (d: Json) => destinationCluster(d.destination, push.serviceByHostname(d.destination.host, vs.namespace), gs.server.port.number);
  if (route.length === 1) return clusterOf(route[0]!);
  return route.filter((d) => d.weight).map((d) => ({ name: clusterOf(d), weight: d.weight as number }));
}

function l4MatchApplies(m: Json | undefined, gs: GatewayServer, proxy: ProxyView): boolean {
  if (!m) return true;
  if (m.port && m.port !== gs.server.port.number) return false;
  if (m.gateways?.length && !(m.gateways as string[]).includes(gs.gatewayName)) return false;
  for (const [k, v] of Object.entries((m.sourceLabels ?? {}) as Record<string, string>)) if (proxy.labels[k] !== v) return false;
  return true;
}

/** TLS passthrough chains: one per matching VirtualService tls rule, SNI → tcp_proxy. */
function passthroughChains(push: PushContext, proxy: ProxyView, gs: GatewayServer): Json[] {
  const chains: Json[] = [];
  const seenSni = new Set<string>();
  for (const vs of gatewayVirtualServices(push, proxy, gs.gatewayName)) {
    if (!admittedHosts(gs, vs).length) continue;
    for (const rule of (vs.spec.tls ?? []) as Json[]) {
      for (const m of (rule.match ?? []) as Json[]) {
        if (!l4MatchApplies(m, gs, proxy)) continue;
        const snis = ((m.sniHosts ?? []) as string[]).filter((s) => !seenSni.has(s));
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
    for (const rule of (vs.spec.tcp ?? []) as Json[]) {
      const ok = !rule.match?.length || (rule.match as Json[]).some((m) => l4MatchApplies(m, gs, proxy));
      if (ok && rule.route?.length) return l4Target(vs, rule.route, gs, push);
    }
  }
  return undefined;
}

function serverNames(gs: GatewayServer): string[] | undefined {
  const names = serverHosts(gs).map((h) => h.host);
  return names.includes('*') ? undefined : names;
}

function tlsSocket(gs: GatewayServer, http: boolean): Json | undefined {
  const t = gs.server.tls ?? {};
  const cred: string | undefined = t.credentialName ?? t.credentialNames?.[0];
  if (!cred) return undefined;
  const mutual = t.mode === 'MUTUAL' || t.mode === 'OPTIONAL_MUTUAL';
  return sdsDownstreamTls(`kubernetes://${cred}`, {
    caSecret: mutual ? `kubernetes://${cred}-cacert` : undefined,
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
    const chains: Json[] = [];
    let needTlsInspector = false;
    const httpRoutes = new Set<string>();
    for (const gs of servers) {
      const stat = `outbound_${gs.bind}_${gs.port}`;
      if (HTTP_LIKE.has(gs.protocol)) {
        const rn = gatewayRouteName(gs);
        if (httpRoutes.has(rn)) continue; // plaintext HTTP servers on a port share one chain
        httpRoutes.add(rn);
        chains.push({ filters: [hcmRds(stat, rn, { useRemoteAddress: true, securityFilters: securityHttpFilters(push, proxy) })] });
      } else if (gs.protocol === 'HTTPS' && !isPassthrough(gs.server)) {
        needTlsInspector = true;
        const sock = tlsSocket(gs, true);
        if (!sock) continue;
        const fcm: Json = {};
        const sn = serverNames(gs);
        if (sn) fcm.serverNames = sn;
        chains.push({ filterChainMatch: fcm, transportSocket: sock, filters: [hcmRds(stat, gatewayRouteName(gs), { useRemoteAddress: true, securityFilters: securityHttpFilters(push, proxy) })] });
      } else if ((gs.protocol === 'TLS' || gs.protocol === 'HTTPS') && isPassthrough(gs.server)) {
        needTlsInspector = true;
        chains.push(...passthroughChains(push, proxy, gs));
      } else if (gs.protocol === 'TLS') {
        needTlsInspector = true;
        const target = tcpTarget(push, proxy, gs);
        const sock = tlsSocket(gs, false);
        if (!target || !sock) continue;
        const fcm: Json = {};
        const sn = serverNames(gs);
        if (sn) fcm.serverNames = sn;
        chains.push({ filterChainMatch: fcm, transportSocket: sock, filters: [...securityNetworkFilters(push, proxy), tcpProxy(stat, target)] });
      } else {
        const target = tcpTarget(push, proxy, gs);
        if (target) chains.push({ filters: [...securityNetworkFilters(push, proxy), tcpProxy(stat, target)] });
      }
    }
    if (chains.length === 0) continue;
    const l: Json = {
      name,
      address: socketAddress(first.bind, first.port),
      filterChains: chains,
      trafficDirection: 'OUTBOUND',
    };
    if (needTlsInspector) l.listenerFilters = [listenerFilter.tlsInspector()];
    out.push(l as ListenerJson);
  }
  return out;
}

export { outboundClusterName };
