/**
 * Normalising and diffing two control planes' xDS for one proxy. Both sides
 * are Envoy JSON decoded with the same descriptors; what does not change
 * behaviour is taken out before comparing (versions and nonces never enter,
 * lists Envoy treats as sets are sorted), and list elements that carry a
 * `name` are matched by name rather than position, so one inserted filter
 * chain is one difference, not a cascade.
 */
import type { JsonValue } from '@sextant/envoy';
import type { XdsSnapshot, XdsType } from './fetch.js';
import { xdsTypes } from './fetch.js';

export type DifferenceKind = 'missing-in-sextant' | 'extra-in-sextant' | 'changed';

export interface Difference {
  /** `lds/0.0.0.0_9080/filterChains[0.0.0.0_9080]/filters[envoy.filters.network.http_connection_manager]/...` */
  path: string;
  kind: DifferenceKind;
  /** istiod's value at the path (absent for extra-in-sextant). */
  istiod?: unknown;
  /** Sextant's value at the path (absent for missing-in-sextant). */
  sextant?: unknown;
}

/**
 * Lists whose order Envoy ignores (matching is by specificity or membership),
 * by field name. Ordered lists (routes, HTTP filters, listener filters, ALPN
 * preference, cipher suites) are compared as they are.
 */
const SET_LIKE = new Set([
  'domains',
  'serverNames',
  'applicationProtocols',
  'prefixRanges',
  'sourcePrefixRanges',
  'directSourcePrefixRanges',
  'sourcePorts',
  'subjectAltNames',
  'matchSubjectAltNames',
  'matchTypedSubjectAltNames',
  'lbEndpoints',
  'endpoints',
  'filterChains',
  'virtualHosts',
  'additionalAddresses',
  'principals',
  'permissions',
  'ids',
  'exposeHeaders',
  'allowOriginStringMatch',
  'audiences',
  'providers',
  'requestHeadersToRemove',
  'responseHeadersToRemove',
]);

function canonical(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** A copy with set-like lists sorted (by the canonical JSON of their elements). */
export function normalize(v: unknown, key = ''): unknown {
  if (Array.isArray(v)) {
    const items = v.map((e) => normalize(e));
    if (SET_LIKE.has(key)) items.sort((a, b) => (canonical(a) < canonical(b) ? -1 : canonical(a) > canonical(b) ? 1 : 0));
    return items;
  }
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = normalize((v as Record<string, unknown>)[k], k);
    return out;
  }
  return v;
}

function escapeKey(k: string): string {
  return k.replace(/%/g, '%25').replace(/\//g, '%2F').replace(/\[/g, '%5B').replace(/\]/g, '%5D');
}

/**
 * The key an element is matched by: its `name`, or for a filter chain its
 * `filterChainMatch`.
 */
function elementKey(e: unknown, field: string): string | undefined {
  if (!e || typeof e !== 'object' || Array.isArray(e)) return undefined;
  const o = e as Record<string, unknown>;
  // Envoy rejects two chains with one match, and picks chains by match: the match is a chain's identity.
  if (field === 'filterChains') return `match=${canonical(o['filterChainMatch'] ?? {})}`;
  if (typeof o['name'] === 'string' && o['name'] !== '') return o['name'];
  return undefined;
}

/**
 * Keys for both lists when every element has one. A name that repeats within
 * a list (istiod's DENY and ALLOW RBAC filters share one) is keyed by its
 * occurrence from the second on (`envoy.filters.http.rbac#2`), so a filter
 * inserted before them shifts nothing; repeated filter chain matches are not
 * keyed (Envoy would reject them).
 */
function keysOf(a: unknown[], b: unknown[], field: string): [string[], string[]] | undefined {
  const out: string[][] = [];
  for (const list of [a, b]) {
    const keys: string[] = [];
    const seen = new Map<string, number>();
    for (const e of list) {
      const k = elementKey(e, field);
      if (k === undefined) return undefined;
      const n = (seen.get(k) ?? 0) + 1;
      seen.set(k, n);
      if (n > 1 && field === 'filterChains') return undefined;
      keys.push(n > 1 ? `${k}#${n}` : k);
    }
    out.push(keys);
  }
  return a.length + b.length > 0 ? [out[0]!, out[1]!] : undefined;
}

function diffValue(path: string, a: unknown, b: unknown, out: Difference[]): void {
  if (a === undefined && b === undefined) return;
  if (a === undefined) {
    out.push({ path, kind: 'extra-in-sextant', sextant: b });
    return;
  }
  if (b === undefined) {
    out.push({ path, kind: 'missing-in-sextant', istiod: a });
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const field = path.slice(path.lastIndexOf('/') + 1);
    const keys = keysOf(a, b, field);
    if (keys) {
      const ma = new Map(keys[0].map((k, i) => [k, a[i]]));
      const mb = new Map(keys[1].map((k, i) => [k, b[i]]));
      for (const k of new Set([...keys[0], ...keys[1]])) diffValue(`${path}[${escapeKey(k)}]`, ma.get(k), mb.get(k), out);
      return;
    }
    for (let i = 0; i < Math.max(a.length, b.length); i++) diffValue(`${path}[${i}]`, a[i], b[i], out);
    return;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const oa = a as Record<string, unknown>;
    const ob = b as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(oa), ...Object.keys(ob)])].sort()) diffValue(`${path}/${escapeKey(k)}`, oa[k], ob[k], out);
    return;
  }
  if (canonical(a) !== canonical(b)) out.push({ path, kind: 'changed', istiod: a, sextant: b });
}

/** Every difference between what istiod and Sextant serve one proxy, by xDS type and resource name. */
export function diffSnapshots(istiod: XdsSnapshot, sextant: XdsSnapshot, types: readonly XdsType[] = xdsTypes): Difference[] {
  const out: Difference[] = [];
  for (const t of types) {
    const a = istiod[t];
    const b = sextant[t];
    for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
      const va = a.get(name);
      const vb = b.get(name);
      diffValue(`${t}/${escapeKey(name)}`, va === undefined ? undefined : normalize(va), vb === undefined ? undefined : normalize(vb), out);
    }
  }
  return out;
}

/** Whether every value in the snapshot is equal (after normalisation) to the other's. */
export function sameSnapshot(a: XdsSnapshot, b: XdsSnapshot): boolean {
  return diffSnapshots(a, b).length === 0;
}

const EXTENSION_NAME = /^(envoy|istio|io\.istio|xds|udpa|extensions)\.|^(envoy|istio)_/;

/**
 * The path with resource names, indices and element names replaced by `*`,
 * keeping extension names (filters, transport sockets): the group a
 * difference is reported under, and a starting point for a pattern in
 * expected-differences.yaml.
 */
export function generalize(path: string): string {
  const segs = path.split('/');
  return segs
    .map((s, i) => {
      if (i === 1) return '*';
      return s.replace(/\[([^\]]*)\]/g, (_m, k: string) => (EXTENSION_NAME.test(k) ? `[${k}]` : '[*]'));
    })
    .join('/');
}
