/**
 * expected-differences.yaml: the differences between istiod and Sextant that
 * are known and explained. Each entry names a feature, path patterns, why the
 * outputs differ, what that changes for traffic, and the issue that will
 * remove it. A difference no entry matches is a failure; so is an entry that
 * matches nothing (the difference went away: delete the entry).
 *
 * Pattern syntax: segments separated by `/` as in a difference's path; `*`
 * matches any run of characters inside one segment, `**` any number of whole
 * segments; a segment without `[…]` also matches that field's list elements.
 * A pattern ending in `$` matches only differences at exactly that path (a
 * whole element missing or extra), not beneath it. A pattern matches a difference at its path or anywhere beneath
 * it, so a pattern can name a whole subtree.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Difference, DifferenceKind } from './diff.js';

export interface ExpectedDifference {
  /** Short unique id, e.g. `stats-filter`. */
  id: string;
  /** Feature area, for grouping: telemetry, security, traffic, ... */
  feature: string;
  paths: string[];
  /** Only differences of this kind (default any). */
  kind?: DifferenceKind;
  /** Only for proxies whose label matches one of these globs (default all). */
  proxies?: string[];
  /** Why the outputs differ. */
  reason: string;
  /** What it changes for traffic: nothing, why Sextant's output is better, or what breaks until the issue is fixed. */
  traffic: string;
  /** The open issue that will remove the difference, if any. */
  issue?: number;
}

const KINDS: DifferenceKind[] = ['missing-in-sextant', 'extra-in-sextant', 'changed'];

function globToRegex(glob: string): RegExp {
  return new RegExp('^' + glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
}

interface CompiledEntry {
  entry: ExpectedDifference;
  patterns: Compiled[];
  proxies: RegExp[] | undefined;
}

type Compiled = { segs: (RegExp | '**')[]; exact: boolean };

function compilePattern(pattern: string): Compiled {
  const exact = pattern.endsWith('$');
  const p = exact ? pattern.slice(0, -1) : pattern;
  const segs = p.split('/').map((s): RegExp | '**' => {
    if (s === '**') return '**';
    const body = s.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*');
    // A field name without a [key] also matches its list elements: `domains` covers `domains[3]`.
    return new RegExp('^' + body + (s.includes('[') ? '' : '(\\[[^/]*\\])?') + '$');
  });
  return { segs, exact };
}

/** Does the pattern match a prefix of the path segments (so it covers the subtree), or the whole path when exact? */
function matchPrefix(pat: (RegExp | '**')[], segs: string[], exact: boolean, pi = 0, si = 0): boolean {
  if (pi === pat.length) return !exact || si === segs.length;
  const p = pat[pi]!;
  if (p === '**') {
    for (let k = si; k <= segs.length; k++) if (matchPrefix(pat, segs, exact, pi + 1, k)) return true;
    return false;
  }
  if (si >= segs.length) return false;
  return p.test(segs[si]!) && matchPrefix(pat, segs, exact, pi + 1, si + 1);
}

export class ExpectedDifferences {
  private readonly compiled: CompiledEntry[];

  constructor(readonly entries: ExpectedDifference[]) {
    this.compiled = entries.map((entry) => ({
      entry,
      patterns: entry.paths.map(compilePattern),
      proxies: entry.proxies?.map(globToRegex),
    }));
  }

  /** The first entry that explains this difference for this proxy, if any. */
  match(d: Difference, proxy: string): ExpectedDifference | undefined {
    const segs = d.path.split('/');
    for (const c of this.compiled) {
      if (c.entry.kind && c.entry.kind !== d.kind) continue;
      if (c.proxies && !c.proxies.some((r) => r.test(proxy))) continue;
      if (c.patterns.some((p) => matchPrefix(p.segs, segs, p.exact))) return c.entry;
    }
    return undefined;
  }
}

/** Parses and checks an expected-differences file; errors name the entry and field. */
export function parseExpectedDifferences(text: string, source = 'expected-differences.yaml'): ExpectedDifferences {
  const doc = parse(text) as unknown;
  const list = doc ?? [];
  if (!Array.isArray(list)) throw new Error(`${source}: expected a list of entries`);
  const ids = new Set<string>();
  const entries = list.map((raw, i): ExpectedDifference => {
    const where = `${source}: entry ${i + 1}`;
    if (!raw || typeof raw !== 'object') throw new Error(`${where}: expected a mapping`);
    const e = raw as Record<string, unknown>;
    const str = (k: string, required = true): string | undefined => {
      const v = e[k];
      if (v === undefined && !required) return undefined;
      if (typeof v !== 'string' || v.trim() === '') throw new Error(`${where} (${String(e['id'] ?? '?')}): ${k}: expected a non-empty string`);
      return v.trim();
    };
    const id = str('id')!;
    if (ids.has(id)) throw new Error(`${where}: id ${id} is used twice`);
    ids.add(id);
    const paths = e['paths'];
    if (!Array.isArray(paths) || paths.length === 0 || paths.some((p) => typeof p !== 'string' || p === '')) throw new Error(`${where} (${id}): paths: expected a non-empty list of patterns`);
    const kind = str('kind', false);
    if (kind !== undefined && !KINDS.includes(kind as DifferenceKind)) throw new Error(`${where} (${id}): kind: expected one of ${KINDS.join(', ')}`);
    const proxies = e['proxies'];
    if (proxies !== undefined && (!Array.isArray(proxies) || proxies.some((p) => typeof p !== 'string'))) throw new Error(`${where} (${id}): proxies: expected a list of globs`);
    const issue = e['issue'];
    if (issue !== undefined && (typeof issue !== 'number' || !Number.isInteger(issue))) throw new Error(`${where} (${id}): issue: expected an issue number`);
    for (const k of Object.keys(e)) {
      if (!['id', 'feature', 'paths', 'kind', 'proxies', 'reason', 'traffic', 'issue'].includes(k)) throw new Error(`${where} (${id}): unknown field ${k}`);
    }
    return {
      id,
      feature: str('feature')!,
      paths: paths as string[],
      ...(kind ? { kind: kind as DifferenceKind } : {}),
      ...(proxies ? { proxies: proxies as string[] } : {}),
      reason: str('reason')!,
      traffic: str('traffic')!,
      ...(issue !== undefined ? { issue: issue as number } : {}),
    };
  });
  return new ExpectedDifferences(entries);
}

export function loadExpectedDifferences(file: string): ExpectedDifferences {
  return parseExpectedDifferences(readFileSync(file, 'utf8'), file);
}
