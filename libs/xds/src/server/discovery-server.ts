/**
 * The ADS server (Istio's DiscoveryServer): SotW and Delta over one gRPC
 * service, push orchestration with per-stream coalescing, and responses framed
 * from cached resource bytes. This file only composes the parts and holds the
 * public API; each part says what it owns:
 *
 * - stream.ts: one stream's state, and its write path with backpressure;
 * - lifecycle.ts: a stream from open to end (admission.ts: stream counts and cooldowns);
 * - subscriptions.ts: what each stream watches, and the EDS watch index;
 * - sotw.ts, delta.ts: the two protocols, request in and response out;
 * - nacks.ts: ACK, NACK and stale nonces;
 * - push-queue.ts: pushes, coalescing and the run queue;
 * - shared-frames.ts: nonces and responses built once for many streams;
 * - metrics.ts: counters and the owner's hooks; debug.ts: read-only views; drain.ts: shutdown.
 */
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { ControlPlaneSchema, create, toBinary } from '@sextant/envoy';
import { enablePreFramedWrites } from '../frames.js';
import { resolveLimits, type XdsLimits } from '../limits.js';
import { adsServiceDefinition } from '../service.js';
import type { ConnectionStatus, DiscoveryServerMetrics, DiscoveryServerOptions, PushRequest, StreamState } from '../types.js';
import { Admission, listenAdmitting, type AdsListener } from './admission.js';
import { bookkeeping, connectionStatuses, streamState, type ServerBookkeeping } from './debug.js';
import { DeltaProtocol } from './delta.js';
import { Drain } from './drain.js';
import { ServerStats } from './metrics.js';
import { AckTracker } from './nacks.js';
import { DEFAULT_PUSH_BATCH, PushQueue } from './push-queue.js';
import { FrameCache } from './shared-frames.js';
import { SotwProtocol, type ProtocolDeps } from './sotw.js';
import { StreamWriter, type Call, type Connection } from './stream.js';
import { Streams } from './lifecycle.js';
import { EDS, Subscriptions } from './subscriptions.js';

export type { ServerBookkeeping } from './debug.js';

/** Something that announces changed resource names (an endpoint cache); the server subscribes at construction. */
export interface ChangeSource {
  onChange(listener: (names: ReadonlySet<string>, version: string) => void): void;
}

export class DiscoveryServer {
  private readonly limits: XdsLimits;
  private readonly maxRequestBytes: number;
  private readonly stats: ServerStats;
  private readonly admission: Admission;
  private readonly subs: Subscriptions;
  private readonly streams: Streams;
  private readonly drain: Drain;
  private readonly queue: PushQueue;

  constructor(opts: DiscoveryServerOptions) {
    const log = opts.log;
    const idPrefix = randomBytes(4).toString('hex');
    this.limits = resolveLimits(opts.limits);
    this.maxRequestBytes = opts.maxRequestBytes ?? 4 * 1024 * 1024;
    if (opts.preFramedWrites !== false) enablePreFramedWrites();
    const controlPlane = opts.controlPlaneId ? toBinary(ControlPlaneSchema, create(ControlPlaneSchema, { identifier: opts.controlPlaneId })) : undefined;

    // Parts that call each other do so through these closures, bound once the parts exist.
    const overLimit = (c: Connection, key: keyof XdsLimits, value: number) => this.streams.overLimit(c, key, value);
    this.stats = new ServerStats(opts, log);
    this.admission = new Admission(this.limits, opts.limitCooldownMs ?? 0);
    this.subs = new Subscriptions(this.limits, overLimit);
    const writer = new StreamWriter({
      stats: this.stats,
      maxQueued: Math.max(1, opts.maxQueuedPushes ?? 16),
      maxPendingBytes: this.limits.maxPendingBytes,
      wake: (c) => this.queue.schedule(c),
      idle: () => this.drain.notify(),
      overLimit: (c, bytes) => overLimit(c, 'maxPendingBytes', bytes),
    });
    const frames = new FrameCache(idPrefix, controlPlane);
    const protocol: ProtocolDeps = {
      generators: opts.generators,
      subs: this.subs,
      acks: new AckTracker(this.stats),
      frames,
      writer,
      requestResponse: (c, typeUrl, names) => this.queue.requestResponse(c, typeUrl, names),
    };
    const sotw = new SotwProtocol(protocol);
    const conns = new Map<string, Connection>();
    this.drain = new Drain(conns, (c) => this.streams.forget(c));
    const delta = new DeltaProtocol(protocol);
    this.streams = new Streams({
      conns,
      opts,
      log,
      limits: this.limits,
      stats: this.stats,
      admission: this.admission,
      subs: this.subs,
      drain: this.drain,
      sotw,
      delta,
      idPrefix,
      directWrites: opts.directWrites !== false,
      directReads: opts.directReads !== false,
    });
    this.queue = new PushQueue({
      opts,
      stats: this.stats,
      conns: this.streams.conns,
      subs: this.subs,
      writer,
      sotw,
      delta,
      batch: Math.max(1, opts.pushBatch ?? DEFAULT_PUSH_BATCH),
      turnMs: Math.max(1, opts.pushTurnMs ?? 50),
      endWith: (c, code, details) => this.streams.endWith(c, code, details),
      drained: () => {
        frames.release();
        this.stats.hook('drained', this.stats.m.bytesSent);
      },
    });

    for (const [typeUrl, gen] of Object.entries(opts.generators)) {
      const src = gen as Partial<ChangeSource>;
      if (typeof src.onChange === 'function' && typeUrl === EDS) {
        src.onChange((names, version) => {
          this.push({ full: false, version, reason: ['endpoints'], edsUpdates: names });
        });
      }
    }
  }

  /** Registers ADS (SotW and Delta) on a grpc-js server. */
  addTo(server: grpc.Server): void {
    server.addService(adsServiceDefinition(() => this.maxRequestBytes, () => this.limits), {
      StreamAggregatedResources: (call: Call) => this.streams.open(call, false),
      DeltaAggregatedResources: (call: Call) => this.streams.open(call, true),
    });
  }

  /**
   * Serves ADS from `server` on a TCP port: like `server.bindAsync`, but a
   * connection from an address in cooldown (`limitCooldownMs`) is reset as
   * soon as it is accepted, before HTTP/2 (counted as `address_cooldown`).
   */
  listen(server: grpc.Server, host: string, port: number, creds: grpc.ServerCredentials): Promise<AdsListener> {
    return listenAdmitting(server, host, port, creds, (address) => {
      if (this.admission.cooldownUntil(address, Date.now()) === 0) return false;
      this.stats.limitExceeded('address_cooldown');
      return true;
    });
  }

  /** Queues a push; streams coalesce pending pushes and each is served on its own. */
  push(req: PushRequest): void {
    this.queue.push(req);
  }

  /** Whether some open stream has a response written and not yet taken by its transport (the clients still wait for bytes). */
  writesInFlight(): boolean {
    for (const c of this.streams.conns.values()) if (c.inflight > 0 && !c.closed) return true;
    return false;
  }

  connections(): ConnectionStatus[] {
    return connectionStatuses(this.streams.conns.values());
  }

  /**
   * What was last sent to one stream, for debug output: by connection ID, node
   * ID, or `<pod>.<namespace>` (the third part of a sidecar node ID, as istiod's
   * config_dump accepts); the newest stream when several match.
   */
  streamState(id: string): StreamState | undefined {
    return streamState(this.streams.conns, id);
  }

  metrics(): DiscoveryServerMetrics {
    return this.stats.snapshot(this.streams.conns.size);
  }

  /**
   * What the server keeps across streams, as counts: tests check a stream's
   * state is released when it ends (over a limit or otherwise).
   */
  bookkeeping(): ServerBookkeeping {
    return bookkeeping(this.streams.conns, this.admission, this.subs);
  }

  /**
   * Drains: new streams are refused with UNAVAILABLE, streams get until graceMs
   * to flush what was written, then end with OK so clients reconnect elsewhere.
   */
  async close(graceMs = 5000): Promise<void> {
    await this.drain.close(graceMs);
  }
}
