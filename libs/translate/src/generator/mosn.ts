/**
 * The MOSN generator: a sidecar's config in the form MOSN v1.6.1 reads
 * (the rewrites live in ../mosn/). What MOSN needs besides Envoy's clusters
 * is per proxy.
 */
import { mosnClusters, mosnExtraClusters, mosnListeners, mosnLoadAssignment, mosnRoutes } from '../mosn/index.js';
import { sidecarGenerator } from './sidecar.js';
import type { ProxyGenerator } from './types.js';

export const mosnGenerator: ProxyGenerator = {
  kind: 'mosn',
  sharedClusters: (push, proxy) => mosnClusters(push, proxy, sidecarGenerator.sharedClusters(push, proxy)),
  proxyClusters: (push, proxy) => [...mosnClusters(push, proxy, sidecarGenerator.proxyClusters(push, proxy)), ...mosnExtraClusters(push, proxy)],
  listeners: (push, proxy, opts) => mosnListeners(push, proxy, sidecarGenerator.listeners(push, proxy, opts), opts.issues),
  routes: (push, proxy, names, issues) => mosnRoutes(push, proxy, sidecarGenerator.routes(push, proxy, names), issues),
  endpoints: (push, proxy, names) => sidecarGenerator.endpoints(push, proxy, names).map(mosnLoadAssignment),
};
