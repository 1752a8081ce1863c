/**
 * EDS for MOSN v1.6.1: MOSN replaces a cluster's hosts once per locality
 * group of a ClusterLoadAssignment, so only the last group would survive. A
 * MOSN proxy gets one group with every endpoint (each keeps its own weight;
 * MOSN has no locality priorities to lose).
 */
import type { ClusterLoadAssignmentJson } from '@sextant/envoy';
import type { Json } from './common.js';

export function mosnLoadAssignment(cla: ClusterLoadAssignmentJson): ClusterLoadAssignmentJson {
  const groups = (cla.endpoints ?? []) as Json[];
  if (groups.length <= 1) return cla;
  const lbEndpoints = groups.flatMap((g) => (g.lbEndpoints ?? []) as Json[]);
  return { ...cla, endpoints: [{ lbEndpoints, loadBalancingWeight: lbEndpoints.reduce((s, e) => s + ((e.loadBalancingWeight as number) ?? 1), 0), locality: {} }] } as ClusterLoadAssignmentJson;
}
