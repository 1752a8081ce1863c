/**
 * A minimal HTTP/2 client connection for the benchmark's simulated sidecars
 * (istiod-clients.ts): gRPC bidirectional streams over one TCP connection,
 * framed by hand on a `net.Socket` that reads into one buffer reused by every
 * connection of the process.
 *
 * Why not `node:http2`: the clients share the machine's two cores with the
 * control plane they measure. With node:http2 each 16 KiB DATA frame became a
 * new Buffer and a Readable-stream event, and the clients' processes used
 * about three times the control plane's CPU to read a VirtualService edit's
 * route configurations, so the time until the last client had its copy was
 * theirs more than the control plane's. Here a DATA payload goes from the
 * read buffer straight to the gRPC deframer (istiod-wire.ts).
 *
 * What it does, as an HTTP/2 client must (RFC 9113): the preface and
 * SETTINGS (ACKed both ways), PING answered, flow control both ways (the
 * receive windows are replenished once half is used, as nghttp2 does; sends
 * wait for the peer's windows and keep to its MAX_FRAME_SIZE), RST_STREAM and
 * GOAWAY end streams, header blocks (with CONTINUATION) are decoded with
 * HPACK (hpack.js) so that trailers' `grpc-status` can be reported. Server
 * push is refused in SETTINGS; priorities are ignored.
 */
import { createRequire } from 'node:module';
import net from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const DATA = 0;
const HEADERS = 1;
const RST_STREAM = 3;
const SETTINGS = 4;
const PUSH_PROMISE = 5;
const PING = 6;
const GOAWAY = 7;
const WINDOW_UPDATE = 8;
const CONTINUATION = 9;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

const SETTINGS_ENABLE_PUSH = 2;
const SETTINGS_INITIAL_WINDOW_SIZE = 4;
const SETTINGS_MAX_FRAME_SIZE = 5;

const DEFAULT_WINDOW = 65_535;

/** Every connection of the process reads into this buffer; what a read brings is handled before the next read. */
const readBuffer = Buffer.allocUnsafe(256 * 1024);

export interface H2Options {
  host: string;
  port: number;
  localAddress?: string;
  /** Receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindow: number;
  /** Receive window of the connection (raised from 65,535 by a WINDOW_UPDATE right after the preface). */
  connectionWindow: number;
}

export interface H2StreamHandlers {
  /** A DATA payload (padding removed): a view valid only during the call. */
  data(chunk: Buffer): void;
  /** A decoded header block: the response headers, then the trailers. */
  headers?(headers: Map<string, string>, endStream: boolean): void;
  /** The stream ended: by trailers or END_STREAM (rstCode 0), RST_STREAM, GOAWAY or the connection closing (`reason`). */
  close(rstCode: number, reason: string): void;
}

export class H2Stream {
  /** Bytes of DATA this stream may still send (the peer's window). */
  sendWindow: number;
  /** Bytes waiting for window. */
  readonly queue: Buffer[] = [];
  closed = false;
  /** DATA bytes received since the last WINDOW_UPDATE for this stream. */
  unacked = 0;
  constructor(
    readonly id: number,
    private readonly conn: H2Connection,
    readonly handlers: H2StreamHandlers,
    sendWindow: number,
  ) {
    this.sendWindow = sendWindow;
  }

  /** Sends bytes as DATA (split to the peer's frame size, queued while either window is closed). */
  write(payload: Buffer): void {
    if (this.closed) return;
    this.queue.push(payload);
    this.conn.flush(this);
  }
}

export class H2Connection {
  private readonly socket: net.Socket;
  private readonly streams = new Map<number, H2Stream>();
  private nextStreamId = 1;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = 16_384;
  private connSendWindow = DEFAULT_WINDOW;
  private connUnacked = 0;
  private readonly hpack = new HpackDecoder();
  /** A header block being continued: its stream, the flags of its HEADERS frame, the fragments. */
  private continuing: { stream: number; flags: number; parts: Buffer[] } | undefined;
  /** The start of a frame the last read ended inside (a copy). */
  private partial: Buffer | undefined;
  private goneReason: string | undefined;
  private readonly errorListeners: Array<(err: Error) => void> = [];
  private readonly goawayListeners: Array<(code: number) => void> = [];

  constructor(private readonly opts: H2Options) {
    this.socket = net.connect({
      host: opts.host,
      port: opts.port,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      onread: { buffer: readBuffer, callback: (n: number, buf: Uint8Array) => (this.onBytes(buf as Buffer, n), true) },
    });
    this.socket.setNoDelay(true);
    const settings = settingsPayload([
      [SETTINGS_ENABLE_PUSH, 0],
      [SETTINGS_INITIAL_WINDOW_SIZE, opts.streamWindow],
    ]);
    const raise = opts.connectionWindow - DEFAULT_WINDOW;
    this.socket.write(Buffer.concat([PREFACE, frameHeader(settings.length, SETTINGS, 0, 0), settings, ...(raise > 0 ? [windowUpdate(0, raise)] : [])]));
    this.socket.on('error', (err) => {
      for (const l of this.errorListeners) l(err);
    });
    this.socket.on('close', () => this.fail(this.goneReason ?? 'connection closed'));
  }

  /** Whether new streams can be opened on this connection. */
  get usable(): boolean {
    return this.goneReason === undefined && !this.socket.destroyed;
  }

  onError(l: (err: Error) => void): void {
    this.errorListeners.push(l);
  }

  onGoaway(l: (code: number) => void): void {
    this.goawayListeners.push(l);
  }

  /** Opens a stream with a gRPC POST to `path` (its HEADERS frame goes out at once). */
  request(path: string, authority: string, handlers: H2StreamHandlers): H2Stream {
    if (!this.usable) throw new Error(`connection is ${this.goneReason ?? 'closed'}`);
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new H2Stream(id, this, handlers, this.peerInitialWindow);
    this.streams.set(id, stream);
    const block = requestHeaderBlock(path, authority);
    this.socket.write(Buffer.concat([frameHeader(block.length, HEADERS, END_HEADERS, id), block]));
    return stream;
  }

  destroy(): void {
    this.goneReason ??= 'destroyed';
    this.socket.destroy();
  }

  /** Writes what the windows allow of a stream's queue: its DATA frames in one buffer, one socket write (an ACK is one frame). */
  flush(s: H2Stream): void {
    const chunks: Buffer[] = [];
    let size = 0;
    while (s.queue.length > 0) {
      const head = s.queue[0]!;
      const n = Math.min(head.length, s.sendWindow, this.connSendWindow, this.peerMaxFrame);
      if (n <= 0 && head.length > 0) break;
      chunks.push(n === head.length ? head : head.subarray(0, n));
      size += 9 + n;
      s.sendWindow -= n;
      this.connSendWindow -= n;
      if (n === head.length) s.queue.shift();
      else s.queue[0] = head.subarray(n);
    }
    if (chunks.length === 0) return;
    const b = Buffer.allocUnsafe(size);
    let p = 0;
    for (const c of chunks) {
      putFrameHeader(b, p, c.length, DATA, 0, s.id);
      c.copy(b, p + 9);
      p += 9 + c.length;
    }
    this.socket.write(b);
  }

  /** Bytes read into the shared buffer: every whole frame is handled now, the start of an unfinished one is copied. */
  private onBytes(buf: Buffer, n: number): void {
    const chunk = buf.subarray(0, n);
    let at = 0;
    if (this.partial) {
      // Complete the frame split across reads with only the bytes it still needs.
      let b = this.partial;
      const upTo = (size: number) => {
        const take = Math.min(size - b.length, chunk.length - at);
        if (take > 0) b = Buffer.concat([b, chunk.subarray(at, at + take)]);
        at += Math.max(take, 0);
        return b.length >= size;
      };
      if (!upTo(9) || !upTo(9 + frameLength(b, 0))) {
        this.partial = b;
        return;
      }
      this.partial = undefined;
      if (!this.dispatch(b, 0)) return;
    }
    while (chunk.length - at >= 9) {
      const length = frameLength(chunk, at);
      if (chunk.length - at < 9 + length) break;
      if (!this.dispatch(chunk, at)) return;
      at += 9 + length;
    }
    if (at < chunk.length) this.partial = Buffer.from(chunk.subarray(at));
  }

  /** Handles the whole frame at `at`; false once the connection is failed for a protocol error. */
  private dispatch(buf: Buffer, at: number): boolean {
    const length = frameLength(buf, at);
    try {
      this.onFrame(buf[at + 3]!, buf[at + 4]!, buf.readUInt32BE(at + 5) & 0x7fffffff, buf.subarray(at + 9, at + 9 + length));
      return true;
    } catch (err) {
      this.goneReason = `protocol error: ${(err as Error).message}`;
      this.socket.destroy();
      return false;
    }
  }

  private onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    if (this.continuing && type !== CONTINUATION) throw new Error('expected CONTINUATION');
    switch (type) {
      case DATA: {
        const data = flags & PADDED ? payload.subarray(1, payload.length - payload[0]!) : payload;
        this.received(id, payload.length);
        const s = this.streams.get(id);
        if (!s) return;
        if (data.length > 0) s.handlers.data(data);
        if (flags & END_STREAM) this.end(s, 0, 'ended by the server');
        return;
      }
      case HEADERS: {
        let block = payload;
        let pad = 0;
        if (flags & PADDED) {
          pad = block[0]!;
          block = block.subarray(1);
        }
        if (flags & PRIORITY) block = block.subarray(5);
        block = block.subarray(0, block.length - pad);
        if (flags & END_HEADERS) this.headerBlock(id, flags, block);
        else this.continuing = { stream: id, flags, parts: [Buffer.from(block)] };
        return;
      }
      case CONTINUATION: {
        if (!this.continuing || this.continuing.stream !== id) throw new Error('unexpected CONTINUATION');
        this.continuing.parts.push(Buffer.from(payload));
        if (flags & END_HEADERS) {
          const { flags: f, parts } = this.continuing;
          this.continuing = undefined;
          this.headerBlock(id, f, Buffer.concat(parts));
        }
        return;
      }
      case RST_STREAM: {
        const s = this.streams.get(id);
        const code = payload.readUInt32BE(0);
        if (s) this.end(s, code, `RST_STREAM ${code}`);
        return;
      }
      case SETTINGS: {
        if (flags & ACK) return;
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          const key = payload.readUInt16BE(i);
          const value = payload.readUInt32BE(i + 2);
          if (key === SETTINGS_INITIAL_WINDOW_SIZE) {
            // Moves every open stream's send window by the difference (RFC 9113 §6.9.2).
            const delta = value - this.peerInitialWindow;
            this.peerInitialWindow = value;
            for (const s of this.streams.values()) s.sendWindow += delta;
          } else if (key === SETTINGS_MAX_FRAME_SIZE) this.peerMaxFrame = value;
        }
        this.socket.write(frameHeader(0, SETTINGS, ACK, 0));
        for (const s of this.streams.values()) this.flush(s);
        return;
      }
      case PING:
        if (!(flags & ACK)) this.socket.write(Buffer.concat([frameHeader(8, PING, ACK, 0), payload]));
        return;
      case GOAWAY: {
        const last = payload.readUInt32BE(0) & 0x7fffffff;
        const code = payload.readUInt32BE(4);
        this.goneReason = `GOAWAY ${code}`;
        for (const l of this.goawayListeners) l(code);
        // Streams the server did not take are closed; the others may still finish.
        for (const s of [...this.streams.values()]) if (s.id > last) this.end(s, 0, `GOAWAY ${code}`);
        return;
      }
      case WINDOW_UPDATE: {
        const inc = payload.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) {
          this.connSendWindow += inc;
          for (const s of this.streams.values()) this.flush(s);
        } else {
          const s = this.streams.get(id);
          if (s) {
            s.sendWindow += inc;
            this.flush(s);
          }
        }
        return;
      }
      case PUSH_PROMISE:
        throw new Error('PUSH_PROMISE with push disabled');
      default:
        return; // PRIORITY and unknown types are ignored
    }
  }

  private headerBlock(id: number, flags: number, block: Buffer): void {
    // Decoded even for a stream already gone: the decoder's table must see every block.
    const headers = this.hpack.decode(block);
    const s = this.streams.get(id);
    if (!s) return;
    s.handlers.headers?.(headers, (flags & END_STREAM) !== 0);
    if (flags & END_STREAM) this.end(s, 0, 'trailers');
  }

  /** Counts received DATA against the receive windows and replenishes each once half of it is used. */
  private received(id: number, n: number): void {
    this.connUnacked += n;
    let updates: Buffer | undefined;
    if (this.connUnacked >= this.opts.connectionWindow / 2) {
      updates = windowUpdate(0, this.connUnacked);
      this.connUnacked = 0;
    }
    const s = this.streams.get(id);
    if (s) {
      s.unacked += n;
      if (s.unacked >= this.opts.streamWindow / 2) {
        const u = windowUpdate(id, s.unacked);
        updates = updates ? Buffer.concat([updates, u]) : u;
        s.unacked = 0;
      }
    }
    if (updates) this.socket.write(updates);
  }

  private end(s: H2Stream, rstCode: number, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s.id);
    s.handlers.close(rstCode, reason);
  }

  private fail(reason: string): void {
    this.goneReason ??= reason;
    for (const s of [...this.streams.values()]) this.end(s, 0, reason);
  }
}

const frameLength = (b: Buffer, at: number) => (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;

function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  putFrameHeader(b, 0, length, type, flags, stream);
  return b;
}

/** Writes a frame header into the 9 bytes of `b` from `at`. */
function putFrameHeader(b: Buffer, at: number, length: number, type: number, flags: number, stream: number): void {
  b[at] = (length >>> 16) & 0xff;
  b[at + 1] = (length >>> 8) & 0xff;
  b[at + 2] = length & 0xff;
  b[at + 3] = type;
  b[at + 4] = flags;
  b.writeUInt32BE(stream & 0x7fffffff, at + 5);
}

function settingsPayload(pairs: Array<[number, number]>): Buffer {
  const b = Buffer.allocUnsafe(6 * pairs.length);
  pairs.forEach(([k, v], i) => {
    b.writeUInt16BE(k, 6 * i);
    b.writeUInt32BE(v, 6 * i + 2);
  });
  return b;
}

function windowUpdate(stream: number, increment: number): Buffer {
  const b = Buffer.allocUnsafe(13);
  putFrameHeader(b, 0, 4, WINDOW_UPDATE, 0, stream);
  b.writeUInt32BE(increment & 0x7fffffff, 9);
  return b;
}

/**
 * The request's header block in HPACK without Huffman coding or table
 * insertions: `:method: POST` and `:scheme: http` from the static table
 * (indices 3 and 6), the rest as literals without indexing (names :path and
 * :authority from the static table, 4 and 1; content-type and te literal).
 */
function requestHeaderBlock(path: string, authority: string): Buffer {
  const parts: Buffer[] = [Buffer.from([0x83, 0x86])];
  const literal = (nameIndex: number, name: string, value: string) => {
    parts.push(nameIndex ? hpackInt(nameIndex, 4, 0x00) : Buffer.concat([Buffer.from([0x00]), hpackString(name)]));
    parts.push(hpackString(value));
  };
  literal(4, ':path', path);
  literal(1, ':authority', authority);
  literal(0, 'content-type', 'application/grpc');
  literal(0, 'te', 'trailers');
  return Buffer.concat(parts);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1), the first byte's other bits from `mask`. */
function hpackInt(value: number, prefixBits: number, mask: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([mask | value]);
  const out = [mask | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([hpackInt(bytes.length, 7, 0x00), bytes]);
}

interface Decompressor {
  write(b: Buffer): void;
  execute(): void;
  read(): { name: string; value: string } | null;
  on(event: 'error', l: (err: Error) => void): void;
}

/** Header blocks decoded with hpack.js; its dynamic table lives across blocks, as HPACK requires. */
class HpackDecoder {
  private readonly d: Decompressor;
  private error: Error | undefined;
  constructor() {
    const hpack = createRequire(import.meta.url)('hpack.js') as { decompressor: { create(o: { table: { maxSize: number } }): Decompressor } };
    // 4,096: this client leaves SETTINGS_HEADER_TABLE_SIZE at its default.
    this.d = hpack.decompressor.create({ table: { maxSize: 4096 } });
    this.d.on('error', (err) => (this.error = err));
  }

  decode(block: Buffer): Map<string, string> {
    this.d.write(Buffer.from(block)); // a copy: the block may be a view of the read buffer
    this.d.execute();
    if (this.error) throw new Error(`HPACK: ${this.error.message}`);
    const out = new Map<string, string>();
    for (let h = this.d.read(); h !== null; h = this.d.read()) out.set(h.name, h.value);
    return out;
  }
}
