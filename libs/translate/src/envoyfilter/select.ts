/**
 * Which EnvoyFilters apply to a proxy, and which of their patches, in the
 * order istiod applies them (pilot/pkg/model/envoyfilter.go and
 * PushContext.EnvoyFilters): the root namespace's and the proxy's own
 * namespace's filters whose `workloadSelector` (or, for gateways,
 * `targetRefs`) selects the proxy, sorted by `priority`, then creation time,
 * then name.namespace; within a filter, its patches in order, kept when the
 * patch's proxy version regex and metadata match the proxy (a regex that
 * does not compile drops the patch; `envoyFilterIssues` reports it).
 */
import { compileRe2, searchRe2, type ValidationIssue } from '@sextant/api';
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';

export type PatchContext = 'ANY' | 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND' | 'GATEWAY';
export type ApplyTo =
  | 'LISTENER'
  | 'FILTER_CHAIN'
  | 'NETWORK_FILTER'
  | 'HTTP_FILTER'
  | 'ROUTE_CONFIGURATION'
  | 'VIRTUAL_HOST'
  | 'HTTP_ROUTE'
  | 'CLUSTER'
  | 'EXTENSION_CONFIG'
  | 'BOOTSTRAP'
  | 'LISTENER_FILTER'
  | 'INVALID';
export type Operation = 'INVALID' | 'MERGE' | 'ADD' | 'REMOVE' | 'INSERT_BEFORE' | 'INSERT_AFTER' | 'INSERT_FIRST' | 'REPLACE';

type Json = Record<string, any>;

/** One config patch of one EnvoyFilter, with where it came from for reports. */
export interface ConfigPatch {
  filter: { kind: 'EnvoyFilter'; namespace: string; name: string };
  /** Index in `spec.configPatches` (for the field path of reports). */
  index: number;
  applyTo: ApplyTo;
  operation: Operation;
  context: PatchContext;
  /** `match.listener`, `match.routeConfiguration`, `match.cluster` as written. */
  listener?: Json | undefined;
  routeConfiguration?: Json | undefined;
  cluster?: Json | undefined;
  value?: Json | undefined;
}

/** A report against the patch's EnvoyFilter. */
export function patchIssue(p: ConfigPatch, reason: string, field = `spec.configPatches[${p.index}]`): ValidationIssue {
  return { kind: 'EnvoyFilter', namespace: p.filter.namespace, name: p.filter.name, field, reason };
}

const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

/**
 * istiod's policy attachment (WorkloadPolicyMatcher.ShouldAttachPolicy) for
 * EnvoyFilters: a proxy that is not a Gateway API gateway ignores filters with
 * `targetRefs` and is selected by `workloadSelector` (none: every workload);
 * a Gateway API gateway (its pods carry the gateway-name label) is selected
 * by a selector-only filter too, and by a `targetRefs` filter only when the
 * filter is in the gateway's namespace and a reference names its Gateway.
 */
function selects(f: IstioConfig, proxy: ProxyView): boolean {
  const refs = f.spec.targetRefs as Array<{ group?: string; kind?: string; name?: string; namespace?: string }> | undefined;
  const gw = proxy.labels[GATEWAY_NAME_LABEL];
  if (refs && refs.length > 0) {
    if (gw === undefined || f.namespace !== proxy.namespace) return false;
    return refs.some((r) => (r.group ?? '') === GATEWAY_API_GROUP && r.kind === 'Gateway' && r.name === gw && (!r.namespace || r.namespace === proxy.namespace));
  }
  const sel = (f.spec.workloadSelector as { labels?: Record<string, string> } | undefined)?.labels;
  if (!sel) return true;
  return Object.entries(sel).every(([k, v]) => proxy.labels[k] === v);
}

const created = (f: IstioConfig) => {
  const t = Date.parse(String((f.metadata as { creationTimestamp?: unknown }).creationTimestamp ?? ''));
  return Number.isNaN(t) ? 0 : t;
};

/** The EnvoyFilters that select the proxy, in istiod's order. */
export function envoyFiltersFor(push: PushContext, proxy: ProxyView): IstioConfig[] {
  const rootNamespace = push.mesh.rootNamespace;
  const found = push.configs('EnvoyFilter', rootNamespace).filter((f) => selects(f, proxy));
  if (proxy.namespace !== rootNamespace) found.push(...push.configs('EnvoyFilter', proxy.namespace).filter((f) => selects(f, proxy)));
  return found.sort((a, b) => {
    const pa = Number(a.spec.priority ?? 0);
    const pb = Number(b.spec.priority ?? 0);
    if (pa !== pb) return pa - pb;
    // Same priority: the root namespace's filters first (PushContext.EnvoyFilters).
    if (a.namespace !== b.namespace && (a.namespace === rootNamespace || b.namespace === rootNamespace)) return a.namespace === rootNamespace ? -1 : 1;
    const ca = created(a);
    const cb = created(b);
    if (ca !== cb) return ca - cb;
    const na = `${a.name}.${a.namespace}`;
    const nb = `${b.name}.${b.namespace}`;
    return na < nb ? -1 : na > nb ? 1 : 0;
  });
}

/** istiod's bound on a `proxyVersion` expression: a longer one matches no proxy. */
export const MAX_PROXY_VERSION_LENGTH = 1024;

/**
 * Whether a patch's `match.proxy` matches the proxy, as istiod's proxyMatch:
 * `proxyVersion` is a regex searched in the node's ISTIO_VERSION (a proxy
 * without one never matches; an expression over 1024 characters matches
 * nothing; one that does not compile is ignored, as istiod ignores the
 * compile error, and reported by `envoyFilterIssues`); every
 * `metadata` key must be in the node metadata with exactly that value.
 */
/** proxyVersion results by pattern and version (a few patterns, a few versions per mesh; bounded). */
const versionMatches = new Map<string, boolean | undefined>();

/** undefined: the pattern does not compile (ignored); else whether the proxy's version matches. */
function versionMatch(pattern: string, istioVersion: string | undefined): boolean | undefined {
  const key = `${pattern}\u0000${istioVersion ?? ''}`;
  if (versionMatches.has(key)) return versionMatches.get(key);
  let out: boolean | undefined;
  if (!compileRe2(pattern).ok) out = undefined;
  else if (!istioVersion) out = false;
  else {
    const r = searchRe2(pattern, istioVersion);
    out = r.ok && r.match;
  }
  if (versionMatches.size >= 4096) versionMatches.clear();
  versionMatches.set(key, out);
  return out;
}

export function proxyMatches(pm: { proxyVersion?: string; metadata?: Record<string, string> } | undefined, proxy: ProxyView): boolean {
  if (!pm) return true;
  const version = pm.proxyVersion;
  if (version) {
    if (version.length > MAX_PROXY_VERSION_LENGTH) return false;
    // RE2, as istiod's Go regexp; a pattern that does not compile is ignored, as istiod ignores it.
    if (versionMatch(version, proxy.istioVersion) === false) return false;
  }
  const raw = (proxy.metadata as { raw?: Record<string, unknown> }).raw ?? {};
  for (const [k, v] of Object.entries(pm.metadata ?? {})) if (raw[k] !== v) return false;
  return true;
}

/** The patches that apply to the proxy, in order. */
export function patchesFor(push: PushContext, proxy: ProxyView): ConfigPatch[] {
  const out: ConfigPatch[] = [];
  for (const f of envoyFiltersFor(push, proxy)) {
    const cps = (f.spec.configPatches ?? []) as Json[];
    cps.forEach((cp, index) => {
      const match = (cp.match ?? {}) as Json;
      const p: ConfigPatch = {
        filter: { kind: 'EnvoyFilter', namespace: f.namespace, name: f.name },
        index,
        applyTo: cp.applyTo as ApplyTo,
        operation: (cp.patch?.operation ?? 'INVALID') as Operation,
        context: (match.context ?? 'ANY') as PatchContext,
        listener: match.listener,
        routeConfiguration: match.routeConfiguration,
        cluster: match.cluster,
        value: cp.patch?.value,
      };
      if (!proxyMatches(match.proxy, proxy)) return;
      out.push(p);
    });
  }
  return out;
}

/** Whether a patch for `ctx` applies where the resource's context is `resource`. */
export function contextMatches(patch: PatchContext, resource: Exclude<PatchContext, 'ANY'>): boolean {
  return patch === 'ANY' || patch === resource;
}
