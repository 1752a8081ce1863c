/**
 * Offline translation: config objects + a proxy → the xDS resources the
 * server would send it, as Envoy JSON. The same builders the server uses;
 * no I/O (the CLI reads files and passes the parsed objects in).
 */
import { validateObject, type ValidationIssue } from '@sextant/api';
import type { ClusterJson, ClusterLoadAssignmentJson, ListenerJson, RouteConfigurationJson } from '@sextant/envoy';
import { parseProxy, PushContext, type ConfigObjectLike, type MeshConfig, type ProxyView } from '@sextant/model';
import { buildClusters } from './cluster.js';
import { buildEndpoints } from './endpoint.js';
import { buildListeners } from './listener.js';
import { buildRoutes } from './route.js';
import { authorizationPolicyIssues } from './security/authz.js';

export type XdsShortType = 'lds' | 'rds' | 'cds' | 'eds';

export interface TranslateInput {
  /** Validated objects (e.g. from the folder source's loader, or `parseObjects`). */
  objects: ConfigObjectLike[];
  nodeId: string;
  metadata?: Record<string, unknown>;
  /** Types to produce (default all four). RDS and EDS names come from the LDS / CDS output, as Envoy would ask. */
  types?: XdsShortType[];
  domainSuffix?: string;
  trustDomain?: string;
  meshConfig?: MeshConfig;
}

export interface TranslateOutput {
  proxy: ProxyView;
  lds?: ListenerJson[];
  rds?: RouteConfigurationJson[];
  cds?: ClusterJson[];
  eds?: ClusterLoadAssignmentJson[];
  /** Semantic problems in the config (the valid rest is still translated). */
  issues: ValidationIssue[];
}

/** Validates raw objects (parsed YAML/JSON documents); invalid ones are reported and left out. */
export function parseObjects(raw: unknown[], defaultNamespace = 'default'): { objects: ConfigObjectLike[]; issues: ValidationIssue[] } {
  const objects: ConfigObjectLike[] = [];
  const issues: ValidationIssue[] = [];
  for (const r of raw) {
    if (r === null || r === undefined) continue;
    const res = validateObject(r, { defaultNamespace });
    if (res.ok) objects.push(res.object);
    else issues.push(...res.issues);
  }
  return { objects, issues };
}

/** Route configuration names referenced by listeners (HCM `rds.routeConfigName`). */
export function routeNamesOf(listeners: unknown): string[] {
  const names = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const rds = o.rds as { routeConfigName?: string } | undefined;
      if (rds && typeof rds.routeConfigName === 'string') names.add(rds.routeConfigName);
      for (const x of Object.values(o)) walk(x);
    }
  };
  walk(listeners);
  return [...names].sort();
}

/** EDS service names of the EDS clusters. */
export function edsNamesOf(clusters: ClusterJson[]): string[] {
  return clusters.filter((c) => c.type === 'EDS').map((c) => c.edsClusterConfig?.serviceName ?? c.name!);
}

/** Throws ProxyParseError for a bad node ID or metadata. */
export function translateConfig(input: TranslateInput): TranslateOutput {
  const push = PushContext.build(input.objects, {
    domainSuffix: input.domainSuffix ?? 'cluster.local',
    trustDomain: input.trustDomain ?? 'cluster.local',
    meshConfig: input.meshConfig,
    version: 'offline',
  });
  const proxy = push.resolveProxy(parseProxy(input.nodeId, input.metadata ?? {}));
  const types = new Set(input.types ?? ['lds', 'rds', 'cds', 'eds']);
  const out: TranslateOutput = { proxy, issues: [...push.issues, ...authorizationPolicyIssues(push)] };
  let clusters: ClusterJson[] | undefined;
  let listeners: ListenerJson[] | undefined;
  if (types.has('cds') || types.has('eds')) clusters = buildClusters(push, proxy);
  if (types.has('lds') || types.has('rds')) listeners = buildListeners(push, proxy);
  if (types.has('cds')) out.cds = clusters;
  if (types.has('eds')) out.eds = buildEndpoints(push, proxy, edsNamesOf(clusters ?? []));
  if (types.has('lds')) out.lds = listeners;
  if (types.has('rds')) out.rds = buildRoutes(push, proxy, routeNamesOf(listeners ?? []), out.issues);
  return out;
}
