/**
 * VirtualService preparation before translation: short names resolved to
 * FQDNs, delegates merged into their roots (istiod's
 * model.mergeVirtualServicesIfNeeded), and cross-object checks reported as
 * ValidationIssues. Pure.
 */
import type { Destination, DestinationRuleSpecType, HTTPMatchRequest, HTTPRoute, ValidationIssue, VirtualServiceSpecType } from '@sextant/api';
import type { IstioConfig, PushContext } from '@sextant/model';
import { resolveShortname } from './translate.js';

/** A VirtualService's spec, as validated by @sextant/api. */
const specOf = (vs: IstioConfig): VirtualServiceSpecType => vs.spec as VirtualServiceSpecType;

/** A VirtualService's gateways, resolved as istiod does: `name` → `<vs ns>/name`; none → `mesh`. */
export function vsGateways(vs: IstioConfig): string[] {
  const gws = specOf(vs).gateways ?? [];
  if (gws.length === 0) return ['mesh'];
  return gws.map((g) => (g === 'mesh' || g.includes('/') ? g : `${vs.namespace}/${g}`));
}

/** Resolves a gateway name as written in a route match to `ns/name` (or `mesh`). */
export function resolveGatewayName(g: string, ns: string): string {
  return g === 'mesh' || g.includes('/') ? g : `${ns}/${g}`;
}

function clone<T>(x: T): T {
  return JSON.parse(JSON.stringify(x)) as T;
}

/** Resolved copies by VirtualService and domain suffix: the same object while the VirtualService is (toIstioConfig keeps it across pushes). */
const resolved = new WeakMap<IstioConfig, Map<string, IstioConfig>>();

/** Copy of a VS with short hosts (hosts, destinations, mirrors, match gateways) resolved; one per VS and suffix, never mutated. */
export function resolveVirtualService(vs: IstioConfig, domainSuffix: string): IstioConfig {
  let bySuffix = resolved.get(vs);
  if (!bySuffix) resolved.set(vs, (bySuffix = new Map()));
  let r = bySuffix.get(domainSuffix);
  if (!r) bySuffix.set(domainSuffix, (r = resolveCopy(vs, domainSuffix)));
  return r;
}

function resolveCopy(vs: IstioConfig, domainSuffix: string): IstioConfig {
  const spec = clone(specOf(vs));
  const r = (h: string) => resolveShortname(h, vs.namespace, domainSuffix);
  if (spec.hosts) spec.hosts = spec.hosts.map(r);
  const fixDest = (d: Destination | undefined) => {
    if (d?.host) d.host = r(d.host);
  };
  for (const h of spec.http ?? []) {
    for (const d of h.route ?? []) fixDest(d.destination);
    fixDest(h.mirror);
    for (const m of h.mirrors ?? []) fixDest(m.destination);
    for (const m of h.match ?? []) if (m.gateways) m.gateways = m.gateways.map((g) => resolveGatewayName(g, vs.namespace));
  }
  for (const t of [...(spec.tcp ?? []), ...(spec.tls ?? [])]) {
    for (const d of t.route ?? []) fixDest(d.destination);
    for (const m of t.match ?? []) if (m.gateways) m.gateways = m.gateways.map((g) => resolveGatewayName(g, vs.namespace));
  }
  return { ...vs, spec };
}

/** Whether a delegate VS (namespace `dns`) is exported to namespace `ns`. */
function exportedTo(vs: IstioConfig, ns: string, defaults: string[] | undefined): boolean {
  const exportTo = (specOf(vs).exportTo ?? defaults ?? ['*']).map((e) => (e === '.' ? vs.namespace : e));
  return exportTo.includes('*') || exportTo.includes(ns);
}

const MATCH_KEYS = ['uri', 'scheme', 'method', 'authority', 'headers', 'queryParams', 'withoutHeaders', 'port', 'sourceLabels', 'gateways', 'sourceNamespace'];

/** Root match ∧ delegate match; undefined when they conflict (istiod's mergeHTTPMatchRequest). */
export function mergeMatch(root: HTTPMatchRequest, delegate: HTTPMatchRequest): HTTPMatchRequest | undefined {
  const out = clone(delegate);
  if (out.name && root.name) out.name = `${root.name}-${out.name}`;
  else if (root.name) out.name = root.name;
  // uri: the delegate's must stay inside the root's.
  if (root.uri) {
    if (!out.uri) out.uri = root.uri;
    else {
      const ru = root.uri;
      const du = out.uri;
      if (ru.exact !== undefined) {
        if (du.exact !== ru.exact) return undefined;
      } else if (ru.prefix !== undefined) {
        const dv: string | undefined = du.exact ?? du.prefix;
        if (dv === undefined || !dv.startsWith(ru.prefix)) return undefined;
      } else if (ru.regex !== undefined) {
        if (du.regex !== ru.regex) return undefined;
      }
    }
  }
  for (const k of ['scheme', 'method', 'authority'] as const) {
    if (root[k] === undefined) continue;
    if (out[k] === undefined) out[k] = root[k];
    else if (JSON.stringify(out[k]) !== JSON.stringify(root[k])) return undefined;
  }
  // Maps: the root's entries are added; an entry both set differently is a conflict.
  const mergeMap = <V>(from: Record<string, V> | undefined, into: Record<string, V>): boolean => {
    for (const [hk, hv] of Object.entries(from ?? {})) {
      if (into[hk] === undefined) into[hk] = hv;
      else if (JSON.stringify(into[hk]) !== JSON.stringify(hv)) return false;
    }
    return true;
  };
  for (const k of ['headers', 'queryParams', 'withoutHeaders'] as const) {
    if (!root[k]) continue;
    if (!mergeMap(root[k], (out[k] ??= {}))) return undefined;
  }
  if (root.sourceLabels && !mergeMap(root.sourceLabels, (out.sourceLabels ??= {}))) return undefined;
  if (root.port !== undefined) {
    if (out.port === undefined) out.port = root.port;
    else if (out.port !== root.port) return undefined;
  }
  if (root.sourceNamespace !== undefined) {
    if (out.sourceNamespace === undefined) out.sourceNamespace = root.sourceNamespace;
    else if (out.sourceNamespace !== root.sourceNamespace) return undefined;
  }
  if (root.gateways && !out.gateways) out.gateways = root.gateways;
  if (root.ignoreUriCase && out.ignoreUriCase === undefined) out.ignoreUriCase = root.ignoreUriCase;
  void MATCH_KEYS;
  return out;
}

function mergeHTTPRoute(root: HTTPRoute, delegate: HTTPRoute): HTTPRoute | undefined {
  const rootMatches = root.match ?? [];
  const delMatches = delegate.match ?? [];
  const out = clone(delegate);
  if (rootMatches.length > 0) {
    const merged: HTTPMatchRequest[] = [];
    if (delMatches.length === 0) merged.push(...clone(rootMatches));
    else
      for (const rm of rootMatches)
        for (const dm of delMatches) {
          const m = mergeMatch(rm, dm);
          if (m) merged.push(m);
        }
    if (merged.length === 0) return undefined;
    out.match = merged;
  }
  const inherit = <K extends keyof HTTPRoute>(k: K) => {
    if (out[k] === undefined && root[k] !== undefined) out[k] = clone(root[k]);
  };
  for (const k of ['rewrite', 'timeout', 'retries', 'fault', 'mirror', 'mirrors', 'mirrorPercentage', 'mirrorPercent', 'corsPolicy', 'headers'] as const) inherit(k);
  return out;
}

export interface MergeResult {
  /** Root VirtualServices with delegates merged in; delegates themselves are dropped. */
  virtualServices: IstioConfig[];
  issues: ValidationIssue[];
}

/**
 * Merges delegate VirtualServices into the roots that reference them, as
 * istiod does. `all` is every VirtualService the proxy may see (roots and
 * delegates), already resolved. A missing or non-exported delegate drops that
 * rule and is reported.
 */
export function mergeDelegates(all: IstioConfig[], defaultExportTo?: string[]): MergeResult {
  const issues: ValidationIssue[] = [];
  const delegates = new Map<string, IstioConfig>();
  const roots: IstioConfig[] = [];
  for (const vs of all) {
    if ((specOf(vs).hosts ?? []).length === 0) delegates.set(`${vs.namespace}/${vs.name}`, vs);
    else roots.push(vs);
  }
  const out: IstioConfig[] = [];
  for (const root of roots) {
    const https = specOf(root).http ?? [];
    if (!https.some((h) => h.delegate)) {
      out.push(root);
      continue;
    }
    const merged: HTTPRoute[] = [];
    https.forEach((h, i) => {
      if (!h.delegate) {
        merged.push(h);
        return;
      }
      const key = `${h.delegate.namespace ?? root.namespace}/${h.delegate.name}`;
      const del = delegates.get(key);
      const field = `spec.http[${i}].delegate`;
      if (!del) {
        issues.push({ kind: 'VirtualService', namespace: root.namespace, name: root.name, field, reason: `delegate VirtualService ${key} not found (a delegate has no hosts)` });
        return;
      }
      if (!exportedTo(del, root.namespace, defaultExportTo)) {
        issues.push({ kind: 'VirtualService', namespace: root.namespace, name: root.name, field, reason: `delegate VirtualService ${key} is not exported to namespace ${root.namespace}` });
        return;
      }
      for (const dh of specOf(del).http ?? []) {
        const m = mergeHTTPRoute(h, dh);
        if (m) merged.push(m);
      }
    });
    out.push({ ...root, spec: { ...root.spec, http: merged } });
  }
  return { virtualServices: out, issues };
}

function hostMatches(a: string, b: string): boolean {
  if (a === b) return true;
  const cover = (w: string, h: string) => w === '*' || (w.startsWith('*.') && h.endsWith(w.slice(1)));
  return cover(a, b) || cover(b, a);
}

/**
 * Cross-object problems with VirtualServices: hosts claimed by more than one
 * VirtualService for the same gateway (the older one wins on sidecars),
 * delegates that are missing, destinations naming no known service, subsets
 * no DestinationRule defines, and (warning-level) HTTP weights not adding up
 * to 100 (Istio treats them as relative weights).
 */
export function virtualServiceIssues(push: PushContext): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const all = push.configs('VirtualService').map((v) => resolveVirtualService(v, push.domainSuffix));
  const known = new Set(push.allServices().map((s) => s.hostname));
  const subsets = new Map<string, Set<string>>();
  for (const dr of push.configs('DestinationRule')) {
    const spec = dr.spec as DestinationRuleSpecType;
    const host = resolveShortname(String(spec.host ?? ''), dr.namespace, push.domainSuffix);
    const set = subsets.get(host) ?? new Set<string>();
    for (const s of spec.subsets ?? []) if (s.name) set.add(s.name);
    subsets.set(host, set);
  }
  const claimed = new Map<string, IstioConfig>();
  for (const vs of all) {
    const issue = (field: string, reason: string) => issues.push({ kind: 'VirtualService', namespace: vs.namespace, name: vs.name, field, reason });
    const hosts = specOf(vs).hosts ?? [];
    for (const gw of vsGateways(vs)) {
      hosts.forEach((h, i) => {
        for (const [k, other] of claimed) {
          const [ogw, oh] = [k.slice(0, k.indexOf(' ')), k.slice(k.indexOf(' ') + 1)];
          if (ogw === gw && other !== vs && hostMatches(oh, h) && oh === h && gw === 'mesh')
            issue(`spec.hosts[${i}]`, `host ${h} is also claimed by VirtualService ${other.namespace}/${other.name} for ${gw}; on sidecars only the older one is used (for gateways the rules are merged)`);
        }
        if (!claimed.has(`${gw} ${h}`)) claimed.set(`${gw} ${h}`, vs);
      });
    }
    const checkDest = (d: Destination | undefined, field: string) => {
      if (!d?.host) return;
      if (!d.host.includes('*') && !known.has(d.host)) issue(`${field}.host`, `destination host ${d.host} is not a known service or ServiceEntry`);
      else if (d.subset && !subsets.get(d.host)?.has(d.subset)) issue(`${field}.subset`, `subset ${d.subset} of ${d.host} is not defined by any DestinationRule`);
    };
    (specOf(vs).http ?? []).forEach((h, i) => {
      (h.route ?? []).forEach((d, j) => checkDest(d.destination, `spec.http[${i}].route[${j}].destination`));
      checkDest(h.mirror, `spec.http[${i}].mirror`);
      const routes = h.route ?? [];
      if (routes.length > 1) {
        const total = routes.reduce((s, d) => s + (d.weight ?? 0), 0);
        if (total !== 100 && total > 0)
          issue(`spec.http[${i}].route`, `weights add up to ${total}, not 100 (warning: Istio treats them as relative weights, so traffic is split ${routes.map((d) => `${d.weight ?? 0}/${total}`).join(', ')})`);
      }
    });
    for (const kind of ['tcp', 'tls'] as const)
      (specOf(vs)[kind] ?? []).forEach((t, i) =>
        (t.route ?? []).forEach((d, j) => checkDest(d.destination, `spec.${kind}[${i}].route[${j}].destination`)),
      );
  }
  issues.push(...mergeDelegates(all, push.mesh.defaultVirtualServiceExportTo).issues);
  return issues;
}
