/**
 * Per-client limits of the ADS server: what one stream, one connection or one
 * client address may make the server hold. A stream over a limit ends with
 * RESOURCE_EXHAUSTED and everything the server kept for it is dropped; the
 * server counts the hit (by limit) and logs it with the peer.
 *
 * The defaults are far above what a real proxy sends (see docs/xds.md,
 * "Limits", for the reasoning behind each number) and low enough that one
 * client cannot grow the daemon's memory without bound.
 */
import { createHash } from 'node:crypto';
import http2 from 'node:http2';

export interface XdsLimits {
  /** Resource names in one request: SotW resource_names; Delta subscribe + unsubscribe + initial_resource_versions. */
  maxNamesPerRequest: number;
  /** Resource names a stream subscribes to, summed over its type URLs (plus Delta initial_resource_versions). */
  maxNamesPerStream: number;
  /** Size of the Node message (metadata, extensions, …) on a stream's first request, in bytes as protobuf. */
  maxNodeBytes: number;
  /** Concurrent ADS streams on one HTTP/2 connection. */
  maxStreamsPerConnection: number;
  /** Concurrent ADS streams from one client IP address. */
  maxStreamsPerAddress: number;
  /**
   * Streams from one client IP address that are open but have not yet sent
   * their first request. grpc-js holds a request in memory until it is whole,
   * so this bounds what one address can make the server buffer before any
   * per-request check runs (at most this many × the largest request).
   */
  maxOpeningStreamsPerAddress: number;
  /** Distinct type URLs without a generator that one stream may ask for. */
  maxUnknownTypes: number;
  /** Bytes held for one stream: responses written but not flushed, plus requests buffered before authentication. */
  maxPendingBytes: number;
}

export const defaultXdsLimits: Readonly<XdsLimits> = Object.freeze({
  maxNamesPerRequest: 50_000,
  maxNamesPerStream: 100_000,
  maxNodeBytes: 1024 * 1024,
  maxStreamsPerConnection: 100,
  maxStreamsPerAddress: 10_000,
  maxOpeningStreamsPerAddress: 32,
  maxUnknownTypes: 16,
  maxPendingBytes: 256 * 1024 * 1024,
});

/** The limit names used in metrics (`limit` label), logs and status messages. */
export const limitNames = {
  maxNamesPerRequest: 'names_per_request',
  maxNamesPerStream: 'names_per_stream',
  maxNodeBytes: 'node_bytes',
  maxStreamsPerConnection: 'streams_per_connection',
  maxStreamsPerAddress: 'streams_per_address',
  maxOpeningStreamsPerAddress: 'opening_streams_per_address',
  maxUnknownTypes: 'unknown_types',
  maxPendingBytes: 'pending_bytes',
} as const satisfies Record<keyof XdsLimits, string>;

export type LimitName = (typeof limitNames)[keyof XdsLimits];

/** Fills in defaults and checks every value is a positive integer. */
export function resolveLimits(given: Partial<XdsLimits> = {}): XdsLimits {
  const out = { ...defaultXdsLimits };
  for (const [k, v] of Object.entries(given) as [keyof XdsLimits, number | undefined][]) {
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`xDS limit ${k}: ${v} is not a positive integer`);
    out[k] = v;
  }
  return out;
}

/** The client IP address of a grpc-js peer string (`127.0.0.1:5555`, `::1:5555`, `[::1]:5555`). */
export function addressOfPeer(peer: string): string {
  const i = peer.lastIndexOf(':');
  if (i <= 0 || !/^\d+$/.test(peer.slice(i + 1))) return peer;
  const host = peer.slice(0, i);
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * One TCP connection: the local and remote ends as grpc-js knows them. Falls
 * back to the peer string (remote address and port) when the call does not
 * expose its connection.
 */
export function connectionKeyOf(call: object, peer: string): string {
  try {
    const info = (call as { call?: { getConnectionInfo?: () => { localAddress?: string; localPort?: number } } }).call?.getConnectionInfo?.();
    if (info && info.localPort !== undefined) return `${info.localAddress ?? ''}:${info.localPort}<${peer}`;
  } catch {
    /* fall back */
  }
  return peer;
}

/**
 * Client addresses that keep going over limits. A real proxy never hits a
 * limit; an address that hits them `strikes` times within `windowMs` has its
 * new streams refused at once (before any request is read) for `baseMs`,
 * doubling while it keeps at it, up to `maxMs`. Streams already open from
 * that address are left alone. An entry lives only while it has recent
 * strikes or an active cooldown.
 */
export class AddressCooldowns {
  private readonly entries = new Map<string, { strikes: number[]; until: number; level: number }>();
  constructor(
    readonly baseMs: number,
    readonly maxMs = 30_000,
    readonly strikes = 3,
    readonly windowMs = 10_000,
  ) {}
  /** Records a limit hit; returns the cooldown (ms) it starts, or 0. */
  hit(address: string, now: number): number {
    if (this.baseMs <= 0) return 0;
    let e = this.entries.get(address);
    if (!e) this.entries.set(address, (e = { strikes: [], until: 0, level: 0 }));
    e.strikes = e.strikes.filter((t) => now - t < this.windowMs);
    e.strikes.push(now);
    if (e.strikes.length > 64) e.strikes.splice(0, e.strikes.length - 64);
    if (this.entries.size > 10_000) this.sweep(now);
    if (e.strikes.length < this.strikes || now < e.until) return 0;
    // A quiet spell since the last cooldown resets the escalation.
    if (now - e.until > this.windowMs) e.level = 0;
    const ms = Math.min(this.maxMs, this.baseMs * 2 ** e.level);
    e.level++;
    e.until = now + ms;
    e.strikes = [];
    return ms;
  }
  /** Until when (epoch ms) new streams from this address are refused, or 0. */
  until(address: string, now: number): number {
    const e = this.entries.get(address);
    if (!e) return 0;
    if (now >= e.until && e.strikes.every((t) => now - t >= this.windowMs) && now - e.until > this.windowMs) {
      this.entries.delete(address);
      return 0;
    }
    return e.until > now ? e.until : 0;
  }
  get size(): number {
    return this.entries.size;
  }
  private sweep(now: number): void {
    for (const a of [...this.entries.keys()]) this.until(a, now);
  }
}

/** Counts of open streams per key; a key is dropped when its count reaches zero (nothing kept for a gone client). */
export class StreamCounts {
  private readonly counts = new Map<string, number>();
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
  add(key: string): void {
    this.counts.set(key, this.get(key) + 1);
  }
  remove(key: string): void {
    const n = this.get(key) - 1;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
  }
  /** Keys with at least one open stream. */
  get size(): number {
    return this.counts.size;
  }
}

/**
 * Resets an HTTP/2 stream with ENHANCE_YOUR_CALM, which gRPC clients report as
 * RESOURCE_EXHAUSTED. Used when the status cannot be delivered in order (the
 * client stopped reading, so trailers would queue behind the very bytes being
 * dropped): the reset frees the stream's write buffer at once. Returns false
 * when the call does not expose its HTTP/2 stream (the caller then ends it the
 * ordinary way).
 */
export function resetExhausted(call: object): boolean {
  try {
    const stream = (call as { call?: { stream?: { close?: (code: number) => void; destroyed?: boolean } } }).call?.stream;
    if (!stream || typeof stream.close !== 'function') return false;
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    return true;
  } catch {
    return false;
  }
}

type H2Stream = { close?: (code: number) => void; destroyed?: boolean; closed?: boolean; headersSent?: boolean; writableEnded?: boolean };

/**
 * After a stream's status has gone out, tells the client to stop sending
 * (RST_STREAM NO_ERROR, as HTTP/2 allows once the response is complete): a
 * client over a limit may have megabytes of requests queued behind the one
 * refused, which the server would otherwise still receive and buffer.
 */
export function stopReceiving(call: object): void {
  try {
    const stream = (call as { call?: { stream?: H2Stream } }).call?.stream;
    if (!stream || typeof stream.close !== 'function') return;
    const close = () => {
      if (!stream.destroyed && !stream.closed) stream.close!(http2.constants.NGHTTP2_NO_ERROR);
    };
    // Only when no response went out before: grpc-js then answers trailers-only (on the next tick), and the
    // reset follows it. After responses, a reset could overtake the trailers grpc-js sends once writes drain.
    if (stream.headersSent) return;
    setImmediate(() => {
      if (stream.headersSent && stream.writableEnded) close();
    });
  } catch {
    /* the stream is gone already */
  }
}

/**
 * Shortens client-supplied strings (type URLs) before they are kept or logged.
 * A clipped string carries a hash of the whole, so strings that differ only
 * past the cut stay distinct (a bound on distinct values cannot be dodged with
 * a long common prefix).
 */
export function clip(s: string, max = 200): string {
  if (s.length <= max) return s;
  const digest = createHash('sha256').update(s).digest('base64url').slice(0, 12);
  return `${s.slice(0, max)}…(${s.length} chars, ${digest})`;
}

/** What a request's top-level protobuf fields say, read without decoding them. */
export interface RequestShape {
  /** Resource names and locators: SotW resource_names (3), resource_locators (7); Delta subscribe (3), unsubscribe (4), initial_resource_versions entries (5), locators (8, 9). */
  names: number;
  /** Bytes of the node field (0 when absent). */
  nodeBytes: number;
}

const SOTW_NAME_FIELDS = new Set([3, 7]);
const DELTA_NAME_FIELDS = new Set([3, 4, 5, 8, 9]);

/**
 * Calls `visit` with each top-level field of a protobuf message: its number,
 * wire type, and where its bytes start and end (a length-delimited field's
 * contents; a varint or fixed field's value). Nothing is decoded. Returns
 * false when the bytes are not a well-formed message, or when `visit`
 * returns false to stop.
 */
export function forEachField(buf: Uint8Array, visit: (field: number, wireType: number, start: number, end: number) => boolean | void): boolean {
  let i = 0;
  const n = buf.length;
  const varint = (): number | undefined => {
    let v = 0;
    let mul = 1;
    for (let k = 0; k < 10; k++) {
      if (i >= n) return undefined;
      const b = buf[i++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
    return undefined;
  };
  while (i < n) {
    const key = varint();
    if (key === undefined) return false;
    const wireType = key & 7;
    let start = i;
    switch (wireType) {
      case 0:
        if (varint() === undefined) return false;
        break;
      case 1:
        i += 8;
        break;
      case 2: {
        const len = varint();
        if (len === undefined) return false;
        start = i;
        i += len;
        break;
      }
      case 5:
        i += 4;
        break;
      default:
        return false;
    }
    if (i > n) return false;
    if (visit(Math.floor(key / 8), wireType, start, i) === false) return false;
  }
  return true;
}

/**
 * Walks the top-level fields of a (Delta)DiscoveryRequest: a tag and a length
 * per field, no strings made. This lets a request with too many names or too
 * large a node be refused before protobuf decoding allocates a string per name.
 * Returns undefined for bytes that are not a well-formed message (the decoder
 * then reports why).
 */
export function scanRequest(buf: Uint8Array, delta: boolean): RequestShape | undefined {
  const nameFields = delta ? DELTA_NAME_FIELDS : SOTW_NAME_FIELDS;
  const nodeField = delta ? 1 : 2;
  let names = 0;
  let nodeBytes = 0;
  const ok = forEachField(buf, (field, wireType, start, end) => {
    if (wireType !== 2) return;
    if (nameFields.has(field)) names++;
    else if (field === nodeField) nodeBytes += end - start;
  });
  return ok ? { names, nodeBytes } : undefined;
}
