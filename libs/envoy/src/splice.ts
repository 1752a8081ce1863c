/**
 * Resources that differ from a template only in a few string values (a
 * workload's listeners carry istiod's canonical-service tracing tags; the rest
 * is its class's): the template is encoded once, with placeholders where the
 * values go, and each copy is its bytes with the values put in and the length
 * prefixes around them rewritten. No JSON is read or stringified per copy.
 *
 * Protobuf writes a string field as key, length, bytes, and every message
 * that holds it (up to the resource) as key, length, bytes too, so the path
 * from the resource down to each placeholder is all that changes. The plan
 * keeps the bytes between those fields as they are.
 */
import { varintSize } from './wire.js';

/** The i-th placeholder string of a template: no real configuration holds one. */
export function splicePlaceholder(i: number): string {
  return `\u0000sextant.splice.${i}\u0000`;
}

interface Derivation {
  template: object;
  values: readonly string[];
}

/** JSON objects made from a template, with their values (markDerived). Held weakly by the object. */
const derivations = new WeakMap<object, Derivation>();

/**
 * Records that `json` equals `template` with each `splicePlaceholder(i)` string
 * replaced by `values[i]`. The encoder then renders it from the template's
 * bytes (checked once per template against a whole encoding).
 */
export function markDerived(json: object, template: object, values: readonly string[]): void {
  derivations.set(json, { template, values });
}

export function derivationOf(json: object): Derivation | undefined {
  return derivations.get(json);
}

/**
 * A template of `json` for `values`: a copy with every string equal to
 * `values[i]` (the first i that matches) replaced by `splicePlaceholder(i)`,
 * so that putting the values back gives `json` again. A string that is not a
 * protobuf string field (an enum name, a duration) makes the template
 * unencodable, and the encoder then encodes the copies whole. Empty values are
 * not looked for (every empty string would become a hole).
 */
export function templateOf<T>(json: T, values: readonly string[]): T {
  const index = new Map<string, number>();
  values.forEach((v, i) => {
    if (v !== '' && !index.has(v)) index.set(v, i);
  });
  const copy = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const i = index.get(v);
      return i === undefined ? v : splicePlaceholder(i);
    }
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(copy);
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = copy(x);
    return o;
  };
  return copy(json) as T;
}

/**
 * Marks `json` as a copy of its own template for `values` (templateOf), so
 * that the encoder renders it from bytes that the copies with the same
 * template share; nothing is marked when every value is empty.
 */
export function markDerivedFrom(json: object, values: readonly string[]): void {
  if (values.some((v) => v !== '')) markDerived(json, templateOf(json, values), values);
}

/** A hole: a string field holding placeholder `index`. */
interface Hole {
  key: Uint8Array;
  index: number;
}
/** A length-delimited field (a message, or the bytes of an Any holding one) with holes inside. */
interface Node {
  key: Uint8Array;
  parts: Part[];
}
type Part = Uint8Array | Hole | Node;

/** A template's bytes, cut at the fields on the paths to its placeholders. */
export interface SplicePlan {
  parts: Part[];
  holes: number;
}

/**
 * The plan of a template message's bytes holding `count` placeholders, or
 * undefined when a placeholder is not a whole string field reached through
 * messages (then the copies are encoded whole).
 */
export function splicePlan(bytes: Uint8Array, count: number): SplicePlan | undefined {
  const found: Array<{ start: number; end: number; index: number }> = [];
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let i = 0; i < count; i++) {
    const ph = Buffer.from(splicePlaceholder(i), 'utf8');
    for (let at = buf.indexOf(ph); at >= 0; at = buf.indexOf(ph, at + ph.length)) found.push({ start: at, end: at + ph.length, index: i });
  }
  if (found.length === 0) return undefined;
  found.sort((a, b) => a.start - b.start);
  let holes = 0;

  const parse = (start: number, end: number): Part[] | undefined => {
    const parts: Part[] = [];
    let literal = start;
    let pos = start;
    const varint = (): number | undefined => {
      let n = 0;
      let mul = 1;
      for (let i = 0; i < 10; i++) {
        if (pos >= end) return undefined;
        const b = bytes[pos++]!;
        n += (b & 0x7f) * mul;
        if (b < 0x80) return n;
        mul *= 128;
      }
      return undefined;
    };
    while (pos < end) {
      const fieldStart = pos;
      const key = varint();
      if (key === undefined) return undefined;
      const wire = key % 8;
      if (wire === 0) {
        if (varint() === undefined) return undefined;
      } else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        const keyEnd = pos;
        const len = varint();
        if (len === undefined || pos + len > end) return undefined;
        const from = pos;
        const to = pos + len;
        pos = to;
        const inside = found.filter((f) => f.start < to && f.end > from);
        if (inside.length === 0) continue;
        if (inside.some((f) => f.start < from || f.end > to)) return undefined;
        if (literal < fieldStart) parts.push(bytes.subarray(literal, fieldStart));
        literal = to;
        const keyBytes = bytes.subarray(fieldStart, keyEnd);
        if (inside.length === 1 && inside[0]!.start === from && inside[0]!.end === to) {
          parts.push({ key: keyBytes, index: inside[0]!.index });
          holes++;
          continue;
        }
        const inner = parse(from, to);
        if (!inner) return undefined;
        parts.push({ key: keyBytes, parts: inner });
      } else return undefined; // groups: not in Envoy's protos
      if (pos > end) return undefined;
    }
    if (pos !== end) return undefined;
    if (literal < end) parts.push(bytes.subarray(literal, end));
    return parts;
  };

  const parts = parse(0, bytes.length);
  if (!parts || holes !== found.length) return undefined;
  return { parts, holes };
}

const isHole = (p: Part): p is Hole => !(p instanceof Uint8Array) && 'index' in p;

/** The template's bytes with `values` in its placeholders' places. */
export function spliceRender(plan: SplicePlan, values: readonly string[]): Uint8Array {
  const strings = values.map((v) => Buffer.from(v, 'utf8'));
  const sizes = new Map<Node, number>();
  const size = (parts: Part[]): number => {
    let n = 0;
    for (const p of parts) {
      if (p instanceof Uint8Array) n += p.length;
      else if (isHole(p)) {
        const len = strings[p.index]!.length;
        // proto3 leaves an empty string out, key and all.
        if (len > 0) n += p.key.length + varintSize(len) + len;
      } else {
        const len = size(p.parts);
        sizes.set(p, len);
        n += p.key.length + varintSize(len) + len;
      }
    }
    return n;
  };
  const out = Buffer.allocUnsafe(size(plan.parts));
  let pos = 0;
  const varint = (n: number): void => {
    while (n >= 0x80) {
      out[pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    out[pos++] = n;
  };
  const write = (parts: Part[]): void => {
    for (const p of parts) {
      if (p instanceof Uint8Array) {
        out.set(p, pos);
        pos += p.length;
      } else if (isHole(p)) {
        const s = strings[p.index]!;
        if (s.length === 0) continue;
        out.set(p.key, pos);
        pos += p.key.length;
        varint(s.length);
        out.set(s, pos);
        pos += s.length;
      } else {
        out.set(p.key, pos);
        pos += p.key.length;
        varint(sizes.get(p)!);
        write(p.parts);
      }
    }
  };
  write(plan.parts);
  if (pos !== out.length) throw new Error(`splice size mismatch: wrote ${pos} of ${out.length}`);
  return out;
}
