import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '@sextant/api';
import type { EncodedResource, Node } from '@sextant/envoy';
import type { LimitName, XdsLimits } from './limits.js';

/** A connected proxy as the server knows it: one per ADS stream. */
export interface XdsProxy {
  /** Unique per stream. */
  readonly connectionId: string;
  /** node.id from the first request. */
  readonly id: string;
  /** The node from the first request. */
  readonly node: Node;
  /** node.metadata as plain JSON. */
  readonly metadata: Record<string, unknown>;
  /** Remote address as grpc-js reports it (`ipv4:127.0.0.1:5555`). */
  readonly peer: string;
  /** Set by `authenticate` on the secure port. */
  readonly identity?: { namespace: string; serviceAccount: string } | undefined;
  readonly delta: boolean;
}

/** What a stream subscribed to for one type URL. */
export interface WatchedResource {
  readonly typeUrl: string;
  /** Wildcard: every resource of the type (LDS/CDS legacy empty list, or `*`). */
  readonly wildcard: boolean;
  /** Names explicitly subscribed (may be non-empty together with wildcard in delta). */
  readonly names: ReadonlySet<string>;
}

/**
 * One push, as Istio's PushRequest: whether it is full or endpoints-only, and
 * what it concerns, so the server and the caches regenerate only that.
 */
export interface PushRequest {
  /** false = endpoints-only (EDS) fast path (Istio's Full). */
  full: boolean;
  /** Push version (PushContext version); sent as version_info and shown in debug output. */
  version: string;
  /** Istio's Reason: why (the kinds that changed, `initial`, `ready`, `endpoints`, `ca-root`...). */
  reason: string[];
  /**
   * Istio's ConfigsUpdated: the config objects whose change this push carries,
   * as `keyString` (`Kind/namespace/name`). Undefined: anything may have changed
   * (start, a new context with no change list).
   */
  configsUpdated?: ReadonlySet<string>;
  /**
   * Full pushes: the xDS types the change can alter (a VirtualService edit:
   * listeners and routes; a CA root change: secrets). Undefined: every type.
   * The server regenerates only these for the streams it wakes.
   */
  types?: ReadonlySet<string>;
  /**
   * Full pushes: of the concerned types, which resources the change can alter
   * (by type URL; a VirtualService edit: the route configurations of its
   * hosts' ports). Absent for a type: all of it. The caches keep the rest.
   */
  resources?: ReadonlyMap<string, (name: string) => boolean>;
  /** When !full: EDS resource names (cluster names) whose endpoints changed. */
  edsUpdates?: ReadonlySet<string>;
  /** Full pushes: which proxies depend on what changed (default: all). */
  affects?: (proxy: XdsProxy) => boolean;
  /** When the first change this push carries arrived (ms since epoch; Istio's PushRequest.Start). */
  start?: number;
}

/**
 * One per type URL. Pure with respect to the server: returns the resources this
 * proxy should have for the watch. Returning the same Map object for identical
 * inputs (see cache/class-cache.ts) lets the server frame a response once and share it.
 */
export interface ResourceGenerator {
  /**
   * The response is everything generate() returns, whatever names were asked:
   * the names are a query, not a subscription (the istio.io/debug/* types).
   */
  readonly answersQuery?: boolean;
  /**
   * Delta: a subscribed resource that stops existing is not sent in
   * `removed_resources` (istiod's neverRemoveDelta, for ECDS: Envoy drops an
   * extension config still in use when told it is removed).
   */
  readonly neverRemoveDelta?: boolean;
  generate(proxy: XdsProxy, watch: WatchedResource, req: PushRequest): ReadonlyMap<string, EncodedResource>;
}

export type Identity = { namespace: string; serviceAccount: string };

export interface DiscoveryServerOptions {
  /** By type URL; a request for a type URL without a generator gets a clear error. */
  generators: Record<string, ResourceGenerator>;
  log: Logger;
  /** First responses wait until this is true; the caller then calls push(). */
  isReady: () => boolean;
  /**
   * Secure port: resolves the caller's identity from the call (peer certificate,
   * bearer token). Rejecting ends the stream with UNAUTHENTICATED.
   */
  authenticate?: (call: grpc.ServerDuplexStream<unknown, unknown>) => Promise<Identity | undefined>;
  /**
   * Whether an identified proxy may be served, judged once on its first
   * request: returns the reason to refuse (the stream ends with
   * PERMISSION_DENIED and that reason), or undefined. The secure port uses it
   * to refuse a node whose namespace or service account is not the caller's.
   */
  authorizeNode?: (proxy: XdsProxy) => string | undefined;
  /**
   * Responses a stream may have written but not yet flushed to its transport
   * before the server stops giving it more work (its pending pushes then
   * coalesce into one). Default 16.
   */
  maxQueuedPushes?: number;
  /** Largest request accepted, in bytes; larger ends the stream with RESOURCE_EXHAUSTED. Default 4 MiB. */
  maxRequestBytes?: number;
  /** Sent as control_plane.identifier on every response. */
  controlPlaneId?: string;
  /**
   * Write shared responses pre-framed, so grpc-js does not copy them per stream
   * (see frames.ts). Default true.
   */
  preFramedWrites?: boolean;
  /**
   * Write responses through grpc-js's intercepting call directly, skipping the
   * per-message object-mode Duplex layer (see frames.ts directSender). Default true.
   */
  directWrites?: boolean;
  /**
   * Take requests from grpc-js's call as they are decoded, skipping its
   * per-message promise and object-mode Readable (see receive.ts
   * directReceiver). Default true.
   */
  directReads?: boolean;
  /** Streams served per event-loop turn when a push fans out (at most). Default 64 (push-queue.ts DEFAULT_PUSH_BATCH says why). */
  pushBatch?: number;
  /**
   * How long (ms) the push queue may keep the event loop before it yields,
   * whatever is left of its batch. Generating for one stream can take seconds
   * (a class's first CDS in a large mesh); served back to back, a cold connect
   * of many classes held the loop for minutes, so keepalive pings went
   * unanswered and grpc-js dropped every connection (clients reconnected and
   * were sent CDS again, indefinitely). Default 50.
   */
  pushTurnMs?: number;
  /** Per-client limits (docs/xds.md, "Limits"); each one not given takes its default from `defaultXdsLimits`. */
  limits?: Partial<XdsLimits>;
  /** Called each time a stream is ended for going over a limit (the daemon counts it in a metric). */
  onLimitExceeded?: (limit: LimitName | 'address_cooldown') => void;
  /**
   * An address that goes over limits 3 times within 10 s has its new streams
   * refused for this long, doubling while it keeps at it (up to 30 s); 0 (the
   * default here; the daemon's flag defaults to 1 s) turns it off.
   */
  limitCooldownMs?: number;
  /** Observers of the stream's life (metrics, NACK attribution); each is called synchronously and must be cheap. */
  hooks?: DiscoveryHooks;
}

/**
 * What the server tells its owner, outside the push decisions: the daemon
 * turns these into istiod's metrics and traces NACKs back to config objects.
 * A hook that throws is logged and ignored.
 */
export interface DiscoveryHooks {
  /** A stream identified its node (first request). */
  connected?(proxy: XdsProxy): void;
  /** A stream that had identified its node ended. */
  disconnected?(proxy: XdsProxy): void;
  /**
   * A response for `typeUrl` went out: the push version, the resource bytes
   * written and the seconds spent generating, encoding and writing it.
   */
  responded?(proxy: XdsProxy, typeUrl: string, version: string, bytes: number, seconds: number): void;
  /** The push queue drained (every queued stream served); `bytesSent`: all response bytes written since the server started. */
  drained?(bytesSent: number): void;
  /** A full push (not a request) reached this stream for every type it watches. */
  pushed?(proxy: XdsProxy, req: PushRequest): void;
  /** The client ACKed `version` of `typeUrl`; `sent` is what it now has (name → resource; shared, never mutated). */
  acked?(proxy: XdsProxy, typeUrl: string, version: string, sent: ReadonlyMap<string, EncodedResource>): void;
  /**
   * The client NACKed: `sent` is what the rejected response gave it (SotW:
   * that response; Delta: everything it has been sent), name → resource.
   */
  nacked?(proxy: XdsProxy, nack: NackRecord & { typeUrl: string; sent: ReadonlyMap<string, EncodedResource> }): void;
}

export interface NackRecord {
  /** version_info / system_version_info the client rejected (what it had been sent). */
  version: string;
  nonce: string;
  code: number;
  message: string;
  at: string;
}

export interface TypeStatus {
  typeUrl: string;
  wildcard: boolean;
  names: string[];
  /** Version and nonce of the last response sent for this type. */
  versionSent?: string | undefined;
  nonceSent?: string | undefined;
  /** When the last response of this type was written (ISO 8601). */
  sentAt?: string | undefined;
  /** Version and nonce last ACKed. */
  versionAcked?: string | undefined;
  nonceAcked?: string | undefined;
  lastNack?: NackRecord | undefined;
  nacks: number;
  /** Resources the client has as far as the server knows: name → version (content hash). */
  resources: Record<string, string>;
  /** The type URL has no generator on this server. */
  unknownType?: boolean;
}

export interface ConnectionStatus {
  connectionId: string;
  proxyId: string;
  peer: string;
  delta: boolean;
  connectedAt: string;
  identity?: Identity | undefined;
  /** Push version last processed for this stream. */
  pushVersion?: string | undefined;
  /** A push is waiting (slow client or not ready yet). */
  pending: boolean;
  /** Responses written but not yet flushed to the transport. */
  queuedWrites: number;
  types: TypeStatus[];
}

export interface DiscoveryServerMetrics {
  connections: number;
  /** Responses sent (SotW and Delta), all types. */
  pushes: number;
  /** Resource bytes sent (response messages, before gRPC framing). */
  bytesSent: number;
  nacks: number;
  /** ACK/NACKs ignored for a stale nonce. */
  staleNonces: number;
  /** Requests rejected: malformed, oversized, missing node, unknown type. */
  badRequests: number;
  unknownTypes: number;
  /** Pushes that found a stream still busy writing and were coalesced. */
  coalesced: number;
  /** By short type name (`cds`, ...): responses sent. */
  pushesByType: Record<string, number>;
  nacksByType: Record<string, number>;
  /** Streams ended for going over a limit, by limit name (`names_per_request`, ...). */
  limitsExceeded: Partial<Record<LimitName | 'address_cooldown', number>>;
}

/** What one stream was last sent, for debug output (config dumps). */
export interface StreamState {
  connectionId: string;
  proxy: XdsProxy;
  delta: boolean;
  types: Array<{
    typeUrl: string;
    versionSent?: string | undefined;
    versionAcked?: string | undefined;
    sentAt?: string | undefined;
    lastNack?: NackRecord | undefined;
    resources: EncodedResource[];
  }>;
}
