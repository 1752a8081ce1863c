/**
 * Request limits checked on the wire, as a request arrives.
 *
 * grpc-js hands a request to the deserializer only once it is whole (up to
 * the maximum receive size, 4 MiB by default), so a check in the deserializer
 * runs after the server has already received and buffered every byte of it.
 * This module follows the bytes of one server stream as grpc-js's decoder
 * takes them: the gRPC length prefix of each message, then the top-level
 * protobuf fields of a (Delta)DiscoveryRequest (a tag and a length per field,
 * never their contents). A node field longer than the limit is refused as soon
 * as its length arrives, a request with too many names as soon as the name
 * over the limit arrives; the rest of the request is never buffered (the
 * server ends the stream and resets it, so the client stops sending).
 *
 * Large requests are copied as they arrive. Each HTTP/2 DATA chunk grpc-js
 * holds is a view into a 64 KiB socket-read ArrayBuffer; held while a large
 * request accumulates, those buffers outlive young-generation GCs, and once
 * the request is refused (or decoded) they are garbage that only V8's next
 * full GC frees, which an idle daemon may not run for minutes (the abuse
 * benchmark saw tens of MB held that way after a names attack). A chunk of a
 * message of at least `COPY_MIN_MESSAGE_BYTES` is therefore copied into a
 * buffer of this call's own, so the socket buffer dies young; and as soon as
 * grpc-js no longer needs a copy (the request was refused, or assembled into
 * one message), the copy's memory is detached from it (moved to a fresh
 * ArrayBuffer nobody holds, see `release`), which the next young-generation
 * GC frees, however old the copy was.
 *
 * The hook is one guarded, per-call wrapper of grpc-js's `StreamDecoder.write`
 * (`BaseServerInterceptingCall.decoder`, grpc-js 1.14, pinned exactly). It is
 * installed only when the call has that shape and its decoder has not read
 * anything yet; otherwise nothing changes and the same limits are checked on
 * the whole message in the deserializer (service.ts), as before.
 */
import { status } from '@grpc/grpc-js';
import type { XdsLimits } from './limits.js';

/** A limit a request went over: which, and the value it reached. */
export interface WireVerdict {
  key: Extract<keyof XdsLimits, 'maxNamesPerRequest' | 'maxNodeBytes'>;
  value: number;
}

const SOTW_NAME_FIELDS = new Set([3, 7]);
const DELTA_NAME_FIELDS = new Set([3, 4, 5, 8, 9]);

const enum Frame {
  Header,
  Body,
}
const enum Field {
  Key,
  Varint,
  Length,
  Skip,
}

/**
 * Follows gRPC messages and the top-level fields of each, chunk by chunk,
 * keeping only counters: names so far and node bytes declared in the current
 * message. Compressed messages and bytes that are not a well-formed message
 * are not scanned (the deserializer checks and reports those once whole).
 */
export class RequestWireScanner {
  /** Set by `feed` when the bytes it took include part of a message of at least `largeMessageBytes`. */
  touchedLarge = false;
  private frame = Frame.Header;
  private headerPos = 0;
  private compressed = false;
  private length = 0;
  private bodyLeft = 0;
  private scan = false;
  private field = Field.Key;
  private fieldNo = 0;
  private varint = 0;
  private mul = 1;
  private varintBytes = 0;
  private skipLeft = 0;
  private names = 0;
  private nodeBytes = 0;
  private readonly nameFields: ReadonlySet<number>;
  private readonly nodeField: number;

  constructor(
    delta: boolean,
    private readonly maxNames: number,
    private readonly maxNodeBytes: number,
    private readonly largeMessageBytes = Infinity,
  ) {
    this.nameFields = delta ? DELTA_NAME_FIELDS : SOTW_NAME_FIELDS;
    this.nodeField = delta ? 1 : 2;
  }

  /** Takes the next bytes of the stream; returns the limit the current request went over, if any. */
  feed(data: Uint8Array): WireVerdict | undefined {
    const n = data.length;
    let i = 0;
    this.touchedLarge = this.frame === Frame.Body && this.length >= this.largeMessageBytes;
    while (i < n) {
      if (this.frame === Frame.Header) {
        const b = data[i++]!;
        if (this.headerPos === 0) {
          this.compressed = b !== 0;
          this.length = 0;
        } else this.length = this.length * 256 + b;
        if (++this.headerPos < 5) continue;
        this.headerPos = 0;
        if (this.length === 0) continue;
        this.frame = Frame.Body;
        if (this.length >= this.largeMessageBytes) this.touchedLarge = true;
        this.bodyLeft = this.length;
        this.scan = !this.compressed;
        this.field = Field.Key;
        this.varint = 0;
        this.mul = 1;
        this.varintBytes = 0;
        this.names = 0;
        this.nodeBytes = 0;
        continue;
      }
      const end = i + Math.min(n - i, this.bodyLeft);
      const start = i;
      if (!this.scan) i = end;
      else {
        const v = this.fields(data, i, end, start);
        if (typeof v === 'object') return v;
        i = v;
      }
      this.bodyLeft -= i - start;
      if (this.bodyLeft === 0) this.frame = Frame.Header;
    }
    return undefined;
  }

  /** Scans fields in data[i, end); returns where it stopped (end), or the limit hit. */
  private fields(data: Uint8Array, i: number, end: number, start: number): number | WireVerdict {
    while (i < end) {
      if (this.field === Field.Skip) {
        const k = Math.min(this.skipLeft, end - i);
        i += k;
        this.skipLeft -= k;
        if (this.skipLeft === 0) this.field = Field.Key;
        continue;
      }
      const b = data[i++]!;
      this.varint += (b & 0x7f) * this.mul;
      this.mul *= 128;
      if (b >= 0x80) {
        if (++this.varintBytes >= 10) {
          this.scan = false; // not a varint: leave the message to the decoder
          return end;
        }
        continue;
      }
      const v = this.varint;
      this.varint = 0;
      this.mul = 1;
      this.varintBytes = 0;
      switch (this.field) {
        case Field.Key: {
          this.fieldNo = Math.floor(v / 8);
          switch (v % 8) {
            case 0:
              this.field = Field.Varint;
              break;
            case 1:
              this.field = Field.Skip;
              this.skipLeft = 8;
              break;
            case 5:
              this.field = Field.Skip;
              this.skipLeft = 4;
              break;
            case 2:
              this.field = Field.Length;
              break;
            default:
              this.scan = false;
              return end;
          }
          break;
        }
        case Field.Varint:
          this.field = Field.Key;
          break;
        case Field.Length: {
          if (this.nameFields.has(this.fieldNo)) {
            if (++this.names > this.maxNames) return { key: 'maxNamesPerRequest', value: this.names };
          } else if (this.fieldNo === this.nodeField) {
            this.nodeBytes += v;
            if (this.nodeBytes > this.maxNodeBytes) return { key: 'maxNodeBytes', value: this.nodeBytes };
          }
          if (v > this.bodyLeft - (i - start)) {
            this.scan = false; // a length past the end of the message: the decoder reports it
            return end;
          }
          if (v === 0) this.field = Field.Key;
          else {
            this.field = Field.Skip;
            this.skipLeft = v;
          }
          break;
        }
        default:
          break;
      }
    }
    return end;
  }
}

type DecoderLike = { write(data: Buffer): Buffer[]; readState?: unknown; readPartialMessage?: unknown; readCompressFlag?: unknown };

/** Messages at least this large are copied as they arrive (see the module comment). */
export const COPY_MIN_MESSAGE_BYTES = 64 * 1024;

/**
 * Frees an ArrayBuffer's memory at the next young-generation GC, whatever the
 * age of the objects that point to it: its contents move to a new ArrayBuffer
 * that nobody holds, and it is left detached (length 0). Only for buffers no
 * one else reads (this module's own copies).
 */
export function release(ab: ArrayBufferLike): void {
  if (!(ab instanceof ArrayBuffer) || ab.byteLength === 0) return;
  structuredClone(ab, { transfer: [ab] });
}

/** Statistics of one guarded call, for tests. */
export interface GuardStats {
  /** Bytes copied into the call's own buffers. */
  copiedBytes: number;
  /** Bytes of those copies released (detached) so far. */
  releasedBytes: number;
}

/**
 * Installs the wire checks on a grpc-js server call (the call handed to a
 * method handler). `onOver` runs once, inside grpc-js's data handler, when a
 * request goes over a limit; from then on the call's incoming bytes are
 * dropped instead of buffered. Returns the call's statistics, or undefined
 * when the call does not have the expected shape (nothing is changed then).
 */
export function guardRequests(
  call: object,
  delta: boolean,
  limits: Pick<XdsLimits, 'maxNamesPerRequest' | 'maxNodeBytes'>,
  onOver: (v: WireVerdict) => void,
  copyMinMessageBytes = COPY_MIN_MESSAGE_BYTES,
): GuardStats | undefined {
  try {
    const inner = (call as { call?: { decoder?: DecoderLike; handleDataFrame?: unknown } }).call;
    const decoder = inner?.decoder;
    if (!inner || typeof inner.handleDataFrame !== 'function' || !decoder || typeof decoder.write !== 'function') return undefined;
    // Only a decoder that has read nothing yet: the scanner must see the stream from its first byte.
    if (decoder.readState !== 0 || !Array.isArray(decoder.readPartialMessage) || decoder.readPartialMessage.length !== 0) return undefined;
    if (Object.prototype.hasOwnProperty.call(decoder, 'write')) return undefined; // already wrapped
    const scanner = new RequestWireScanner(delta, limits.maxNamesPerRequest, limits.maxNodeBytes, copyMinMessageBytes);
    const write = decoder.write;
    const stats: GuardStats = { copiedBytes: 0, releasedBytes: 0 };
    /** This call's copies that grpc-js may still hold. */
    let copies: ArrayBuffer[] = [];
    const releaseCopies = (keep: ReadonlySet<ArrayBufferLike>) => {
      if (copies.length === 0) return;
      const kept: ArrayBuffer[] = [];
      for (const ab of copies) {
        if (keep.has(ab)) kept.push(ab);
        else {
          stats.releasedBytes += ab.byteLength;
          release(ab);
        }
      }
      copies = kept;
    };
    let refused = false;
    decoder.write = function (this: DecoderLike, data: Buffer): Buffer[] {
      if (refused) return [];
      const over = scanner.feed(data);
      if (over) {
        refused = true;
        // Drop what grpc-js had buffered of this request; nothing more is kept for this call.
        this.readPartialMessage = [];
        this.readCompressFlag = Buffer.alloc(1);
        releaseCopies(new Set());
        onOver(over);
        return [];
      }
      if (!scanner.touchedLarge) return write.call(this, data);
      const own = Buffer.allocUnsafeSlow(data.length); // never from the shared pool: it is released on its own
      data.copy(own);
      copies.push(own.buffer);
      stats.copiedBytes += own.length;
      const out = write.call(this, own);
      // grpc-js assembles a whole message into a new buffer: the copies it no longer reads can go. While a
      // message is still arriving, its parts (and its compressed-flag view) are kept.
      const keep = new Set<ArrayBufferLike>();
      if (this.readState !== 0) {
        for (const b of this.readPartialMessage as Buffer[]) keep.add(b.buffer);
        if (Buffer.isBuffer(this.readCompressFlag)) keep.add(this.readCompressFlag.buffer);
      }
      releaseCopies(keep);
      return out;
    };
    const end = () => releaseCopies(new Set());
    const events = call as { once?: (ev: string, f: () => void) => void };
    events.once?.('close', end);
    events.once?.('cancelled', end);
    return stats;
  } catch {
    return undefined;
  }
}

/** What `directReceiver` needs of grpc-js's `BaseServerInterceptingCall` (1.14). */
interface ReceivingCall {
  handleDataFrame(data: Buffer): void;
  checkCancelled(): boolean;
  sendStatus(s: { code: number; details: string }): void;
  decoder: { write(data: Buffer): Buffer[] };
  handler: { deserialize(b: Buffer): unknown };
  readQueue: unknown[];
  incomingEncoding: string;
  callEventTracker?: { addMessageReceived(): void } | null;
}

/**
 * A cheaper read path for a grpc-js server bidi stream. grpc-js hands each
 * request on through an `await` (its decompression step, even for identity),
 * then pushes it into the call's object-mode Readable, which pauses and
 * resumes the HTTP/2 stream and schedules reads on the next tick: per ACK,
 * about as much work as the rest of the request's handling (an endpoint
 * change to 1,000 proxies is 1,000 ACKs; docs/scale.md). This replaces the
 * call's `handleDataFrame` with one that deserializes each message as
 * grpc-js does (the same decoder, size limit and deserializer, the same
 * statuses on failure) and gives it to `onMessage` at once.
 *
 * Installed only on an uncompressed call (`grpc-encoding` identity: grpc-js
 * then ignores the compressed flag too) whose queue is empty, with the shape
 * above; otherwise nothing changes and the call's 'data' events carry every
 * request. The caller must handle both the same way: half-close and errors
 * still come as the call's events, after every message taken here. A handler
 * that throws ends its call with INTERNAL, never the process.
 */
export function directReceiver(call: object, onMessage: (message: unknown) => void): boolean {
  try {
    const inner = (call as { call?: Partial<ReceivingCall> }).call;
    if (!inner || typeof inner.handleDataFrame !== 'function' || Object.prototype.hasOwnProperty.call(inner, 'handleDataFrame')) return false;
    if (typeof inner.checkCancelled !== 'function' || typeof inner.sendStatus !== 'function' || typeof inner.decoder?.write !== 'function' || typeof inner.handler?.deserialize !== 'function') return false;
    if (!Array.isArray(inner.readQueue) || inner.readQueue.length !== 0 || inner.incomingEncoding !== 'identity') return false;
    (inner as ReceivingCall).handleDataFrame = function (this: ReceivingCall, data: Buffer): void {
      if (this.checkCancelled()) return;
      let messages: Buffer[];
      try {
        messages = this.decoder.write(data);
      } catch (err) {
        this.sendStatus({ code: status.RESOURCE_EXHAUSTED, details: (err as Error).message });
        return;
      }
      for (const m of messages) {
        let parsed: unknown;
        try {
          parsed = this.handler.deserialize(m.subarray(5));
        } catch {
          this.sendStatus({ code: status.INTERNAL, details: 'Error deserializing request' });
          return;
        }
        this.callEventTracker?.addMessageReceived();
        try {
          onMessage(parsed);
        } catch (err) {
          // Thrown here it would reach the HTTP/2 session's event handler: it ends this call only.
          this.sendStatus({ code: status.INTERNAL, details: `request handler failed: ${(err as Error).message}` });
          return;
        }
        if (this.checkCancelled()) return;
      }
    };
    return true;
  } catch {
    return false;
  }
}
