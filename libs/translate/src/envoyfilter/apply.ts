/**
 * Applies EnvoyFilter patches to a proxy's generated clusters, listeners and
 * route configurations, as istiod's envoyfilter package does (cluster_patch,
 * listener_patch, rc_patch): per patch, match the context and the resource,
 * then MERGE, ADD, REMOVE, INSERT_BEFORE/AFTER/FIRST or REPLACE. A patch that
 * cannot apply (an operation the applyTo does not take, a value Envoy could
 * not parse, an `@type` Sextant does not know) is reported against its
 * EnvoyFilter and skipped: the rest of the config is served unchanged. Pure.
 */
import type { ValidationIssue } from '@sextant/api';
import type {
  ClusterJson,
  FilterChainJson,
  HttpConnectionManagerJson,
  HttpFilterJson,
  ListenerJson,
  NetworkFilterJson,
  RouteConfigurationJson,
  RouteJson,
  VirtualHostJson,
} from '@sextant/envoy';
import { parseClusterName } from '../names.js';
import { TYPE } from '../typed.js';
import { mergeMessage, normalize } from './merge.js';
import { contextMatches, patchIssue, type ApplyTo, type ConfigPatch, type Operation, type PatchContext } from './select.js';

type Json = Record<string, any>;
type Ctx = Exclude<PatchContext, 'ANY'>;
/** The proxy kinds EnvoyFilters apply to: sidecars and gateways (istiod leaves proxyless gRPC alone). */
export type PatchedProxy = 'sidecar' | 'router';

const T = {
  cluster: 'envoy.config.cluster.v3.Cluster',
  listener: 'envoy.config.listener.v3.Listener',
  filterChain: 'envoy.config.listener.v3.FilterChain',
  networkFilter: 'envoy.config.listener.v3.Filter',
  httpFilter: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  hcm: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  routeConfiguration: 'envoy.config.route.v3.RouteConfiguration',
  virtualHost: 'envoy.config.route.v3.VirtualHost',
  route: 'envoy.config.route.v3.Route',
} as const;

const HCM_NAME = 'envoy.filters.network.http_connection_manager';

/** The operations istiod implements per applyTo; any other is reported. */
const OPERATIONS: Partial<Record<ApplyTo, readonly Operation[]>> = {
  CLUSTER: ['MERGE', 'ADD', 'REMOVE', 'REPLACE'],
  LISTENER: ['MERGE', 'ADD', 'REMOVE', 'REPLACE'],
  FILTER_CHAIN: ['MERGE', 'ADD', 'REMOVE', 'REPLACE', 'INSERT_FIRST'],
  NETWORK_FILTER: ['MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'],
  HTTP_FILTER: ['MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'],
  ROUTE_CONFIGURATION: ['MERGE'],
  VIRTUAL_HOST: ['MERGE', 'ADD', 'REMOVE'],
  HTTP_ROUTE: ['MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST'],
};

const NEEDS_VALUE = new Set<Operation>(['MERGE', 'ADD', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE']);

/**
 * The patches of `applyTos` that can apply, each with its value normalized to
 * the target message's canonical JSON; the others go to `issues` (the
 * generation path passes none: `envoyFilterIssues` reports them once per push).
 */
export function usable(patches: readonly ConfigPatch[], applyTos: readonly ApplyTo[], issues?: ValidationIssue[]): Array<ConfigPatch & { json?: Json }> {
  const out: Array<ConfigPatch & { json?: Json }> = [];
  for (const p of patches) {
    if (!applyTos.includes(p.applyTo)) continue;
    if (!OPERATIONS[p.applyTo]?.includes(p.operation)) {
      issues?.push(patchIssue(p, `operation ${p.operation} is not supported for applyTo ${p.applyTo}`, `spec.configPatches[${p.index}].patch.operation`));
      continue;
    }
    if (!NEEDS_VALUE.has(p.operation)) {
      out.push(p);
      continue;
    }
    try {
      out.push({ ...p, json: normalize(valueType(p.applyTo), p.value ?? {}) });
    } catch (e) {
      issues?.push(patchIssue(p, `patch value is not a valid ${valueType(p.applyTo)}: ${(e as Error).message}`, `spec.configPatches[${p.index}].patch.value`));
    }
  }
  return out;
}

function valueType(a: ApplyTo): string {
  switch (a) {
    case 'CLUSTER':
      return T.cluster;
    case 'LISTENER':
      return T.listener;
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
    default:
      return T.route;
  }
}

/** Runs one patch's edit; an exception leaves the input as it was and is reported. */
function guarded<R>(p: ConfigPatch, issues: ValidationIssue[] | undefined, input: R, edit: () => R): R {
  try {
    return edit();
  } catch (e) {
    issues?.push(patchIssue(p, `patch could not be applied: ${(e as Error).message}`));
    return input;
  }
}

const num = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : 0);
const pick = (o: Json | undefined, camel: string, snake: string): any => (o ? (o[camel] ?? o[snake]) : undefined);

// ---------------------------------------------------------------- clusters

function clusterContext(kind: PatchedProxy, c: ClusterJson): Ctx {
  if (kind === 'router') return 'GATEWAY';
  const name = c.name ?? '';
  return name.startsWith('inbound|') || name === 'InboundPassthroughCluster' ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

function clusterMatches(m: Json | undefined, c: ClusterJson): boolean {
  if (!m) return true;
  const name = c.name ?? '';
  if (m.name) return m.name === name;
  const parsed = parseClusterName(name);
  const port = num(pick(m, 'portNumber', 'port_number'));
  if (m.subset && m.subset !== parsed?.subset) return false;
  if (m.service && m.service !== parsed?.host) return false;
  if (port && port !== parsed?.port) return false;
  return true;
}

/** CLUSTER patches (MERGE, REMOVE, REPLACE on matched clusters; ADD appends). */
export function patchClusters(kind: PatchedProxy, clusters: ClusterJson[], patches: readonly ConfigPatch[], issues?: ValidationIssue[]): ClusterJson[] {
  let out = clusters;
  for (const p of usable(patches, ['CLUSTER'])) {
    out = guarded(p, issues, out, () => {
      if (p.operation === 'ADD') {
        const ctxOk = kind === 'router' ? contextMatches(p.context, 'GATEWAY') : p.context !== 'GATEWAY';
        return ctxOk ? [...out, p.json as ClusterJson] : out;
      }
      const next: ClusterJson[] = [];
      for (const c of out) {
        if (!contextMatches(p.context, clusterContext(kind, c)) || !clusterMatches(p.cluster, c)) next.push(c);
        else if (p.operation === 'MERGE') next.push(mergeMessage(T.cluster, c as Json, p.json!) as ClusterJson);
        else if (p.operation === 'REPLACE') next.push(p.json as ClusterJson);
        // REMOVE: dropped.
      }
      return next;
    });
  }
  return out;
}

// ---------------------------------------------------------------- listeners

const VIRTUAL = new Set(['virtualInbound', 'virtualOutbound']);

function listenerContext(kind: PatchedProxy, l: ListenerJson): Ctx {
  if (kind === 'router') return 'GATEWAY';
  return l.name === 'virtualInbound' || l.trafficDirection === 'INBOUND' ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

function listenerMatches(p: ConfigPatch, l: ListenerJson): boolean {
  const m = p.listener;
  if (!m) return true;
  if (m.name && m.name !== l.name) return false;
  // In the virtual listeners the port is a filter chain's destination port: checked per chain.
  if (p.applyTo !== 'LISTENER' && VIRTUAL.has(l.name ?? '')) return true;
  const port = num(pick(m, 'portNumber', 'port_number'));
  if (port && port !== l.address?.socketAddress?.portValue) return false;
  return true;
}

function filterChainMatches(p: ConfigPatch, l: ListenerJson, fc: FilterChainJson): boolean {
  const m = p.listener;
  if (!m) return true;
  const fcm = fc.filterChainMatch;
  const port = num(pick(m, 'portNumber', 'port_number'));
  if (VIRTUAL.has(l.name ?? '') && port && fcm?.destinationPort !== port) return false;
  const c = pick(m, 'filterChain', 'filter_chain') as Json | undefined;
  if (!c) return true;
  if (c.name && c.name !== fc.name) return false;
  if (c.sni && !(fcm?.serverNames ?? []).includes(c.sni)) return false;
  const tp = pick(c, 'transportProtocol', 'transport_protocol');
  if (tp && fcm?.transportProtocol !== tp) return false;
  const ap = pick(c, 'applicationProtocols', 'application_protocols') as string | undefined;
  if (ap && !ap.split(',').every((a) => (fcm?.applicationProtocols ?? []).includes(a.trim()))) return false;
  const dp = num(pick(c, 'destinationPort', 'destination_port'));
  if (dp && fcm?.destinationPort !== dp) return false;
  return true;
}

function filterMatch(p: ConfigPatch): Json | undefined {
  return pick(pick(p.listener, 'filterChain', 'filter_chain') as Json | undefined, 'filter', 'filter') as Json | undefined;
}

function networkFilterMatches(p: ConfigPatch, f: NetworkFilterJson): boolean {
  const m = filterMatch(p);
  return !m?.name || m.name === f.name;
}

function httpFilterMatches(p: ConfigPatch, f: HttpFilterJson): boolean {
  const sub = pick(filterMatch(p), 'subFilter', 'sub_filter') as Json | undefined;
  return !sub?.name || sub.name === f.name;
}

/** Applies an ordered-list operation (ADD, INSERT_*, REPLACE, MERGE, REMOVE) to `items`. */
function listOperation<E>(items: readonly E[], op: Operation, matches: (e: E) => boolean, value: E, merge: (e: E) => E): E[] {
  switch (op) {
    case 'ADD':
      return [...items, value];
    case 'INSERT_FIRST':
      return [value, ...items];
    case 'INSERT_BEFORE':
    case 'INSERT_AFTER':
    case 'REPLACE': {
      // Relative to the first match only; no match, no change (istiod).
      const i = items.findIndex(matches);
      if (i < 0) return [...items];
      const out = [...items];
      if (op === 'REPLACE') out[i] = value;
      else out.splice(op === 'INSERT_BEFORE' ? i : i + 1, 0, value);
      return out;
    }
    case 'MERGE':
      return items.map((e) => (matches(e) ? merge(e) : e));
    case 'REMOVE':
      return items.filter((e) => !matches(e));
    default:
      return [...items];
  }
}

function patchHttpFilters(p: ConfigPatch & { json?: Json }, f: NetworkFilterJson): NetworkFilterJson {
  const tc = f.typedConfig as Json | undefined;
  if (f.name !== HCM_NAME || tc?.['@type'] !== TYPE.hcm) return f;
  const hcm = tc as HttpConnectionManagerJson & Json;
  const httpFilters = listOperation<HttpFilterJson>(hcm.httpFilters ?? [], p.operation, (h) => httpFilterMatches(p, h), p.json as HttpFilterJson, (h) => mergeMessage(T.httpFilter, h as Json, p.json!) as HttpFilterJson);
  return { ...f, typedConfig: { ...hcm, httpFilters } as NetworkFilterJson['typedConfig'] };
}

function patchChain(p: ConfigPatch & { json?: Json }, l: ListenerJson, fc: FilterChainJson): FilterChainJson {
  if (!filterChainMatches(p, l, fc)) return fc;
  if (p.applyTo === 'NETWORK_FILTER') {
    const filters = listOperation<NetworkFilterJson>(fc.filters ?? [], p.operation, (f) => networkFilterMatches(p, f), p.json as NetworkFilterJson, (f) => mergeMessage(T.networkFilter, f as Json, p.json!) as NetworkFilterJson);
    return { ...fc, filters };
  }
  // HTTP_FILTER: inside the matched HTTP connection managers.
  return { ...fc, filters: (fc.filters ?? []).map((f) => (networkFilterMatches(p, f) ? patchHttpFilters(p, f) : f)) };
}

function patchListener(p: ConfigPatch & { json?: Json }, l: ListenerJson): ListenerJson | undefined {
  if (p.applyTo === 'LISTENER') {
    if (p.operation === 'REMOVE') return undefined;
    if (p.operation === 'REPLACE') return p.json as ListenerJson;
    return mergeMessage(T.listener, l as Json, p.json!) as ListenerJson;
  }
  const chains = l.filterChains ?? [];
  if (p.applyTo === 'FILTER_CHAIN') {
    if (p.operation === 'ADD') return { ...l, filterChains: [...chains, p.json as FilterChainJson] };
    if (p.operation === 'INSERT_FIRST') return { ...l, filterChains: [p.json as FilterChainJson, ...chains] };
    const out: FilterChainJson[] = [];
    for (const fc of chains) {
      if (!filterChainMatches(p, l, fc)) out.push(fc);
      else if (p.operation === 'MERGE') out.push(mergeMessage(T.filterChain, fc as Json, p.json!) as FilterChainJson);
      else if (p.operation === 'REPLACE') out.push(p.json as FilterChainJson);
    }
    const next: ListenerJson = { ...l, filterChains: out };
    // The default chain matches too (istiod patches it as one more chain).
    if (l.defaultFilterChain && filterChainMatches(p, l, l.defaultFilterChain)) {
      if (p.operation === 'REMOVE') delete next.defaultFilterChain;
      else if (p.operation === 'MERGE') next.defaultFilterChain = mergeMessage(T.filterChain, l.defaultFilterChain as Json, p.json!) as FilterChainJson;
      else next.defaultFilterChain = p.json as FilterChainJson;
    }
    return next;
  }
  const next: ListenerJson = { ...l, filterChains: chains.map((fc) => patchChain(p, l, fc)) };
  if (l.defaultFilterChain) next.defaultFilterChain = patchChain(p, l, l.defaultFilterChain);
  return next;
}

/** LISTENER, FILTER_CHAIN, NETWORK_FILTER and HTTP_FILTER patches. */
export function patchListeners(kind: PatchedProxy, listeners: ListenerJson[], patches: readonly ConfigPatch[], issues?: ValidationIssue[]): ListenerJson[] {
  let out = listeners;
  for (const p of usable(patches, ['LISTENER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER'])) {
    out = guarded(p, issues, out, () => {
      if (p.applyTo === 'LISTENER' && p.operation === 'ADD') {
        const ctxOk = kind === 'router' ? contextMatches(p.context, 'GATEWAY') : p.context !== 'GATEWAY';
        return ctxOk ? [...out, p.json as ListenerJson] : out;
      }
      const next: ListenerJson[] = [];
      for (const l of out) {
        if (!contextMatches(p.context, listenerContext(kind, l)) || !listenerMatches(p, l)) {
          next.push(l);
          continue;
        }
        const r = patchListener(p, l);
        if (r) next.push(r);
      }
      return next;
    });
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

function routeConfigMatches(p: ConfigPatch, ctx: Ctx, rc: RouteConfigurationJson): boolean {
  const m = p.routeConfiguration;
  if (!m) return true;
  if (m.name && m.name !== rc.name) return false;
  const port = num(pick(m, 'portNumber', 'port_number'));
  const got = routePort(ctx, rc.name ?? '');
  if (port && port !== got.port) return false;
  if (ctx === 'GATEWAY') {
    const portName = pick(m, 'portName', 'port_name');
    if (portName && portName !== got.portName) return false;
    if (m.gateway && m.gateway !== got.gateway) return false;
  }
  return true;
}

function vhostMatches(p: ConfigPatch, vh: VirtualHostJson): boolean {
  const m = p.routeConfiguration?.vhost as Json | undefined;
  if (!m) return true;
  if (m.name && m.name !== vh.name) return false;
  const domain = pick(m, 'domainName', 'domain_name');
  if (domain && !(vh.domains ?? []).includes(domain)) return false;
  return true;
}

function routeMatches(p: ConfigPatch, r: RouteJson): boolean {
  const m = (p.routeConfiguration?.vhost as Json | undefined)?.route as Json | undefined;
  if (!m) return true;
  if (m.name && m.name !== r.name) return false;
  switch (m.action) {
    case 'ROUTE':
      return r.route !== undefined;
    case 'REDIRECT':
      return r.redirect !== undefined;
    case 'DIRECT_RESPONSE':
      return r.directResponse !== undefined;
    default:
      return true;
  }
}

function patchRouteConfig(p: ConfigPatch & { json?: Json }, rc: RouteConfigurationJson): RouteConfigurationJson {
  if (p.applyTo === 'ROUTE_CONFIGURATION') return mergeMessage(T.routeConfiguration, rc as Json, p.json!) as RouteConfigurationJson;
  const vhs = rc.virtualHosts ?? [];
  if (p.applyTo === 'VIRTUAL_HOST') {
    if (p.operation === 'ADD') return { ...rc, virtualHosts: [...vhs, p.json as VirtualHostJson] };
    const out: VirtualHostJson[] = [];
    for (const vh of vhs) {
      if (!vhostMatches(p, vh)) out.push(vh);
      else if (p.operation === 'MERGE') out.push(mergeMessage(T.virtualHost, vh as Json, p.json!) as VirtualHostJson);
    }
    return { ...rc, virtualHosts: out };
  }
  return {
    ...rc,
    virtualHosts: vhs.map((vh) => {
      if (!vhostMatches(p, vh)) return vh;
      const routes = listOperation<RouteJson>(vh.routes ?? [], p.operation, (r) => routeMatches(p, r), p.json as RouteJson, (r) => mergeMessage(T.route, r as Json, p.json!) as RouteJson);
      return { ...vh, routes };
    }),
  };
}

/** ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE patches. */
export function patchRouteConfigurations(kind: PatchedProxy, rcs: RouteConfigurationJson[], patches: readonly ConfigPatch[], issues?: ValidationIssue[]): RouteConfigurationJson[] {
  let out = rcs;
  for (const p of usable(patches, ['ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE'])) {
    out = guarded(p, issues, out, () =>
      out.map((rc) => {
        const ctx = routeContext(kind, rc);
        return contextMatches(p.context, ctx) && routeConfigMatches(p, ctx, rc) ? patchRouteConfig(p, rc) : rc;
      }),
    );
  }
  return out;
}

/** applyTo values Sextant does not apply: reported once per generation of their kind. */
export function unsupportedPatches(patches: readonly ConfigPatch[], issues?: ValidationIssue[]): void {
  for (const p of patches) {
    if (p.applyTo === 'EXTENSION_CONFIG' || p.applyTo === 'LISTENER_FILTER' || p.applyTo === 'BOOTSTRAP' || p.applyTo === 'INVALID') {
      issues?.push(patchIssue(p, `applyTo ${p.applyTo} is not applied by Sextant`, `spec.configPatches[${p.index}].applyTo`));
    }
  }
}
