/** The router generator: Istio gateways (Gateway servers → listeners and `http.<port>` routes). */
import { blackHoleCluster, buildOutboundServiceClusters } from '../cluster/cluster.js';
import { buildClusterLoadAssignments } from '../endpoint.js';
import { buildGatewayListeners } from '../listener/gateway.js';
import { buildGatewayRoute } from '../route/gateway.js';
import type { ProxyGenerator } from './types.js';
import type { RouteConfigurationJson } from '@sextant/envoy';

export const routerGenerator: ProxyGenerator = {
  kind: 'router',
  sharedClusters: buildOutboundServiceClusters,
  // Gateways get no inbound or passthrough clusters (istiod's buildGatewayClusters).
  proxyClusters: (push) => [blackHoleCluster(push)],
  listeners: (push, proxy) => buildGatewayListeners(push, proxy),
  routes: (push, proxy, names) => names.map((n) => buildGatewayRoute(push, proxy, n)).filter((rc): rc is RouteConfigurationJson => rc !== undefined),
  endpoints: buildClusterLoadAssignments,
};
