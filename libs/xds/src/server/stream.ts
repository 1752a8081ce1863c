/**
 * One ADS stream: its state (`Connection`: the proxy, its subscriptions, the
 * push waiting for it, what it has written but not flushed) and its write path
 * (`StreamWriter`). Every response goes through the writer, which counts it and
 * applies backpressure: a stream with `maxQueuedPushes` responses unflushed
 * gets no more work (its pushes coalesce in `pending` until the transport
 * drains), and one whose unflushed bytes pass `maxPendingBytes` is ended.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '@sextant/api';
import type { DeltaDiscoveryRequest, DiscoveryRequest } from '@sextant/envoy';
import { framePrefix, type DirectSend } from '../frames.js';
import type { Decoded } from '../service.js';
import type { Identity, PushRequest, XdsProxy } from '../types.js';
import { short, type ServerStats } from './metrics.js';
import type { TypeState } from './subscriptions.js';

export type Request = Decoded<DiscoveryRequest | DeltaDiscoveryRequest>;
export type Call = grpc.ServerDuplexStream<Request, Buffer>;

const NO_NAMES: ReadonlySet<string> = new Set();

/** What a stream still has to be sent; pushes that arrive while it waits merge into this. */
export interface Pending {
  full: boolean;
  /** A full push's types (PushRequest.types, merged over coalesced pushes); undefined: every type. */
  fullTypes?: Set<string> | undefined;
  /** Types a request asked to be answered (initial request, new names). */
  types: Set<string>;
  /**
   * Types of `types` whose requests only subscribed new names (Delta): the
   * response concerns those names alone, so it looks up a few names instead of
   * walking every name the stream watches. Shared (read-only) with other streams.
   */
  requested?: Map<string, ReadonlySet<string>>;
  /**
   * Incremental EDS: names changed, with the latest incremental push. Shared
   * (read-only) with other streams while `edsShared` is true: a push hands every
   * woken stream the same set, and a stream copies it only to add more names.
   */
  eds: ReadonlySet<string>;
  edsShared: boolean;
  edsReq?: PushRequest;
}

export class Connection {
  proxy?: XdsProxy;
  identity?: Identity;
  readonly types = new Map<string, TypeState>();
  /** Push order of `types`, cached; cleared when a type is added. */
  order?: string[];
  pending?: Pending;
  inflight = 0;
  closed = false;
  /** In the push queue. */
  queued = false;
  /** grpc-js's intercepting call, written directly (frames.ts directSender); else call.write(). */
  send?: DirectSend;
  authPending = false;
  buffered: Request[] = [];
  /** Bytes of `buffered` (requests waiting for authentication). */
  bufferedBytes = 0;
  /** Bytes written to the transport and not yet flushed (see maxPendingBytes). */
  pendingBytes = 0;
  /** Resource names subscribed over all types (see maxNamesPerStream). */
  names = 0;
  /** Type URLs asked for that have no generator, clipped; at most maxUnknownTypes. */
  readonly unknown = new Set<string>();
  /** Client IP and TCP connection, for the per-address and per-connection stream counts (set once counted). */
  address?: string;
  connKey?: string;
  /** Counted in the address's opening streams until its first request arrives. */
  opening = false;
  pushVersion?: string;
  readonly connectedAt = new Date().toISOString();
  log: Logger;
  constructor(
    readonly id: string,
    readonly call: Call,
    readonly delta: boolean,
    readonly peer: string,
    log: Logger,
  ) {
    this.log = log.child({ conn: id, peer });
  }
  need(): Pending {
    return (this.pending ??= { full: false, types: new Set(), eds: NO_NAMES, edsShared: true });
  }
}

export interface WriterDeps {
  stats: ServerStats;
  /** maxQueuedPushes: responses a stream may have unflushed before it gets no more work. */
  maxQueued: number;
  maxPendingBytes: number;
  /** The stream has a pending push and room to write again. */
  wake(c: Connection): void;
  /** The stream has nothing unflushed (a drain may be waiting for that). */
  idle(): void;
  /** The stream's unflushed bytes went over maxPendingBytes. */
  overLimit(c: Connection, pendingBytes: number): void;
}

export class StreamWriter {
  constructor(private readonly d: WriterDeps) {}

  /** Whether the stream must wait for its transport before it is given more work. */
  busy(c: Connection): boolean {
    return c.inflight >= this.d.maxQueued;
  }

  /**
   * Writes one response: its parts, one after another (a message whose tail
   * is shared by many streams comes in more than one; FrameCache), each
   * pre-framed where the hook is on.
   */
  write(c: Connection, st: TypeState, parts: readonly Buffer[]): void {
    if (c.closed) return;
    const { stats, maxQueued } = this.d;
    c.inflight++;
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    c.pendingBytes += bytes;
    stats.m.pushes++;
    stats.m.bytesSent += bytes - framePrefix();
    const s = short(st.typeUrl);
    stats.m.pushesByType[s] = (stats.m.pushesByType[s] ?? 0) + 1;
    const done = () => {
      if (c.closed) return;
      c.inflight--;
      c.pendingBytes -= bytes;
      if (c.pending && c.inflight < maxQueued) this.d.wake(c);
      if (c.inflight === 0) this.d.idle();
    };
    // HTTP/2 takes a stream's writes in order: the response is taken when its last part is.
    const last = parts.length - 1;
    for (let i = 0; i <= last; i++) {
      const cb = i === last ? done : noop;
      if (c.send) c.send(parts[i]!, cb);
      else c.call.write(parts[i]!, cb);
    }
    if (!c.closed && c.pendingBytes > this.d.maxPendingBytes) this.d.overLimit(c, c.pendingBytes);
  }
}

const noop = (): void => {};
