/**
 * Subscriptions (Istio's WatchedResource): per stream and type URL, what the
 * client asked for and what it has been sent (`TypeState`), and the server-wide
 * EDS watch index, so an endpoint change wakes only the streams that watch the
 * changed names (plus EDS wildcard watchers). Applying a subscription enforces
 * maxNamesPerStream.
 */
import { TypeUrl, type EncodedResource } from '@sextant/envoy';
import type { XdsLimits } from '../limits.js';
import type { TypeStatus, WatchedResource } from '../types.js';
import type { Connection } from './stream.js';

export const EDS = TypeUrl.ClusterLoadAssignment;

/**
 * Types where an empty first request means "everything" (the legacy wildcard).
 * Istio's NDS name table is one too (istiod: every type but SDS, EDS, RDS and ECDS).
 */
export const legacyWildcardTypes = new Set<string>([TypeUrl.Listener, TypeUrl.Cluster, 'type.googleapis.com/istio.networking.nds.v1.NameTable']);

const EMPTY: ReadonlyMap<string, EncodedResource> = new Map();

/** Per stream and type URL: the subscription and what the client has been sent. */
export class TypeState implements WatchedResource {
  wildcard = false;
  names = new Set<string>();
  /** What the client has, as far as the server knows: name → resource. SotW: last sent; Delta: sent or declared. */
  sent: ReadonlyMap<string, EncodedResource> = EMPTY;
  /** Delta only: name → version the client has (includes initial_resource_versions). */
  known = new Map<string, string>();
  versionSent?: string;
  nonceSent?: string;
  /** Date.now() when the last response of this type was written (debug output). */
  sentAt?: number;
  versionAcked?: string;
  nonceAcked?: string;
  lastNack?: TypeStatus['lastNack'];
  nacks = 0;
  /** At least one response went out since the subscription started. */
  answered = false;
  /** Sequence of the last shared frame this stream was sent for this type (nonces stay unique per stream). */
  lastSeq = 0;
  constructor(readonly typeUrl: string) {}

  /** Records a response written for this type: what the client now has, and its nonce and version. */
  recordSent(sent: ReadonlyMap<string, EncodedResource>, nonce: string, version: string): void {
    this.sent = sent;
    this.sentAt = Date.now();
    this.nonceSent = nonce;
    this.versionSent = version;
    this.answered = true;
  }
}

export class Subscriptions {
  /** EDS watchers by resource name, and EDS wildcard watchers: an endpoint change wakes only these. */
  private readonly edsIndex = new Map<string, Set<Connection>>();
  private readonly edsWildcard = new Set<Connection>();

  constructor(
    private readonly limits: XdsLimits,
    /** Ends a stream over a limit. */
    private readonly overLimit: (c: Connection, key: keyof XdsLimits, value: number) => void,
  ) {}

  /**
   * Applies a subscription; false (the stream ended) when it would take the
   * stream over maxNamesPerStream. `extra`: names held for the stream beyond the
   * subscription (Delta's initial_resource_versions until the first response).
   */
  apply(c: Connection, st: TypeState, wildcard: boolean, names: Set<string>, extra = 0): boolean {
    const total = c.names - st.names.size + names.size + extra;
    if (total > this.limits.maxNamesPerStream) {
      this.overLimit(c, 'maxNamesPerStream', total);
      return false;
    }
    c.names = total - extra;
    if (st.typeUrl === EDS) {
      for (const n of st.names) {
        if (names.has(n)) continue;
        this.unwatch(n, c);
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

  /** The streams an endpoint change of these names concerns: EDS wildcard watchers and watchers of a name. */
  edsWatchers(names: ReadonlySet<string>): Set<Connection> {
    const touched = new Set<Connection>(this.edsWildcard);
    for (const n of names) for (const c of this.edsIndex.get(n) ?? []) touched.add(c);
    return touched;
  }

  /** Drops an ended stream from the EDS index. */
  release(c: Connection): void {
    const eds = c.types.get(EDS);
    if (eds) for (const n of eds.names) this.unwatch(n, c);
    this.edsWildcard.delete(c);
  }

  /** Names with at least one EDS watcher (bookkeeping). */
  get indexedNames(): number {
    return this.edsIndex.size;
  }

  get wildcardWatchers(): number {
    return this.edsWildcard.size;
  }

  private unwatch(name: string, c: Connection): void {
    const set = this.edsIndex.get(name);
    if (!set) return;
    set.delete(c);
    if (set.size === 0) this.edsIndex.delete(name); // no empty entry left behind for a name nobody watches
  }
}

export function sameNames(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}
