/**
 * The one assembly path from a PushContext and a proxy to its xDS resources,
 * used by the server, `sextant translate` and the golden tests: one
 * generator per proxy kind, picked by `generatorFor`, and `generateForProxy`
 * to build one type. Pure.
 */
import type { ValidationIssue } from '@sextant/api';
import type { ClusterJson, ClusterLoadAssignmentJson, ListenerJson, RouteConfigurationJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { applyEnvoyFilters } from '../envoyfilter/index.js';
import { isMosnProxy } from '../mosn/index.js';
import { applyTelemetryToClusters, applyTelemetryToListeners, istioFilterSupport } from '../telemetry/index.js';
import { withIstioAlpnFilter } from '../listener/filters.js';
import { grpcGenerator } from './grpc.js';
import { mosnGenerator } from './mosn.js';
import { routerGenerator } from './router.js';
import { sidecarGenerator } from './sidecar.js';
import type { ListenerOptions, ProxyGenerator, XdsResources, XdsShortType } from './types.js';

export type { ListenerOptions, ProxyGenerator, ProxyKind, XdsResources, XdsShortType } from './types.js';
export { grpcGenerator, mosnGenerator, routerGenerator, sidecarGenerator };

/** The generator for a proxy: GENERATOR grpc → grpc, router → gateway, MOSN sidecar → mosn, else sidecar. */
export function generatorFor(proxy: ProxyView): ProxyGenerator {
  if (proxy.generator === 'grpc') return grpcGenerator;
  if (proxy.type === 'router') return routerGenerator;
  if (isMosnProxy(proxy)) return mosnGenerator;
  return sidecarGenerator;
}

/** Every cluster of a proxy: the shared ones first; the first of two clusters with one name wins, as in istiod. */
export function buildClusters(push: PushContext, proxy: ProxyView): ClusterJson[] {
  const g = generatorFor(proxy);
  const seen = new Set<string>();
  return [...g.sharedClusters(push, proxy), ...g.proxyClusters(push, proxy)].filter((c) => !seen.has(c.name ?? '') && seen.add(c.name ?? ''));
}

/** Route configuration names the listeners refer to (HCM `rds.routeConfigName`), as Envoy would ask for them. */
export function routeNamesOf(listeners: unknown): string[] {
  const names = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const rds = o.rds as { routeConfigName?: unknown } | undefined;
      if (rds && typeof rds.routeConfigName === 'string') names.add(rds.routeConfigName);
      for (const x of Object.values(o)) walk(x);
    }
  };
  walk(listeners);
  return [...names].sort();
}

/** EDS service names of the EDS clusters, as Envoy would ask for them. */
export function edsNamesOf(clusters: ClusterJson[]): string[] {
  return clusters.filter((c) => c.type === 'EDS').map((c) => c.edsClusterConfig?.serviceName ?? c.name ?? '');
}

/**
 * The resources of one xDS type for a proxy (`proxy` from
 * `push.resolveProxy`). `names` are the resources the proxy asked for:
 * undefined for LDS and CDS means all of them (a wildcard watch); undefined
 * for RDS and EDS means the names Envoy would ask for after this proxy's LDS
 * and CDS. `issues` receives what the proxy's data plane cannot express.
 */
export function generateForProxy<T extends XdsShortType>(push: PushContext, proxy: ProxyView, type: T, names?: readonly string[], issues?: ValidationIssue[]): XdsResources[T];
export function generateForProxy(push: PushContext, proxy: ProxyView, type: XdsShortType, names?: readonly string[], issues?: ValidationIssue[]): XdsResources[XdsShortType] {
  const g = generatorFor(proxy);
  // Istio's telemetry is part of what the sidecar and gateway builders produce (istiod adds it while building).
  const telemetry = g.kind === 'sidecar' || g.kind === 'router';
  switch (type) {
    // EnvoyFilters patch what the generator built (istiod: envoyfilter.Apply*Patches).
    case 'cds':
      return applyEnvoyFilters(push, proxy, g.kind, 'cds', withClusterTelemetry(proxy, buildClusters(push, proxy)), issues);
    case 'lds': {
      const built = g.listeners(push, proxy, { ...(names ? { names: [...names] } : {}), ...(issues ? { issues } : {}) });
      // istio.alpn is part of istiod's outbound and gateway HCMs; only istio-proxy can load it.
      const listeners = telemetry ? withIstioAlpnFilter(built, istioFilterSupport(proxy).alpn) : built;
      return applyEnvoyFilters(push, proxy, g.kind, 'lds', telemetry ? applyTelemetryToListeners(push, proxy, listeners) : listeners, issues);
    }
    case 'rds':
      return applyEnvoyFilters(push, proxy, g.kind, 'rds', g.routes(push, proxy, names ? [...names] : routeNamesOf(g.listeners(push, proxy, {})), issues), issues);
    case 'eds':
      return g.endpoints(push, proxy, names ? [...names] : edsNamesOf(buildClusters(push, proxy)));
  }
}

/** Clusters with Istio's telemetry (the upstream metadata exchange) for sidecars and gateways; others unchanged. */
export function withClusterTelemetry<C extends ClusterJson>(proxy: ProxyView, clusters: C[]): C[] {
  const kind = generatorFor(proxy).kind;
  return kind === 'sidecar' || kind === 'router' ? (applyTelemetryToClusters(proxy, clusters) as C[]) : clusters;
}

/** Listeners with Istio's telemetry for sidecars and gateways (for callers that build listeners outside generateForProxy). */
export function withListenerTelemetry(push: PushContext, proxy: ProxyView, listeners: ListenerJson[]): ListenerJson[] {
  const kind = generatorFor(proxy).kind;
  return kind === 'sidecar' || kind === 'router' ? applyTelemetryToListeners(push, proxy, listeners) : listeners;
}

/** LDS for a proxy, by kind (tests and callers that pass listener options such as `inboundTls`). */
export function buildListeners(push: PushContext, proxy: ProxyView, opts: ListenerOptions = {}): ListenerJson[] {
  return generatorFor(proxy).listeners(push, proxy, opts);
}

/** RDS for a proxy, by kind: the named route configurations. */
export function buildRoutes(push: PushContext, proxy: ProxyView, routeNames: string[], issues?: ValidationIssue[]): RouteConfigurationJson[] {
  return generatorFor(proxy).routes(push, proxy, routeNames, issues);
}

/** EDS for a proxy, by kind: ClusterLoadAssignments for the names it watches. */
export function buildEndpoints(push: PushContext, proxy: ProxyView, clusterNames: string[]): ClusterLoadAssignmentJson[] {
  return generatorFor(proxy).endpoints(push, proxy, clusterNames);
}
