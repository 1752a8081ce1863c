import { createHash } from 'node:crypto';
import { createRegistry, fromBinary, fromJson, toBinary, toJson, type DescField, type DescMessage, type JsonValue } from '@bufbuild/protobuf';
import { file_google_protobuf_wrappers } from '@bufbuild/protobuf/wkt';
import { allFiles } from './gen/all-files.js';
import { typeNameOf } from './type-urls.js';
import { derivationOf, splicePlan, spliceRender, type SplicePlan } from './splice.js';
import { encodeAny, encodeAnyOf } from './wire.js';
import { encodeClusterLoadAssignmentJson } from './eds-wire.js';

/**
 * Message types with a direct writer from their JSON (undefined for a form it
 * does not handle, which takes the generic path): endpoint assignments
 * (eds-wire.ts), which an endpoint change encodes before anything is sent.
 */
const DIRECT_WRITERS: ReadonlyMap<string, (json: unknown) => Uint8Array | undefined> = new Map([['envoy.config.endpoint.v3.ClusterLoadAssignment', encodeClusterLoadAssignmentJson]]);

/** Every generated Envoy/xDS/Google message, for Any packing and JSON. */
export const registry = createRegistry(...allFiles);

const schemaCache = new Map<string, DescMessage>();
/** The message descriptor for a fully-qualified type name or type URL. */
export function messageSchema(typeNameOrUrl: string): DescMessage {
  const typeName = typeNameOf(typeNameOrUrl);
  let desc = schemaCache.get(typeName);
  if (!desc) {
    desc = registry.getMessage(typeName);
    if (!desc) throw new Error(`unknown protobuf message type ${typeName}`);
    schemaCache.set(typeName, desc);
  }
  return desc;
}

export function isKnownType(typeNameOrUrl: string): boolean {
  return registry.getMessage(typeNameOf(typeNameOrUrl)) !== undefined;
}

/**
 * Returns a copy of a JSON value with every object's keys sorted. Proto3 JSON
 * does not care about key order, but protobuf map and Struct fields are encoded
 * in the order their keys arrive, so sorting makes encoding deterministic:
 * equal content always gives equal bytes, and so equal version hashes.
 * Memoized by object identity: an object given to the encoder is never
 * mutated, so the same object has the same canonical copy, and what
 * translation shares between resources (a workload's listener shares all but
 * its tracing tags with its class's) stays shared, by identity, for the Any
 * cache below.
 */
const canonicalCopies = new WeakMap<object, unknown>();
export function canonicalize(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  const known = canonicalCopies.get(value);
  if (known !== undefined) return known;
  let out: unknown;
  if (Array.isArray(value)) out = value.map(canonicalize);
  else {
    const o: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) o[key] = canonicalize(v);
    }
    out = o;
  }
  canonicalCopies.set(value, out);
  return out;
}

/**
 * Encodes a message given in Envoy's JSON form (proto3 JSON, Anys as
 * `{"@type": ...}`) to protobuf binary, deterministically. Throws with the
 * type name and the parser's reason if the JSON does not fit the schema.
 */
export function encodeJson(typeNameOrUrl: string, json: unknown): Uint8Array {
  return encodeWith(messageSchema(typeNameOrUrl), json);
}

function encodeWith(schema: DescMessage, json: unknown): Uint8Array {
  const bytes = DIRECT_WRITERS.get(schema.typeName)?.(json);
  return bytes ?? encodeCanonical(schema, canonicalize(json));
}

/**
 * Encodes canonical JSON. Every google.protobuf.Any in it (by the schema, not
 * by a "@type" key, which Struct data may hold) is encoded on its own, once per
 * content (`anyValues`), and the message around it is encoded with a
 * placeholder that is swapped for those bytes before serializing: the same
 * bytes as encoding it whole. A sidecar's listeners per workload differ only in
 * their tracing tags; the HTTP filters' typed configs (RBAC, stats, metadata
 * exchange, the router) inside them are the same for every workload, and
 * decoding those from JSON again for each was most of a cold connect's CPU.
 */
function encodeCanonical(schema: DescMessage, json: unknown): Uint8Array {
  const anys: ExtractedAny[] = [];
  let marked: unknown;
  try {
    marked = markAnys(schema, json, anys);
  } catch (err) {
    throw new Error(`cannot encode ${schema.typeName}: ${(err as Error).message}`);
  }
  return encodeMarked(schema, marked, anys);
}

/** JSON of message type `schema` with its Anys replaced by placeholders (pushed to `anys`); unchanged where there is nothing to walk. */
function markAnys(schema: DescMessage, json: unknown, anys: ExtractedAny[]): unknown {
  return json !== null && typeof json === 'object' && !Array.isArray(json) && !hasCustomJson(schema) ? extractAnys(schema, json as Record<string, unknown>, anys) : json;
}

interface ExtractedAny {
  typeUrl: string;
  value: Uint8Array;
}

/** JSON with placeholders for `anys`, to bytes; a failure names the type. */
function encodeMarked(schema: DescMessage, withMarks: unknown, anys: ExtractedAny[]): Uint8Array {
  try {
    const message = fromJson(schema, withMarks as JsonValue, { registry: anys.length > 0 ? markRegistry : registry });
    if (anys.length > 0) restoreAnys(message, anys);
    return toBinary(schema, message);
  } catch (err) {
    throw new Error(`cannot encode ${schema.typeName}: ${(err as Error).message}`);
  }
}

const ANY = 'google.protobuf.Any';
/**
 * Placeholder Any for an extracted one: a UInt32Value holding its index. That
 * type is only in the registry the placeholders are parsed with (`markRegistry`),
 * and every Any of the message is extracted first (one whose type the Envoy
 * registry lacks is refused as the parser would), so none is confused with it.
 */
const MARK_URL = 'type.googleapis.com/google.protobuf.UInt32Value';
const markRegistry = createRegistry(registry, file_google_protobuf_wrappers);

/** google.protobuf types with their own JSON form (not a message of fields): never walked into. */
function hasCustomJson(desc: DescMessage): boolean {
  return desc.typeName.startsWith('google.protobuf.') && desc.typeName !== 'google.protobuf.Empty';
}

const fieldsByJsonKey = new WeakMap<DescMessage, Map<string, DescField>>();
function fieldByJsonKey(desc: DescMessage, key: string): DescField | undefined {
  let m = fieldsByJsonKey.get(desc);
  if (!m) {
    m = new Map();
    for (const f of desc.fields) {
      m.set(f.jsonName, f);
      m.set(f.name, f);
    }
    fieldsByJsonKey.set(desc, m);
  }
  return m.get(key);
}

/** Encoded Any values by type URL and canonical JSON, bounded (cleared when full). */
let anyValues = new Map<string, Uint8Array>();
let anyValueBytes = 0;
const ANY_CACHE_BYTES = 64 * 1024 * 1024;

function extractAnys(desc: DescMessage, json: Record<string, unknown>, anys: ExtractedAny[]): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(json)) {
    const v = json[key];
    const f = fieldByJsonKey(desc, key);
    if (!f || v === null || typeof v !== 'object') continue;
    let next: unknown = v;
    if (f.fieldKind === 'message') next = extractIn(f.message, v, anys);
    else if (f.fieldKind === 'list' && f.listKind === 'message' && Array.isArray(v)) {
      const msg = f.message;
      let changed = false;
      const list = v.map((e) => {
        const x = extractIn(msg, e, anys);
        if (x !== e) changed = true;
        return x;
      });
      if (changed) next = list;
    } else if (f.fieldKind === 'map' && f.mapKind === 'message' && !Array.isArray(v)) {
      const msg = f.message;
      let changed = false;
      const map: Record<string, unknown> = {};
      for (const [k, e] of Object.entries(v as Record<string, unknown>)) {
        map[k] = extractIn(msg, e, anys);
        if (map[k] !== e) changed = true;
      }
      if (changed) next = map;
    }
    if (next !== v) (out ??= { ...json })[key] = next;
  }
  return out ?? json;
}

/** A value of message type `desc`: an Any becomes a placeholder, another message is walked. */
function extractIn(desc: DescMessage, v: unknown, anys: ExtractedAny[]): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  if (desc.typeName === ANY) return anyMark(v as Record<string, unknown>, anys);
  if (hasCustomJson(desc)) return v;
  return extractAnys(desc, v as Record<string, unknown>, anys);
}

/** Extracted Anys by the identity of their (canonical) JSON object: what a workload's listener shares with its class's is found without serializing it. */
const anysByObject = new WeakMap<object, ExtractedAny>();
/** Small ids for encoded Any values, to key an Any by the values nested in it. */
const valueIds = new WeakMap<Uint8Array, number>();
let nextValueId = 0;
function valueId(b: Uint8Array): number {
  let id = valueIds.get(b);
  if (id === undefined) valueIds.set(b, (id = ++nextValueId));
  return id;
}

function anyMark(any: Record<string, unknown>, anys: ExtractedAny[]): unknown {
  let x = anysByObject.get(any);
  if (!x) {
    const typeUrl = any['@type'];
    if (typeof typeUrl !== 'string' || typeUrl === '') return any; // left to the parser (an empty Any, or its error)
    const inner = registry.getMessage(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
    if (!inner) throw new Error(`cannot decode message google.protobuf.Any from JSON: ${typeUrl} is not in the type registry`);
    let body: unknown;
    if (hasCustomJson(inner) && Object.prototype.hasOwnProperty.call(any, 'value')) body = any['value'];
    else {
      const copy = { ...any };
      delete copy['@type'];
      body = copy;
    }
    // The Anys nested in it first (mostly found by identity), then the rest, keyed by its JSON with their values' ids.
    const nested: ExtractedAny[] = [];
    const marked = markAnys(inner, body, nested);
    const key = `${typeUrl}\u0000${JSON.stringify(marked)}\u0000${nested.map((n) => `${n.typeUrl} ${valueId(n.value)}`).join(',')}`;
    let value = anyValues.get(key);
    if (!value) {
      value = encodeMarked(inner, marked, nested);
      if (anyValueBytes + value.length > ANY_CACHE_BYTES) {
        anyValues = new Map();
        anyValueBytes = 0;
      }
      anyValues.set(key, value);
      anyValueBytes += value.length + key.length;
    }
    x = { typeUrl, value };
    anysByObject.set(any, x);
  }
  anys.push(x);
  return { '@type': MARK_URL, value: anys.length - 1 };
}

/** Puts the extracted Anys' bytes back in place of their placeholders, walking the decoded message. */
function restoreAnys(node: unknown, anys: ExtractedAny[]): void {
  if (node === null || typeof node !== 'object' || node instanceof Uint8Array) return;
  if (Array.isArray(node)) {
    for (const e of node) restoreAnys(e, anys);
    return;
  }
  const o = node as Record<string, unknown>;
  if (o['$typeName'] === ANY && o['typeUrl'] === MARK_URL) {
    const x = anys[markIndex(o['value'] as Uint8Array)]!;
    o['typeUrl'] = x.typeUrl;
    o['value'] = x.value;
    return;
  }
  for (const k in o) if (k !== '$typeName' && k !== '$unknown') restoreAnys(o[k], anys);
}

/** The index a placeholder holds: UInt32Value { value = 1 (varint) }, empty for 0. */
function markIndex(b: Uint8Array): number {
  let n = 0;
  let mul = 1;
  for (let i = 1; i < b.length; i++) {
    n += (b[i]! & 0x7f) * mul;
    if (b[i]! < 0x80) break;
    mul *= 128;
  }
  return n;
}

/** Decodes protobuf binary into Envoy's JSON form (what config_dump and `sextant translate` print). */
export function decodeToJson(typeNameOrUrl: string, bytes: Uint8Array): JsonValue {
  const schema = messageSchema(typeNameOrUrl);
  return toJson(schema, fromBinary(schema, bytes), { registry });
}

/** Decodes protobuf binary into a typed message (for requests the server receives). */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array) {
  return fromBinary(schema, bytes);
}

/** A short content hash, used as a resource version: equal bytes, equal version. */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
}

/**
 * One xDS resource encoded once: its name, version (content hash) and the
 * bytes of the google.protobuf.Any that carries it. Every stream that receives
 * this resource is sent these same bytes.
 */
export interface EncodedResource {
  readonly typeUrl: string;
  readonly name: string;
  readonly version: string;
  /** Encoded google.protobuf.Any { type_url, value }. */
  readonly any: Uint8Array;
  /** The message bytes alone (the Any's value). */
  readonly value: Uint8Array;
}

export function encodedResource(typeUrl: string, name: string, value: Uint8Array): EncodedResource {
  const any = encodeAny(typeUrl, value);
  // The Any ends with the message's bytes: keep those as a view, not a second copy of every resource.
  return { typeUrl, name, version: contentHash(value), any, value: any.subarray(any.length - value.length) };
}

/**
 * A resource rendered from a template's bytes (markDerived): it keeps the
 * plan, which the template's other copies share, and its own values, not its
 * bytes, and renders them whenever they are read (framing a response). A
 * workload's tagged listeners, about a hundred per sidecar at S = 1000, then
 * cost each proxy their values instead of kilobytes each.
 */
class SplicedResource implements EncodedResource {
  readonly version: string;
  /**
   * The bytes rendered for the version, handed to the first read (the
   * response that carries it, most often in the same push) and then let go:
   * without them, a resource sent once was rendered twice.
   */
  private firstRender: Uint8Array | undefined;
  constructor(
    readonly typeUrl: string,
    readonly name: string,
    private readonly plan: SplicePlan,
    private readonly values: readonly string[],
  ) {
    this.firstRender = spliceRender(plan, values);
    this.version = contentHash(this.firstRender);
  }
  get value(): Uint8Array {
    const first = this.firstRender;
    if (first) {
      this.firstRender = undefined;
      return first;
    }
    return spliceRender(this.plan, this.values);
  }
  get any(): Uint8Array {
    return encodeAny(this.typeUrl, this.value);
  }
}

/** Encodes a resource from its Envoy JSON form (no caching; see ResourceEncoder for that). */
export function encodeResource(typeUrl: string, name: string, json: unknown): EncodedResource {
  return encodedResource(typeUrl, name, encodeJson(typeUrl, json));
}

/**
 * Repeated message fields whose elements the encoder encodes and caches one
 * by one, then appends to the rest of the message (see encodeAnyOf): a
 * VirtualService edit re-encodes the virtual hosts it changed, not every
 * route configuration that holds them, and the virtual hosts of services in
 * other namespaces (identical from every namespace) are encoded once.
 */
const COMPOSED_FIELDS: Record<string, string> = {
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'virtualHosts',
  'type.googleapis.com/envoy.config.listener.v3.Listener': 'filterChains',
};
/** Fewer elements than this: the whole message is encoded at once. */
const COMPOSE_MIN = 4;

/** A splice plan, checked against a whole encoding by its first copy; refused for good if that differed. */
interface SpliceEntry {
  id: number;
  plan: SplicePlan;
  checked: boolean;
  refused: boolean;
}
/** The first copy of each template is also encoded whole (`whole`): a plan that renders it otherwise is refused for good, so a template the plan misreads is never spliced. */
function checkPlan(entry: SpliceEntry, whole: Uint8Array, values: readonly string[]): void {
  if (Buffer.from(whole).equals(spliceRender(entry.plan, values))) entry.checked = true;
  else entry.refused = true;
}

/** Plans kept by content at most (a few per listener name and class). */
const MAX_PLANS = 20_000;

interface Part {
  /** Small id standing for the element's JSON in whole-message keys. */
  id: number;
  bytes: Uint8Array;
}

/**
 * Serialize-once for generated resources: translation produces Envoy JSON, and
 * identical JSON (by its JSON.stringify text) maps to the one EncodedResource
 * already built, so a resource shared by thousands of proxies is encoded once.
 * Route configurations and listeners are composed from their virtual hosts'
 * and filter chains' cached bytes (COMPOSED_FIELDS). Entries not used during
 * a generation are dropped by `sweep()`.
 */
export class ResourceEncoder {
  private current = new Map<string, EncodedResource>();
  private previous = new Map<string, EncodedResource>();
  private parts = new Map<string, Part>();
  private previousParts = new Map<string, Part>();
  private partSeq = 0;
  /**
   * Parts by the identity of their JSON object: translation hands the same
   * object for the same content (virtual hosts shared across route
   * configurations, classes and pushes), so those skip the JSON.stringify
   * that keys the rest. Objects given to the encoder are never mutated.
   */
  private partsByObject = new WeakMap<object, Part>();
  /**
   * Whole resources by the identity of their JSON object (outbound clusters
   * shared across classes), likewise, with their encoding: it stays as long as
   * the object does (translation's memo holds it for a context), however many
   * sweeps pass. Keyed by the generations alone, a class unit rebuilt after
   * two pushes that did not ask for it encoded ~9,000 clusters from JSON again.
   */
  private byObject = new WeakMap<object, { typeUrl: string; name: string; res: EncodedResource }>();
  /**
   * Splice plans by template (markDerived); null: the template cannot be
   * spliced, and its copies are encoded whole (as those of a refused plan).
   */
  private plans = new WeakMap<object, SpliceEntry | null>();
  /** The same, by template content (bounded): what the templates of classes that differ only in spliced values share. */
  private plansByContent = new Map<string, SpliceEntry | null>();
  private planSeq = 0;
  hits = 0;
  misses = 0;
  /** Virtual hosts and filter chains encoded (not found in the cache). */
  partsEncoded = 0;
  /** Resources rendered from a template's bytes (markDerived). */
  spliced = 0;
  /** Virtual hosts and filter chains rendered from a template's bytes (markDerived). */
  partsSpliced = 0;

  encode(typeUrl: string, name: string, json: unknown): EncodedResource {
    const derived = json !== null && typeof json === 'object' ? derivationOf(json) : undefined;
    if (derived) {
      const res = this.encodeDerived(typeUrl, name, json as object, derived.template, derived.values);
      if (res) return res;
    }
    return this.encodeWhole(typeUrl, name, json);
  }

  /** Encodes from the JSON (composed from cached parts where the type has them), unless the same object or content was encoded. */
  private encodeWhole(typeUrl: string, name: string, json: unknown): EncodedResource {
    const field = COMPOSED_FIELDS[typeUrl];
    const elements = field && json !== null && typeof json === 'object' ? (json as Record<string, unknown>)[field] : undefined;
    if (Array.isArray(elements) && elements.length >= COMPOSE_MIN) return this.encodeComposed(typeUrl, name, json as Record<string, unknown>, field!, elements);
    const known = json !== null && typeof json === 'object' ? this.byObject.get(json) : undefined;
    if (known && known.typeUrl === typeUrl && known.name === name) {
      this.hits++;
      return known.res;
    }
    const key = `${typeUrl}\u0000${name}\u0000${JSON.stringify(json)}`;
    const res = this.cached(key, () => encodeResource(typeUrl, name, json));
    if (!known && json !== null && typeof json === 'object') this.byObject.set(json, { typeUrl, name, res });
    return res;
  }

  /** A copy of a template with other string values: the template's bytes with those values put in, or undefined to encode it whole. */
  private encodeDerived(typeUrl: string, name: string, json: object, template: object, values: readonly string[]): EncodedResource | undefined {
    const entry = this.planOf(template, values.length, () => `${typeUrl}\u0000${name}\u0000${JSON.stringify(template)}`, () => this.encodeWhole(typeUrl, name, template).value);
    if (!entry) return undefined;
    const known = this.byObject.get(json);
    if (known && known.typeUrl === typeUrl && known.name === name) {
      this.hits++;
      return known.res;
    }
    const plan = entry;
    if (!plan.checked) {
      const whole = this.encodeWhole(typeUrl, name, json);
      checkPlan(plan, whole.value, values);
      return whole;
    }
    const res = this.cached(`${typeUrl}\u0000${name}\u0000splice:${plan.id}\u0000${values.join('\u0000')}`, () => {
      this.spliced++;
      return new SplicedResource(typeUrl, name, plan.plan, values);
    });
    this.byObject.set(json, { typeUrl, name, res });
    return res;
  }

  /**
   * The splice plan of a template (by the object, then by content: templates
   * of other classes or workloads are often equal in content, and share one),
   * or undefined when its copies are encoded whole: the plan was refused, or
   * the template does not encode (a placeholder where no string can go).
   */
  private planOf(template: object, holes: number, contentKey: () => string, encodeTemplate: () => Uint8Array): SpliceEntry | undefined {
    let entry = this.plans.get(template);
    if (entry === undefined) {
      const key = contentKey();
      entry = this.plansByContent.get(key);
      if (entry === undefined) {
        let plan: SplicePlan | undefined;
        try {
          plan = splicePlan(encodeTemplate(), holes);
        } catch {
          plan = undefined;
        }
        entry = plan ? { id: ++this.planSeq, plan, checked: false, refused: false } : null;
        if (this.plansByContent.size >= MAX_PLANS) this.plansByContent.clear();
        this.plansByContent.set(key, entry);
      }
      this.plans.set(template, entry);
    }
    return entry && !entry.refused ? entry : undefined;
  }

  /** Forgets everything not encoded since the previous sweep. Call once per generation cycle. */
  sweep(): void {
    this.previous = this.current;
    this.current = new Map();
    this.previousParts = this.parts;
    this.parts = new Map();
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }

  private cached(key: string, make: () => EncodedResource): EncodedResource {
    let res = this.current.get(key);
    if (!res) {
      res = this.previous.get(key);
      if (res) this.previous.delete(key);
      else {
        res = make();
        this.misses++;
      }
      this.current.set(key, res);
    } else this.hits++;
    return res;
  }

  private encodeComposed(typeUrl: string, name: string, json: Record<string, unknown>, field: string, elements: unknown[]): EncodedResource {
    const schema = messageSchema(typeUrl);
    const desc = schema.fields.find((f) => f.localName === field);
    if (!desc || desc.fieldKind !== 'list' || desc.listKind !== 'message') throw new Error(`${schema.typeName}.${field} is not a repeated message field`);
    const rest: Record<string, unknown> = { ...json };
    delete rest[field];
    const parts = elements.map((e) => this.part(desc.message, e));
    const key = `${typeUrl}\u0000${name}\u0000${JSON.stringify(rest)}\u0000${parts.map((p) => p.id).join(',')}`;
    return this.cached(key, () => {
      // Written straight into its Any: a route configuration of a thousand virtual hosts is not copied twice.
      const { any, value } = encodeAnyOf(typeUrl, encodeWith(schema, rest), desc.number, parts.map((p) => p.bytes));
      return { typeUrl, name, version: contentHash(value), any, value };
    });
  }

  private part(schema: DescMessage, json: unknown): Part {
    if (json === null || typeof json !== 'object') return this.wholePart(schema, json);
    let p = this.partsByObject.get(json);
    if (p) return p;
    const derived = derivationOf(json);
    p = (derived && this.derivedPart(schema, json, derived.template, derived.values)) ?? this.wholePart(schema, json);
    this.partsByObject.set(json, p);
    return p;
  }

  private wholePart(schema: DescMessage, json: unknown): Part {
    return this.cachedPart(`${schema.typeName}\u0000${JSON.stringify(json)}`, () => {
      this.partsEncoded++;
      return encodeWith(schema, json);
    });
  }

  /**
   * A part that is a template's copy (markDerived: a workload's inbound filter
   * chain) rendered from the template's bytes, as encodeDerived does for
   * whole resources; undefined to encode it whole.
   */
  private derivedPart(schema: DescMessage, json: object, template: object, values: readonly string[]): Part | undefined {
    const plan = this.planOf(template, values.length, () => `${schema.typeName}\u0000${JSON.stringify(template)}`, () => encodeWith(schema, template));
    if (!plan) return undefined;
    if (!plan.checked) {
      const whole = this.wholePart(schema, json);
      checkPlan(plan, whole.bytes, values);
      return whole;
    }
    return this.cachedPart(`${schema.typeName}\u0000splice:${plan.id}\u0000${values.join('\u0000')}`, () => {
      this.partsSpliced++;
      return spliceRender(plan.plan, values);
    });
  }

  private cachedPart(key: string, encode: () => Uint8Array): Part {
    let p = this.parts.get(key);
    if (!p) {
      p = this.previousParts.get(key);
      if (p) this.previousParts.delete(key);
      else p = { id: ++this.partSeq, bytes: encode() };
      this.parts.set(key, p);
    }
    return p;
  }
}
