/**
 * Clusters for proxyless gRPC clients (GENERATOR=grpc), shaped like istiod's
 * grpcgen: EDS clusters over ADS named `outbound|port|subset|host`, with the
 * load-balancing policy gRPC understands (ROUND_ROBIN or RING_HASH).
 */
import type { ClusterJson } from '@sextant/envoy';
import type { TrafficPolicy } from '@sextant/api';
import type { ProxyView, PushContext } from '@sextant/model';
import { applyLoadBalancer, mergeSubsetPolicy, portLevelPolicy, type PolicyParts } from './policy.js';
import { buildSubsetKey } from '../names.js';

/** istiod's grpcgen applyTrafficPolicy: load balancing gRPC implements, and max_requests (gRFC A32) from http2MaxRequests. */
function grpcCluster(name: string, policy: PolicyParts | undefined): ClusterJson {
  // As istiod's grpcgen edsCluster: alt_stat_name with the ';' delimiter, an ADS config source without resource_api_version.
  const c: ClusterJson = { name, altStatName: `${name};`, type: 'EDS', edsClusterConfig: { serviceName: name, edsConfig: { ads: {} } } };
  const lb = policy?.loadBalancer;
  if (lb?.consistentHash) applyLoadBalancer(c, { consistentHash: lb.consistentHash }, undefined);
  else if (lb?.simple === 'LEAST_REQUEST') c.lbPolicy = 'LEAST_REQUEST';
  else c.lbPolicy = 'ROUND_ROBIN';
  const maxRequests = policy?.connectionPool?.http?.http2MaxRequests ?? 0;
  if (maxRequests > 0) c.circuitBreakers = { thresholds: [{ maxRequests }] };
  return c;
}

export function buildGrpcClusters(push: PushContext, proxy: ProxyView): ClusterJson[] {
  const out: ClusterJson[] = [];
  for (const svc of push.servicesForProxy(proxy)) {
    if (svc.resolution !== 'ClientSideLB') continue;
    const dr = push.destinationRule(proxy, svc.hostname);
    for (const port of svc.ports) {
      if (port.protocol === 'UDP') continue;
      const policy = portLevelPolicy(dr?.spec.trafficPolicy as TrafficPolicy | undefined, port.port);
      out.push(grpcCluster(buildSubsetKey('outbound', '', svc.hostname, port.port), policy));
      for (const s of (dr?.spec.subsets ?? []) as Array<{ name: string; trafficPolicy?: TrafficPolicy }>)
        out.push(grpcCluster(buildSubsetKey('outbound', s.name, svc.hostname, port.port), mergeSubsetPolicy(policy, s.trafficPolicy, port.port)));
    }
  }
  return out;
}
