/** RDS for proxyless gRPC (istiod's grpcgen): `outbound|<port>||<fqdn>`, virtual hosts with `:port` domains. Pure. */
import type { RouteConfigurationJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { sidecarVirtualHosts } from './sidecar.js';
import { parseClusterName } from '../names.js';

/**
 * The proxyless gRPC route configuration `outbound|<port>||<fqdn>` (istiod's
 * grpcgen RDS): the outbound virtual hosts of the whole port, every service
 * and VirtualService on it, not only the named host's. gRPC picks the
 * virtual host by its target's authority, so the other hosts cost nothing,
 * and istiod sends them.
 */
export function buildGrpcRouteConfig(push: PushContext, proxy: ProxyView, routeName: string): RouteConfigurationJson | undefined {
  const parsed = parseClusterName(routeName);
  if (!parsed || !parsed.host || !parsed.port) return undefined;
  const virtualHosts = sidecarVirtualHosts(push, proxy, parsed.port, { grpc: true, services: push.sidecarScope(proxy).services });
  return { name: routeName, virtualHosts };
}
