/**
 * EnvoyFilter: selection of a proxy's patches and their application to its
 * generated resources (`applyEnvoyFilters`, the one hook in
 * `generateForProxy`), and what `/debug/config_issues` reports: the
 * proxy-independent checks (`envoyFilterIssues`) and the patches that failed
 * on some proxy's config (`envoyFilterApplyIssues`).
 */
import { compileRe2, type ValidationIssue } from '@sextant/api';
import type { ClusterJson, ListenerJson, RouteConfigurationJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { patchClusters, patchListeners, patchRouteConfigurations, recordHits, usable, type PatchedProxy } from './apply.js';
import { patchesFor, type ConfigPatch } from './select.js';
import { gatewayRouteName, gatewayServers } from '../gateway-servers.js';
import type { GatewayPortMap } from './apply.js';

/** istiod's MergedGateway.PortMap: each gateway route's port → the server ports of the servers it routes. */
function gatewayPortMap(push: PushContext, proxy: ProxyView): GatewayPortMap {
  const m = new Map<number, Set<number>>();
  for (const gs of gatewayServers(push, proxy)) {
    const route = gatewayRouteName(gs);
    if (!route) continue;
    const port = Number(route.split('.')[1]) || 0;
    let set = m.get(port);
    if (!set) m.set(port, (set = new Set()));
    const n = Number(gs.server.port?.number);
    if (Number.isInteger(n)) set.add(n);
  }
  return m;
}

export { envoyFiltersFor, patchesFor, proxyMatches, type ConfigPatch, type PatchContext } from './select.js';
export { effectiveOperation, insertedExtensionConfigs, OPERATIONS, patchClusters, patchListeners, patchKey, patchRouteConfigurations, recordHits, type PatchedProxy } from './apply.js';
export { mergeAnyWithAny, mergeMessage, normalize } from './merge.js';

interface Patchable {
  cds: ClusterJson[];
  lds: ListenerJson[];
  rds: RouteConfigurationJson[];
}

/**
 * The proxy's resources of one type with its EnvoyFilters applied. Only
 * Envoy sidecars and gateways are patched (istiod leaves proxyless gRPC
 * alone; MOSN is not Envoy). A patch that throws while applying goes to `issues`;
 * what is wrong with a patch itself is reported by `envoyFilterIssues`.
 */
export function applyEnvoyFilters<K extends keyof Patchable>(push: PushContext, proxy: ProxyView, kind: string, type: K, resources: Patchable[K], issues?: ValidationIssue[]): Patchable[K] {
  if (kind !== 'sidecar' && kind !== 'router') return resources;
  const patches = patchesFor(push, proxy);
  if (patches.length === 0) return resources;
  const k = kind as PatchedProxy;
  const found: ValidationIssue[] = [];
  const out = recordHits(appliedIn(push), (): Patchable[K] => {
    if (type === 'cds') {
      // Inbound clusters are named by port only: their `service` match is against the services of that port.
      const inboundHosts = (port: number) => push.serviceInstancesForProxy(proxy).filter((si) => si.endpoint.endpointPort === port).map((si) => si.service.hostname);
      return patchClusters(k, resources as ClusterJson[], patches, found, inboundHosts) as Patchable[K];
    }
    if (type === 'lds') return patchListeners(k, resources as ListenerJson[], patches, found) as Patchable[K];
    return patchRouteConfigurations(k, resources as RouteConfigurationJson[], patches, found, k === 'router' ? gatewayPortMap(push, proxy) : undefined) as Patchable[K];
  });
  if (found.length > 0) {
    issues?.push(...found);
    remember(push, found);
  }
  return out;
}

/** Keys (`namespace/name#index`) of the patches that matched something in some proxy's config built in a push (the EnvoyFilter status). */
const appliedPatches = new WeakMap<PushContext, Set<string>>();

/** The set a push records applied patches into. */
export function appliedIn(push: PushContext): Set<string> {
  let s = appliedPatches.get(push);
  if (!s) appliedPatches.set(push, (s = new Set()));
  return s;
}

/**
 * The patches (`namespace/name#index`) that matched something (a resource
 * merged, removed, added or inserted into; an extension config served) in
 * the config built for some proxy with this push so far.
 */
export function envoyFilterPatchesApplied(push: PushContext | undefined): ReadonlySet<string> {
  return (push && appliedPatches.get(push)) || new Set();
}

/** Patches that failed on some proxy's resources in a push (a MERGE across types, say), for /debug/config_issues. */
const applyFailures = new WeakMap<PushContext, Map<string, ValidationIssue>>();

function remember(push: PushContext, found: readonly ValidationIssue[]): void {
  let m = applyFailures.get(push);
  if (!m) applyFailures.set(push, (m = new Map()));
  for (const i of found) m.set(`${i.namespace}/${i.name}|${i.field}|${i.reason}`, i);
}

/**
 * The patches that could not apply to a proxy's generated config in this
 * push so far (they depend on what was generated, so `envoyFilterIssues`
 * cannot see them): each once, with its EnvoyFilter, field and reason.
 */
export function envoyFilterApplyIssues(push: PushContext | undefined): ValidationIssue[] {
  return push ? [...(applyFailures.get(push)?.values() ?? [])] : [];
}

/**
 * What is wrong with the mesh's EnvoyFilters regardless of the proxy: every
 * patch checked once, so an operation istiod ignores, a value Envoy could
 * not parse, an unknown `@type` or a BOOTSTRAP patch is reported once.
 */
export function envoyFilterIssues(push: PushContext): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const f of push.configs('EnvoyFilter')) {
    const patches: ConfigPatch[] = ((f.spec.configPatches ?? []) as Array<Record<string, any>>).map((cp, index) => ({
      filter: { kind: 'EnvoyFilter', namespace: f.namespace, name: f.name },
      index,
      applyTo: cp.applyTo ?? 'INVALID',
      operation: cp.patch?.operation ?? 'INVALID',
      context: 'ANY',
      value: cp.patch?.value,
    }));
    ((f.spec.configPatches ?? []) as Array<Record<string, any>>).forEach((cp, index) => {
      const re = cp.match?.proxy?.proxyVersion;
      if (typeof re !== 'string') return;
      const compiled = compileRe2(re);
      if (!compiled.ok) {
        issues.push({ kind: 'EnvoyFilter', namespace: f.namespace, name: f.name, field: `spec.configPatches[${index}].match.proxy.proxyVersion`, reason: `invalid regex: ${compiled.error}; istiod ignores the compile error, so the patch applies to every proxy version` });
      }
    });
    usable(patches, ['CLUSTER', 'LISTENER', 'LISTENER_FILTER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER', 'ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE', 'EXTENSION_CONFIG', 'BOOTSTRAP', 'INVALID'], issues);
  }
  return issues;
}

/**
 * What a proxy's EnvoyFilter patches depend on beyond the class key's other
 * parts: which patches select it (workloadSelector, targetRefs, proxy
 * version and metadata matches), so proxies that differ only there are not
 * given each other's cached config.
 */
export function envoyFilterClassKey(push: PushContext, proxy: ProxyView): string {
  return patchesFor(push, proxy)
    .map((p) => `${p.filter.namespace}/${p.filter.name}#${p.index}`)
    .join(',');
}
