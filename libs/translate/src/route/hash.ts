/**
 * Which consistent hash a route carries (istiod's route.HashForHTTPDestination
 * and hashForService): the DestinationRule of the route's destination host as
 * the proxy sees it, the subset's port-level hash over the subset's hash over
 * the rule's port-level hash over the rule's. Port-level entries count only
 * when the destination names its port. Pure.
 */
import type { ConsistentHash, HTTPRouteDestination, TrafficPolicy } from '@sextant/api';
import type { ProxyView, PushContext, Service, ServicePort } from '@sextant/model';

function portHash(tp: TrafficPolicy | undefined, port: number | undefined): ConsistentHash | undefined {
  if (port === undefined) return undefined;
  return tp?.portLevelSettings?.find((p) => p.port?.number === port)?.loadBalancer?.consistentHash;
}

/** The consistent hash for a VirtualService route destination. */
export function hashForDestination(push: PushContext, proxy: ProxyView, dst: HTTPRouteDestination): ConsistentHash | undefined {
  const dest = dst.destination;
  if (!dest?.host) return undefined;
  const dr = push.destinationRule(proxy, dest.host);
  if (!dr) return undefined;
  const tp = dr.spec.trafficPolicy as TrafficPolicy | undefined;
  const port = dest.port?.number;
  const subset = ((dr.spec.subsets ?? []) as Array<{ name: string; trafficPolicy?: TrafficPolicy }>).find((s) => s.name === (dest.subset ?? ''));
  return portHash(subset?.trafficPolicy, port) ?? subset?.trafficPolicy?.loadBalancer?.consistentHash ?? portHash(tp, port) ?? tp?.loadBalancer?.consistentHash;
}

/** The consistent hash for a service's default route (no VirtualService). */
export function hashForService(push: PushContext, proxy: ProxyView, svc: Service, port: ServicePort): ConsistentHash | undefined {
  const dr = push.destinationRule(proxy, svc.hostname);
  const tp = dr?.spec.trafficPolicy as TrafficPolicy | undefined;
  return portHash(tp, port.port) ?? tp?.loadBalancer?.consistentHash;
}
