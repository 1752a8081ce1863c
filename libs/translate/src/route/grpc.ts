/** RDS for proxyless gRPC (istiod's grpcgen): `outbound|<port>||<fqdn>`, virtual hosts with `:port` domains. Pure. */
import type { RouteConfigurationJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { hostMatch, sidecarVirtualHosts } from './sidecar.js';
import { parseClusterName } from '../names.js';

/** The proxyless gRPC route configuration `outbound|<port>||<fqdn>` (istiod's grpcgen RDS). */
export function buildGrpcRouteConfig(push: PushContext, proxy: ProxyView, routeName: string): RouteConfigurationJson | undefined {
  const parsed = parseClusterName(routeName);
  if (!parsed || !parsed.host || !parsed.port) return undefined;
  const want = parsed.host.toLowerCase();
  const all = sidecarVirtualHosts(push, proxy, parsed.port, { grpc: true, services: push.sidecarScope(proxy).services });
  const hostPort = `${want}:${parsed.port}`;
  const vhosts = all.filter((vh) =>
    (vh.domains ?? []).some((d) => {
      const ld = d.toLowerCase();
      if (ld === want || ld === hostPort) return true;
      const [dh, dp] = ld.includes(':') && !ld.startsWith('[') ? [ld.slice(0, ld.lastIndexOf(':')), ld.slice(ld.lastIndexOf(':') + 1)] : [ld, ''];
      if (dh.startsWith('*') && (dp === '' || dp === String(parsed.port)) && hostMatch(dh, want)) return true;
      return false;
    }),
  );
  return { name: routeName, virtualHosts: vhosts };
}

