import { TypeUrl, type RouteConfigurationJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { parseClusterName } from './names.js';

/** A config object a generated resource was built from. */
export interface ConfigRef {
  kind: string;
  namespace: string;
  name: string;
}

/** `filterMetadata.istio` as translation writes it (read from resources of any type, so every field is checked). */
interface IstioMetadata {
  config?: unknown;
  services?: unknown;
}

/** Kinds by the path segment istiod writes in `filterMetadata.istio.config`. */
const kindBySegment: Record<string, string> = {
  'virtual-service': 'VirtualService',
  'destination-rule': 'DestinationRule',
  gateway: 'Gateway',
  sidecar: 'Sidecar',
  'envoy-filter': 'EnvoyFilter',
  'service-entry': 'ServiceEntry',
  'authorization-policy': 'AuthorizationPolicy',
  'peer-authentication': 'PeerAuthentication',
  'request-authentication': 'RequestAuthentication',
  telemetry: 'Telemetry',
};

/**
 * The object named by istiod's config path
 * (`/apis/networking.istio.io/v1/namespaces/<ns>/virtual-service/<name>`),
 * or undefined when the path is not one.
 */
export function configRefFromPath(path: string): ConfigRef | undefined {
  const m = /^\/apis\/[^/]+\/[^/]+\/namespaces\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m) return undefined;
  const kind = kindBySegment[m[2]!];
  return kind ? { kind, namespace: m[1]!, name: m[3]! } : undefined;
}

export const configRefKey = (r: ConfigRef) => `${r.kind}/${r.namespace}/${r.name}`;

/**
 * Narrows a RouteConfiguration to the part Envoy's error names: proto
 * validation errors carry the path (`VirtualHosts[2]` … `Routes[0]`), so a
 * NACK is pinned to the route's VirtualService rather than every
 * VirtualService of the port.
 */
function narrowRoutes(rc: RouteConfigurationJson, errorDetail: string, accepted: RouteConfigurationJson | undefined): unknown {
  const vh = /VirtualHosts\[(\d+)\]/.exec(errorDetail);
  if (!vh || !Array.isArray(rc.virtualHosts)) return accepted ? changedVirtualHosts(rc, accepted) : rc;
  const host = rc.virtualHosts[Number(vh[1])];
  if (!host) return rc;
  const rt = /Routes\[(\d+)\]/.exec(errorDetail.slice(vh.index));
  if (!rt || !Array.isArray(host.routes) || !host.routes[Number(rt[1])]) return host;
  return host.routes[Number(rt[1])];
}

/**
 * Envoy truncates error_detail (4 KiB) and puts the resource dump before the
 * reason, so the path is often lost: then the virtual hosts that differ from
 * the version the proxy last accepted are the suspects.
 */
function changedVirtualHosts(rc: RouteConfigurationJson, accepted: RouteConfigurationJson): unknown {
  const before = new Map<string, string>();
  for (const vh of accepted.virtualHosts ?? []) before.set(String(vh.name), JSON.stringify(vh));
  const changed = (rc.virtualHosts ?? []).filter((vh) => before.get(String(vh.name)) !== JSON.stringify(vh));
  return changed.length ? changed : rc;
}

/**
 * Collects the provenance translation writes into resources, as istiod does:
 * `filterMetadata.istio.config` (the VirtualService of a route, the
 * DestinationRule of a cluster) and `filterMetadata.istio.services` (the
 * Service or ServiceEntry behind a cluster). Bounded walk: metadata sits
 * near the top of each message.
 */
function collect(push: PushContext, proxy: ProxyView, node: unknown, out: Map<string, ConfigRef>, depth: number): void {
  if (depth > 12 || node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const x of node) collect(push, proxy, x, out, depth + 1);
    return;
  }
  const o = node as Record<string, unknown>;
  const fm = o.filterMetadata as Record<string, unknown> | undefined;
  const istio = fm && typeof fm === 'object' ? (fm.istio as IstioMetadata | undefined) : undefined;
  if (istio && typeof istio === 'object') {
    if (typeof istio.config === 'string') {
      const ref = configRefFromPath(istio.config);
      if (ref) out.set(configRefKey(ref), ref);
    }
    if (Array.isArray(istio.services)) {
      for (const s of istio.services as Array<{ host?: unknown; namespace?: unknown } | null>) {
        if (typeof s?.host === 'string') addService(push, proxy, s.host, out, typeof s.namespace === 'string' ? s.namespace : undefined);
      }
    }
  }
  for (const [k, v] of Object.entries(o)) {
    if (k === 'filterMetadata' || typeof v !== 'object') continue;
    collect(push, proxy, v, out, depth + 1);
  }
}

function addService(push: PushContext, proxy: ProxyView, host: string, out: Map<string, ConfigRef>, namespace?: string): void {
  const svc = (namespace ? push.allServices().find((s) => s.hostname === host && s.namespace === namespace) : undefined) ?? push.serviceByHostname(host, proxy.namespace);
  if (!svc) return;
  const ref = { ...svc.attributes.origin };
  out.set(configRefKey(ref), ref);
}

function addDestinationRule(push: PushContext, proxy: ProxyView, host: string, out: Map<string, ConfigRef>): void {
  for (const f of push.destinationRule(proxy, host)?.from ?? []) {
    const ref = { kind: 'DestinationRule', namespace: f.namespace, name: f.name };
    out.set(configRefKey(ref), ref);
  }
}

/**
 * The config objects one generated resource was built from. Read when a proxy
 * NACKs (rare), never on the push path: the resource's own provenance
 * metadata first, narrowed to the part Envoy's error names (or, when the
 * error does not say, to what changed since the accepted version); then what the
 * resource's name implies (a cluster's service and DestinationRule; a
 * gateway's Gateways; a sidecar's Sidecar).
 */
export function resourceProvenance(
  push: PushContext,
  proxy: ProxyView,
  typeUrl: string,
  name: string,
  resource: unknown,
  errorDetail = '',
  /** The version of this resource the proxy last accepted, when it has one. */
  accepted?: unknown,
): ConfigRef[] {
  const out = new Map<string, ConfigRef>();
  let part = resource;
  if (typeUrl === TypeUrl.RouteConfiguration && resource && typeof resource === 'object') {
    part = narrowRoutes(resource as RouteConfigurationJson, errorDetail, accepted && typeof accepted === 'object' ? (accepted as RouteConfigurationJson) : undefined);
  }
  collect(push, proxy, part, out, 0);
  if (typeUrl === TypeUrl.Cluster || typeUrl === TypeUrl.ClusterLoadAssignment) {
    const c = parseClusterName(name);
    if (c?.host && c.direction === 'outbound') {
      if (typeUrl === TypeUrl.ClusterLoadAssignment) addService(push, proxy, c.host, out);
      if (c.subset || typeUrl === TypeUrl.ClusterLoadAssignment) addDestinationRule(push, proxy, c.host, out);
    }
  }
  if (typeUrl === TypeUrl.Listener) {
    for (const g of push.gatewaysForProxy(proxy)) out.set(configRefKey(g), { kind: 'Gateway', namespace: g.namespace, name: g.name });
    const sidecar = proxy.type === 'sidecar' ? push.sidecarScope(proxy).sidecar : undefined;
    if (sidecar) out.set(configRefKey({ kind: 'Sidecar', namespace: sidecar.namespace, name: sidecar.name }), { kind: 'Sidecar', namespace: sidecar.namespace, name: sidecar.name });
  }
  if (typeUrl === TypeUrl.RouteConfiguration && proxy.type === 'router' && out.size === 0) {
    for (const g of push.gatewaysForProxy(proxy)) out.set(configRefKey(g), { kind: 'Gateway', namespace: g.namespace, name: g.name });
  }
  return [...out.values()].sort((a, b) => configRefKey(a).localeCompare(configRefKey(b)));
}
