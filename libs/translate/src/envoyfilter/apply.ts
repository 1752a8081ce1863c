/**
 * Applies EnvoyFilter patches to a proxy's generated clusters, listeners and
 * route configurations with istiod's semantics (pilot/pkg/networking/core/
 * envoyfilter: cluster_patch, listener_patch, rc_patch). As there, patches are
 * grouped by `applyTo` and applied per resource from the outside in: a
 * listener's LISTENER patches, then its LISTENER_FILTER patches, then per
 * filter chain the FILTER_CHAIN, NETWORK_FILTER and HTTP_FILTER patches
 * (list operations first, MERGE of the resulting filters after); ADDed
 * listeners, chains, clusters and virtual hosts are appended after the
 * generated ones are patched and are not patched themselves. Operations
 * istiod ignores for an `applyTo` are skipped here too, and reported; a patch
 * that cannot apply (a value Envoy could not parse, an unknown `@type`, a
 * typed_config MERGE across types) is reported against its EnvoyFilter and
 * skipped: the rest of the config is served unchanged. Pure: the inputs are
 * never mutated.
 */
import type { ValidationIssue } from '@sextant/api';
import type { ClusterJson, ListenerJson, RouteConfigurationJson } from '@sextant/envoy';
import { parseClusterName } from '../names.js';
import { TYPE } from '../typed.js';
import { mergeAnyWithAny, mergeMessage, normalize } from './merge.js';
import { contextMatches, patchIssue, type ApplyTo, type ConfigPatch, type Operation, type PatchContext } from './select.js';

type Json = Record<string, any>;
type Ctx = Exclude<PatchContext, 'ANY'>;
/** The proxy kinds EnvoyFilters apply to: sidecars and gateways (istiod leaves proxyless gRPC alone). */
export type PatchedProxy = 'sidecar' | 'router';
/** A patch whose value parsed, in canonical JSON (`json`), with the operation istiod runs. */
export type Usable = ConfigPatch & { json?: Json };

const T = {
  cluster: 'envoy.config.cluster.v3.Cluster',
  listener: 'envoy.config.listener.v3.Listener',
  listenerFilter: 'envoy.config.listener.v3.ListenerFilter',
  filterChain: 'envoy.config.listener.v3.FilterChain',
  networkFilter: 'envoy.config.listener.v3.Filter',
  httpFilter: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  routeConfiguration: 'envoy.config.route.v3.RouteConfiguration',
  virtualHost: 'envoy.config.route.v3.VirtualHost',
  route: 'envoy.config.route.v3.Route',
  extensionConfig: 'envoy.config.core.v3.TypedExtensionConfig',
} as const;

const HCM_NAME = 'envoy.filters.network.http_connection_manager';
const ROUTER = 'envoy.filters.http.router';
const endsWithRouter = (fs: readonly Json[]) => fs.length > 0 && fs[fs.length - 1]!.name === ROUTER;

/**
 * The operations istiod runs per applyTo (after it turns INSERT_* into ADD
 * where the target is not an ordered list); any other is ignored by istiod
 * and reported here.
 */
export const OPERATIONS: Record<Exclude<ApplyTo, 'INVALID'>, readonly Operation[]> = {
  LISTENER: ['MERGE', 'ADD', 'REMOVE'],
  LISTENER_FILTER: ['MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'],
  FILTER_CHAIN: ['MERGE', 'ADD', 'REMOVE'],
  NETWORK_FILTER: ['MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'],
  HTTP_FILTER: ['MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'],
  ROUTE_CONFIGURATION: ['MERGE'],
  VIRTUAL_HOST: ['MERGE', 'ADD', 'REMOVE', 'REPLACE'],
  HTTP_ROUTE: ['MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST'],
  CLUSTER: ['MERGE', 'ADD', 'REMOVE'],
  EXTENSION_CONFIG: ['ADD'],
  BOOTSTRAP: [],
};

/** applyTos whose INSERT_* operations stay ordered inserts (istiod's convertToEnvoyFilterWrapper turns the others into ADD). */
const ORDERED = new Set<ApplyTo>(['HTTP_FILTER', 'NETWORK_FILTER', 'HTTP_ROUTE', 'LISTENER_FILTER']);
const INSERTS = new Set<Operation>(['INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST']);

/** The operation istiod runs for a patch as written. */
export function effectiveOperation(applyTo: ApplyTo, op: Operation): Operation {
  return INSERTS.has(op) && !ORDERED.has(applyTo) ? 'ADD' : op;
}

function valueType(a: ApplyTo): string | undefined {
  switch (a) {
    case 'CLUSTER':
      return T.cluster;
    case 'LISTENER':
      return T.listener;
    case 'LISTENER_FILTER':
      return T.listenerFilter;
    case 'FILTER_CHAIN':
      return T.filterChain;
    case 'NETWORK_FILTER':
      return T.networkFilter;
    case 'HTTP_FILTER':
      return T.httpFilter;
    case 'ROUTE_CONFIGURATION':
      return T.routeConfiguration;
    case 'VIRTUAL_HOST':
      return T.virtualHost;
    case 'HTTP_ROUTE':
      return T.route;
    case 'EXTENSION_CONFIG':
      return T.extensionConfig;
    default:
      return undefined;
  }
}

/**
 * The patches of `applyTos` that can apply, each with istiod's operation and
 * its value normalized to the target message's canonical JSON; the others go
 * to `issues` (the generation path passes none: `envoyFilterIssues` reports
 * them once per push).
 */
export function usable(patches: readonly ConfigPatch[], applyTos: readonly ApplyTo[], issues?: ValidationIssue[]): Usable[] {
  const out: Usable[] = [];
  for (const p0 of patches) {
    if (!applyTos.includes(p0.applyTo)) continue;
    const p = { ...p0, operation: effectiveOperation(p0.applyTo, p0.operation) };
    if (p.applyTo === 'INVALID' || !(p.applyTo in OPERATIONS)) {
      issues?.push(patchIssue(p, `applyTo ${p.applyTo} is not an EnvoyFilter applyTo`, `spec.configPatches[${p.index}].applyTo`));
      continue;
    }
    if (p.applyTo === 'BOOTSTRAP') {
      issues?.push(patchIssue(p, 'applyTo BOOTSTRAP is deprecated and ignored (istiod applies it nowhere; the bootstrap comes from the agent)', `spec.configPatches[${p.index}].applyTo`));
      continue;
    }
    if (!OPERATIONS[p.applyTo].includes(p.operation)) {
      const as = p.operation !== p0.operation ? ` (${p0.operation} is ADD for this applyTo)` : '';
      issues?.push(patchIssue(p, `operation ${p.operation}${as} is ignored for applyTo ${p.applyTo} (as istiod does)`, `spec.configPatches[${p.index}].patch.operation`));
      continue;
    }
    if (p.operation === 'REMOVE') {
      out.push(p);
      continue;
    }
    const type = valueType(p.applyTo)!;
    try {
      out.push({ ...p, json: normalize(type, p.value ?? {}) });
    } catch (e) {
      issues?.push(patchIssue(p, `patch value is not a valid ${type}: ${(e as Error).message}`, `spec.configPatches[${p.index}].patch.value`));
    }
  }
  return out;
}

// ---------------------------------------------------------------- what applied

/** A patch's key in the sets of patches that applied: `namespace/name#index`. */
export const patchKey = (p: ConfigPatch): string => `${p.filter.namespace}/${p.filter.name}#${p.index}`;

/** Where `hit` records during one `recordHits` call (applying is synchronous). */
let hits: Set<string> | undefined;

/** Notes that a patch changed (matched) something in the config being patched. */
function hit(p: ConfigPatch): void {
  hits?.add(patchKey(p));
}

/** Runs `fn` recording into `into` the keys of the patches that matched something (for the EnvoyFilter status). */
export function recordHits<T>(into: Set<string>, fn: () => T): T {
  const previous = hits;
  hits = into;
  try {
    return fn();
  } finally {
    hits = previous;
  }
}

/** Whether a list operation changed the list (list operations return the input when nothing matched). */
const changed = <E>(a: readonly E[], b: readonly E[]) => a !== b && (a.length !== b.length || a.some((x, i) => x !== b[i]));

/** Reports a patch that could not apply to one resource, once per patch and reason. */
function failed(issues: ValidationIssue[] | undefined, p: ConfigPatch, reason: string): void {
  if (!issues) return;
  const issue = patchIssue(p, `patch could not be applied: ${reason}`);
  if (!issues.some((i) => i.kind === issue.kind && i.namespace === issue.namespace && i.name === issue.name && i.field === issue.field && i.reason === issue.reason)) issues.push(issue);
}

/** Runs one patch's edit on one value: an exception leaves the value as it was and is reported. */
function attempt<R>(p: ConfigPatch, issues: ValidationIssue[] | undefined, input: R, edit: () => R): R {
  try {
    return edit();
  } catch (e) {
    failed(issues, p, (e as Error).message);
    return input;
  }
}

const num = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : 0);
const pick = (o: Json | undefined, camel: string, snake: string): any => (o ? (o[camel] ?? o[snake]) : undefined);
const clone = <V>(v: V): V => structuredClone(v);
const byApplyTo = (ps: readonly Usable[], a: ApplyTo) => ps.filter((p) => p.applyTo === a);

/** Whether an ADDed object of a patch with `ctx` is added where istiod builds in context `built` (ANY: outbound and gateways only). */
function addsIn(p: ConfigPatch, built: Ctx): boolean {
  if (p.context === 'ANY') return built !== 'SIDECAR_INBOUND';
  return p.context === built;
}

/** The contexts Sextant's one list of a proxy's resources holds, as istiod builds them in separate passes. */
function builtContexts(kind: PatchedProxy): Ctx[] {
  return kind === 'router' ? ['GATEWAY'] : ['SIDECAR_INBOUND', 'SIDECAR_OUTBOUND'];
}

// ---------------------------------------------------------------- ordered lists

type Matcher<E> = (e: E | null) => boolean;

/**
 * istiod's list operations on filters and routes: ADD appends, INSERT_FIRST
 * prepends; INSERT_BEFORE / INSERT_AFTER without a filter match in the patch
 * prepend / append, with one insert at the first match only (none, no
 * change); REPLACE and REMOVE need a filter match (REPLACE the first, REMOVE
 * every match).
 */
function listOperation<E>(items: Array<E | null>, op: Operation, hasMatch: boolean, matches: Matcher<E>, value: E): Array<E | null> {
  switch (op) {
    case 'ADD':
      return [...items, clone(value)];
    case 'INSERT_FIRST':
      return [clone(value), ...items];
    case 'INSERT_BEFORE':
    case 'INSERT_AFTER': {
      if (!hasMatch) return op === 'INSERT_BEFORE' ? [clone(value), ...items] : [...items, clone(value)];
      const i = items.findIndex((e) => matches(e));
      if (i < 0) return items;
      const out = [...items];
      out.splice(op === 'INSERT_BEFORE' ? i : i + 1, 0, clone(value));
      return out;
    }
    case 'REPLACE': {
      if (!hasMatch) return items;
      const i = items.findIndex((e) => matches(e));
      if (i < 0) return items;
      const out = [...items];
      out[i] = clone(value);
      return out;
    }
    case 'REMOVE':
      return hasMatch ? items.filter((e) => !matches(e)) : items;
    default:
      return items;
  }
}

/**
 * MERGE into a filter (network, HTTP or listener filter), as istiod: only a
 * filter with a typed_config is merged; the patch's name (if any) renames it
 * and its typed_config merges into the filter's (same `@type`; another
 * `@type` cannot merge and is reported). Other fields of the patch are not
 * used.
 */
function mergeFilter(p: Usable, f: Json, issues?: ValidationIssue[]): Json {
  if (!f.typedConfig) return f;
  return attempt(p, issues, f, () => {
    const out: Json = { ...f };
    if (p.json?.typedConfig) out.typedConfig = mergeAnyWithAny(f.typedConfig as Json, p.json.typedConfig as Json);
    if (p.json?.name) out.name = p.json.name;
    hit(p);
    return out;
  });
}

// ---------------------------------------------------------------- clusters

function clusterContext(kind: PatchedProxy, c: ClusterJson): Ctx {
  if (kind === 'router') return 'GATEWAY';
  const name = c.name ?? '';
  return name.startsWith('inbound|') || name === 'InboundPassthroughCluster' ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

/** The hostnames of the services an inbound cluster's port serves (istiod matches `service` of inbound clusters against them). */
export type InboundHosts = (port: number) => readonly string[];

function clusterMatches(m: Json | undefined, c: ClusterJson, inboundHosts?: InboundHosts): boolean {
  if (!m) return true;
  const name = c.name ?? '';
  if (m.name) return m.name === name;
  const parsed = parseClusterName(name);
  const port = num(pick(m, 'portNumber', 'port_number'));
  if (m.subset && m.subset !== parsed?.subset) return false;
  if (m.service) {
    const hosts = parsed?.direction === 'inbound' && inboundHosts ? inboundHosts(parsed.port) : [];
    if (!(hosts.length > 0 ? hosts.includes(m.service) : m.service === parsed?.host)) return false;
  }
  if (port && port !== parsed?.port) return false;
  return true;
}

/**
 * CLUSTER MERGE as istiod's ApplyClusterMerge: a patch with a transport
 * socket merges only that (into the cluster's socket or the socket match of
 * the same name, typed_config with typed_config; no such match: nothing; no
 * socket of that name on the cluster: the patch's socket is set); otherwise
 * proto merge.
 */
function mergeCluster(c: Json, patch: Json): Json {
  const ts = patch.transportSocket as Json | undefined;
  if (!ts) return mergeMessage(T.cluster, c, patch);
  const matches = (c.transportSocketMatches ?? []) as Json[];
  if (matches.length > 0) {
    const i = matches.findIndex((m) => m.transportSocket && m.transportSocket.name === ts.name);
    if (i < 0) return c;
    const m = matches[i]!;
    if (!m.transportSocket.typedConfig || !ts.typedConfig) return c;
    const next = [...matches];
    next[i] = { ...m, transportSocket: { ...m.transportSocket, typedConfig: mergeAnyWithAny(m.transportSocket.typedConfig, ts.typedConfig) } };
    return { ...c, transportSocketMatches: next };
  }
  const own = c.transportSocket as Json | undefined;
  if (!own || own.name !== ts.name) return { ...c, transportSocket: ts };
  if (!own.typedConfig || !ts.typedConfig) return c;
  return { ...c, transportSocket: { ...own, typedConfig: mergeAnyWithAny(own.typedConfig, ts.typedConfig) } };
}

/** CLUSTER patches: REMOVE and MERGE on the generated clusters in patch order, then the ADDed clusters. */
export function patchClusters(kind: PatchedProxy, clusters: ClusterJson[], patches: readonly ConfigPatch[], issues?: ValidationIssue[], inboundHosts?: InboundHosts): ClusterJson[] {
  const ps = usable(patches, ['CLUSTER']);
  if (ps.length === 0) return clusters;
  const out: ClusterJson[] = [];
  next: for (const c0 of clusters) {
    const ctx = clusterContext(kind, c0);
    let c = c0 as Json;
    for (const p of ps) {
      if (p.operation === 'ADD' || !contextMatches(p.context, ctx) || !clusterMatches(p.cluster, c as ClusterJson, inboundHosts)) continue;
      if (p.operation === 'REMOVE') {
        hit(p);
        continue next;
      }
      c = attempt(p, issues, c, () => {
        const merged = mergeCluster(c, p.json!);
        hit(p);
        return merged;
      });
    }
    out.push(c as ClusterJson);
  }
  for (const built of builtContexts(kind)) for (const p of ps) if (p.operation === 'ADD' && addsIn(p, built)) {
    out.push(clone(p.json) as ClusterJson);
    hit(p);
  }
  return out;
}

// ---------------------------------------------------------------- listeners

const VIRTUAL = new Set(['virtualInbound', 'virtualOutbound']);

function listenerContext(kind: PatchedProxy, l: Json): Ctx {
  if (kind === 'router') return 'GATEWAY';
  return l.name === 'virtualInbound' || l.trafficDirection === 'INBOUND' ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

function listenerMatches(p: ConfigPatch, l: Json): boolean {
  const m = p.listener;
  if (!m) return true;
  if (m.name && m.name !== l.name) return false;
  // In the virtual listeners the port is a filter chain's destination port: checked per chain.
  if (p.applyTo !== 'LISTENER' && VIRTUAL.has(l.name ?? '')) return true;
  const port = num(pick(m, 'portNumber', 'port_number'));
  if (port && port !== l.address?.socketAddress?.portValue) return false;
  return true;
}

function filterChainMatches(p: ConfigPatch, l: Json, fc: Json): boolean {
  const m = p.listener;
  if (!m) return true;
  const fcm = fc.filterChainMatch as Json | undefined;
  const port = num(pick(m, 'portNumber', 'port_number'));
  if (VIRTUAL.has(l.name ?? '') && port && fcm?.destinationPort !== port) return false;
  const c = pick(m, 'filterChain', 'filter_chain') as Json | undefined;
  if (!c) return true;
  if (c.name && c.name !== (fc.name ?? '')) return false;
  if (c.sni && !((fcm?.serverNames ?? []) as string[]).includes(c.sni)) return false;
  const tp = pick(c, 'transportProtocol', 'transport_protocol');
  if (tp && fcm?.transportProtocol !== tp) return false;
  const ap = pick(c, 'applicationProtocols', 'application_protocols') as string | undefined;
  if (ap && !ap.split(',').every((a) => ((fcm?.applicationProtocols ?? []) as string[]).includes(a))) return false;
  const dp = num(pick(c, 'destinationPort', 'destination_port'));
  if (dp && fcm?.destinationPort !== dp) return false;
  return true;
}

/** `match.listener.filterChain.filter`, if the patch names a network filter. */
function filterMatch(p: ConfigPatch): Json | undefined {
  return pick(pick(p.listener, 'filterChain', 'filter_chain') as Json | undefined, 'filter', 'filter') as Json | undefined;
}
function subFilterMatch(p: ConfigPatch): Json | undefined {
  return pick(filterMatch(p), 'subFilter', 'sub_filter') as Json | undefined;
}
const listenerFilterName = (p: ConfigPatch): string => String(pick(p.listener, 'listenerFilter', 'listener_filter') ?? '');

const networkFilterMatches = (p: ConfigPatch) => (f: Json | null) => {
  const m = filterMatch(p);
  return !m || (f !== null && m.name === f.name);
};
const httpFilterMatches = (p: ConfigPatch) => (f: Json | null) => {
  const m = subFilterMatch(p);
  return !m || (f !== null && m.name === f.name);
};
const listenerFilterMatches = (p: ConfigPatch) => (f: Json | null) => {
  const name = listenerFilterName(p);
  return !name || (f !== null && name === f.name);
};

function patchHttpFilters(ps: readonly Usable[], ctx: Ctx, l: Json, fc: Json, f: Json, issues?: ValidationIssue[]): Json {
  const tc = f.typedConfig as Json | undefined;
  if (tc && tc['@type'] !== TYPE.hcm) return f;
  const applicable = ps.filter((p) => contextMatches(p.context, ctx) && listenerMatches(p, l) && filterChainMatches(p, l, fc) && networkFilterMatches(p)(f));
  if (applicable.length === 0) return f;
  let filters = ((tc?.httpFilters ?? []) as Json[]).slice();
  for (const p of applicable) {
    if (p.operation === 'MERGE') continue;
    const next = attempt(p, issues, filters, () => listOperation(filters, p.operation, subFilterMatch(p) !== undefined, httpFilterMatches(p), p.json!) as Json[]);
    // Envoy rejects a chain whose last filter is not the terminal router, and with it the whole
    // listener update: istiod sends such a chain (an ADD lands after the router, `filterClass` is
    // not read) and the proxy NACKs; here the patch is skipped for this chain and reported.
    if (endsWithRouter(filters) && !endsWithRouter(next)) {
      failed(issues, p, `${p.operation} would leave ${next.length > 0 ? `${String(next.at(-1)!.name)} after` : 'no'} the terminal ${ROUTER} filter, which Envoy rejects (with every listener of the update); use INSERT_BEFORE ${ROUTER}${p.operation === 'ADD' ? ' (filterClass is not read by istiod)' : ''}`);
      continue;
    }
    if (changed(filters, next)) hit(p);
    filters = next;
  }
  filters = filters.map((h) => {
    for (const p of applicable) if (p.operation === 'MERGE' && httpFilterMatches(p)(h)) h = mergeFilter(p, h, issues);
    return h;
  });
  // istiod re-marshals the manager: one without a typed_config stays without.
  return tc ? { ...f, typedConfig: { ...tc, httpFilters: filters } } : f;
}

function patchNetworkFilters(ps: readonly Usable[], ctx: Ctx, l: Json, fc: Json, issues?: ValidationIssue[]): Json {
  const net = byApplyTo(ps, 'NETWORK_FILTER').filter((p) => contextMatches(p.context, ctx) && listenerMatches(p, l) && filterChainMatches(p, l, fc));
  let filters = ((fc.filters ?? []) as Json[]).slice();
  for (const p of net) {
    if (p.operation === 'MERGE') continue;
    const next = attempt(p, issues, filters, () => listOperation(filters, p.operation, filterMatch(p) !== undefined, networkFilterMatches(p), p.json!) as Json[]);
    if (changed(filters, next)) hit(p);
    filters = next;
  }
  const http = byApplyTo(ps, 'HTTP_FILTER');
  filters = filters.map((f) => {
    for (const p of net) if (p.operation === 'MERGE' && networkFilterMatches(p)(f)) f = mergeFilter(p, f, issues);
    return f.name === HCM_NAME ? patchHttpFilters(http, ctx, l, fc, f, issues) : f;
  });
  return { ...fc, filters };
}

/**
 * FILTER_CHAIN MERGE as istiod's: a patch whose transport socket has the
 * name of the chain's merges only the sockets' typed_configs; otherwise
 * proto merge.
 */
function mergeFilterChain(fc: Json, patch: Json): Json {
  const ts = patch.transportSocket as Json | undefined;
  const own = fc.transportSocket as Json | undefined;
  if (!ts || !own || own.name !== ts.name) return mergeMessage(T.filterChain, fc, patch);
  if (!own.typedConfig || !ts.typedConfig) return fc;
  return { ...fc, transportSocket: { ...own, typedConfig: mergeAnyWithAny(own.typedConfig, ts.typedConfig) } };
}

/** One filter chain: FILTER_CHAIN REMOVE / MERGE, then its filters; undefined when removed. */
function patchFilterChain(ps: readonly Usable[], ctx: Ctx, l: Json, fc0: Json, issues?: ValidationIssue[]): Json | undefined {
  let fc = fc0;
  for (const p of byApplyTo(ps, 'FILTER_CHAIN')) {
    if (p.operation === 'ADD' || !contextMatches(p.context, ctx) || !listenerMatches(p, l) || !filterChainMatches(p, l, fc)) continue;
    hit(p);
    if (p.operation === 'REMOVE') return undefined;
    fc = attempt(p, issues, fc, () => mergeFilterChain(fc, p.json!));
  }
  return patchNetworkFilters(ps, ctx, l, fc, issues);
}

function patchListenerFilters(ps: readonly Usable[], ctx: Ctx, l: Json, issues?: ValidationIssue[]): Json {
  const applicable = byApplyTo(ps, 'LISTENER_FILTER').filter((p) => contextMatches(p.context, ctx) && listenerMatches(p, l));
  if (applicable.length === 0) return l;
  let filters = ((l.listenerFilters ?? []) as Json[]).slice();
  for (const p of applicable) {
    if (p.operation === 'MERGE') {
      // istiod merges the patch into every listener filter (not only the one named) once the patch
      // names one, keeping their names; across types its merge panics, so only same-type ones are merged here.
      if (listenerFilterName(p) && p.json?.typedConfig) {
        const tc = p.json.typedConfig as Json;
        filters = filters.map((f) => (f.typedConfig?.['@type'] === tc['@type'] ? attempt(p, issues, f, () => (hit(p), { ...f, typedConfig: mergeAnyWithAny(f.typedConfig as Json, tc) })) : f));
      }
      continue;
    }
    const next = attempt(p, issues, filters, () => listOperation(filters, p.operation, listenerFilterName(p) !== '', listenerFilterMatches(p), p.json!) as Json[]);
    if (changed(filters, next)) hit(p);
    filters = next;
  }
  return { ...l, listenerFilters: filters };
}

/** One generated listener with its patches; undefined when removed. */
function patchListener(ps: readonly Usable[], ctx: Ctx, l0: Json, issues?: ValidationIssue[]): Json | undefined {
  let l = l0;
  for (const p of byApplyTo(ps, 'LISTENER')) {
    if (p.operation === 'ADD' || !contextMatches(p.context, ctx) || !listenerMatches(p, l)) continue;
    hit(p);
    if (p.operation === 'REMOVE') return undefined;
    l = attempt(p, issues, l, () => mergeMessage(T.listener, l, p.json!));
  }
  l = patchListenerFilters(ps, ctx, l, issues);
  // Chains without filters are left alone (istiod skips them).
  const chains: Json[] = [];
  for (const fc of (l.filterChains ?? []) as Json[]) {
    if (!fc.filters) {
      chains.push(fc);
      continue;
    }
    const r = patchFilterChain(ps, ctx, l, fc, issues);
    if (r) chains.push(r);
  }
  const out: Json = { ...l, filterChains: chains };
  if (l.defaultFilterChain?.filters) {
    const r = patchFilterChain(ps, ctx, l, l.defaultFilterChain as Json, issues);
    if (r) out.defaultFilterChain = r;
    else delete out.defaultFilterChain;
  }
  for (const p of byApplyTo(ps, 'FILTER_CHAIN')) if (p.operation === 'ADD' && contextMatches(p.context, ctx) && listenerMatches(p, out)) {
    chains.push(clone(p.json!));
    hit(p);
  }
  if (chains.length === 0 && !(l0.filterChains as unknown[] | undefined)?.length) delete out.filterChains;
  return out;
}

/** LISTENER, LISTENER_FILTER, FILTER_CHAIN, NETWORK_FILTER and HTTP_FILTER patches. */
export function patchListeners(kind: PatchedProxy, listeners: ListenerJson[], patches: readonly ConfigPatch[], issues?: ValidationIssue[]): ListenerJson[] {
  const ps = usable(patches, ['LISTENER', 'LISTENER_FILTER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER']);
  if (ps.length === 0) return listeners;
  const out: ListenerJson[] = [];
  for (const l of listeners) {
    if (!l.name) {
      out.push(l);
      continue;
    }
    const r = patchListener(ps, listenerContext(kind, l as Json), l as Json, issues);
    if (r) out.push(r as ListenerJson);
  }
  for (const built of builtContexts(kind)) for (const p of byApplyTo(ps, 'LISTENER')) if (p.operation === 'ADD' && addsIn(p, built)) {
    out.push(clone(p.json) as ListenerJson);
    hit(p);
  }
  return out;
}

// ---------------------------------------------------------------- routes

function routeContext(kind: PatchedProxy, rc: RouteConfigurationJson): Ctx {
  if (kind === 'router') return 'GATEWAY';
  return (rc.name ?? '').startsWith('inbound|') ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

/** Port of a route configuration: `9080`, `inbound|9080||`, gateways' `http.8080` / `https.443.name.gw.ns`. */
function routePort(ctx: Ctx, name: string): { port: number; portName?: string; gateway?: string } {
  if (ctx === 'GATEWAY') {
    const parts = name.split('.');
    const out: { port: number; portName?: string; gateway?: string } = { port: Number(parts[1]) || 0 };
    if (parts[0] === 'https' && parts.length >= 5) {
      out.portName = parts[2]!;
      out.gateway = `${parts.slice(-1)[0]}/${parts.slice(3, -1).join('.')}`;
    }
    return out;
  }
  if (name.startsWith('inbound|')) return { port: parseClusterName(name)?.port ?? 0 };
  return { port: Number(name) || 0 };
}

/**
 * A gateway's route port → the Gateway server ports whose servers use that
 * route (istiod's MergedGateway.PortMap): a server on 80 whose Service
 * targets 8080 is routed by `http.8080`, and a patch for port 80 matches it.
 */
export type GatewayPortMap = ReadonlyMap<number, ReadonlySet<number>>;

function routeConfigMatches(p: ConfigPatch, ctx: Ctx, rc: Json, portMap?: GatewayPortMap): boolean {
  const m = p.routeConfiguration;
  if (!m) return true;
  if (m.name && m.name !== rc.name) return false;
  const port = num(pick(m, 'portNumber', 'port_number'));
  const got = routePort(ctx, rc.name ?? '');
  if (ctx === 'GATEWAY') {
    const servers = portMap?.get(got.port);
    if (port && !(servers ? servers.has(port) : port === got.port)) return false;
    const portName = pick(m, 'portName', 'port_name');
    if (portName && portName !== got.portName) return false;
    if (m.gateway && m.gateway !== got.gateway) return false;
    return true;
  }
  if (port && port !== got.port) return false;
  return true;
}

function vhostMatches(p: ConfigPatch, vh: Json): boolean {
  const m = p.routeConfiguration?.vhost as Json | undefined;
  if (!m) return true;
  if (m.name && m.name !== vh.name) return false;
  const domain = pick(m, 'domainName', 'domain_name');
  if (domain && !((vh.domains ?? []) as string[]).includes(domain)) return false;
  return true;
}

const routeMatchOf = (p: ConfigPatch) => (p.routeConfiguration?.vhost as Json | undefined)?.route as Json | undefined;

/** A route's action as istiod's switch on it sees it (another action, or none, matches every `action`). */
const routeAction = (r: Json) => (r.route !== undefined ? 'ROUTE' : r.redirect !== undefined ? 'REDIRECT' : r.directResponse !== undefined ? 'DIRECT_RESPONSE' : undefined);

const routeMatches = (p: ConfigPatch) => (r: Json | null): boolean => {
  const m = routeMatchOf(p);
  if (!m) return true;
  if (r === null) return false;
  if (m.name && m.name !== r.name) return false;
  if (!m.action || m.action === 'ANY') return true;
  const action = routeAction(r);
  return action === undefined || action === m.action;
};

function patchRoutes(ps: readonly Usable[], vh: Json, issues?: ValidationIssue[]): Json {
  let routes: Array<Json | null> = ((vh.routes ?? []) as Json[]).map((r) => {
    let route: Json | null = r;
    for (const p of ps) {
      if (route === null || !routeMatches(p)(route)) continue;
      if (p.operation === 'REMOVE' || p.operation === 'MERGE') hit(p);
      if (p.operation === 'REMOVE') route = null;
      else if (p.operation === 'MERGE') {
        const cur: Json = route;
        route = attempt(p, issues, cur, () => mergeMessage(T.route, cur, p.json!));
      }
    }
    return route;
  });
  for (const p of ps) {
    if (p.operation === 'MERGE' || p.operation === 'REMOVE') continue;
    const has = routeMatchOf(p) !== undefined;
    // INSERT_FIRST with a route match prepends only when a route matches.
    if (p.operation === 'INSERT_FIRST' && has && !routes.some(routeMatches(p))) continue;
    const next = listOperation(routes, p.operation, has, routeMatches(p), p.json!);
    if (changed(routes, next)) hit(p);
    routes = next;
  }
  return { ...vh, routes: routes.filter((r): r is Json => r !== null) };
}

function patchRouteConfig(ps: readonly Usable[], ctx: Ctx, rc0: Json, issues?: ValidationIssue[], portMap?: GatewayPortMap): Json {
  let rc = rc0;
  const matching = ps.filter((p) => contextMatches(p.context, ctx) && routeConfigMatches(p, ctx, rc0, portMap));
  if (matching.length === 0) return rc;
  for (const p of byApplyTo(matching, 'ROUTE_CONFIGURATION')) rc = attempt(p, issues, rc, () => (hit(p), mergeMessage(T.routeConfiguration, rc, p.json!)));
  const vhPatches = byApplyTo(matching, 'VIRTUAL_HOST');
  const routePatches = byApplyTo(matching, 'HTTP_ROUTE');
  const removed = new Set<string>();
  const vhs = ((rc.virtualHosts ?? []) as Json[]).map((vh0) => {
    let vh = vh0;
    for (const p of vhPatches) {
      if (p.operation === 'ADD' || !vhostMatches(p, vh)) continue;
      hit(p);
      if (p.operation === 'REMOVE') {
        removed.add(String(vh.name ?? ''));
        return vh;
      }
      if (p.operation === 'MERGE') vh = attempt(p, issues, vh, () => mergeMessage(T.virtualHost, vh, p.json!));
      else vh = clone(p.json!);
    }
    const rps = routePatches.filter((p) => vhostMatches(p, vh));
    return rps.length > 0 ? patchRoutes(rps, vh, issues) : vh;
  });
  for (const p of vhPatches) if (p.operation === 'ADD') {
    vhs.push(clone(p.json!));
    hit(p);
  }
  // istiod drops every virtual host named like a removed one.
  return { ...rc, virtualHosts: removed.size > 0 ? vhs.filter((vh) => !removed.has(String(vh.name ?? ''))) : vhs };
}

/** ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE patches. */
export function patchRouteConfigurations(kind: PatchedProxy, rcs: RouteConfigurationJson[], patches: readonly ConfigPatch[], issues?: ValidationIssue[], portMap?: GatewayPortMap): RouteConfigurationJson[] {
  const ps = usable(patches, ['ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE']);
  if (ps.length === 0) return rcs;
  return rcs.map((rc) => patchRouteConfig(ps, routeContext(kind, rc), rc as Json, issues, portMap) as RouteConfigurationJson);
}

// ---------------------------------------------------------------- ECDS

/**
 * EXTENSION_CONFIG ADD patches as istiod's InsertedExtensionConfigurations:
 * the TypedExtensionConfigs named in `names` (what the proxy asked for over
 * ECDS), in patch order.
 */
export function insertedExtensionConfigs(patches: readonly ConfigPatch[], names: readonly string[]): Json[] {
  const wanted = new Set(names);
  return usable(patches, ['EXTENSION_CONFIG'])
    .filter((p) => p.operation === 'ADD' && wanted.has(String(p.json?.name ?? '')))
    .map((p) => (hit(p), clone(p.json!)));
}
