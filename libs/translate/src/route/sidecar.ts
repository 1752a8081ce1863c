/**
 * RDS: route configurations for sidecars (`9080`, `<fqdn>:<port>`), gateways
 * (`http.<port>`, `https.<port>.<server>.<gw>.<ns>`) and proxyless gRPC
 * (`outbound|<port>||<fqdn>`), dispatching on the proxy kind. Pure.
 */
import type { VirtualServiceSpecType } from '@sextant/api';
import type { RouteConfigurationJson, RouteJson, VirtualHostJson } from '@sextant/envoy';
import { isHttp, isSniffed, type EgressListener, type IstioConfig, type ProxyView, type PushContext, type Service } from '@sextant/model';
import {
  buildHTTPRoutesForVirtualService,
  catchAllVirtualHost,
  defaultOutboundRoute,
  type RouteOptions,
} from './translate.js';
import { mergeDelegates, resolveVirtualService, vsGateways } from './virtual-service.js';
import { outboundClusterName } from '../names.js';


export const MAX_DIRECT_RESPONSE_BODY = 1048576;

/** Whether a host pattern (possibly `*.x`/`*`) matches a hostname. */
export function hostMatch(pattern: string, host: string): boolean {
  if (pattern === '*' || pattern === host) return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  return false;
}

/** Whether an egress listener's `ns/host` list admits a service. */
export function egressAdmits(l: EgressListener, svc: Service): boolean {
  return l.hosts.some((h) => (h.namespace === '*' || h.namespace === svc.namespace) && hostMatch(h.host, svc.hostname));
}

/** The egress listener that serves a port: the one with that port, else the catch-all one (no port). */
export function egressListenerForPort(egress: EgressListener[], port: number): EgressListener | undefined {
  return egress.find((e) => e.port?.number === port) ?? egress.find((e) => !e.port);
}

/** The services a proxy sees on one outbound port (Sidecar egress listeners narrow them). */
export function servicesForPort(push: PushContext, proxy: ProxyView, port: number): Service[] {
  const scope = push.sidecarScope(proxy);
  const l = egressListenerForPort(scope.egress, port);
  const svcs = scope.services;
  return l && scope.egress.length ? svcs.filter((s) => egressAdmits(l, s)) : svcs;
}

/**
 * Virtual host domains for a service (istiod's generateVirtualHostDomains):
 * the FQDN, the short forms that resolve from the proxy's namespace, and the
 * VIPs; with `:port` variants only when `port` is given (proxyless gRPC —
 * Envoy sidecars ignore the port in host matching).
 */
export function virtualHostDomains(svc: Service, proxyDomain: string, port?: number): string[] {
  const domains: string[] = [];
  const add = (d: string) => {
    domains.push(d);
    if (port !== undefined) domains.push(`${d}:${port}`);
  };
  add(svc.hostname);
  const ih = svc.hostname.indexOf('.svc.');
  const pd = proxyDomain.indexOf('.svc.');
  if (pd > 0 && ih > 0 && svc.hostname.endsWith(proxyDomain.slice(pd))) {
    const proxyNs = proxyDomain.slice(0, pd);
    const dot = svc.hostname.indexOf('.');
    const short = svc.hostname.slice(0, dot);
    const nsPart = svc.hostname.slice(dot + 1, ih);
    const withNs = svc.hostname.slice(0, ih);
    if (nsPart === proxyNs) {
      add(short);
      add(`${withNs}.svc`);
      add(withNs);
    } else {
      add(withNs);
      add(`${withNs}.svc`);
    }
  }
  if (svc.resolution === 'Passthrough' && svc.attributes.serviceRegistry === 'Kubernetes') for (const d of [...domains]) domains.push(`*.${d}`);
  for (const a of svc.addresses.length ? svc.addresses : [svc.clusterVIP]) if (a && a !== '0.0.0.0') add(a.includes(':') ? `[${a}]` : a);
  return domains;
}

function sortByName(vhs: VirtualHostJson[]): VirtualHostJson[] {
  return vhs.sort((a, b) => ((a.name ?? '') < (b.name ?? '') ? -1 : (a.name ?? '') > (b.name ?? '') ? 1 : 0));
}

/** The VirtualServices a proxy applies for some gateways, resolved and with delegates merged. */
export function preparedVirtualServices(push: PushContext, proxy: ProxyView, gateways: string[]): IstioConfig[] {
  const all = push.virtualServices(proxy).map((v) => resolveVirtualService(v, push.domainSuffix));
  const merged = mergeDelegates(all, push.mesh.defaultVirtualServiceExportTo).virtualServices;
  return merged.filter((vs) => vsGateways(vs).some((g) => gateways.includes(g)));
}

function routeOptions(push: PushContext, proxy: ProxyView, listenPort: number, services: Service[], extra: Partial<RouteOptions> = {}): RouteOptions {
  const byHost = new Map(services.map((s) => [s.hostname, s]));
  return {
    proxy,
    listenPort,
    gatewayNames: new Set(['mesh']),
    domainSuffix: push.domainSuffix,
    lookupService: (h) => byHost.get(h) ?? push.serviceByHostname(h, proxy.namespace),
    ...extra,
  };
}

/**
 * Virtual hosts for sidecar-style outbound routing on one port (istiod's
 * BuildSidecarOutboundVirtualHosts): one per VirtualService host and per
 * service, first VirtualService wins a host. `withPort` adds `:port` domains.
 */
export function sidecarVirtualHosts(push: PushContext, proxy: ProxyView, port: number, opts: { grpc?: boolean; services?: Service[]; prepared?: IstioConfig[] } = {}): VirtualHostJson[] {
  const services = (opts.services ?? servicesForPort(push, proxy, port)).filter((s) =>
    s.ports.some((p) => p.port === port && (isHttp(p.protocol) || isSniffed(p.protocol))),
  );
  const byHost = new Map(services.map((s) => [s.hostname.toLowerCase(), s]));
  const vsList = (opts.prepared ?? preparedVirtualServices(push, proxy, ['mesh'])).filter((vs) =>
    ((vs.spec as VirtualServiceSpecType).hosts ?? []).some((h) => byHost.has(h.toLowerCase()) || services.some((s) => hostMatch(h.toLowerCase(), s.hostname)) || port === 80),
  );
  const ro = routeOptions(push, proxy, port, services, { grpc: !!opts.grpc });
  const usedNames = new Set<string>();
  const usedDomains = new Set<string>();
  const covered = new Set<string>();
  const out: VirtualHostJson[] = [];
  const withPort = opts.grpc ? port : undefined;
  const emit = (name: string, domains: string[], routes: RouteJson[]) => {
    if (usedNames.has(name)) return;
    usedNames.add(name);
    const ds = domains.filter((d) => !usedDomains.has(d.toLowerCase()));
    ds.forEach((d) => usedDomains.add(d.toLowerCase()));
    if (ds.length) out.push({ name, domains: ds, routes, includeRequestAttemptCount: true });
  };
  for (const vs of vsList) {
    const routes = buildHTTPRoutesForVirtualService(vs, ro);
    if (!routes.length) continue;
    for (const h of (vs.spec as VirtualServiceSpecType).hosts ?? []) {
      const lh = h.toLowerCase();
      const matched = lh.includes('*') ? services.filter((s) => hostMatch(lh, s.hostname)) : byHost.has(lh) ? [byHost.get(lh)!] : [];
      if (matched.length === 0) {
        emit(`${lh}:${port}`, withPort !== undefined ? [lh, `${lh}:${port}`] : [lh], routes);
        continue;
      }
      for (const svc of matched) {
        if (covered.has(svc.hostname)) continue;
        covered.add(svc.hostname);
        emit(`${svc.hostname}:${port}`, virtualHostDomains(svc, proxy.dnsDomain, withPort), routes);
      }
    }
  }
  for (const svc of services) {
    if (covered.has(svc.hostname)) continue;
    const cluster = outboundClusterName(svc.hostname, port);
    emit(`${svc.hostname}:${port}`, virtualHostDomains(svc, proxy.dnsDomain, withPort), [defaultOutboundRoute(cluster, `${svc.hostname}:${port}/*`, !!opts.grpc)]);
  }
  return sortByName(out);
}

/**
 * What one RDS generation for one proxy computes once and reuses across its
 * route names: the prepared (resolved, delegate-merged) VirtualServices and
 * the virtual hosts of each port. Entries are never mutated after caching.
 */
export interface SidecarRouteCache {
  prepared?: IstioConfig[];
  vhostsByPort: Map<number, VirtualHostJson[]>;
}

/** A sidecar outbound route configuration: `9080` or, for sniffed ports, `<fqdn>:<port>`. */
export function buildSidecarOutboundRouteConfig(push: PushContext, proxy: ProxyView, routeName: string, cache?: SidecarRouteCache): RouteConfigurationJson | undefined {
  const colon = routeName.lastIndexOf(':');
  const sniffed = colon > 0;
  const port = Number(sniffed ? routeName.slice(colon + 1) : routeName);
  if (!Number.isInteger(port) || port <= 0) return undefined;
  let vhosts: VirtualHostJson[];
  if (cache) {
    let v = cache.vhostsByPort.get(port);
    if (!v) {
      cache.prepared ??= preparedVirtualServices(push, proxy, ['mesh']);
      v = sidecarVirtualHosts(push, proxy, port, { prepared: cache.prepared });
      cache.vhostsByPort.set(port, v);
    }
    vhosts = v;
  } else vhosts = sidecarVirtualHosts(push, proxy, port);
  if (sniffed) {
    const host = routeName.slice(0, colon);
    vhosts = vhosts.filter((v) => v.domains?.includes(routeName) || v.domains?.includes(host) || v.name === routeName);
    // A copy (same key order): the cached virtual host stays as it was.
    if (vhosts.length === 1) vhosts[0] = { ...vhosts[0]!, domains: ['*'] };
  } else {
    vhosts = [...vhosts, catchAllVirtualHost(push.sidecarScope(proxy).outboundTrafficPolicy)];
  }
  return {
    name: routeName,
    virtualHosts: vhosts,
    validateClusters: false,
    maxDirectResponseBodySizeBytes: MAX_DIRECT_RESPONSE_BODY,
    ignorePortInHostMatching: true,
  };
}

/** Sidecar RDS: the named outbound route configurations, sharing the virtual hosts of a port between names. */
export function buildSidecarRoutes(push: PushContext, proxy: ProxyView, routeNames: string[]): RouteConfigurationJson[] {
  const out: RouteConfigurationJson[] = [];
  const cache: SidecarRouteCache = { vhostsByPort: new Map() };
  for (const name of routeNames) {
    const rc = buildSidecarOutboundRouteConfig(push, proxy, name, cache);
    if (rc) out.push(rc);
  }
  return out;
}
