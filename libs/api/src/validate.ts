import { z } from 'zod';
import { KINDS, apiVersionOf, kindInfo, parseApiVersion, type KindInfo } from './kinds.js';
import { ObjectMetaSchema, checkName } from './meta.js';
import type { ConfigObject, ObjectKey, ObjectMeta, ValidationIssue } from './object.js';

/**
 * Validation at the edge: every object from any source crosses
 * `validateObject` once. Problems come back as ValidationIssues whose reason
 * is written for an operator, never zod's wording.
 */

export interface ValidateOptions {
  /** Namespace given to namespaced objects that have none (the folder source passes `default`). */
  defaultNamespace?: string;
  /**
   * What an unknown field in an Istio spec does. `reject` (the default, as
   * `istioctl validate` and Istio's structural CRDs do) makes it an error;
   * `warn` drops the field, accepts the object and returns the issue in
   * `warnings` (for objects read from a cluster whose CRDs are newer).
   */
  unknownFields?: 'reject' | 'warn';
}

export type ValidationResult =
  | { ok: true; object: ConfigObject; warnings: ValidationIssue[] }
  | {
      ok: false;
      issues: ValidationIssue[];
      /** kind/namespace/name when the object got far enough to have one (used to keep its last valid version). */
      key?: ObjectKey;
    };

type Segment = PropertyKey;

/** `['spec','http',0,'route',1,'weight']` → `spec.http[0].route[1].weight`; odd map keys are quoted. */
export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) out += out === '' ? s : `.${s}`;
      else out += `[${JSON.stringify(s)}]`;
    }
  }
  return out === '' ? '(object)' : out;
}

/** The inverse of formatPath: `spec.http[0]["a.b"]` → `['spec','http',0,'a.b']`. */
export function parseFieldPath(field: string): (string | number)[] {
  if (field === '(object)') return [];
  const out: (string | number)[] = [];
  const re = /([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\./g;
  for (const m of field.matchAll(re)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[3] !== undefined) out.push(JSON.parse(m[3]) as string);
  }
  return out;
}

/** Describes a value the way an operator wrote it in YAML. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') {
    const s = v.length > 60 ? `${v.slice(0, 57)}...` : v;
    return `a string ${JSON.stringify(s)}`;
  }
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return `the boolean ${v}`;
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Date) return `a timestamp ${v.toISOString()}`;
  if (typeof v === 'object') return 'a map';
  return typeof v;
}

const EXPECTED_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a map',
  array: 'a list',
  record: 'a map',
  map: 'a map',
  null: 'null',
  date: 'a timestamp',
  bigint: 'an integer',
};

function quoteList(values: readonly unknown[]): string {
  return values.map((v) => (typeof v === 'string' ? `"${v}"` : String(v))).join(', ');
}

/**
 * Edit distance with transpositions (optimal string alignment), for "did you
 * mean", computed only up to `limit`: returns `limit + 1` as soon as the
 * distance is known to exceed it. Three rolling rows, no allocation per cell.
 */
function distance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev2 = new Int32Array(b.length + 1);
  let prev = Int32Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      let v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a.charCodeAt(i - 1) === b.charCodeAt(j - 2) && a.charCodeAt(i - 2) === b.charCodeAt(j - 1)) v = Math.min(v, prev2[j - 2]! + 1);
      cur[j] = v;
      if (v < rowMin) rowMin = v;
    }
    if (rowMin > limit) return limit + 1;
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return Math.min(prev[b.length]!, limit + 1);
}

/** Field and kind names are short; a longer word gets no suggestion (bounds the work per unknown field). */
const MAX_SUGGESTION_INPUT = 64;

export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  if (word.length > MAX_SUGGESTION_INPUT) return undefined;
  const limit = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestD = limit + 1;
  const lw = word.toLowerCase();
  for (const c of candidates) {
    const lc = c.toLowerCase();
    const d = lc === lw ? 0 : distance(lw, lc, Math.min(limit, bestD - 1));
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return bestD <= limit ? best : undefined;
}

/** The reason text for one zod issue (not unions or unknown keys, which are handled structurally). */
function reasonFor(iss: z.core.$ZodRawIssue | z.core.$ZodIssue): string {
  const input = (iss as { input?: unknown }).input;
  switch (iss.code) {
    case 'invalid_type': {
      if (input === undefined) return 'required field missing';
      const expected = EXPECTED_WORDS[iss.expected] ?? `a ${iss.expected}`;
      return `expected ${expected}, got ${describeValue(input)}`;
    }
    case 'invalid_value': {
      if (input === undefined) return 'required field missing';
      const vals = iss.values;
      if (vals.length === 1) return `must be ${quoteList(vals)}, got ${describeValue(input)}`;
      return `must be one of ${quoteList(vals)}; got ${describeValue(input)}`;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'string')
        return min === 1 ? 'must not be empty' : `must be at least ${min} characters long`;
      if (iss.origin === 'array' || iss.origin === 'set')
        return min === 1 ? 'must have at least one item' : `must have at least ${min} items`;
      return iss.inclusive === false ? `must be greater than ${min}, got ${String(input)}` : `must be at least ${min}, got ${String(input)}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'string')
        return `must be no more than ${max} characters long (has ${typeof input === 'string' ? input.length : '?'})`;
      if (iss.origin === 'array' || iss.origin === 'set')
        return `must have no more than ${max} items (has ${Array.isArray(input) ? input.length : '?'})`;
      return iss.inclusive === false ? `must be less than ${max}, got ${String(input)}` : `must be at most ${max}, got ${String(input)}`;
    }
    case 'invalid_format':
      if (iss.format === 'regex') return `${JSON.stringify(input)} does not match the pattern ${iss.pattern ?? ''}`.trim();
      return `${JSON.stringify(input)} is not a valid ${iss.format}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(iss.divisor)}`;
    case 'invalid_key':
      return `invalid key ${JSON.stringify(input)}`;
    case 'invalid_element':
      return 'invalid entry';
    case 'invalid_union':
      return 'does not match any allowed form';
    case 'unrecognized_keys': {
      // zod asks for this text once per object, however many keys: list a few.
      const more = iss.keys.length > 10 ? ` and ${iss.keys.length - 10} more` : '';
      return `unknown field${iss.keys.length > 1 ? 's' : ''} ${quoteList(iss.keys.slice(0, 10))}${more}`;
    }
    case 'custom':
      return iss.message ?? 'invalid value';
    default:
      return 'invalid value';
  }
}

/** Zod's per-parse error map: gives every issue an operator-facing message; schema-level messages still win. */
const errorMap: z.core.$ZodErrorMap = (iss) => reasonFor(iss);

// ---- walking a schema to the node an issue points at (for "did you mean") ----

type AnySchema = z.core.$ZodType;
interface Def {
  type: string;
  innerType?: AnySchema;
  in?: AnySchema;
  out?: AnySchema;
  shape?: Record<string, AnySchema>;
  element?: AnySchema;
  valueType?: AnySchema;
  options?: AnySchema[];
  left?: AnySchema;
  right?: AnySchema;
  items?: AnySchema[];
  getter?: () => AnySchema;
}
const defOf = (s: AnySchema): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

function unwrap(s: AnySchema): AnySchema {
  for (let i = 0; i < 32; i++) {
    const d = defOf(s);
    if (d.innerType && ['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional', 'success'].includes(d.type))
      s = d.innerType;
    else if (d.type === 'pipe') s = defOf(d.in!).type === 'transform' ? d.out! : d.in!;
    else if (d.type === 'lazy') s = d.getter!();
    else return s;
  }
  return s;
}

function child(s: AnySchema | undefined, seg: Segment): AnySchema | undefined {
  if (!s) return undefined;
  const u = unwrap(s);
  const d = defOf(u);
  switch (d.type) {
    case 'object':
      return typeof seg === 'string' ? d.shape?.[seg] : undefined;
    case 'array':
      return d.element;
    case 'record':
    case 'map':
      return d.valueType;
    case 'tuple':
      return typeof seg === 'number' ? d.items?.[seg] : undefined;
    case 'intersection':
      return child(d.left, seg) ?? child(d.right, seg);
    default:
      return undefined;
  }
}

function at(s: AnySchema | undefined, path: readonly Segment[]): AnySchema | undefined {
  let cur = s;
  for (const seg of path) cur = child(cur, seg);
  return cur;
}

function shapeKeys(s: AnySchema | undefined): string[] {
  if (!s) return [];
  const u = unwrap(s);
  const d = defOf(u);
  if (d.type === 'object') return Object.keys(d.shape ?? {});
  if (d.type === 'intersection') return [...shapeKeys(d.left), ...shapeKeys(d.right)];
  if (d.type === 'union') return [...new Set((d.options ?? []).flatMap(shapeKeys))];
  return [];
}

function getIn(v: unknown, path: readonly Segment[]): unknown {
  let cur = v;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg as string];
  }
  return cur;
}

interface RawIssue {
  path: Segment[];
  reason: string;
  /** The unknown key, for `warn` mode (the field is removed and parsing retried). */
  unknownKey?: boolean;
}

/**
 * At most this many issues are reported for one object; the rest are counted
 * in one closing issue. An object with 100,000 unknown fields is reported in
 * constant space, and "did you mean" runs only for the reported ones.
 */
export const MAX_ISSUES_PER_OBJECT = 100;

function unknownKeyReason(key: string, known: string[], present: unknown, suggest: boolean): string {
  if (!suggest) return `unknown field "${key}"`;
  const candidates = known.filter((k) => !(present && typeof present === 'object' && (present as Record<string, unknown>)[k] !== undefined));
  const guess = didYouMean(key, candidates);
  return guess ? `unknown field "${key}" (did you mean "${guess}"?)` : `unknown field "${key}"`;
}

/** Turns zod issues into path + reason, resolving unions and unknown keys against the schema. */
function convert(issues: readonly z.core.$ZodIssue[], schema: AnySchema | undefined, base: Segment[], input: unknown, out: RawIssue[]): void {
  for (const iss of issues) {
    const path = [...base, ...iss.path];
    if (iss.code === 'unrecognized_keys') {
      const node = at(schema, iss.path);
      const value = getIn(input, iss.path);
      const known = shapeKeys(node);
      for (const key of iss.keys) out.push({ path: [...path, key], reason: unknownKeyReason(key, known, value, out.length < MAX_ISSUES_PER_OBJECT), unknownKey: true });
    } else if (iss.code === 'invalid_union') {
      convertUnion(iss, at(schema, iss.path), path, getIn(input, iss.path), out);
    } else {
      out.push({ path, reason: iss.message || reasonFor(iss) });
    }
  }
}

function convertUnion(iss: z.core.$ZodIssueInvalidUnion, schema: AnySchema | undefined, path: Segment[], value: unknown, out: RawIssue[]): void {
  const branches = iss.errors;
  const options = schema ? (defOf(unwrap(schema)).options ?? []) : [];
  if (branches.length === 0) {
    out.push({ path, reason: iss.message && iss.message !== 'Invalid input' ? iss.message : 'does not match any allowed form' });
    return;
  }
  // Every branch rejected the value's type outright: "expected a string or a number, got a list".
  const typeOnly = branches.every((b) => b.length === 1 && b[0]!.code === 'invalid_type' && b[0]!.path.length === 0);
  if (typeOnly) {
    const expected = [...new Set(branches.map((b) => (b[0] as z.core.$ZodIssueInvalidType).expected))].map((e) => EXPECTED_WORDS[e] ?? e);
    out.push({ path, reason: value === undefined ? 'required field missing' : `expected ${expected.join(' or ')}, got ${describeValue(value)}` });
    return;
  }
  const objectOptions = options.length === branches.length && options.every((o) => defOf(unwrap(o)).type === 'object');
  if (objectOptions && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const matching = options.map((o, i) => ({ i, keys: shapeKeys(o) })).filter((o) => o.keys.some((k) => Object.hasOwn(value, k)));
    if (matching.length === 0) {
      const all = [...new Set(options.flatMap(shapeKeys))];
      if (keys.length === 0) out.push({ path, reason: `must set one of ${quoteList(all)}` });
      for (const k of keys) out.push({ path: [...path, k], reason: unknownKeyReason(k, all, value, out.length < MAX_ISSUES_PER_OBJECT), unknownKey: true });
      return;
    }
    if (matching.length === 1) {
      const i = matching[0]!.i;
      convert(branches[i]!, options[i], path, value, out);
      return;
    }
  }
  let best = 0;
  for (let i = 1; i < branches.length; i++) if (branches[i]!.length < branches[best]!.length) best = i;
  convert(branches[best]!, options[best], path, value, out);
}

function issueFrom(key: ObjectKey, field: string, reason: string): ValidationIssue {
  return { kind: key.kind, namespace: key.namespace, name: key.name, field, reason };
}

/** Appends raw issues, at most MAX_ISSUES_PER_OBJECT in all; returns how many were left out. */
function appendCapped(list: ValidationIssue[], key: ObjectKey, raws: readonly RawIssue[], suffix = ''): number {
  const room = Math.max(0, MAX_ISSUES_PER_OBJECT - list.length);
  for (const r of raws.slice(0, room)) list.push(issueFrom(key, formatPath(r.path), `${r.reason}${suffix}`));
  return Math.max(0, raws.length - room);
}

/** The closing issue that counts what was left out. */
function omittedIssue(key: ObjectKey, what: string): ValidationIssue {
  return issueFrom(key, '(object)', `${what} (at most ${MAX_ISSUES_PER_OBJECT} are listed per object)`);
}

function knownKindsList(): string {
  return KINDS.map((k) => k.kind).join(', ');
}

function deleteAt(root: unknown, path: readonly Segment[]): void {
  const parent = getIn(root, path.slice(0, -1));
  if (parent && typeof parent === 'object') delete (parent as Record<PropertyKey, unknown>)[path[path.length - 1] as string];
}

/**
 * Drops map entries whose value is null, recursively: `annotations:` left
 * empty in YAML means "not set", as it does for the API server (which prunes
 * nulls from fields that are not nullable) and for Istio's protobuf decoding.
 */
export function dropNulls(v: unknown, depth = 0): unknown {
  if (depth > 100 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const mapped = v.map((x) => dropNulls(x, depth + 1));
    return mapped.every((x, i) => x === v[i]) ? v : mapped;
  }
  if (v instanceof Date) return v;
  // Copy only a map that changes: most objects have no null, and copying a
  // map with a huge number of keys costs more than reading it.
  const map = v as Record<string, unknown>;
  let out: Record<string, unknown> | undefined;
  const keys = Object.keys(map);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const x = map[k];
    const y = x === null ? undefined : dropNulls(x, depth + 1);
    if (out === undefined && (x === null || y !== x)) {
      out = {};
      for (let j = 0; j < i; j++) out[keys[j]!] = map[keys[j]!];
    }
    if (out !== undefined && x !== null) out[k] = y;
  }
  return out ?? v;
}

/**
 * Parses apiVersion/kind/metadata, looks the kind up in the registry and
 * validates the body. Never throws.
 */
export function validateObject(input: unknown, opts: ValidateOptions = {}): ValidationResult {
  const raw = dropNulls(input);
  const unknownKind = '<unknown kind>';
  const noName = '<no name>';
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return {
      ok: false,
      issues: [{ kind: unknownKind, namespace: undefined, name: noName, field: '(object)', reason: `expected a Kubernetes object (a map with apiVersion, kind and metadata), got ${describeValue(raw)}` }],
    };
  }
  const obj = raw as Record<string, unknown>;
  const kindName = typeof obj.kind === 'string' && obj.kind !== '' ? obj.kind : undefined;
  const rawMeta = obj.metadata && typeof obj.metadata === 'object' && !Array.isArray(obj.metadata) ? (obj.metadata as Record<string, unknown>) : undefined;
  const rawName = typeof rawMeta?.name === 'string' && rawMeta.name !== '' ? rawMeta.name : undefined;
  const info = kindName ? kindInfo(kindName) : undefined;
  let namespace = typeof rawMeta?.namespace === 'string' && rawMeta.namespace !== '' ? rawMeta.namespace : undefined;
  if (info && !info.namespaced) namespace = undefined;
  else if (namespace === undefined && (info?.namespaced ?? true)) namespace = opts.defaultNamespace;
  const key: ObjectKey = { kind: kindName ?? unknownKind, namespace, name: rawName ?? noName };
  const issues: ValidationIssue[] = [];
  let omitted = 0;
  const fail = () => ({
    ok: false as const,
    issues: omitted > 0 ? [...issues, omittedIssue(key, `${omitted} more problems not listed`)] : issues,
    ...(kindName && rawName ? { key } : {}),
  });

  // apiVersion and kind.
  if (obj.kind === undefined) issues.push(issueFrom(key, 'kind', 'required field missing'));
  else if (typeof obj.kind !== 'string' || obj.kind === '') issues.push(issueFrom(key, 'kind', `expected a kind name, got ${describeValue(obj.kind)}`));
  if (obj.apiVersion === undefined) issues.push(issueFrom(key, 'apiVersion', 'required field missing'));
  else if (typeof obj.apiVersion !== 'string' || obj.apiVersion === '')
    issues.push(issueFrom(key, 'apiVersion', `expected a string like "networking.istio.io/v1", got ${describeValue(obj.apiVersion)}`));
  if (kindName && !info) {
    const guess = didYouMean(kindName, KINDS.map((k) => k.kind));
    issues.push(
      issueFrom(
        key,
        'kind',
        guess ? `unknown kind "${kindName}" (did you mean "${guess}"?)` : `unknown kind "${kindName}"; Sextant reads ${knownKindsList()}`,
      ),
    );
  }
  let version = '';
  if (info && typeof obj.apiVersion === 'string' && obj.apiVersion !== '') {
    const gv = parseApiVersion(obj.apiVersion);
    version = gv.version;
    const served = info.versions.map((v) => apiVersionOf(info.group, v));
    if (gv.group !== info.group)
      issues.push(
        issueFrom(key, 'apiVersion', `Sextant does not read ${info.kind} from API group "${gv.group || 'core'}"; it reads ${info.kind} from "${info.group || 'core'}" (${quoteList(served)})`),
      );
    else if (!info.versions.includes(gv.version))
      issues.push(issueFrom(key, 'apiVersion', `version "${gv.version}" of ${info.kind} is not served; use ${quoteList(served)}`));
  }

  // metadata.
  if (obj.metadata === undefined) issues.push(issueFrom(key, 'metadata', 'required field missing'));
  let metadata: ObjectMeta | undefined;
  if (obj.metadata !== undefined) {
    const parsed = ObjectMetaSchema.safeParse(obj.metadata, { error: errorMap, reportInput: true });
    if (!parsed.success) {
      const raws: RawIssue[] = [];
      convert(parsed.error.issues, ObjectMetaSchema, ['metadata'], obj.metadata, raws);
      omitted += appendCapped(issues, key, raws);
    } else {
      const m = parsed.data;
      if (m.name === undefined || m.name === '') {
        issues.push(issueFrom(key, 'metadata.name', m.generateName ? 'required field missing (generateName is not supported here)' : 'required field missing'));
      } else {
        const problem = checkName(m.name, info?.nameRule ?? 'dns1123-subdomain');
        if (problem) issues.push(issueFrom(key, 'metadata.name', problem));
      }
      if (info?.namespaced && namespace !== undefined) {
        const problem = checkName(namespace, 'dns1123-label');
        if (problem) issues.push(issueFrom(key, 'metadata.namespace', problem));
      }
      metadata = {
        name: m.name ?? '',
        namespace,
        labels: m.labels,
        annotations: m.annotations,
        resourceVersion: m.resourceVersion,
        generation: m.generation,
        uid: m.uid,
        creationTimestamp: m.creationTimestamp instanceof Date ? m.creationTimestamp.toISOString() : (m.creationTimestamp ?? undefined),
        ownerReferences: m.ownerReferences,
      };
      for (const k of Object.keys(metadata) as (keyof ObjectMeta)[]) if (metadata[k] === undefined) delete metadata[k];
      if (info?.namespaced) metadata.namespace = namespace;
    }
  }
  // A kind from another API group (e.g. Gateway API's Gateway) or an unserved version: the body means something else.
  if (!info || issues.some((i) => i.field === 'apiVersion')) return fail();

  // body.
  const { apiVersion: _a, kind: _k, metadata: _m, ...rest } = obj;
  let body: Record<string, unknown> = rest;
  if (info.istio && body.spec === undefined) body = { ...body, spec: {} };
  const warnings: ValidationIssue[] = [];
  let omittedWarnings = 0;
  let parsed = info.body.safeParse(body, { error: errorMap, reportInput: true });
  for (let attempt = 0; !parsed.success && attempt < 8; attempt++) {
    const raws: RawIssue[] = [];
    // Suggestions look at the fields the author actually wrote (not an injected empty spec).
    convert(parsed.error.issues, info.body, [], attempt === 0 ? rest : body, raws);
    if (opts.unknownFields === 'warn' && raws.length > 0 && raws.every((r) => r.unknownKey)) {
      body = structuredClone(body);
      omittedWarnings += appendCapped(warnings, key, raws, '; ignored');
      for (const r of raws) deleteAt(body, r.path);
      parsed = info.body.safeParse(body, { error: errorMap, reportInput: true });
      continue;
    }
    omitted += appendCapped(issues, key, raws);
    break;
  }
  if (issues.length > 0 || !parsed.success || !metadata) return fail();
  return {
    ok: true,
    object: { kind: info.kind, group: info.group, version, metadata, body: parsed.data },
    warnings: omittedWarnings > 0 ? [...warnings, omittedIssue(key, `${omittedWarnings} more unknown fields ignored`)] : warnings,
  };
}

/** Validates every object and splits them; never throws. */
export function validateAll(raws: readonly unknown[], opts: ValidateOptions = {}): { objects: ConfigObject[]; issues: ValidationIssue[] } {
  const objects: ConfigObject[] = [];
  const issues: ValidationIssue[] = [];
  for (const r of raws) {
    const res = validateObject(r, opts);
    if (res.ok) objects.push(res.object);
    else issues.push(...res.issues);
  }
  return { objects, issues };
}

