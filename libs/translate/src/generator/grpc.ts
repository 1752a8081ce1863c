/** The proxyless gRPC generator (istiod's grpcgen, node metadata `GENERATOR: grpc`). */
import type { RouteConfigurationJson } from '@sextant/envoy';
import { buildGrpcClusters } from '../cluster/grpc.js';
import { buildClusterLoadAssignments } from '../endpoint.js';
import { buildGrpcListeners } from '../listener/grpc.js';
import { buildGrpcRouteConfig } from '../route/grpc.js';
import type { ProxyGenerator } from './types.js';

export const grpcGenerator: ProxyGenerator = {
  kind: 'grpc',
  sharedClusters: buildGrpcClusters,
  proxyClusters: () => [],
  listeners: (push, proxy, opts) => buildGrpcListeners(push, proxy, opts.names ?? []),
  routes: (push, proxy, names) => names.map((n) => buildGrpcRouteConfig(push, proxy, n)).filter((rc): rc is RouteConfigurationJson => rc !== undefined),
  endpoints: buildClusterLoadAssignments,
};
