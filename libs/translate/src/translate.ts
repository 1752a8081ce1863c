/**
 * Offline translation: config objects + a proxy → the xDS resources the
 * server would send it, as Envoy JSON, through the server's own assembly
 * path (`generateForProxy`). No I/O (the CLI reads files and passes the parsed objects in).
 */
import { validateObject, type ValidationIssue } from '@sextant/api';
import type { ClusterJson, ClusterLoadAssignmentJson, ListenerJson, RouteConfigurationJson } from '@sextant/envoy';
import { parseProxy, PushContext, type ConfigObjectLike, type MeshConfig, type ProxyView } from '@sextant/model';
import { envoyFilterIssues } from './envoyfilter/index.js';
import { generateForProxy, type XdsShortType } from './generator/index.js';
import { securityPolicyIssues } from './security/filters.js';

export const ALL_TYPES: readonly XdsShortType[] = ['lds', 'rds', 'cds', 'eds'];

export interface TranslateInput {
  /** Validated objects (e.g. from the folder source's loader, or `parseObjects`). */
  objects: ConfigObjectLike[];
  nodeId: string;
  metadata?: Record<string, unknown>;
  /** Types to produce (default all four). RDS and EDS names come from the LDS / CDS output, as Envoy would ask. */
  types?: readonly XdsShortType[];
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

/** Throws ProxyParseError for a bad node ID or metadata. */
export function translateConfig(input: TranslateInput): TranslateOutput {
  const push = PushContext.build(input.objects, {
    domainSuffix: input.domainSuffix ?? 'cluster.local',
    trustDomain: input.trustDomain ?? 'cluster.local',
    meshConfig: input.meshConfig,
    version: 'offline',
  });
  const proxy = push.resolveProxy(parseProxy(input.nodeId, input.metadata ?? {}));
  const out: TranslateOutput = { proxy, issues: [...push.issues, ...securityPolicyIssues(push), ...envoyFilterIssues(push)] };
  // RDS and EDS get the names Envoy would ask for after this LDS and CDS, as in the server.
  for (const t of input.types ?? ALL_TYPES) {
    if (t === 'lds') out.lds = generateForProxy(push, proxy, 'lds', undefined, out.issues);
    else if (t === 'rds') out.rds = generateForProxy(push, proxy, 'rds', undefined, out.issues);
    else if (t === 'cds') out.cds = generateForProxy(push, proxy, 'cds', undefined, out.issues);
    else out.eds = generateForProxy(push, proxy, 'eds');
  }
  return out;
}
