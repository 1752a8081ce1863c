/**
 * A stream from open to end: admission (stream counts and cooldowns),
 * the receive-side guard, authentication (requests are held, bounded, until it
 * resolves), the first request's node (which defines the proxy), the type URL
 * check, handing each request to its protocol, and ending: every piece of a
 * stream's state is dropped in one place (`forget`), whether the client left,
 * the server drained, or a limit was crossed.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@sextant/api';
import type { DeltaDiscoveryRequest, DiscoveryRequest } from '@sextant/envoy';
import { directSender } from '../frames.js';
import { addressOfPeer, clip, connectionKeyOf, limitNames, resetExhausted, stopReceiving, type XdsLimits } from '../limits.js';
import { directReceiver, guardRequests } from '../receive.js';
import type { DiscoveryServerOptions, ResourceGenerator } from '../types.js';
import type { Admission } from './admission.js';
import type { DeltaProtocol } from './delta.js';
import type { Drain } from './drain.js';
import type { ServerStats } from './metrics.js';
import type { SotwProtocol } from './sotw.js';
import { Connection, type Call, type Request } from './stream.js';
import type { Subscriptions } from './subscriptions.js';

export interface StreamsDeps {
  /** Open streams by connection ID: filled and emptied here, read by the push queue, debug and drain. */
  conns: Map<string, Connection>;
  opts: Pick<DiscoveryServerOptions, 'generators' | 'authenticate' | 'authorizeNode'>;
  log: Logger;
  limits: XdsLimits;
  stats: ServerStats;
  admission: Admission;
  subs: Subscriptions;
  drain: Drain;
  sotw: SotwProtocol;
  delta: DeltaProtocol;
  /** Prefix of connection IDs (unique per server instance). */
  idPrefix: string;
  /** Write through grpc-js's intercepting call (frames.ts directSender). */
  directWrites: boolean;
  /** Take requests as grpc-js decodes them (receive.ts directReceiver). */
  directReads: boolean;
}

export class Streams {
  readonly conns: Map<string, Connection>;
  private connSeq = 0;

  constructor(private readonly d: StreamsDeps) {
    this.conns = d.conns;
  }

  open(call: Call, delta: boolean): void {
    const { admission, stats, limits } = this.d;
    const peer = call.getPeer();
    const id = `${this.d.idPrefix}-${++this.connSeq}`;
    const c = new Connection(id, call, delta, peer, this.d.log);
    if (this.d.directWrites) c.send = directSender(call);
    if (this.d.drain.closing) {
      this.endWith(c, grpc.status.UNAVAILABLE, 'server is shutting down');
      return;
    }
    const address = addressOfPeer(peer);
    const connKey = connectionKeyOf(call, peer);
    const until = admission.cooldownUntil(address, Date.now());
    if (until > 0) {
      // Refused before any request is read; not logged per stream (the cooldown's start was).
      stats.limitExceeded('address_cooldown');
      this.forget(c);
      this.endWith(c, grpc.status.RESOURCE_EXHAUSTED, `this address went over xDS limits repeatedly; new streams refused until ${new Date(until).toISOString()}`);
      stopReceiving(call);
      return;
    }
    const over = admission.over(address, connKey);
    if (over) return this.overLimit(c, over.key, over.value);
    admission.admit(c, address, connKey);
    this.conns.set(id, c);
    c.log.debug({ delta }, 'ADS stream opened');
    // Names and node size are checked as the request arrives, so an over-limit request is never buffered whole.
    guardRequests(call, delta, limits, (v) => {
      if (!c.closed) this.overLimit(c, v.key, v.value);
    });
    const onRequest = (d: Request) => {
      if (c.closed) return;
      admission.opened(c);
      if (c.authPending) {
        c.buffered.push(d);
        // An empty message still costs an object: count at least 64 bytes each.
        c.bufferedBytes += Math.max(64, d.bytes);
        if (c.bufferedBytes > limits.maxPendingBytes) this.overLimit(c, 'maxPendingBytes', c.bufferedBytes);
        return;
      }
      this.handle(c, d);
    };
    // Requests come one way or the other for the stream's whole life: as grpc-js decodes them, or as 'data' events.
    if (this.d.directReads) directReceiver(call, onRequest as (m: unknown) => void);
    call.on('data', onRequest);
    call.on('end', () => {
      c.log.info({ proxy: c.proxy?.id }, 'ADS stream ended by client');
      this.forget(c);
      call.end();
    });
    call.on('cancelled', () => {
      if (!c.closed) c.log.info({ proxy: c.proxy?.id }, 'ADS stream cancelled (client disconnected)');
      this.forget(c);
    });
    call.on('error', (err: Error) => {
      if (!c.closed) c.log.warn({ proxy: c.proxy?.id, err: err.message }, 'ADS stream error');
      this.forget(c);
    });
    call.on('close', () => this.forget(c));
    const authenticate = this.d.opts.authenticate;
    if (authenticate) {
      c.authPending = true;
      authenticate(call as grpc.ServerDuplexStream<unknown, unknown>)
        .then((identity) => {
          if (c.closed) return;
          if (identity) c.identity = identity;
          c.authPending = false;
          const queued = c.buffered;
          c.buffered = [];
          c.bufferedBytes = 0;
          for (const d of queued) if (!c.closed) this.handle(c, d);
        })
        .catch((err: unknown) => {
          c.log.warn({ err: (err as Error)?.message ?? String(err) }, 'ADS stream refused: authentication failed');
          this.endWith(c, grpc.status.UNAUTHENTICATED, `authentication failed: ${(err as Error)?.message ?? String(err)}`);
        });
    }
  }

  /** One request: refused, or identified, type-checked and handed to the stream's protocol. A request that throws ends the stream. */
  private handle(c: Connection, d: Request): void {
    const m = this.d.stats.m;
    try {
      if (!d.ok && d.limit) {
        this.overLimit(c, d.limit.key, d.limit.value);
        return;
      }
      if (!d.ok) {
        m.badRequests++;
        c.log.error({ proxy: c.proxy?.id, bytes: d.bytes, err: d.error }, 'ADS request rejected; ending stream');
        this.endWith(c, d.oversized ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT, d.error);
        return;
      }
      if (!this.identify(c, d.msg)) return;
      if (!this.generatorFor(c, d.msg.typeUrl)) return;
      if (c.delta) this.d.delta.onRequest(c, d.msg as DeltaDiscoveryRequest);
      else this.d.sotw.onRequest(c, d.msg as DiscoveryRequest);
    } catch (err) {
      m.badRequests++;
      c.log.error({ proxy: c.proxy?.id, err: (err as Error).message, stack: (err as Error).stack }, 'ADS request failed; ending stream');
      this.endWith(c, grpc.status.INTERNAL, `request failed: ${(err as Error).message}`);
    }
  }

  /** The first request must carry node.id; it defines the proxy for the life of the stream. */
  private identify(c: Connection, req: DiscoveryRequest | DeltaDiscoveryRequest): boolean {
    if (c.proxy) return true;
    const m = this.d.stats.m;
    const node = req.node;
    if (!node || !node.id) {
      m.badRequests++;
      const why = node ? 'first request has a node without node.id' : 'first request has no node (node.id is required)';
      c.log.error({ typeUrl: req.typeUrl }, `ADS request rejected: ${why}`);
      this.endWith(c, grpc.status.INVALID_ARGUMENT, why);
      return false;
    }
    c.proxy = {
      connectionId: c.id,
      id: node.id,
      node,
      metadata: (node.metadata ?? {}) as Record<string, unknown>,
      peer: c.peer,
      identity: c.identity,
      delta: c.delta,
    };
    c.log = c.log.child({ proxy: node.id });
    const refused = this.d.opts.authorizeNode?.(c.proxy);
    if (refused !== undefined) {
      m.badRequests++;
      c.log.warn({ identity: c.identity, reason: refused }, 'ADS stream refused: node does not match the authenticated identity');
      this.endWith(c, grpc.status.PERMISSION_DENIED, refused);
      return false;
    }
    c.log.info({ delta: c.delta, userAgent: node.userAgentName }, 'ADS stream connected');
    this.d.stats.hook('connected', c.proxy);
    return true;
  }

  /** The generator for a requested type URL, or undefined (logged, counted) for a type URL without one. */
  private generatorFor(c: Connection, typeUrl: string): ResourceGenerator | undefined {
    const m = this.d.stats.m;
    if (!typeUrl) {
      m.badRequests++;
      c.log.error({}, 'ADS request rejected: type_url is empty');
      return undefined;
    }
    const gen = this.d.opts.generators[typeUrl];
    if (!gen) {
      // Kept clipped and at most maxUnknownTypes per stream: a client cannot grow this set.
      const shown = clip(typeUrl);
      if (!c.unknown.has(shown)) {
        if (c.unknown.size + 1 > this.d.limits.maxUnknownTypes) {
          this.overLimit(c, 'maxUnknownTypes', c.unknown.size + 1);
          return undefined;
        }
        m.unknownTypes++;
        m.badRequests++;
        c.log.error({ typeUrl: shown }, `ADS request for unknown type URL ${shown}: this server has no generator for it; not answered`);
        c.unknown.add(shown);
      }
      return undefined;
    }
    return gen;
  }

  /** Drops every piece of an ended stream's state (idempotent). */
  forget(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c.id);
    this.d.subs.release(c);
    this.d.admission.release(c);
    c.pending = undefined;
    c.inflight = 0;
    if (c.proxy) this.d.stats.hook('disconnected', c.proxy);
    c.pendingBytes = 0;
    c.names = 0;
    c.types.clear();
    c.unknown.clear();
    c.buffered = [];
    c.bufferedBytes = 0;
    this.d.drain.notify();
  }

  /**
   * Ends a stream that went over a limit: counted, logged with the peer (the
   * stream's logger carries it), every piece of its state dropped, then
   * RESOURCE_EXHAUSTED. A stream with unflushed writes is reset instead
   * (ENHANCE_YOUR_CALM, which gRPC clients report as RESOURCE_EXHAUSTED): its
   * trailers would wait behind the bytes the client is not reading.
   */
  overLimit(c: Connection, key: keyof XdsLimits, value: number): void {
    const limit = limitNames[key];
    const max = this.d.limits[key];
    this.d.stats.limitExceeded(limit);
    c.log.warn({ limit, value, max }, `ADS stream over the ${limit} limit (${value} > ${max}); ending it with RESOURCE_EXHAUSTED`);
    const cooldown = c.address ?? addressOfPeer(c.peer);
    const ms = this.d.admission.strike(cooldown, key, Date.now());
    if (ms > 0) c.log.warn({ address: cooldown, cooldownMs: ms }, `client address ${cooldown} keeps going over xDS limits; its new streams are refused for ${ms} ms`);
    const unflushed = c.inflight > 0;
    const details = `${limit} limit exceeded: ${value} > ${max}`;
    this.forget(c);
    if (unflushed && resetExhausted(c.call)) return;
    this.endWith(c, grpc.status.RESOURCE_EXHAUSTED, details);
    stopReceiving(c.call);
  }

  endWith(c: Connection, code: grpc.status, details: string): void {
    this.forget(c);
    try {
      c.call.emit('error', { code, details });
    } catch {
      /* the stream is already gone */
    }
  }
}
