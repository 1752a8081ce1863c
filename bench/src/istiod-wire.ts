/**
 * gRPC message framing for the benchmark's simulated sidecars
 * (istiod-clients.ts). The chunks given to a Deframer are views valid only
 * during the call (the clients read sockets into one reused buffer), and so
 * are the messages it hands out: a message within one chunk is handed out as
 * a view of it, one spanning chunks is copied once, into a buffer from a
 * pool that is reused for the next message. (Concatenating everything
 * received on every chunk, as an earlier version did, copied a 10 MB CDS
 * response hundreds of times over; a new buffer per message made 600 MB of
 * garbage per VirtualService edit in each clients' process, whose collection
 * took a quarter of its CPU, on the cores the control plane runs on.)
 */

/** One gRPC message: the 5-byte prefix (uncompressed flag, length) and the message. */
export function frame(msg: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + msg.length);
  b[0] = 0;
  b.writeUInt32BE(msg.length, 1);
  b.set(msg, 5);
  return b;
}

/**
 * Reassembly buffers by size class (multiples of 64 KiB), kept up to a total
 * size for reuse. When a buffer given back would go over it, the classes
 * least recently used make room first: after a cold connect the pool must not
 * stay full of 10 MB CDS buffers while 1.2 MB route configurations allocate.
 */
export class BufferPool {
  /** Free buffers by size; a Map iterates in insertion order, and a class is moved to the end when used. */
  private readonly free = new Map<number, Buffer[]>();
  private kept = 0;
  constructor(private readonly maxKeptBytes: number) {}

  take(n: number): Buffer {
    const size = Math.ceil(Math.max(n, 1) / 65_536) * 65_536;
    const list = this.free.get(size);
    this.touch(size, list);
    const b = list?.pop();
    if (b) {
      this.kept -= size;
      return b;
    }
    return Buffer.allocUnsafe(size);
  }

  give(b: Buffer): void {
    if (b.length > this.maxKeptBytes) return;
    let list = this.free.get(b.length);
    if (!list) this.free.set(b.length, (list = []));
    this.touch(b.length, list);
    list.push(b);
    this.kept += b.length;
    // Evict from the least recently used classes (the first in the Map) until under the bound.
    for (const [size, l] of this.free) {
      if (this.kept <= this.maxKeptBytes) break;
      while (l.length > 0 && this.kept > this.maxKeptBytes) {
        l.pop();
        this.kept -= size;
      }
      if (l.length === 0) this.free.delete(size);
    }
  }

  get keptBytes(): number {
    return this.kept;
  }

  /** Marks a class as the most recently used. */
  private touch(size: number, list: Buffer[] | undefined): void {
    if (!list) return;
    this.free.delete(size);
    this.free.set(size, list);
  }
}

/** The clients' process's pool: enough for every client of a process to reassemble a route configuration at once. */
const sharedPool = new BufferPool(768 * 1024 * 1024);

export class Deframer {
  private readonly prefix = Buffer.alloc(5);
  private prefixHave = 0;
  /** Length of the message being received; -1 until its prefix is complete. */
  private need = -1;
  private message: Buffer | undefined;
  private have = 0;
  /** Bytes copied to reassemble messages (for the test of the one-copy bound). */
  copied = 0;
  constructor(
    /** Gets each message as a view valid only during the call. */
    private readonly onMessage: (m: Buffer) => void,
    private readonly pool: BufferPool = sharedPool,
  ) {}

  /** Takes a chunk of the stream (read during this call only). */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.need < 0) {
        const take = Math.min(5 - this.prefixHave, chunk.length - at);
        chunk.copy(this.prefix, this.prefixHave, at, at + take);
        this.prefixHave += take;
        at += take;
        if (this.prefixHave < 5) return;
        this.need = this.prefix.readUInt32BE(1);
        this.prefixHave = 0;
        this.have = 0;
        if (this.need > 0 && chunk.length - at >= this.need) {
          // Whole within this chunk: handed out as a view, no copy.
          const end = at + this.need;
          this.need = -1;
          this.onMessage(chunk.subarray(at, end));
          at = end;
          continue;
        }
        if (this.need === 0) {
          this.need = -1;
          this.onMessage(Buffer.alloc(0));
          continue;
        }
        this.message = this.pool.take(this.need);
      }
      const take = Math.min(this.need - this.have, chunk.length - at);
      chunk.copy(this.message!, this.have, at, at + take);
      this.copied += take;
      this.have += take;
      at += take;
      if (this.have === this.need) {
        const m = this.message!;
        const n = this.need;
        this.message = undefined;
        this.need = -1;
        try {
          this.onMessage(m.subarray(0, n));
        } finally {
          this.pool.give(m);
        }
      }
    }
  }
}

/**
 * The delay before a client opens a stream again after the control plane
 * ended it, as Envoy's gRPC mux retries: exponential from 500 ms, capped at
 * 30 s, full jitter on the upper half; `previousMs` 0 starts over (a stream
 * that received data resets it).
 */
export function retryDelay(previousMs: number, random: () => number = Math.random): { nextMs: number; delayMs: number } {
  const nextMs = Math.min(30_000, previousMs ? previousMs * 2 : 500);
  return { nextMs, delayMs: nextMs * (0.5 + random() / 2) };
}

// --- protobuf wire scanning: the simulated sidecars read only the fields they need ---

/**
 * Calls f(field, wireType, value-or-bytes) for each top-level field of a
 * message (the cold paths: a Cluster's EDS name, a Listener's route names).
 * Keeps its own position, since `f` may scan the bytes it is given.
 */
export function fields(buf: Uint8Array, f: (field: number, wt: number, v: number, bytes: Uint8Array | undefined) => void): void {
  const b = asBuffer(buf);
  let p = 0;
  while (p < b.length) {
    at = p;
    const tag = varintAt(b);
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (wt === 0) {
      const v = varintAt(b);
      p = at;
      f(field, wt, v, undefined);
    } else if (wt === 2) {
      const len = varintAt(b);
      const from = at;
      p = from + len;
      f(field, wt, len, b.subarray(from, p));
    } else {
      skipAt(b, wt);
      p = at;
    }
  }
}

export interface DeltaResource {
  name: string;
  version: string;
  /** The resource's Any value (its bytes, not copied: a view into the response). */
  value: Uint8Array;
}

export interface DeltaResponse {
  typeUrl: string;
  nonce: string;
  systemVersionInfo: string;
  resources: DeltaResource[];
  removedResources: string[];
}

/** UTF-8 text of bytes [start, end) of `buf` (no TextDecoder call, no view object). */
function text(buf: Buffer, start: number, end: number): string {
  return end > start ? buf.toString('utf8', start, end) : '';
}

const asBuffer = (m: Uint8Array): Buffer => (Buffer.isBuffer(m) ? m : Buffer.from(m.buffer, m.byteOffset, m.byteLength));

/**
 * The read position of the scan below, kept outside it so that reading a
 * varint needs no closure; every scan sets it before use and is synchronous.
 */
let at = 0;

/** The varint at `at` (then past it). */
function varintAt(buf: Buffer): number {
  let b = buf[at++]!;
  if (b < 0x80) return b;
  let x = b & 0x7f;
  let mul = 128;
  for (;;) {
    b = buf[at++]!;
    x += (b & 0x7f) * mul;
    if (b < 0x80) return x;
    mul *= 128;
  }
}

/** Skips the value of wire type `wt` at `at`. */
function skipAt(buf: Buffer, wt: number): void {
  if (wt === 0) varintAt(buf);
  else if (wt === 2) at += varintAt(buf);
  else if (wt === 1) at += 8;
  else if (wt === 5) at += 4;
  else throw new Error(`unsupported wire type ${wt}`);
}

/** Where the bytes of the field `nextBytesField` found end. */
let fieldEnd = 0;

/**
 * Moves `at` to the bytes of the next length-delimited field before `end`
 * (fields of other wire types are skipped) and returns its number, its bytes
 * ending at `fieldEnd`; 0 (no field has it) when there is none.
 */
function nextBytesField(buf: Buffer, end: number): number {
  while (at < end) {
    const tag = varintAt(buf);
    const wt = tag & 7;
    if (wt !== 2) {
      skipAt(buf, wt);
      continue;
    }
    const len = varintAt(buf);
    fieldEnd = at + len;
    return tag >>> 3;
  }
  return 0;
}

/** One Resource message in [start, end): name 3, version 1, resource 2 (Any: value 2, a view). */
function resourceAt(buf: Buffer, start: number, end: number): DeltaResource {
  const r: DeltaResource = { name: '', version: '', value: EMPTY };
  at = start;
  for (let field = nextBytesField(buf, end); field !== 0; field = nextBytesField(buf, end)) {
    const from = at;
    const to = fieldEnd;
    if (field === 3) r.name = text(buf, from, to);
    else if (field === 1) r.version = text(buf, from, to);
    else if (field === 2) {
      for (let af = nextBytesField(buf, to); af !== 0; af = nextBytesField(buf, to)) {
        if (af === 2) r.value = buf.subarray(at, fieldEnd);
        at = fieldEnd;
      }
    }
    at = to;
  }
  return r;
}

const EMPTY = Buffer.alloc(0);

/**
 * A DeltaDiscoveryResponse read straight off the wire (system_version_info 1,
 * resources 2 {version 1, resource 2 Any {type_url 1, value 2}, name 3},
 * type_url 4, nonce 5, removed_resources 6): what the simulated sidecars use.
 * A generic protobuf decode of every response made an object per field of
 * every resource (9,000 clusters per response at S = 1000, for each of N
 * clients), which kept the clients' process, on the same cores as the
 * control plane, as busy as the control plane itself. The scan makes no
 * closure and no view but each resource's value: it runs once per client
 * per response, 1,000 times per endpoint change.
 */
export function decodeDeltaResponse(m: Uint8Array): DeltaResponse {
  const buf = asBuffer(m);
  const out: DeltaResponse = { typeUrl: '', nonce: '', systemVersionInfo: '', resources: [], removedResources: [] };
  const end = buf.length;
  at = 0;
  for (let field = nextBytesField(buf, end); field !== 0; field = nextBytesField(buf, end)) {
    const from = at;
    const to = fieldEnd;
    if (field === 2) out.resources.push(resourceAt(buf, from, to));
    else if (field === 4) out.typeUrl = text(buf, from, to);
    else if (field === 5) out.nonce = text(buf, from, to);
    else if (field === 1) out.systemVersionInfo = text(buf, from, to);
    else if (field === 6) out.removedResources.push(text(buf, from, to));
    at = to;
  }
  return out;
}

/** Bytes a varint of `x` takes. */
function varintSize(x: number): number {
  let n = 1;
  while (x >= 0x80) {
    x = Math.floor(x / 128);
    n++;
  }
  return n;
}

/** Writes the varint `x` at `p` of `b`; returns the position after it. */
function putVarint(b: Buffer, p: number, x: number): number {
  while (x >= 0x80) {
    b[p++] = (x & 0x7f) | 0x80;
    x = Math.floor(x / 128);
  }
  b[p++] = x;
  return p;
}

/** A field's tag and length prefix, then the text, for the non-empty texts (type_url 2, response_nonce 6). */
function ackField(b: Buffer | undefined, p: number, tag: number, value: string, size: number): number {
  if (size === 0) return p;
  if (!b) return p + 1 + varintSize(size) + size;
  b[p++] = tag;
  p = putVarint(b, p, size);
  return p + b.write(value, p, size, 'utf8');
}

/**
 * The framed DeltaDiscoveryRequest that ACKs a response (type_url 2,
 * response_nonce 6; an empty string is left out, as proto3 writes it),
 * written straight to bytes: the same bytes protobuf-es writes for that
 * message, without building one. Every client ACKs every response; with
 * protobuf-es's generic writer that was a tenth of the clients' CPU in a
 * VirtualService edit, on the cores the control plane runs on. One buffer
 * per ACK, measured first, then written.
 */
export function ackFrame(typeUrl: string, nonce: string): Buffer {
  const typeSize = Buffer.byteLength(typeUrl);
  const nonceSize = Buffer.byteLength(nonce);
  const size = ackField(undefined, ackField(undefined, 0, 0x12, typeUrl, typeSize), 0x32, nonce, nonceSize);
  const b = Buffer.allocUnsafe(5 + size);
  b[0] = 0;
  b.writeUInt32BE(size, 1);
  ackField(b, ackField(b, 5, 0x12, typeUrl, typeSize), 0x32, nonce, nonceSize);
  return b;
}
