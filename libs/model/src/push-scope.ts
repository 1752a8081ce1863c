import type { ObjectKey } from '@sextant/api';
import type { EndpointUpdate } from './endpoint-index.js';
import { isEndpointKind } from './endpoint-index.js';
import { configKeysOf, proxyDependsOn } from './proxy-dependencies.js';
import type { PushContext, PushScope, Service } from './types.js';

function sameServiceShape(a: Service, b: Service): boolean {
  return (
    a.resolution === b.resolution &&
    a.clusterVIP === b.clusterVIP &&
    a.addresses.join(',') === b.addresses.join(',') &&
    a.exportTo.join(',') === b.exportTo.join(',') &&
    a.meshExternal === b.meshExternal &&
    JSON.stringify(a.ports) === JSON.stringify(b.ports) &&
    JSON.stringify(a.labels) === JSON.stringify(b.labels)
  );
}

/**
 * The EDS cluster names of services (`namespace/hostname` keys): the default
 * cluster of every port and one per DestinationRule subset, in each context
 * given (a subset renamed by the same change is in one of them).
 */
export function edsClustersFor(serviceKeys: Iterable<string>, ...contexts: PushContext[]): Set<string> {
  const out = new Set<string>();
  for (const key of serviceKeys) {
    for (const push of contexts) {
      const svc = push.serviceByKey(key);
      if (!svc) continue;
      const hostname = svc.hostname;
      const subsets = push.destinationRuleSubsets(hostname);
      for (const port of svc.ports) {
        out.add(`outbound|${port.port}||${hostname}`);
        for (const s of subsets) out.add(`outbound|${port.port}|${s}|${hostname}`);
      }
    }
  }
  return out;
}

/**
 * What a config change needs pushed, following istiod. Endpoint events never
 * come here: the EndpointIndex takes them and names the services whose
 * endpoints changed (an endpoint kind here is one the index asked a full push
 * for). A change to ServiceEntries that keeps every service's shape and only
 * moves EDS endpoints (`endpoints`, what the rebuild changed in the index) is
 * EDS-only for those services' clusters; anything else is a full push, to
 * the proxies that depend on a changed config.
 */
export function pushScope(previous: PushContext, next: PushContext, changed: ObjectKey[], endpoints: EndpointUpdate): PushScope {
  // A full push reaches the proxies that depend on what changed, in either context (istiod's proxy dependencies).
  const keys = configKeysOf(changed, [next, previous]);
  const full: PushScope = { full: true, edsClusters: undefined, affects: (proxy) => proxyDependsOn(next, proxy, keys, previous) };
  if (changed.length === 0) return { full: false, edsClusters: new Set(), affects: () => false };
  for (const k of changed) if (k.kind !== 'ServiceEntry' || isEndpointKind(k.kind)) return full;
  const prevByKey = new Map(previous.allServices().map((s) => [`${s.namespace}/${s.hostname}`, s]));
  const nextServices = next.allServices();
  if (prevByKey.size !== nextServices.length) return full;
  for (const s of nextServices) {
    const ps = prevByKey.get(`${s.namespace}/${s.hostname}`);
    if (!ps || !sameServiceShape(ps, s)) return full;
  }
  // Endpoints in CDS, or (Passthrough services) in per-pod listeners and name tables: not EDS alone.
  for (const t of endpoints.services.values()) if (t !== 'incremental') return full;
  // A ServiceEntry's subjectAltNames are in CDS.
  for (const s of nextServices) {
    if (s.attributes.serviceRegistry !== 'External') continue;
    const ps = prevByKey.get(`${s.namespace}/${s.hostname}`)!;
    for (const port of s.ports) if (previous.serviceAccounts(ps, port).join(',') !== next.serviceAccounts(s, port).join(',')) return full;
  }
  const hosts = new Set([...endpoints.services.keys()].map((k) => k.slice(k.indexOf('/') + 1)));
  return {
    full: false,
    edsClusters: edsClustersFor(endpoints.services.keys(), next, previous),
    affects: (proxy) => [...hosts].some((h) => next.sidecarScope(proxy).hasService(h)),
  };
}
