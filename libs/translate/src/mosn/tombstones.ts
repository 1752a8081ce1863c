/**
 * Deletions MOSN can follow. MOSN v1.6.1 never deletes a listener or cluster
 * that disappears from a SotW response: it keeps serving the last version.
 * So a MOSN stream keeps receiving, for every name it was once sent and that
 * no longer exists, a tombstone under the same name: a listener on the same
 * address (and the same bind setting) whose only chain is a tcp_proxy to
 * `MosnBlackHoleCluster`, and a STATIC cluster with no hosts. Connections to
 * removed config then fail at once instead of reaching stale destinations. A
 * name that comes back replaces its tombstone. The caller keeps, per stream,
 * the listeners it sent (tombstones are pure functions of them).
 */
import type { ClusterJson, ListenerJson } from '@sextant/envoy';
import type { PushContext } from '@sextant/model';
import { tcpProxy } from '../listener/filters.js';
import { toProtoDuration } from '../common.js';
import { MOSN_TOMBSTONE_CLUSTER, type Json } from './common.js';

export function tombstoneListener(previous: ListenerJson): ListenerJson {
  const p = previous as Json;
  const out: Json = {
    name: p.name,
    address: p.address,
    filterChains: [{ filters: [tcpProxy(MOSN_TOMBSTONE_CLUSTER, MOSN_TOMBSTONE_CLUSTER)] }],
  };
  if (p.trafficDirection) out.trafficDirection = p.trafficDirection;
  if (p.bindToPort === false || p.deprecatedV1?.bindToPort === false) {
    out.bindToPort = false;
    out.deprecatedV1 = { bindToPort: false };
  }
  return out as ListenerJson;
}

export function tombstoneCluster(push: PushContext, name: string): ClusterJson {
  return { name, type: 'STATIC', connectTimeout: toProtoDuration(push.mesh.connectTimeout), lbPolicy: 'ROUND_ROBIN', loadAssignment: { clusterName: name, endpoints: [] } } as ClusterJson;
}

/** Listeners plus tombstones for the `previous` ones (by name) that are gone. */
export function withListenerTombstones(current: ListenerJson[], previous: ReadonlyMap<string, ListenerJson>): ListenerJson[] {
  const names = new Set(current.map((l) => l.name));
  const out = [...current];
  for (const [name, l] of previous) if (!names.has(name)) out.push(tombstoneListener(l));
  return out;
}

/** Tombstone clusters for the `previous` names not in `current`. */
export function clusterTombstones(push: PushContext, currentNames: ReadonlySet<string>, previous: Iterable<string>): ClusterJson[] {
  const out: ClusterJson[] = [];
  for (const name of previous) if (!currentNames.has(name)) out.push(tombstoneCluster(push, name));
  return out;
}
