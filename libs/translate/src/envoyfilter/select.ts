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
import type { ValidationIssue } from '@sextant/api';
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

function selects(f: IstioConfig, proxy: ProxyView): boolean {
  const refs = f.spec.targetRefs as Array<{ group?: string; kind?: string; name?: string }> | undefined;
  if (refs && refs.length > 0) {
    // targetRefs name a Kubernetes Gateway: its deployment carries the gateway-name label.
    const gw = proxy.labels[GATEWAY_NAME_LABEL];
    return gw !== undefined && refs.some((r) => r.kind === 'Gateway' && r.name === gw);
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
    const ca = created(a);
    const cb = created(b);
    if (ca !== cb) return ca - cb;
    const na = `${a.name}.${a.namespace}`;
    const nb = `${b.name}.${b.namespace}`;
    return na < nb ? -1 : na > nb ? 1 : 0;
  });
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
      const pm = match.proxy as { proxyVersion?: string; metadata?: Record<string, string> } | undefined;
      if (pm?.proxyVersion) {
        let re: RegExp;
        try {
          re = new RegExp(pm.proxyVersion);
        } catch {
          return; // reported by envoyFilterIssues
        }
        // istiod matches the regex anywhere in the proxy's ISTIO_VERSION (Go's MatchString).
        if (!re.test(proxy.istioVersion)) return;
      }
      if (pm?.metadata) {
        const raw = (proxy.metadata as { raw?: Record<string, unknown> }).raw ?? {};
        // Every key must be present in the node metadata with exactly this value.
        for (const [k, v] of Object.entries(pm.metadata)) if (raw[k] === undefined || String(raw[k]) !== v) return;
      }
      out.push(p);
    });
  }
  return out;
}

/** Whether a patch for `ctx` applies where the resource's context is `resource`. */
export function contextMatches(patch: PatchContext, resource: Exclude<PatchContext, 'ANY'>): boolean {
  return patch === 'ANY' || patch === resource;
}
