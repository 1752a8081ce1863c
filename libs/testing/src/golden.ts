/**
 * Golden-file helpers: compare a value's canonical JSON (sorted keys,
 * 2-space indent) with `testdata/<case>/<type>.json`. `UPDATE_GOLDEN=1`
 * rewrites the files; a mismatch fails with the command that regenerates
 * them and a diff.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { AssertionError } from 'node:assert';
import { parseAllDocuments } from 'yaml';
import { canonicalize } from '@sextant/envoy';

/** Sorted keys at every level, undefined dropped. */
export function canonicalJson(value: unknown): string {
  return `${JSON.stringify(canonicalize(value), null, 2)}\n`;
}

/** A small line diff: the first differing region with context, `-` expected, `+` actual. */
export function lineDiff(expected: string, actual: string, context = 3, maxLines = 60): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length - 1;
  let endB = b.length - 1;
  while (endA >= start && endB >= start && a[endA] === b[endB]) {
    endA--;
    endB--;
  }
  const out: string[] = [];
  for (let i = Math.max(0, start - context); i < start; i++) out.push(`  ${a[i]}`);
  for (let i = start; i <= endA; i++) out.push(`- ${a[i]}`);
  for (let i = start; i <= endB; i++) out.push(`+ ${b[i]}`);
  for (let i = endA + 1; i < Math.min(a.length, endA + 1 + context); i++) out.push(`  ${a[i]}`);
  const header = `@@ line ${start + 1} @@`;
  if (out.length > maxLines) return [header, ...out.slice(0, maxLines), `... (${out.length - maxLines} more lines)`].join('\n');
  return [header, ...out].join('\n');
}

export interface GoldenOptions {
  /** The test file to name in the regenerate command (default: the running script). */
  testFile?: string;
  /** Overrides process.env.UPDATE_GOLDEN (for tests of this helper). */
  update?: boolean;
}

export function goldenPath(testdataDir: string, caseName: string, type: string): string {
  return join(testdataDir, caseName, `${type}.json`);
}

/**
 * Asserts `actual` equals the golden file for (case, type); with
 * UPDATE_GOLDEN=1 writes it instead. A missing golden file is a failure
 * unless updating.
 */
export function expectGolden(testdataDir: string, caseName: string, type: string, actual: unknown, opts: GoldenOptions = {}): void {
  const file = goldenPath(testdataDir, caseName, type);
  const text = canonicalJson(actual);
  const update = opts.update ?? process.env.UPDATE_GOLDEN === '1';
  if (update) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return;
  }
  const testFile = opts.testFile ?? process.argv[1] ?? '<test file>';
  const cmd = `UPDATE_GOLDEN=1 node --test ${relative(process.cwd(), testFile) || testFile}`;
  if (!existsSync(file)) {
    throw new AssertionError({ message: `golden file ${file} does not exist; create it with:\n  ${cmd}`, actual: text, expected: '', operator: 'golden' });
  }
  const expected = readFileSync(file, 'utf8');
  if (expected !== text) {
    throw new AssertionError({
      message: `${caseName}/${type}: output differs from ${file}\nIf the change is intended, regenerate with:\n  ${cmd}\n${lineDiff(expected, text)}`,
      actual: text,
      expected,
      operator: 'golden',
    });
  }
}

/** The header document of a golden case: which proxy to translate for. */
export interface GoldenCaseHeader {
  nodeId: string;
  metadata?: Record<string, unknown>;
  /** The xDS types to check (default: all four). */
  types?: Array<'lds' | 'rds' | 'cds' | 'eds'>;
  description?: string;
}

export interface GoldenCase {
  name: string;
  header: GoldenCaseHeader;
  /** The remaining YAML documents, raw (validate them before use). */
  objects: unknown[];
}

/**
 * Reads `testdata/<case>.yaml`: the first document is `{golden: {nodeId, metadata?, types?}}`,
 * the rest are Kubernetes/Istio objects. Documents may also come from other
 * files named in `golden.include` (paths relative to the case file).
 */
export function loadGoldenCase(testdataDir: string, caseName: string): GoldenCase {
  const file = join(testdataDir, `${caseName}.yaml`);
  const docs = readYamlDocs(file);
  const first = docs[0] as { golden?: GoldenCaseHeader & { include?: string[] } } | undefined;
  if (!first?.golden?.nodeId) throw new Error(`${file}: the first document must be {golden: {nodeId: ..., metadata: ...}}`);
  const objects = docs.slice(1);
  for (const inc of first.golden.include ?? []) objects.unshift(...readYamlDocs(join(dirname(file), inc)));
  return { name: caseName, header: first.golden, objects };
}

export function readYamlDocs(file: string): unknown[] {
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    const v = doc.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

import { readdirSync } from 'node:fs';

/** Case names (`<case>.yaml` files) in a testdata directory, sorted. */
export function listGoldenCases(testdataDir: string): string[] {
  return readdirSync(testdataDir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}
