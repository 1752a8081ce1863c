/**
 * Classifying differences against expected-differences.yaml and printing
 * them grouped by feature. The parity suite and `sextant compare` print the
 * same report.
 */
import { generalize, type Difference } from './diff.js';
import type { ExpectedDifference, ExpectedDifferences } from './expected.js';

export interface ProxyComparison {
  /** A short label for the proxy (the matrix name, or the pod). */
  proxy: string;
  nodeId: string;
  differences: Difference[];
}

export interface ProxyReport {
  proxy: string;
  nodeId: string;
  /** Explained differences by expected entry id. */
  expected: Map<string, Difference[]>;
  /** Unexplained differences by generalised path. */
  unexpected: Map<string, Difference[]>;
}

export interface ComparisonReport {
  proxies: ProxyReport[];
  entries: ExpectedDifference[];
  /** Entries that matched no difference of any proxy. */
  stale: ExpectedDifference[];
  unexpectedCount: number;
  expectedCount: number;
}

export function classify(results: ProxyComparison[], expected?: ExpectedDifferences): ComparisonReport {
  const used = new Set<string>();
  let unexpectedCount = 0;
  let expectedCount = 0;
  const proxies = results.map((r): ProxyReport => {
    const exp = new Map<string, Difference[]>();
    const unexp = new Map<string, Difference[]>();
    for (const d of r.differences) {
      const e = expected?.match(d, r.proxy);
      if (e) {
        used.add(e.id);
        expectedCount++;
        const l = exp.get(e.id) ?? [];
        l.push(d);
        exp.set(e.id, l);
      } else {
        unexpectedCount++;
        const g = generalize(d.path);
        const l = unexp.get(g) ?? [];
        l.push(d);
        unexp.set(g, l);
      }
    }
    return { proxy: r.proxy, nodeId: r.nodeId, expected: exp, unexpected: unexp };
  });
  const entries = expected?.entries ?? [];
  return { proxies, entries, stale: entries.filter((e) => !used.has(e.id)), unexpectedCount, expectedCount };
}

function short(v: unknown, max: number): string {
  if (v === undefined) return '(absent)';
  const s = JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function describe(d: Difference, max: number): string {
  switch (d.kind) {
    case 'missing-in-sextant':
      return `${d.path}\n        only istiod: ${short(d.istiod, max)}`;
    case 'extra-in-sextant':
      return `${d.path}\n        only Sextant: ${short(d.sextant, max)}`;
    default:
      return `${d.path}\n        istiod:  ${short(d.istiod, max)}\n        Sextant: ${short(d.sextant, max)}`;
  }
}

export interface FormatOptions {
  /** Examples printed per group (default 2). */
  examples?: number;
  /** Longest JSON value printed (default 240 characters). */
  valueWidth?: number;
  /** Print explained groups too (default true). */
  showExpected?: boolean;
}

/** The human report: per proxy, explained groups (one line each) and unexplained groups with examples. */
export function formatReport(report: ComparisonReport, opts: FormatOptions = {}): string {
  const examples = opts.examples ?? 2;
  const width = opts.valueWidth ?? 240;
  const byId = new Map(report.entries.map((e) => [e.id, e]));
  const lines: string[] = [];
  for (const p of report.proxies) {
    const total = [...p.expected.values(), ...p.unexpected.values()].reduce((n, l) => n + l.length, 0);
    lines.push(`proxy ${p.proxy}${p.proxy === p.nodeId ? '' : ` (${p.nodeId})`}: ${total === 0 ? 'identical' : `${total} differences`}`);
    if (opts.showExpected ?? true) {
      for (const [id, ds] of [...p.expected].sort((a, b) => a[0].localeCompare(b[0]))) {
        const e = byId.get(id)!;
        lines.push(`  expected   ${e.feature}/${id}${e.issue ? ` (issue ${e.issue})` : ''}: ${ds.length}`);
      }
    }
    for (const [group, ds] of [...p.unexpected].sort((a, b) => a[0].localeCompare(b[0]))) {
      const kinds = [...new Set(ds.map((d) => d.kind))].join(', ');
      lines.push(`  UNEXPECTED ${group} [${kinds}]: ${ds.length}`);
      for (const d of ds.slice(0, examples)) lines.push(`      ${describe(d, width)}`);
    }
  }
  if (report.stale.length) {
    lines.push('listed in expected-differences but no longer seen (delete these entries):');
    for (const e of report.stale) lines.push(`  STALE ${e.feature}/${e.id}: ${e.paths.join(', ')}`);
  }
  lines.push(`${report.expectedCount} expected, ${report.unexpectedCount} unexpected differences; ${report.stale.length} stale entries`);
  return lines.join('\n');
}
