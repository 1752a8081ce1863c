/** The sidecar generator (istiod's ConfigGeneratorImpl for SidecarProxy): Envoy sidecars with iptables or without interception. */
import { buildOutboundServiceClusters, buildSidecarProxyClusters } from '../cluster/cluster.js';
import { buildClusterLoadAssignments } from '../endpoint.js';
import { buildSidecarListeners } from '../listener/sidecar.js';
import { buildSidecarRoutes } from '../route/sidecar.js';
import type { ProxyGenerator } from './types.js';

export const sidecarGenerator: ProxyGenerator = {
  kind: 'sidecar',
  sharedClusters: buildOutboundServiceClusters,
  proxyClusters: buildSidecarProxyClusters,
  listeners: buildSidecarListeners,
  routes: (push, proxy, names) => buildSidecarRoutes(push, proxy, names),
  endpoints: buildClusterLoadAssignments,
};
