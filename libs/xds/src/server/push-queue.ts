/**
 * The push queue (Istio's PushQueue): a push marks what each affected stream
 * still needs (`Connection.pending`, coalescing with whatever was already
 * waiting) and queues the stream once; the queue serves `pushBatch` streams per
 * event-loop turn (fewer once the turn took `pushTurnMs`), each on its own: generate per type in push order
 * (CDS → EDS → LDS → RDS, then the rest), then respond with the stream's
 * protocol. A full push reaches the proxies its `affects` selects, for the
 * types it names (`types`; every type when it names none); an
 * endpoints-only push reaches the EDS watchers of the changed names. First
 * responses wait for `isReady()`; a stream still flushing earlier responses
 * keeps its work pending until its transport drains.
 */
import * as grpc from '@grpc/grpc-js';
import { pushOrder, type EncodedResource } from '@sextant/envoy';
import type { DiscoveryServerOptions, PushRequest, ResourceGenerator } from '../types.js';
import type { DeltaProtocol } from './delta.js';
import { short, type ServerStats } from './metrics.js';
import type { SotwProtocol } from './sotw.js';
import type { Connection, StreamWriter } from './stream.js';
import { EDS, type Subscriptions, type TypeState } from './subscriptions.js';

export interface PushQueueDeps {
  opts: Pick<DiscoveryServerOptions, 'generators' | 'isReady'>;
  stats: ServerStats;
  /** The open streams (the server's own map, read live). */
  conns: ReadonlyMap<string, Connection>;
  subs: Subscriptions;
  writer: StreamWriter;
  sotw: SotwProtocol;
  delta: DeltaProtocol;
  /** Streams served per event-loop turn, at most. */
  batch: number;
  /** Milliseconds a turn may take: once past it, the queue yields after the stream it is serving (DiscoveryServerOptions.pushTurnMs). */
  turnMs: number;
  endWith(c: Connection, code: grpc.status, details: string): void;
  /** The queue drained: what is kept only for the streams of one busy period can go (FrameCache.release). */
  drained?(): void;
}

/**
 * Streams served per event-loop turn unless told otherwise
 * (DiscoveryServerOptions.pushBatch). HTTP/2 sends a turn's writes only once
 * the turn is over, so this is how many streams' responses wait for each
 * other: with 512, an endpoint change reached no proxy until 512 streams had
 * been served, and the proxies' own work could not overlap the rest of the push.
 */
export const DEFAULT_PUSH_BATCH = 64;

export class PushQueue {
  /** The latest full push: what a full or requested response is generated from. */
  lastFull: PushRequest = { full: true, version: 'init', reason: ['initial'] };
  /** Streams with work, in order; `Connection.queued` marks membership (closed ones are skipped). */
  private runQueue: Connection[] = [];
  private runHead = 0;
  private running = false;

  constructor(private readonly d: PushQueueDeps) {}

  /** Queues a push; streams coalesce pending pushes and each is served on its own. */
  push(req: PushRequest): void {
    if (req.full) {
      this.lastFull = req;
      for (const c of this.d.conns.values()) {
        if (!c.proxy) continue;
        let hit = true;
        if (req.affects) {
          try {
            hit = req.affects(c.proxy);
          } catch (err) {
            c.log.error({ err: (err as Error).message, version: req.version }, 'push affects() failed; pushing this proxy');
          }
        }
        if (hit) {
          const p = c.need();
          // Only the types the push concerns are regenerated; a push for every type absorbs the narrower ones.
          if (!req.types) p.fullTypes = undefined;
          else if (!p.full) p.fullTypes = new Set(req.types);
          else if (p.fullTypes) for (const t of req.types) p.fullTypes.add(t);
          p.full = true;
        }
        if (c.pending) this.schedule(c);
      }
      return;
    }
    // One copy per push, shared (read-only) by every stream it wakes: the caller may reuse its set.
    const names: ReadonlySet<string> = new Set(req.edsUpdates ?? []);
    for (const c of this.d.subs.edsWatchers(names)) {
      const p = c.need();
      if (p.eds.size === 0) {
        p.eds = names;
        p.edsShared = true;
      } else if (p.eds !== names) {
        const own: Set<string> = p.edsShared ? new Set(p.eds) : (p.eds as Set<string>);
        for (const n of names) own.add(n);
        p.eds = own;
        p.edsShared = false;
      }
      p.edsReq = req;
    }
    // Streams waiting for readiness, or for a drained transport, are retried too.
    for (const c of this.d.conns.values()) if (c.pending) this.schedule(c);
  }

  /**
   * Asks for a response of this type (a request to answer) on the stream's
   * next turn; `names`: only about these newly subscribed names (a request
   * for the whole type absorbs it).
   */
  requestResponse(c: Connection, typeUrl: string, names?: ReadonlySet<string>): void {
    const p = c.need();
    const whole = p.types.has(typeUrl) && !p.requested?.has(typeUrl);
    if (names && !whole) {
      const before = p.requested?.get(typeUrl);
      (p.requested ??= new Map()).set(typeUrl, before ? new Set([...before, ...names]) : names);
    } else p.requested?.delete(typeUrl);
    p.types.add(typeUrl);
    this.schedule(c);
  }

  schedule(c: Connection): void {
    if (c.closed || c.queued) return;
    c.queued = true;
    this.runQueue.push(c);
    if (!this.running) {
      this.running = true;
      setImmediate(() => this.run());
    }
  }

  /**
   * Serves up to `batch` queued streams, or fewer once the turn has taken
   * `turnMs`, then yields the event loop, so that timers (keepalive pings,
   * lease renewal) and requests run between streams even when each one is
   * slow to generate.
   */
  private run(): void {
    const q = this.runQueue;
    const end = Math.min(q.length, this.runHead + this.d.batch);
    const until = performance.now() + this.d.turnMs;
    while (this.runHead < end && performance.now() < until) {
      const c = q[this.runHead]!;
      q[this.runHead++] = undefined as unknown as Connection;
      c.queued = false;
      if (c.closed) continue;
      try {
        this.process(c);
      } catch (err) {
        c.log.error({ err: (err as Error).message, stack: (err as Error).stack }, 'push failed for this stream; ending it');
        this.d.endWith(c, grpc.status.INTERNAL, `push failed: ${(err as Error).message}`);
      }
    }
    if (this.runHead < q.length) setImmediate(() => this.run());
    else {
      this.runQueue = [];
      this.runHead = 0;
      this.running = false;
      this.d.drained?.();
    }
  }

  private process(c: Connection): void {
    const p = c.pending;
    if (!p || c.closed || !c.proxy) return;
    if (!this.d.opts.isReady()) return; // first responses wait for readiness; push() retries
    if (this.d.writer.busy(c)) {
      this.d.stats.m.coalesced++;
      return; // the write callback reschedules once the transport drains
    }
    c.pending = undefined;
    const order = (c.order ??= orderedTypes(c));
    for (const typeUrl of order) {
      if (c.closed) return; // ended mid-push (pending bytes over the limit)
      const st = c.types.get(typeUrl);
      const gen = this.d.opts.generators[typeUrl];
      if (!st || !gen) continue;
      const forced = p.types.has(typeUrl);
      const requested = forced && gen.answersQuery !== true ? p.requested?.get(typeUrl) : undefined;
      const edsChanged = typeUrl === EDS && p.eds.size > 0 && p.edsReq !== undefined;
      if ((p.full && (!p.fullTypes || p.fullTypes.has(typeUrl))) || (forced && !requested)) this.respond(c, st, gen, this.lastFull, undefined, forced);
      // Newly subscribed names (and endpoint changes waiting): only those can differ from what the client has.
      else if (requested) this.respond(c, st, gen, this.lastFull, edsChanged ? new Set([...requested, ...p.eds]) : requested, false);
      else if (edsChanged) this.respond(c, st, gen, p.edsReq!, p.eds, false);
    }
    c.pushVersion = p.full || p.types.size > 0 ? this.lastFull.version : (p.edsReq?.version ?? c.pushVersion);
    if (p.full) this.d.stats.hook('pushed', c.proxy, this.lastFull);
  }

  /** Generates one type for the stream and responds with its protocol; a generator's failure sends nothing for the type. */
  private respond(c: Connection, st: TypeState, gen: ResourceGenerator, req: PushRequest, only: ReadonlySet<string> | undefined, forced: boolean): void {
    const { stats } = this.d;
    const observe = stats.observesResponses ? { bytes: stats.m.bytesSent, t0: performance.now() } : undefined;
    let out: ReadonlyMap<string, EncodedResource>;
    try {
      out = gen.generate(c.proxy!, st, req);
    } catch (err) {
      const code = (err as { grpcCode?: unknown }).grpcCode;
      if (typeof code === 'number') {
        // A refusal (the debug types' authorization) ends the stream with its status, as istiod does.
        c.log.warn({ typeUrl: st.typeUrl, err: (err as Error).message }, `${st.typeUrl} refused; ending the stream`);
        this.d.endWith(c, code as grpc.status, (err as Error).message);
        return;
      }
      c.log.error({ typeUrl: st.typeUrl, version: req.version, err: (err as Error).message }, `generating ${short(st.typeUrl)} failed; nothing sent for this type`);
      return;
    }
    if (c.delta) this.d.delta.respond(c, st, out, req, only, forced);
    else this.d.sotw.respond(c, st, out, req, only, forced);
    if (observe && stats.m.bytesSent !== observe.bytes) {
      stats.hook('responded', c.proxy!, st.typeUrl, req.version, stats.m.bytesSent - observe.bytes, (performance.now() - observe.t0) / 1000);
    }
  }
}

/** The stream's types in push order: CDS → EDS → LDS → RDS (pushOrder), then the rest by name. */
function orderedTypes(c: Connection): string[] {
  const known = pushOrder.filter((t) => c.types.has(t));
  const rest = [...c.types.keys()].filter((t) => !pushOrder.includes(t)).sort();
  return [...known, ...rest];
}
