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

/** Calls f(field, wireType, value-or-bytes) for each top-level field of a message. */
export function fields(buf: Uint8Array, f: (field: number, wt: number, v: number, bytes: Uint8Array | undefined) => void): void {
  let p = 0;
  const varint = (): number => {
    let x = 0;
    let mul = 1;
    for (;;) {
      const b = buf[p++]!;
      x += (b & 0x7f) * mul;
      if (b < 0x80) return x;
      mul *= 128;
    }
  };
  while (p < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (wt === 0) f(field, wt, varint(), undefined);
    else if (wt === 2) {
      const len = varint();
      f(field, wt, len, buf.subarray(p, p + len));
      p += len;
    } else if (wt === 1) p += 8;
    else if (wt === 5) p += 4;
    else throw new Error(`unsupported wire type ${wt}`);
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

const utf8 = new TextDecoder();

/**
 * A DeltaDiscoveryResponse read straight off the wire (system_version_info 1,
 * resources 2 {version 1, resource 2 Any {type_url 1, value 2}, name 3},
 * type_url 4, nonce 5, removed_resources 6): what the simulated sidecars use.
 * A generic protobuf decode of every response made an object per field of
 * every resource (9,000 clusters per response at S = 1000, for each of N
 * clients), which kept the clients' process, on the same cores as the
 * control plane, as busy as the control plane itself.
 */
export function decodeDeltaResponse(m: Uint8Array): DeltaResponse {
  const out: DeltaResponse = { typeUrl: '', nonce: '', systemVersionInfo: '', resources: [], removedResources: [] };
  fields(m, (field, wt, _v, bytes) => {
    if (wt !== 2 || !bytes) return;
    if (field === 2) {
      const r: DeltaResource = { name: '', version: '', value: new Uint8Array() };
      fields(bytes, (rf, rwt, _rv, rb) => {
        if (rwt !== 2 || !rb) return;
        if (rf === 3) r.name = utf8.decode(rb);
        else if (rf === 1) r.version = utf8.decode(rb);
        else if (rf === 2) fields(rb, (af, awt, _av, ab) => awt === 2 && ab && af === 2 && (r.value = ab));
      });
      out.resources.push(r);
    } else if (field === 4) out.typeUrl = utf8.decode(bytes);
    else if (field === 5) out.nonce = utf8.decode(bytes);
    else if (field === 1) out.systemVersionInfo = utf8.decode(bytes);
    else if (field === 6) out.removedResources.push(utf8.decode(bytes));
  });
  return out;
}

function pushVarint(out: number[], x: number): void {
  while (x >= 0x80) {
    out.push((x & 0x7f) | 0x80);
    x = Math.floor(x / 128);
  }
  out.push(x);
}

/**
 * The framed DeltaDiscoveryRequest that ACKs a response (type_url 2,
 * response_nonce 6; an empty string is left out, as proto3 writes it),
 * written straight to bytes: the same bytes protobuf-es writes for that
 * message, without building one. Every client ACKs every response; with
 * protobuf-es's generic writer that was a tenth of the clients' CPU in a
 * VirtualService edit, on the cores the control plane runs on.
 */
export function ackFrame(typeUrl: string, nonce: string): Buffer {
  const parts: Uint8Array[] = [];
  for (const [tag, text] of [
    [0x12, typeUrl],
    [0x32, nonce],
  ] as const) {
    const bytes = Buffer.from(text);
    if (!bytes.length) continue;
    const head: number[] = [];
    pushVarint(head, tag);
    pushVarint(head, bytes.length);
    parts.push(Uint8Array.from(head), bytes);
  }
  return frame(Buffer.concat(parts));
}
