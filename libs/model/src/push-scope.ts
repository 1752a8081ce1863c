import type { ObjectKey } from '@sextant/api';
import { hostMatches, resolveShortName } from './labels.js';
import type { ProxyView, PushContext, PushScope, Service } from './types.js';

const ENDPOINT_KINDS = new Set(['EndpointSlice', 'Pod', 'WorkloadEntry', 'Node']);

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

type SourceIndex = { endpointSourcesOf?(key: ObjectKey): string[] | undefined };

/** Service keys (`ns/hostname`) whose endpoints the changed objects feed in either context; undefined = all. */
function endpointCandidates(previous: PushContext, next: PushContext, changed: ObjectKey[]): Set<string> | undefined {
  const p = previous as PushContext & SourceIndex;
  const n = next as PushContext & SourceIndex;
  if (!p.endpointSourcesOf || !n.endpointSourcesOf) return undefined;
  const out = new Set<string>();
  for (const k of changed) {
    const a = p.endpointSourcesOf(k);
    const b = n.endpointSourcesOf(k);
    if (a === undefined || b === undefined) return undefined;
    for (const x of a) out.add(x);
    for (const x of b) out.add(x);
  }
  return out;
}

/**
 * What a set of changed objects needs pushed, following istiod: changes that
 * only move endpoints (EndpointSlices, Pods, WorkloadEntries, or a
 * ServiceEntry whose services keep their shape) are EDS-only, limited to the
 * clusters of the services whose endpoints changed. Anything else is a full
 * push. A change that alters a service's workload identities
 * (subjectAltNames in CDS) or the endpoints of a DNS / static-in-CDS
 * service is full as well.
 */
export function pushScope(previous: PushContext, next: PushContext, changed: ObjectKey[]): PushScope {
  const full: PushScope = { full: true, edsClusters: undefined, affects: () => true };
  if (changed.length === 0) return { full: false, edsClusters: new Set(), affects: () => false };
  for (const k of changed) if (!ENDPOINT_KINDS.has(k.kind) && k.kind !== 'ServiceEntry') return full;

  const prevByKey = new Map(previous.allServices().map((s) => [`${s.namespace}/${s.hostname}`, s]));
  const nextByKey = new Map(next.allServices().map((s) => [`${s.namespace}/${s.hostname}`, s]));
  if (prevByKey.size !== nextByKey.size) return full;
  // Only the services an EndpointSlice/Pod change feeds can have new endpoints; other kinds compare all.
  const candidates = endpointCandidates(previous, next, changed);
  const clusters = new Set<string>();
  const hosts = new Set<string>();
  for (const [key, ns] of nextByKey) {
    const ps = prevByKey.get(key);
    if (!ps || !sameServiceShape(ps, ns)) return full;
    if (candidates && !candidates.has(key)) continue;
    for (const port of ns.ports) {
      const pp = ps.ports.find((p) => p.name === port.name)!;
      const before = JSON.stringify(previous.endpoints(ps, pp));
      const after = JSON.stringify(next.endpoints(ns, port));
      if (before === after) continue;
      if (ns.resolution !== 'ClientSideLB') return full; // endpoints live in CDS for DNS/static clusters
      if (previous.serviceAccounts(ps, pp).join(',') !== next.serviceAccounts(ns, port).join(',')) return full;
      hosts.add(ns.hostname);
      const prefix = `outbound|${port.port}|`;
      clusters.add(`${prefix}|${ns.hostname}`);
      for (const dr of [next, previous]) {
        for (const r of dr.configs('DestinationRule')) {
          if (!hostMatches(resolveShortName(String(r.spec.host ?? ''), r.namespace, next.domainSuffix), ns.hostname)) continue;
          for (const s of (r.spec.subsets ?? []) as Array<{ name: string }>) clusters.add(`${prefix}${s.name}|${ns.hostname}`);
        }
      }
    }
  }
  return {
    full: false,
    edsClusters: clusters,
    affects: (proxy: ProxyView) => [...hosts].some((h) => next.sidecarScope(proxy).hasService(h)),
  };
}
