/**
 * CDS for MOSN v1.6.1. MOSN takes a cluster's TLS from `transport_socket`, or
 * else from the last TLS entry of `transport_socket_matches`, which it then
 * applies to every endpoint whatever its labels: auto mTLS would send TLS to
 * plaintext workloads. So TLS is chosen per cluster: the `tlsMode-istio`
 * socket becomes the cluster's socket when every endpoint of the cluster
 * carries `tlsMode: istio`, and the cluster is plaintext otherwise. SDS
 * secrets come over the proxy's Unix socket.
 */
import type { ClusterJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { inboundPassthroughCluster } from '../cluster/cluster.js';
import { toProtoDuration } from '../common.js';
import { buildClusterLoadAssignments } from '../endpoint.js';
import { MOSN_INBOUND_PASSTHROUGH, MOSN_TOMBSTONE_CLUSTER, withMosnSds, type Json } from './common.js';

/** Every endpoint the cluster would get carries `tlsMode: istio` (and there is at least one). */
function allEndpointsInMesh(push: PushContext, proxy: ProxyView, c: Json): boolean {
  let groups: Json[];
  if (c.type === 'EDS') groups = (buildClusterLoadAssignments(push, proxy, [c.edsClusterConfig?.serviceName ?? c.name])[0]?.endpoints ?? []) as Json[];
  else groups = (c.loadAssignment?.endpoints ?? []) as Json[];
  const eps = groups.flatMap((g) => (g.lbEndpoints ?? []) as Json[]);
  return eps.length > 0 && eps.every((e) => e.metadata?.filterMetadata?.['envoy.transport_socket_match']?.tlsMode === 'istio');
}

function mosnCluster(push: PushContext, proxy: ProxyView, c: Json): Json {
  const matches = c.transportSocketMatches as Json[] | undefined;
  if (!matches?.length) return c;
  const { transportSocketMatches: _m, ...out } = c;
  const tls = matches.find((m) => m.match?.tlsMode === 'istio')?.transportSocket;
  if (tls && allEndpointsInMesh(push, proxy, c)) out.transportSocket = tls;
  return out;
}

/** The MOSN form of outbound (shared) clusters. */
export function mosnClusters(push: PushContext, proxy: ProxyView, clusters: ClusterJson[]): ClusterJson[] {
  return clusters.map((c) => withMosnSds(mosnCluster(push, proxy, c as Json), proxy) as ClusterJson);
}

/** The tombstone target: a STATIC cluster with no hosts (connections to it fail at once). */
export function mosnTombstoneTargetCluster(push: PushContext): ClusterJson {
  return {
    name: MOSN_TOMBSTONE_CLUSTER,
    type: 'STATIC',
    connectTimeout: toProtoDuration(push.mesh.connectTimeout),
    lbPolicy: 'ROUND_ROBIN',
    loadAssignment: { clusterName: MOSN_TOMBSTONE_CLUSTER, endpoints: [] },
  } as ClusterJson;
}

/** The clusters a MOSN sidecar needs besides Envoy's: `InboundPassthroughClusterIpv4` and the tombstone target. */
export function mosnExtraClusters(push: PushContext, proxy: ProxyView): ClusterJson[] {
  const inbound = { ...(inboundPassthroughCluster(push, proxy) as Json), name: MOSN_INBOUND_PASSTHROUGH, altStatName: `${MOSN_INBOUND_PASSTHROUGH};` };
  return [inbound as ClusterJson, mosnTombstoneTargetCluster(push)];
}
