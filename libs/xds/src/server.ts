import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@sextant/api';
import {
  ControlPlaneSchema,
  TypeUrl,
  create,
  decodeToJson,
  encodeDeltaDiscoveryResponse,
  encodeDeltaResource,
  encodeDiscoveryResponse,
  pushOrder,
  shortTypeName,
  toBinary,
  toJson,
  NodeSchema,
  type DeltaDiscoveryRequest,
  type DiscoveryRequest,
  type EncodedResource,
} from '@sextant/envoy';
import { directSender, enablePreFramedWrites, framePrefix, grpcFramed, type DirectSend } from './frames.js';
import { adsServiceDefinition, type Decoded } from './service.js';
import { AddressCooldowns, StreamCounts, addressOfPeer, clip, connectionKeyOf, limitNames, resetExhausted, resolveLimits, stopReceiving, type XdsLimits } from './limits.js';
import type {
  ConnectionStatus,
  DiscoveryHooks,
  DiscoveryServerMetrics,
  DiscoveryServerOptions,
  Identity,
  PushRequest,
  ResourceGenerator,
  TypeStatus,
  WatchedResource,
  XdsProxy,
} from './types.js';

type Call = grpc.ServerDuplexStream<Decoded<DiscoveryRequest | DeltaDiscoveryRequest>, Buffer>;

const EDS = TypeUrl.ClusterLoadAssignment;
/** Types where an empty first request means "everything" (the legacy wildcard). */
const legacyWildcardTypes = new Set<string>([TypeUrl.Listener, TypeUrl.Cluster]);
const EMPTY: ReadonlyMap<string, EncodedResource> = new Map();
const NO_NAMES: ReadonlySet<string> = new Set();

/**
 * An incremental EDS response shared by the streams of one push that have the
 * same generator output and changed names: the candidate resources, their frame,
 * and the `sent` maps built from each earlier `sent` map (streams in one class
 * share those too), so per-stream work is a short check, not string keys and
 * Map copies.
 */
interface IncrementalShare {
  list: EncodedResource[];
  /** Key of `list` in incrementalFrames (streams with other generator outputs but the same changes share the frame too). */
  key: string;
  frame?: SharedFrame;
  merged: WeakMap<ReadonlyMap<string, EncodedResource>, ReadonlyMap<string, EncodedResource>>;
}

const short = (typeUrl: string) => shortTypeName[typeUrl] ?? typeUrl;

/** Per stream and type URL: the subscription and what the client has been sent. */
class TypeState implements WatchedResource {
  wildcard = false;
  names = new Set<string>();
  /** What the client has, as far as the server knows: name → resource. SotW: last sent; Delta: sent or declared. */
  sent: ReadonlyMap<string, EncodedResource> = EMPTY;
  /** Delta only: name → version the client has (includes initial_resource_versions). */
  known = new Map<string, string>();
  versionSent?: string;
  nonceSent?: string;
  versionAcked?: string;
  nonceAcked?: string;
  lastNack?: TypeStatus['lastNack'];
  nacks = 0;
  /** At least one response went out since the subscription started. */
  answered = false;
  /** Sequence of the last shared frame this stream was sent for this type (nonces stay unique per stream). */
  lastSeq = 0;
  constructor(readonly typeUrl: string) {}
}

interface Pending {
  full: boolean;
  /** Types a request asked to be answered (initial request, new names). */
  types: Set<string>;
  /**
   * Incremental EDS: names changed, with the latest incremental push. Shared
   * (read-only) with other streams while `edsShared` is true: a push hands every
   * woken stream the same set, and a stream copies it only to add more names.
   */
  eds: ReadonlySet<string>;
  edsShared: boolean;
  edsReq?: PushRequest;
  reason: Set<string>;
}

class Connection {
  proxy?: XdsProxy;
  identity?: Identity;
  readonly types = new Map<string, TypeState>();
  /** Push order of `types`, cached; cleared when a type is added. */
  order?: string[];
  pending?: Pending;
  inflight = 0;
  closed = false;
  /** In the server's run queue. */
  queued = false;
  /** grpc-js's intercepting call, written directly (frames.ts directSender); else call.write(). */
  send?: DirectSend;
  authPending = false;
  buffered: Decoded<DiscoveryRequest | DeltaDiscoveryRequest>[] = [];
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
    return (this.pending ??= { full: false, types: new Set(), eds: NO_NAMES, edsShared: true, reason: new Set() });
  }
}

interface SharedFrame {
  seq: number;
  nonce: string;
  /** The response, pre-framed for grpc-js when that is enabled (see frames.ts). */
  frame: Buffer;
}

/**
 * The ADS server: SotW and Delta over one gRPC service, push orchestration with
 * per-stream coalescing, and responses framed from cached resource bytes.
 */
export class DiscoveryServer {
  private readonly opts: DiscoveryServerOptions;
  private readonly log: Logger;
  private readonly conns = new Map<string, Connection>();
  /** EDS watchers by resource name, and EDS wildcard watchers: an endpoint change wakes only these. */
  private readonly edsIndex = new Map<string, Set<Connection>>();
  private readonly edsWildcard = new Set<Connection>();
  private lastFull: PushRequest = { full: true, version: 'init', reason: ['initial'] };
  /** Streams with work, in order; `Connection.queued` marks membership (closed ones are skipped). */
  private runQueue: Connection[] = [];
  private runHead = 0;
  private draining = false;
  private closing = false;
  private seq = 0;
  private connSeq = 0;
  private readonly noncePrefix = randomBytes(4).toString('hex');
  private readonly controlPlane?: Uint8Array;
  private readonly maxQueued: number;
  private readonly maxRequestBytes: number;
  private readonly batch: number;
  /** Whole-set SotW responses framed once per generator output (Map identity), type and version. */
  private frames = new WeakMap<ReadonlyMap<string, EncodedResource>, Map<string, SharedFrame>>();
  /** Delta Resource messages framed once per encoded resource. */
  private deltaFrames = new WeakMap<EncodedResource, Uint8Array>();
  /** Incremental (EDS) responses shared by streams that get the same changed resources, for the current incremental version. */
  private incrementalFrames = new Map<string, SharedFrame>();
  private incrementalVersion = '';
  /** Per push: generator output → changed-names set → shared incremental response. */
  private incrementalShares = new WeakMap<ReadonlyMap<string, EncodedResource>, WeakMap<ReadonlySet<string>, IncrementalShare>>();
  private readonly directWrites: boolean;
  private readonly m: DiscoveryServerMetrics = {
    connections: 0,
    pushes: 0,
    bytesSent: 0,
    nacks: 0,
    staleNonces: 0,
    badRequests: 0,
    unknownTypes: 0,
    coalesced: 0,
    pushesByType: {},
    nacksByType: {},
    limitsExceeded: {},
  };
  private readonly drainWaiters = new Set<() => void>();
  private readonly limits: XdsLimits;
  private readonly perAddress = new StreamCounts();
  private readonly perConnection = new StreamCounts();
  private readonly perAddressOpening = new StreamCounts();
  private readonly cooldowns: AddressCooldowns;

  constructor(opts: DiscoveryServerOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.limits = resolveLimits(opts.limits);
    this.cooldowns = new AddressCooldowns(opts.limitCooldownMs ?? 0);
    this.maxQueued = Math.max(1, opts.maxQueuedPushes ?? 16);
    this.maxRequestBytes = opts.maxRequestBytes ?? 4 * 1024 * 1024;
    this.batch = Math.max(1, opts.pushBatch ?? 512);
    this.directWrites = opts.directWrites !== false;
    if (opts.preFramedWrites !== false) enablePreFramedWrites();
    if (opts.controlPlaneId) this.controlPlane = toBinary(ControlPlaneSchema, create(ControlPlaneSchema, { identifier: opts.controlPlaneId }));
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
      StreamAggregatedResources: (call: Call) => this.open(call, false),
      DeltaAggregatedResources: (call: Call) => this.open(call, true),
    });
  }

  /** Queues a push; streams coalesce pending pushes and each is served on its own. */
  push(req: PushRequest): void {
    if (req.full) {
      this.lastFull = req;
      for (const c of this.conns.values()) {
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
          p.full = true;
          for (const r of req.reason) p.reason.add(r);
        }
        if (c.pending) this.schedule(c);
      }
      return;
    }
    // One copy per push, shared (read-only) by every stream it wakes: the caller may reuse its set.
    const names: ReadonlySet<string> = new Set(req.edsUpdates ?? []);
    const touched = new Set<Connection>(this.edsWildcard);
    for (const n of names) for (const c of this.edsIndex.get(n) ?? []) touched.add(c);
    for (const c of touched) {
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
      for (const r of req.reason) p.reason.add(r);
    }
    // Streams waiting for readiness, or for a drained transport, are retried too.
    for (const c of this.conns.values()) if (c.pending) this.schedule(c);
  }

  connections(): ConnectionStatus[] {
    const out: ConnectionStatus[] = [];
    for (const c of this.conns.values()) {
      const types: TypeStatus[] = [];
      for (const st of c.types.values()) {
        const resources: Record<string, string> = {};
        if (c.delta) for (const [n, v] of st.known) resources[n] = v;
        else for (const [n, r] of st.sent) resources[n] = r.version;
        types.push({
          typeUrl: st.typeUrl,
          wildcard: st.wildcard,
          names: [...st.names].sort(),
          versionSent: st.versionSent,
          nonceSent: st.nonceSent,
          versionAcked: st.versionAcked,
          nonceAcked: st.nonceAcked,
          lastNack: st.lastNack,
          nacks: st.nacks,
          resources,
        });
      }
      for (const typeUrl of c.unknown) types.push({ typeUrl, wildcard: false, names: [], nacks: 0, resources: {}, unknownType: true });
      out.push({
        connectionId: c.id,
        proxyId: c.proxy?.id ?? '',
        peer: c.peer,
        delta: c.delta,
        connectedAt: c.connectedAt,
        identity: c.identity,
        pushVersion: c.pushVersion,
        pending: c.pending !== undefined,
        queuedWrites: c.inflight,
        types,
      });
    }
    return out;
  }

  /**
   * What was last sent to a stream (by connection ID, or the newest stream of a
   * proxy ID), as Envoy JSON by type URL.
   */
  configDump(proxyIdOrConnectionId: string): unknown | undefined {
    let c = this.conns.get(proxyIdOrConnectionId);
    if (!c) for (const x of this.conns.values()) if (x.proxy?.id === proxyIdOrConnectionId) c = x;
    if (!c?.proxy) return undefined;
    const types: Record<string, unknown> = {};
    for (const st of c.types.values()) {
      types[st.typeUrl] = {
        versionSent: st.versionSent,
        versionAcked: st.versionAcked,
        lastNack: st.lastNack,
        resources: [...st.sent.values()].map((r) => ({ name: r.name, version: r.version, resource: decodeToJson(r.typeUrl, r.value) })),
      };
    }
    return {
      connectionId: c.id,
      proxyId: c.proxy.id,
      delta: c.delta,
      node: toJson(NodeSchema, c.proxy.node),
      types,
    };
  }

  metrics(): DiscoveryServerMetrics {
    return {
      ...this.m,
      connections: this.conns.size,
      pushesByType: { ...this.m.pushesByType },
      nacksByType: { ...this.m.nacksByType },
      limitsExceeded: { ...this.m.limitsExceeded },
    };
  }

  /**
   * What the server keeps across streams, as counts: tests check a stream's
   * state is released when it ends (over a limit or otherwise).
   */
  bookkeeping(): ServerBookkeeping {
    let pendingBytes = 0;
    let bufferedBytes = 0;
    let names = 0;
    let unknownTypes = 0;
    for (const c of this.conns.values()) {
      pendingBytes += c.pendingBytes;
      bufferedBytes += c.bufferedBytes;
      names += c.names;
      unknownTypes += c.unknown.size;
    }
    return {
      streams: this.conns.size,
      addresses: this.perAddress.size,
      openingAddresses: this.perAddressOpening.size,
      cooldownAddresses: this.cooldowns.size,
      connections: this.perConnection.size,
      edsIndexNames: this.edsIndex.size,
      edsWildcard: this.edsWildcard.size,
      names,
      unknownTypes,
      pendingBytes,
      bufferedBytes,
    };
  }

  /**
   * Drains: new streams are refused with UNAVAILABLE, streams get until graceMs
   * to flush what was written, then end with OK so clients reconnect elsewhere.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    const busy = () => [...this.conns.values()].some((c) => c.inflight > 0);
    if (busy()) {
      await new Promise<void>((resolve) => {
        const check = () => {
          if (busy()) return;
          clearTimeout(timer);
          this.drainWaiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          this.drainWaiters.delete(check);
          resolve();
        }, graceMs);
        this.drainWaiters.add(check);
      });
    }
    for (const c of [...this.conns.values()]) {
      this.forget(c);
      try {
        c.call.end();
      } catch {
        /* already gone */
      }
    }
  }

  // ---- streams ----

  private open(call: Call, delta: boolean): void {
    const peer = call.getPeer();
    const id = `${this.noncePrefix}-${++this.connSeq}`;
    const c = new Connection(id, call, delta, peer, this.log);
    if (this.directWrites) c.send = directSender(call);
    if (this.closing) {
      this.endWith(c, grpc.status.UNAVAILABLE, 'server is shutting down');
      return;
    }
    const address = addressOfPeer(peer);
    const connKey = connectionKeyOf(call, peer);
    const until = this.cooldowns.until(address, Date.now());
    if (until > 0) {
      // Refused before any request is read; not logged per stream (the cooldown's start was).
      this.m.limitsExceeded.address_cooldown = (this.m.limitsExceeded.address_cooldown ?? 0) + 1;
      this.notifyLimit('address_cooldown');
      this.forget(c);
      this.endWith(c, grpc.status.RESOURCE_EXHAUSTED, `this address went over xDS limits repeatedly; new streams refused until ${new Date(until).toISOString()}`);
      stopReceiving(call);
      return;
    }
    const onConn = this.perConnection.get(connKey) + 1;
    if (onConn > this.limits.maxStreamsPerConnection) return this.overLimit(c, 'maxStreamsPerConnection', onConn);
    const fromAddr = this.perAddress.get(address) + 1;
    if (fromAddr > this.limits.maxStreamsPerAddress) return this.overLimit(c, 'maxStreamsPerAddress', fromAddr);
    const opening = this.perAddressOpening.get(address) + 1;
    if (opening > this.limits.maxOpeningStreamsPerAddress) return this.overLimit(c, 'maxOpeningStreamsPerAddress', opening);
    this.perConnection.add(connKey);
    this.perAddress.add(address);
    this.perAddressOpening.add(address);
    c.address = address;
    c.connKey = connKey;
    c.opening = true;
    this.conns.set(id, c);
    c.log.debug({ delta }, 'ADS stream opened');
    call.on('data', (d: Decoded<DiscoveryRequest | DeltaDiscoveryRequest>) => {
      if (c.closed) return;
      this.opened(c);
      if (c.authPending) {
        c.buffered.push(d);
        // An empty message still costs an object: count at least 64 bytes each.
        c.bufferedBytes += Math.max(64, d.bytes);
        if (c.bufferedBytes > this.limits.maxPendingBytes) this.overLimit(c, 'maxPendingBytes', c.bufferedBytes);
        return;
      }
      this.safeHandle(c, d);
    });
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
    if (this.opts.authenticate) {
      c.authPending = true;
      this.opts
        .authenticate(call as grpc.ServerDuplexStream<unknown, unknown>)
        .then((identity) => {
          if (c.closed) return;
          if (identity) c.identity = identity;
          c.authPending = false;
          const queued = c.buffered;
          c.buffered = [];
          c.bufferedBytes = 0;
          for (const d of queued) if (!c.closed) this.safeHandle(c, d);
        })
        .catch((err: unknown) => {
          c.log.warn({ err: (err as Error)?.message ?? String(err) }, 'ADS stream refused: authentication failed');
          this.endWith(c, grpc.status.UNAUTHENTICATED, `authentication failed: ${(err as Error)?.message ?? String(err)}`);
        });
    }
  }

  private safeHandle(c: Connection, d: Decoded<DiscoveryRequest | DeltaDiscoveryRequest>): void {
    try {
      if (!d.ok && d.limit) {
        this.overLimit(c, d.limit.key, d.limit.value);
        return;
      }
      if (!d.ok) {
        this.m.badRequests++;
        c.log.error({ proxy: c.proxy?.id, bytes: d.bytes, err: d.error }, 'ADS request rejected; ending stream');
        this.endWith(c, d.oversized ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT, d.error);
        return;
      }
      if (!this.identify(c, d.msg)) return;
      if (c.delta) this.onDelta(c, d.msg as DeltaDiscoveryRequest);
      else this.onSotw(c, d.msg as DiscoveryRequest);
    } catch (err) {
      this.m.badRequests++;
      c.log.error({ proxy: c.proxy?.id, err: (err as Error).message, stack: (err as Error).stack }, 'ADS request failed; ending stream');
      this.endWith(c, grpc.status.INTERNAL, `request failed: ${(err as Error).message}`);
    }
  }

  /** The first request must carry node.id; it defines the proxy for the life of the stream. */
  private identify(c: Connection, req: DiscoveryRequest | DeltaDiscoveryRequest): boolean {
    if (c.proxy) return true;
    const node = req.node;
    if (!node || !node.id) {
      this.m.badRequests++;
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
    const refused = this.opts.authorizeNode?.(c.proxy);
    if (refused !== undefined) {
      this.m.badRequests++;
      c.log.warn({ identity: c.identity, reason: refused }, 'ADS stream refused: node does not match the authenticated identity');
      this.endWith(c, grpc.status.PERMISSION_DENIED, refused);
      return false;
    }
    c.log.info({ delta: c.delta, userAgent: node.userAgentName }, 'ADS stream connected');
    this.hook('connected', c.proxy);
    return true;
  }

  /** Returns the type state, or undefined (logged, counted) for a type URL without a generator. */
  private typeOf(c: Connection, typeUrl: string): ResourceGenerator | undefined {
    if (!typeUrl) {
      this.m.badRequests++;
      c.log.error({}, 'ADS request rejected: type_url is empty');
      return undefined;
    }
    const gen = this.opts.generators[typeUrl];
    if (!gen) {
      // Kept clipped and at most maxUnknownTypes per stream: a client cannot grow this set.
      const shown = clip(typeUrl);
      if (!c.unknown.has(shown)) {
        if (c.unknown.size + 1 > this.limits.maxUnknownTypes) {
          this.overLimit(c, 'maxUnknownTypes', c.unknown.size + 1);
          return undefined;
        }
        this.m.unknownTypes++;
        this.m.badRequests++;
        c.log.error({ typeUrl: shown }, `ADS request for unknown type URL ${shown}: this server has no generator for it; not answered`);
        c.unknown.add(shown);
      }
      return undefined;
    }
    return gen;
  }

  private onSotw(c: Connection, req: DiscoveryRequest): void {
    const typeUrl = req.typeUrl;
    if (!this.typeOf(c, typeUrl)) return;
    let st = c.types.get(typeUrl);
    if (req.errorDetail) {
      if (!st || req.responseNonce !== st.nonceSent) return this.stale(c, typeUrl, req.responseNonce, st?.nonceSent);
      this.nack(c, st, req.versionInfo, req.responseNonce, req.errorDetail.code, req.errorDetail.message);
      return;
    }
    const wildcard = req.resourceNames.includes('*') || (req.resourceNames.length === 0 && legacyWildcardTypes.has(typeUrl) && (!st || st.wildcard));
    const names = new Set(req.resourceNames.filter((n) => n !== '*'));
    if (!st) {
      // Initial request (or a reconnect carrying an old version/nonce): answer it.
      st = new TypeState(typeUrl);
      if (!this.subscribe(c, st, wildcard, names)) return;
      c.types.set(typeUrl, st);
      c.order = undefined;
      c.log.debug({ typeUrl, names: names.size, wildcard, version: req.versionInfo || undefined }, 'ADS subscribe');
      this.requestResponse(c, typeUrl);
      return;
    }
    if (req.responseNonce !== '' && req.responseNonce !== st.nonceSent) return this.stale(c, typeUrl, req.responseNonce, st.nonceSent);
    if (req.responseNonce !== '') {
      st.versionAcked = req.versionInfo;
      st.nonceAcked = req.responseNonce;
      this.hook('acked', c.proxy!, typeUrl, req.versionInfo, st.sent);
    }
    if (st.wildcard !== wildcard || !sameNames(st.names, names)) {
      if (!this.subscribe(c, st, wildcard, names)) return;
      c.log.debug({ typeUrl, names: names.size, wildcard }, 'ADS resource names changed');
      this.requestResponse(c, typeUrl);
    } else if (req.responseNonce === '') {
      // A repeated request without a nonce (the client restarted the type): answer it.
      this.requestResponse(c, typeUrl);
    }
  }

  private onDelta(c: Connection, req: DeltaDiscoveryRequest): void {
    const typeUrl = req.typeUrl;
    if (!this.typeOf(c, typeUrl)) return;
    let st = c.types.get(typeUrl);
    const sub = req.resourceNamesSubscribe;
    const unsub = req.resourceNamesUnsubscribe;
    if (!st) {
      st = new TypeState(typeUrl);
      const wildcard = sub.includes('*') || (sub.length === 0 && legacyWildcardTypes.has(typeUrl));
      const initial = Object.entries(req.initialResourceVersions);
      // initial_resource_versions is kept until the first response prunes it: it counts towards the stream's names.
      if (!this.subscribe(c, st, wildcard, new Set(sub.filter((n) => n !== '*')), initial.length)) return;
      c.types.set(typeUrl, st);
      c.order = undefined;
      // On reconnect the client says what it has; only what differs is sent.
      for (const [n, v] of initial) st.known.set(n, v);
      c.log.debug({ typeUrl, names: st.names.size, wildcard, initial: st.known.size }, 'ADS delta subscribe');
      this.requestResponse(c, typeUrl);
      return;
    }
    if (req.responseNonce !== '') {
      if (req.responseNonce !== st.nonceSent) this.stale(c, typeUrl, req.responseNonce, st.nonceSent);
      else if (req.errorDetail) this.nack(c, st, st.versionSent ?? '', req.responseNonce, req.errorDetail.code, req.errorDetail.message);
      else {
        st.versionAcked = st.versionSent;
        st.nonceAcked = req.responseNonce;
        this.hook('acked', c.proxy!, typeUrl, st.versionSent ?? '', st.sent);
      }
    }
    // Subscription changes are diffs: they apply whatever the nonce.
    if (sub.length === 0 && unsub.length === 0) return;
    let wildcard = st.wildcard;
    const names = new Set(st.names);
    let added = false;
    for (const n of unsub) {
      if (n === '*') wildcard = false;
      else {
        names.delete(n);
        if (!wildcard) {
          st.known.delete(n);
          if (st.sent.has(n)) {
            const copy = new Map(st.sent);
            copy.delete(n);
            st.sent = copy;
          }
        }
      }
    }
    for (const n of sub) {
      if (n === '*') {
        if (!wildcard) added = true;
        wildcard = true;
      } else if (!names.has(n)) {
        names.add(n);
        added = true;
      }
    }
    if (!wildcard && st.wildcard) {
      // Leaving wildcard: forget what is no longer subscribed.
      for (const n of [...st.known.keys()]) if (!names.has(n)) st.known.delete(n);
      st.sent = new Map([...st.sent].filter(([n]) => names.has(n)));
    }
    if (!this.subscribe(c, st, wildcard, names)) return;
    if (added) this.requestResponse(c, typeUrl);
  }

  private stale(c: Connection, typeUrl: string, got: string, sent: string | undefined): void {
    this.m.staleNonces++;
    c.log.debug({ typeUrl, nonce: got, nonceSent: sent }, 'ADS request with a stale nonce ignored');
  }

  private nack(c: Connection, st: TypeState, version: string, nonce: string, code: number, message: string): void {
    st.nacks++;
    const rec = { version, nonce, code, message, at: new Date().toISOString() };
    st.lastNack = rec;
    this.m.nacks++;
    const s = short(st.typeUrl);
    this.m.nacksByType[s] = (this.m.nacksByType[s] ?? 0) + 1;
    c.log.warn({ typeUrl: st.typeUrl, version, nonce, error: message }, `ADS NACK: proxy rejected ${s} version ${version}`);
    this.hook('nacked', c.proxy!, { ...rec, typeUrl: st.typeUrl, sent: st.sent });
  }

  /** Calls an owner hook; one that throws never breaks the stream. */
  private hook<K extends keyof DiscoveryHooks>(name: K, ...args: Parameters<NonNullable<DiscoveryHooks[K]>>): void {
    const fn = this.opts.hooks?.[name] as ((...a: unknown[]) => void) | undefined;
    if (!fn) return;
    try {
      fn.apply(this.opts.hooks, args);
    } catch (err) {
      this.log.error({ hook: name, err: (err as Error).message }, 'discovery hook failed; ignored');
    }
  }

  /** Applies a subscription; false (the stream ended) when it would take the stream over maxNamesPerStream. */
  private subscribe(c: Connection, st: TypeState, wildcard: boolean, names: Set<string>, extra = 0): boolean {
    const total = c.names - st.names.size + names.size + extra;
    if (total > this.limits.maxNamesPerStream) {
      this.overLimit(c, 'maxNamesPerStream', total);
      return false;
    }
    c.names = total - extra;
    if (st.typeUrl === EDS) {
      for (const n of st.names) {
        if (names.has(n)) continue;
        const set = this.edsIndex.get(n);
        if (set) {
          set.delete(c);
          if (set.size === 0) this.edsIndex.delete(n); // no empty entry left behind for a name nobody watches
        }
      }
      for (const n of names) {
        let set = this.edsIndex.get(n);
        if (!set) this.edsIndex.set(n, (set = new Set()));
        set.add(c);
      }
      if (wildcard) this.edsWildcard.add(c);
      else this.edsWildcard.delete(c);
    }
    st.wildcard = wildcard;
    st.names = names;
    return true;
  }

  private requestResponse(c: Connection, typeUrl: string): void {
    c.need().types.add(typeUrl);
    this.schedule(c);
  }

  private forget(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c.id);
    const eds = c.types.get(EDS);
    if (eds) {
      for (const n of eds.names) {
        const set = this.edsIndex.get(n);
        if (set) {
          set.delete(c);
          if (set.size === 0) this.edsIndex.delete(n);
        }
      }
    }
    this.edsWildcard.delete(c);
    this.opened(c);
    if (c.connKey !== undefined) this.perConnection.remove(c.connKey);
    if (c.address !== undefined) this.perAddress.remove(c.address);
    c.pending = undefined;
    c.inflight = 0;
    if (c.proxy) this.hook('disconnected', c.proxy);
    c.pendingBytes = 0;
    c.names = 0;
    c.types.clear();
    c.unknown.clear();
    c.buffered = [];
    c.bufferedBytes = 0;
    for (const w of this.drainWaiters) w();
  }

  private notifyLimit(limit: Parameters<NonNullable<DiscoveryServerOptions['onLimitExceeded']>>[0]): void {
    try {
      this.opts.onLimitExceeded?.(limit);
    } catch {
      /* a metrics hook must not break the server */
    }
  }

  /** The stream's first request has arrived (or the stream is gone): it no longer counts as opening. */
  private opened(c: Connection): void {
    if (!c.opening) return;
    c.opening = false;
    this.perAddressOpening.remove(c.address!);
  }

  /**
   * Ends a stream that went over a limit: counted, logged with the peer (the
   * stream's logger carries it), every piece of its state dropped, then
   * RESOURCE_EXHAUSTED. A stream with unflushed writes is reset instead
   * (ENHANCE_YOUR_CALM, which gRPC clients report as RESOURCE_EXHAUSTED): its
   * trailers would wait behind the bytes the client is not reading.
   */
  private overLimit(c: Connection, key: keyof XdsLimits, value: number): void {
    const limit = limitNames[key];
    const max = this.limits[key];
    this.m.limitsExceeded[limit] = (this.m.limitsExceeded[limit] ?? 0) + 1;
    this.notifyLimit(limit);
    c.log.warn({ limit, value, max }, `ADS stream over the ${limit} limit (${value} > ${max}); ending it with RESOURCE_EXHAUSTED`);
    const cooldown = c.address ?? addressOfPeer(c.peer);
    // Many proxies behind one address (NAT, a node-local agent, a load test)
    // open a burst of streams at once; a burst is refused stream by stream and
    // retried, but is not a strike towards refusing the whole address.
    const ms = key === 'maxOpeningStreamsPerAddress' ? 0 : this.cooldowns.hit(cooldown, Date.now());
    if (ms > 0) c.log.warn({ address: cooldown, cooldownMs: ms }, `client address ${cooldown} keeps going over xDS limits; its new streams are refused for ${ms} ms`);
    const unflushed = c.inflight > 0;
    const details = `${limit} limit exceeded: ${value} > ${max}`;
    this.forget(c);
    if (unflushed && resetExhausted(c.call)) return;
    this.endWith(c, grpc.status.RESOURCE_EXHAUSTED, details);
    stopReceiving(c.call);
  }

  private endWith(c: Connection, code: grpc.status, details: string): void {
    this.forget(c);
    try {
      c.call.emit('error', { code, details });
    } catch {
      /* the stream is already gone */
    }
  }

  // ---- pushing ----

  private schedule(c: Connection): void {
    if (c.closed || c.queued) return;
    c.queued = true;
    this.runQueue.push(c);
    if (!this.draining) {
      this.draining = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    const q = this.runQueue;
    const end = Math.min(q.length, this.runHead + this.batch);
    while (this.runHead < end) {
      const c = q[this.runHead]!;
      q[this.runHead++] = undefined as unknown as Connection;
      c.queued = false;
      if (c.closed) continue;
      try {
        this.process(c);
      } catch (err) {
        c.log.error({ err: (err as Error).message, stack: (err as Error).stack }, 'push failed for this stream; ending it');
        this.endWith(c, grpc.status.INTERNAL, `push failed: ${(err as Error).message}`);
      }
    }
    if (this.runHead < q.length) setImmediate(() => this.drain());
    else {
      this.runQueue = [];
      this.runHead = 0;
      this.draining = false;
    }
  }

  private process(c: Connection): void {
    const p = c.pending;
    if (!p || c.closed || !c.proxy) return;
    if (!this.opts.isReady()) return; // first responses wait for readiness; push() retries
    if (c.inflight >= this.maxQueued) {
      this.m.coalesced++;
      return; // the write callback reschedules once the transport drains
    }
    c.pending = undefined;
    const order = (c.order ??= orderedTypes(c));
    for (const typeUrl of order) {
      if (c.closed) return; // ended mid-push (pending bytes over the limit)
      const st = c.types.get(typeUrl);
      const gen = this.opts.generators[typeUrl];
      if (!st || !gen) continue;
      const forced = p.types.has(typeUrl);
      if (p.full || forced) this.respond(c, st, gen, this.lastFull, undefined, forced);
      else if (typeUrl === EDS && p.eds.size > 0 && p.edsReq) this.respond(c, st, gen, p.edsReq, p.eds, false);
    }
    c.pushVersion = p.full || p.types.size > 0 ? this.lastFull.version : (p.edsReq?.version ?? c.pushVersion);
    if (p.full) this.hook('pushed', c.proxy, this.lastFull);
  }

  private respond(c: Connection, st: TypeState, gen: ResourceGenerator, req: PushRequest, only: ReadonlySet<string> | undefined, forced: boolean): void {
    const observe = this.opts.hooks?.responded ? { bytes: this.m.bytesSent, t0: performance.now() } : undefined;
    let out: ReadonlyMap<string, EncodedResource>;
    try {
      out = gen.generate(c.proxy!, st, req);
    } catch (err) {
      c.log.error({ typeUrl: st.typeUrl, version: req.version, err: (err as Error).message }, `generating ${short(st.typeUrl)} failed; nothing sent for this type`);
      return;
    }
    if (c.delta) this.respondDelta(c, st, out, req, only, forced);
    else this.respondSotw(c, st, out, req, only, forced);
    if (observe && this.m.bytesSent !== observe.bytes) {
      this.hook('responded', c.proxy!, st.typeUrl, req.version, this.m.bytesSent - observe.bytes, (performance.now() - observe.t0) / 1000);
    }
  }

  private respondSotw(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, only: ReadonlySet<string> | undefined, forced: boolean): void {
    if (only) {
      // Incremental (EDS): only the changed resources this stream watches.
      if (this.incrementalVersion !== req.version) {
        this.incrementalVersion = req.version;
        this.incrementalFrames = new Map();
        this.incrementalShares = new WeakMap();
      }
      let byNames = this.incrementalShares.get(out);
      if (!byNames) this.incrementalShares.set(out, (byNames = new WeakMap()));
      let share = byNames.get(only);
      if (!share) {
        const cand: EncodedResource[] = [];
        for (const n of only) {
          const r = out.get(n);
          if (r) cand.push(r);
        }
        share = { list: cand, key: incrementalKey(st.typeUrl, cand), merged: new WeakMap() };
        byNames.set(only, share);
      }
      // The common case: every candidate is watched and new to this stream, so the shared response fits.
      let fits = share.list.length > 0;
      for (const r of share.list) {
        if ((!st.wildcard && !st.names.has(r.name)) || st.sent.get(r.name)?.version === r.version) {
          fits = false;
          break;
        }
      }
      if (fits) {
        let f = share.frame;
        if (!f || f.seq <= st.lastSeq) f = share.frame = this.incrementalFrame(share.key, st, req.version, share.list);
        st.lastSeq = f.seq;
        this.write(c, st, f.frame, true);
        let merged = share.merged.get(st.sent);
        if (!merged) {
          const m = new Map(st.sent);
          for (const r of share.list) m.set(r.name, r);
          share.merged.set(st.sent, (merged = m));
        }
        this.sent(st, merged, f.nonce, req.version);
        return;
      }
      const list: EncodedResource[] = [];
      for (const r of share.list) {
        if (!st.wildcard && !st.names.has(r.name)) continue;
        if (st.sent.get(r.name)?.version !== r.version) list.push(r);
      }
      if (list.length === 0) return;
      const f = this.incrementalFrame(incrementalKey(st.typeUrl, list), st, req.version, list);
      st.lastSeq = f.seq;
      const nonce = f.nonce;
      this.write(c, st, f.frame, true);
      const merged = new Map(st.sent);
      for (const r of list) merged.set(r.name, r);
      this.sent(st, merged, nonce, req.version);
      return;
    }
    let list: EncodedResource[];
    let whole: boolean;
    if (st.wildcard) {
      list = [...out.values()];
      whole = true;
    } else {
      list = [];
      for (const n of st.names) {
        const r = out.get(n);
        if (r) list.push(r);
      }
      whole = list.length === out.size;
    }
    if (!forced && st.answered && sameResources(list, st.sent)) return; // unchanged (and a NACKed version is never re-sent)
    let frame: Buffer;
    let nonce: string;
    let shared = false;
    if (whole) {
      const sf = this.sharedFrame(out, st, req.version, list);
      frame = sf.frame;
      nonce = sf.nonce;
      st.lastSeq = sf.seq;
      shared = true;
    } else {
      nonce = this.nonce();
      frame = encodeDiscoveryResponse(this.header(st.typeUrl, nonce, req.version), list.map((r) => r.any));
    }
    this.write(c, st, frame, shared);
    this.sent(st, whole ? out : new Map(list.map((r) => [r.name, r])), nonce, req.version);
  }

  /** The incremental response for these changed resources, shared unless this stream already had that frame. */
  private incrementalFrame(key: string, st: TypeState, version: string, list: readonly EncodedResource[]): SharedFrame {
    let f = this.incrementalFrames.get(key);
    if (!f || f.seq <= st.lastSeq) {
      f = this.newFrame(st.typeUrl, version, list);
      if (this.incrementalFrames.size < 1024) this.incrementalFrames.set(key, f);
    }
    return f;
  }

  /** One frame per (generator output, type, version), shared by every stream it fits. */
  private sharedFrame(out: ReadonlyMap<string, EncodedResource>, st: TypeState, version: string, list: EncodedResource[]): SharedFrame {
    let byKey = this.frames.get(out);
    if (!byKey) this.frames.set(out, (byKey = new Map()));
    const key = `${st.typeUrl}\u0000${version}`;
    let f = byKey.get(key);
    if (!f || f.seq <= st.lastSeq) {
      f = this.newFrame(st.typeUrl, version, list);
      byKey.set(key, f);
    }
    return f;
  }

  private newFrame(typeUrl: string, version: string, list: readonly EncodedResource[]): SharedFrame {
    const seq = ++this.seq;
    const nonce = `${this.noncePrefix}-${seq.toString(36)}`;
    return { seq, nonce, frame: grpcFramed(encodeDiscoveryResponse(this.header(typeUrl, nonce, version), list.map((r) => r.any))) };
  }

  private respondDelta(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, only: ReadonlySet<string> | undefined, forced: boolean): void {
    const inScope = (n: string) => !only || only.has(n);
    const wanted = (n: string) => st.wildcard || st.names.has(n);
    const toSend: EncodedResource[] = [];
    if (st.wildcard && !only) {
      for (const r of out.values()) if (st.known.get(r.name) !== r.version) toSend.push(r);
    } else {
      const candidates = only ?? st.names;
      for (const n of candidates) {
        if (!wanted(n)) continue;
        const r = out.get(n);
        if (r && st.known.get(n) !== r.version) toSend.push(r);
      }
    }
    const removed: string[] = [];
    for (const n of st.known.keys()) if (inScope(n) && (!wanted(n) || !out.has(n))) removed.push(n);
    if (toSend.length === 0 && removed.length === 0 && !(forced && !st.answered && st.wildcard)) return;
    const nonce = this.nonce();
    const resources = toSend.map((r) => {
      let b = this.deltaFrames.get(r);
      if (!b) this.deltaFrames.set(r, (b = encodeDeltaResource(r.name, r.version, r.any)));
      return b;
    });
    this.write(c, st, encodeDeltaDiscoveryResponse(this.header(st.typeUrl, nonce, req.version), resources, removed), false);
    const sent = new Map(st.sent);
    for (const n of removed) {
      st.known.delete(n);
      sent.delete(n);
    }
    for (const r of toSend) {
      st.known.set(r.name, r.version);
      sent.set(r.name, r);
    }
    this.sent(st, sent, nonce, req.version);
  }

  private sent(st: TypeState, sent: ReadonlyMap<string, EncodedResource>, nonce: string, version: string): void {
    st.sent = sent;
    st.nonceSent = nonce;
    st.versionSent = version;
    st.answered = true;
  }

  private header(typeUrl: string, nonce: string, version: string) {
    return { typeUrl, nonce, versionInfo: version, controlPlane: this.controlPlane };
  }

  private nonce(): string {
    return `${this.noncePrefix}-${(++this.seq).toString(36)}`;
  }

  /** `shared`: a frame from newFrame() (pre-framed when the hook is on), else an unframed message. */
  private write(c: Connection, st: TypeState, frame: Buffer, shared: boolean): void {
    if (c.closed) return;
    c.inflight++;
    const bytes = frame.length;
    c.pendingBytes += bytes;
    this.m.pushes++;
    this.m.bytesSent += frame.length - (shared ? framePrefix() : 0);
    const s = short(st.typeUrl);
    this.m.pushesByType[s] = (this.m.pushesByType[s] ?? 0) + 1;
    const done = () => {
      if (c.closed) return;
      c.inflight--;
      c.pendingBytes -= bytes;
      if (c.pending && c.inflight < this.maxQueued) this.schedule(c);
      if (c.inflight === 0 && this.drainWaiters.size > 0) for (const w of this.drainWaiters) w();
    };
    if (c.send) c.send(frame, done);
    else c.call.write(frame, done);
    if (!c.closed && c.pendingBytes > this.limits.maxPendingBytes) this.overLimit(c, 'maxPendingBytes', c.pendingBytes);
  }
}

/** Counts of what the server keeps across streams (see DiscoveryServer.bookkeeping). */
export interface ServerBookkeeping {
  streams: number;
  /** Client addresses and TCP connections with at least one open stream. */
  addresses: number;
  /** Addresses with a stream that has not sent its first request yet. */
  openingAddresses: number;
  /** Addresses with recent limit hits or an active cooldown. */
  cooldownAddresses: number;
  connections: number;
  /** EDS watch index: names with at least one watcher, and wildcard watchers. */
  edsIndexNames: number;
  edsWildcard: number;
  /** Subscribed names, unknown type URLs, unflushed and pre-authentication bytes, summed over streams. */
  names: number;
  unknownTypes: number;
  pendingBytes: number;
  bufferedBytes: number;
}

/** Something that announces changed resource names (EndpointCache); the server subscribes at construction. */
export interface ChangeSource {
  onChange(listener: (names: ReadonlySet<string>, version: string) => void): void;
}

function incrementalKey(typeUrl: string, list: readonly EncodedResource[]): string {
  return `${typeUrl}\u0000${list.map((r) => `${r.name}\u0000${r.version}`).join('\u0000')}`;
}

function orderedTypes(c: Connection): string[] {
  const known = pushOrder.filter((t) => c.types.has(t));
  const rest = [...c.types.keys()].filter((t) => !pushOrder.includes(t)).sort();
  return [...known, ...rest];
}

function sameNames(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}

function sameResources(list: readonly EncodedResource[], sent: ReadonlyMap<string, EncodedResource>): boolean {
  if (list.length !== sent.size) return false;
  for (const r of list) {
    const s = sent.get(r.name);
    if (!s || (s !== r && s.version !== r.version)) return false;
  }
  return true;
}
