/**
 * ClusterLoadAssignment written straight from its canonical JSON to protobuf
 * bytes, for the forms Sextant's translation produces (Istio's endpoints:
 * socket addresses, health status, weights, localities, priorities, Struct
 * filter metadata). The generic path (protobuf-es `fromJson`, then
 * `toBinary`) spends ~0.4 ms per assignment walking descriptors; an endpoint
 * change encodes its clusters' assignments before the first proxy can be
 * sent anything, and a cold connect encodes every cluster's. The bytes are
 * those protobuf-es writes for the same JSON (fields in
 * number order, proto3 defaults left out, Struct keys in the canonical
 * order); anything outside these forms (another field, a value of another
 * JSON type) returns undefined and takes the generic path, which also gives
 * the errors. Field numbers are from envoy/config/endpoint/v3/endpoint.proto,
 * endpoint_components.proto, envoy/config/core/v3/address.proto, base.proto
 * and google/protobuf/struct.proto and wrappers.proto.
 */
const VARINT = 0;
const BIT64 = 1;
const LEN = 2;

/**
 * Writes into one reused buffer. A nested message's length is reserved as one
 * byte and, when the message turns out longer than 127 bytes, its bytes move
 * right to make room for the varint, so lengths are minimal, as protobuf-es
 * writes them. (protobuf-es's BinaryWriter forks an array per nested message
 * and encodes each string through TextEncoder: most of the cost here.)
 */
class Writer {
  buf = Buffer.allocUnsafe(4096);
  pos = 0;
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  varint(n: number): this {
    this.room(10);
    while (n > 0x7f) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
    return this;
  }
  tag(field: number, wireType: number): this {
    return this.varint(field * 8 + wireType);
  }
  string(s: string): this {
    const len = Buffer.byteLength(s, 'utf8');
    this.varint(len);
    this.room(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
    return this;
  }
  double(v: number): this {
    this.room(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }
  /** Starts a length-delimited field: its length is filled in by `end`. */
  begin(field: number): number {
    this.tag(field, LEN);
    this.room(1);
    return this.pos++;
  }
  end(at: number): void {
    const len = this.pos - at - 1;
    if (len < 0x80) {
      this.buf[at] = len;
      return;
    }
    let size = 1;
    for (let n = len; n > 0x7f; n = Math.floor(n / 128)) size++;
    this.room(size - 1);
    this.buf.copy(this.buf, at + size, at + 1, this.pos);
    this.pos += size - 1;
    let n = len;
    let p = at;
    while (n > 0x7f) {
      this.buf[p++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[p] = n;
  }
  /** The bytes written, copied out of the reused buffer. */
  take(): Uint8Array {
    const out = new Uint8Array(this.pos);
    out.set(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

type Json = Record<string, unknown>;

/** Thrown inside the writer when the JSON leaves the handled forms; caught once at the top. */
class Unhandled extends Error {}
const UNHANDLED = new Unhandled('not a handled ClusterLoadAssignment form');

function obj(v: unknown, allowed: ReadonlySet<string>): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw UNHANDLED;
  for (const k in v) if (!allowed.has(k)) throw UNHANDLED;
  return v as Json;
}

function list(v: unknown): unknown[] {
  if (!Array.isArray(v)) throw UNHANDLED;
  return v;
}

/** A proto3 string field: written when set and not empty. */
function str(w: Writer, field: number, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'string') throw UNHANDLED;
  if (v !== '') w.tag(field, LEN).string(v);
}

/** A proto3 uint32 field: written when set and not 0. */
function u32(w: Writer, field: number, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw UNHANDLED;
  if (v !== 0) w.tag(field, VARINT).varint(v);
}

/** A google.protobuf.UInt32Value field: the wrapper is written whenever set. */
function u32Value(w: Writer, field: number, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw UNHANDLED;
  const at = w.begin(field);
  if (v !== 0) w.tag(1, VARINT).varint(v);
  w.end(at);
}

/** A proto3 enum field given by name: written when not the zero value. */
function enumField(w: Writer, field: number, v: unknown, values: Readonly<Record<string, number>>): void {
  if (v === undefined) return;
  const n = typeof v === 'string' && Object.hasOwn(values, v) ? values[v] : undefined;
  if (n === undefined) throw UNHANDLED;
  if (n !== 0) w.tag(field, VARINT).varint(n);
}

/** A message field: written when set, empty or not. */
function message(w: Writer, field: number, v: unknown, write: (w: Writer, v: unknown) => void): void {
  if (v === undefined) return;
  const at = w.begin(field);
  write(w, v);
  w.end(at);
}

/** A repeated message field: every element written (an element that is not a handled message leaves the writer). */
function repeated(w: Writer, field: number, v: unknown, write: (w: Writer, v: unknown) => void): void {
  if (v === undefined) return;
  for (const e of list(v)) {
    const at = w.begin(field);
    write(w, e);
    w.end(at);
  }
}

const HEALTH_STATUS: Readonly<Record<string, number>> = { UNKNOWN: 0, HEALTHY: 1, UNHEALTHY: 2, DRAINING: 3, TIMEOUT: 4, DEGRADED: 5 };
const SOCKET_PROTOCOL: Readonly<Record<string, number>> = { TCP: 0, UDP: 1 };

const CLA_KEYS = new Set(['clusterName', 'endpoints']);
const LOCALITY_LB_KEYS = new Set(['locality', 'lbEndpoints', 'loadBalancingWeight', 'priority']);
const LOCALITY_KEYS = new Set(['region', 'zone', 'subZone']);
const LB_ENDPOINT_KEYS = new Set(['endpoint', 'healthStatus', 'metadata', 'loadBalancingWeight']);
const ENDPOINT_KEYS = new Set(['address', 'hostname']);
const ADDRESS_KEYS = new Set(['socketAddress']);
const SOCKET_ADDRESS_KEYS = new Set(['protocol', 'address', 'portValue']);
const METADATA_KEYS = new Set(['filterMetadata']);

/** ClusterLoadAssignment { cluster_name = 1; endpoints = 2; } */
function clusterLoadAssignment(w: Writer, json: unknown): void {
  const cla = obj(json, CLA_KEYS);
  str(w, 1, cla['clusterName']);
  repeated(w, 2, cla['endpoints'], localityLbEndpoints);
}

/** LocalityLbEndpoints { locality = 1; lb_endpoints = 2; load_balancing_weight = 3; priority = 5; } */
function localityLbEndpoints(w: Writer, json: unknown): void {
  const l = obj(json, LOCALITY_LB_KEYS);
  message(w, 1, l['locality'], locality);
  repeated(w, 2, l['lbEndpoints'], lbEndpoint);
  u32Value(w, 3, l['loadBalancingWeight']);
  u32(w, 5, l['priority']);
}

/** Locality { region = 1; zone = 2; sub_zone = 3; } */
function locality(w: Writer, json: unknown): void {
  const l = obj(json, LOCALITY_KEYS);
  str(w, 1, l['region']);
  str(w, 2, l['zone']);
  str(w, 3, l['subZone']);
}

/** LbEndpoint { endpoint = 1; health_status = 2; metadata = 3; load_balancing_weight = 4; } */
function lbEndpoint(w: Writer, json: unknown): void {
  const e = obj(json, LB_ENDPOINT_KEYS);
  message(w, 1, e['endpoint'], endpoint);
  enumField(w, 2, e['healthStatus'], HEALTH_STATUS);
  message(w, 3, e['metadata'], metadata);
  u32Value(w, 4, e['loadBalancingWeight']);
}

/** Endpoint { address = 1; hostname = 3; } */
function endpoint(w: Writer, json: unknown): void {
  const e = obj(json, ENDPOINT_KEYS);
  message(w, 1, e['address'], address);
  str(w, 3, e['hostname']);
}

/** Address { socket_address = 1 (oneof); } */
function address(w: Writer, json: unknown): void {
  message(w, 1, obj(json, ADDRESS_KEYS)['socketAddress'], socketAddress);
}

/** SocketAddress { protocol = 1; address = 2; port_value = 3 (oneof port_specifier); } */
function socketAddress(w: Writer, json: unknown): void {
  const s = obj(json, SOCKET_ADDRESS_KEYS);
  enumField(w, 1, s['protocol'], SOCKET_PROTOCOL);
  str(w, 2, s['address']);
  const port = s['portValue'];
  if (port !== undefined) {
    // A oneof member: written whenever set, 0 included.
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 0xffffffff) throw UNHANDLED;
    w.tag(3, VARINT).varint(port);
  }
}

/** Metadata { map<string, Struct> filter_metadata = 1; } */
function metadata(w: Writer, json: unknown): void {
  const m = obj(json, METADATA_KEYS);
  if (m['filterMetadata'] === undefined) return;
  messageMap(w, 1, plainObject(m['filterMetadata']), struct);
}

/** A map<string, message> field: one entry { key = 1; value = 2; } per key with a value, in canonical order. */
function messageMap(w: Writer, field: number, o: Json, writeValue: (w: Writer, v: unknown) => void): void {
  for (const key of canonicalKeys(o)) {
    const at = w.begin(field);
    w.tag(1, LEN).string(key);
    const v = w.begin(2);
    writeValue(w, o[key]);
    w.end(v);
    w.end(at);
  }
}

function plainObject(v: unknown): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw UNHANDLED;
  return v as Json;
}

/** An array index ("0", "7", not "07"): JavaScript objects hold such keys first, in numeric order. */
const isIndex = (k: string) => /^(0|[1-9][0-9]*)$/.test(k) && Number(k) < 4294967295;

/**
 * The keys of an object with a value, in the order of its canonical copy
 * (codec.ts `canonicalize`): sorted, then laid out as JavaScript lays out an
 * object's keys (array indices first, numerically). protobuf map and Struct
 * entries are written in that order.
 */
function canonicalKeys(o: Json): string[] {
  const keys = Object.keys(o).filter((k) => o[k] !== undefined);
  if (keys.length < 2) return keys;
  keys.sort();
  if (!keys.some(isIndex)) return keys;
  const indices = keys.filter(isIndex).sort((a, b) => Number(a) - Number(b));
  return [...indices, ...keys.filter((k) => !isIndex(k))];
}

/** google.protobuf.Struct { map<string, Value> fields = 1; } */
function struct(w: Writer, json: unknown): void {
  messageMap(w, 1, plainObject(json), value);
}

/** google.protobuf.Value { null_value = 1; number_value = 2; string_value = 3; bool_value = 4; struct_value = 5; list_value = 6; } (oneof: always written) */
function value(w: Writer, v: unknown): void {
  if (v === null) w.tag(1, VARINT).varint(0);
  else if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw UNHANDLED;
    w.tag(2, BIT64).double(v);
  } else if (typeof v === 'string') w.tag(3, LEN).string(v);
  else if (typeof v === 'boolean') w.tag(4, VARINT).varint(v ? 1 : 0);
  else if (Array.isArray(v)) message(w, 6, v, listValue);
  else if (typeof v === 'object') message(w, 5, v, struct);
  else throw UNHANDLED;
}

/** google.protobuf.ListValue { repeated Value values = 1; } */
function listValue(w: Writer, v: unknown): void {
  repeated(w, 1, v, value);
}

const writer = new Writer();

/**
 * The assignment's bytes, or undefined when its JSON is not one of the
 * handled forms (the caller encodes it the generic way). Takes the JSON as
 * translation built it: equal to encoding its canonical copy, which it does
 * not need to make.
 */
export function encodeClusterLoadAssignmentJson(json: unknown): Uint8Array | undefined {
  const w = writer;
  w.pos = 0;
  try {
    clusterLoadAssignment(w, json);
    return w.take();
  } catch (err) {
    if (err === UNHANDLED) return undefined;
    throw err;
  }
}
