/** RDS for gateways: `http.<port>` and `https.<port>.<portName>.<gateway>.<namespace>`, from the VirtualServices bound to each server. Pure. */
import type { RouteConfigurationJson, RouteJson, VirtualHostJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { admittedHosts, gatewayRouteName, gatewayServers, gatewayVirtualServices, serverHosts } from '../gateway-servers.js';
import { hashForDestination } from './hash.js';
import { buildHTTPRoutesForVirtualService, isCatchAllRoute, type RouteOptions } from './translate.js';


/** A gateway route configuration (`http.<port>` or `https.<port>...`). */
export function buildGatewayRoute(push: PushContext, proxy: ProxyView, routeName: string): RouteConfigurationJson | undefined {
  const servers = gatewayServers(push, proxy).filter((gs) => gatewayRouteName(gs) === routeName);
  if (servers.length === 0) return undefined;
  const vhosts = new Map<string, VirtualHostJson & { name: string; routes: RouteJson[] }>();
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
      lookupHash: (d) => hashForDestination(push, proxy, d),
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
    const normal = v.routes.filter((r) => !isCatchAllRoute(r));
    const catchAll = v.routes.filter((r) => isCatchAllRoute(r));
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
  };
}

