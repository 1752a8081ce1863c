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
/** A `sent` map with some names forgotten, by the map: the last forget made from it (TypeState.forget). */
const forgotten = new WeakMap<ReadonlyMap<string, EncodedResource>, { key: string; after: ReadonlyMap<string, EncodedResource> }>();
const NO_NAMES: ReadonlySet<string> = new Set();

/** One subscription name set, shared by every stream (of any type) that subscribes exactly these names. */
interface NameSet {
  names: ReadonlySet<string>;
  hash: number;
  /** TypeStates holding it. */
  refs: number;
  /** Streams watching these names for EDS (the EDS index points here once per name, not once per stream). */
  eds: Set<Connection>;
  /** Delta subscription changes made from these names, by request (DeltaChange): the streams of a class make the same ones. */
  changes?: Map<string, DeltaChange>;
}

/**
 * A Delta request's subscription change (its subscribe and unsubscribe
 * lists) applied to a subscription. It depends on nothing else, so it is
 * computed once per subscription and request and shared by every stream that
 * makes it: when a DestinationRule renames a subset, each proxy of a class
 * moves its ~9,000-name EDS subscription by the same one name.
 */
export interface DeltaChange {
  wildcard: boolean;
  /** The subscription after the change (replaced by the interned equal set once applied). */
  names: ReadonlySet<string>;
  /** Names the client no longer has: unsubscribed while not wildcard. */
  gone: readonly string[];
  /** A response is due: new names were subscribed, or wildcard was turned on. */
  due: boolean;
  /** With `due` and no wildcard: the newly subscribed names, the only ones the response can concern. */
  added?: ReadonlySet<string>;
}

/** Changes kept per subscription (a class makes one or two at a time). */
const CHANGES_PER_SET = 16;

/** An order-independent hash of a name set (sum of FNV-1a hashes of the names, and the size). */
function setHash(names: ReadonlySet<string>): number {
  let sum = names.size;
  for (const n of names) {
    let h = 0x811c9dc5;
    for (let i = 0; i < n.length; i++) h = Math.imul(h ^ n.charCodeAt(i), 0x01000193);
    sum = (sum + h) | 0;
  }
  return sum;
}

/** Per stream and type URL: the subscription and what the client has been sent. */
export class TypeState implements WatchedResource {
  wildcard = false;
  /** Shared (never mutated) by the streams that subscribe the same names; replaced, not changed, when the subscription changes. */
  names: ReadonlySet<string> = NO_NAMES;
  /**
   * What the client has been sent: name → resource. Never mutated once set,
   * so streams of a class that have the same resources hold the generator's
   * own output map (one copy, not one per stream).
   */
  sent: ReadonlyMap<string, EncodedResource> = EMPTY;
  /**
   * Delta only: versions the client declared (initial_resource_versions) for
   * names it has not been sent on this stream; a name is here or in `sent`,
   * never both.
   */
  declared?: Map<string, string>;
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

  /** Delta: the version the client has of NAME (declared or sent), if any. */
  knownVersion(name: string): string | undefined {
    return this.declared?.get(name) ?? this.sent.get(name)?.version;
  }

  /** Delta: every name the client has, with its version (declared, then sent). */
  *known(): IterableIterator<[string, string]> {
    if (this.declared) yield* this.declared;
    for (const [n, r] of this.sent) yield [n, r.version];
  }

  /**
   * Delta: forgets NAMES (unsubscribed, or outside a subscription that left
   * wildcard), in both `declared` and `sent`. Streams sharing one `sent` map
   * that forget the same names share the result too (`forgotten`).
   */
  forget(names: readonly string[]): void {
    if (this.declared) for (const n of names) this.declared.delete(n);
    const before = this.sent;
    const key = names.join('\u0000');
    const memo = forgotten.get(before);
    if (memo?.key === key) {
      this.sent = memo.after;
      return;
    }
    let copy: Map<string, EncodedResource> | undefined;
    for (const n of names) {
      if (!before.has(n)) continue;
      copy ??= new Map(before);
      copy.delete(n);
    }
    if (!copy) return;
    forgotten.set(before, { key, after: copy });
    this.sent = copy;
  }

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
  /**
   * EDS watchers by resource name, as the name sets that hold the name (each
   * with its streams), and EDS wildcard watchers: an endpoint change wakes only
   * these. Streams of one class subscribe the same ~9,000 EDS names at S =
   * 1000, so indexing per name set instead of per stream keeps one entry per
   * class and name, not per proxy and name.
   */
  private readonly edsIndex = new Map<string, Set<NameSet>>();
  private readonly edsWildcard = new Set<Connection>();
  /** Interned subscription name sets: by hash, and by identity. */
  private readonly byHash = new Map<number, NameSet[]>();
  private readonly byNames = new Map<ReadonlySet<string>, NameSet>();

  constructor(
    private readonly limits: XdsLimits,
    /** Ends a stream over a limit. */
    private readonly overLimit: (c: Connection, key: keyof XdsLimits, value: number) => void,
  ) {}

  /**
   * Applies a subscription; false (the stream ended) when it would take the
   * stream over maxNamesPerStream. `extra`: names held for the stream beyond the
   * subscription (Delta's initial_resource_versions until the first response).
   * `names` becomes the shared set of every stream subscribing the same names
   * (the caller must not change it afterwards).
   */
  apply(c: Connection, st: TypeState, wildcard: boolean, names: ReadonlySet<string>, extra = 0): boolean {
    const total = c.names - st.names.size + names.size + extra;
    if (total > this.limits.maxNamesPerStream) {
      this.overLimit(c, 'maxNamesPerStream', total);
      return false;
    }
    c.names = total - extra;
    const before = this.byNames.get(st.names);
    // An interned set (a shared DeltaChange's) is found by identity; another is compared, then hashed.
    const after = this.byNames.get(names) ?? (before && sameNames(st.names, names) ? before : this.intern(names));
    if (after !== before) {
      after.refs++;
      if (st.typeUrl === EDS) {
        if (before) this.unwatch(before, c);
        if (after.eds.size === 0) for (const n of after.names) (this.edsIndex.get(n) ?? this.edsIndex.set(n, new Set()).get(n)!).add(after);
        after.eds.add(c);
      }
      if (before) this.unref(before);
    }
    if (st.typeUrl === EDS) {
      if (wildcard) this.edsWildcard.add(c);
      else this.edsWildcard.delete(c);
    }
    st.wildcard = wildcard;
    st.names = after.names;
    return true;
  }

  /**
   * A Delta request's subscription change to the stream's subscription, made
   * once per subscription and request (DeltaChange) and shared by every stream
   * that makes it. Apply it with `applyChange`.
   */
  deltaChange(st: TypeState, sub: readonly string[], unsub: readonly string[]): DeltaChange {
    const ns = this.byNames.get(st.names);
    const key = `${st.wildcard ? '*' : ''}\u0001${sub.join('\u0000')}\u0001${unsub.join('\u0000')}`;
    const known = ns?.changes?.get(key);
    if (known) return known;
    const change = computeDeltaChange(st.names, st.wildcard, sub, unsub);
    if (ns) {
      ns.changes ??= new Map();
      if (ns.changes.size >= CHANGES_PER_SET) ns.changes.clear();
      ns.changes.set(key, change);
    }
    return change;
  }

  /** Applies a DeltaChange (as `apply`); the change then holds the interned set, so the next stream making it finds it by identity. */
  applyChange(c: Connection, st: TypeState, change: DeltaChange): boolean {
    if (!this.apply(c, st, change.wildcard, change.names)) return false;
    change.names = st.names;
    return true;
  }

  /** The streams an endpoint change of these names concerns: EDS wildcard watchers and watchers of a name. */
  edsWatchers(names: ReadonlySet<string>): Set<Connection> {
    const touched = new Set<Connection>(this.edsWildcard);
    const sets = new Set<NameSet>();
    for (const n of names) for (const ns of this.edsIndex.get(n) ?? []) sets.add(ns);
    for (const ns of sets) for (const c of ns.eds) touched.add(c);
    return touched;
  }

  /** Drops an ended stream from the EDS index and its name sets. */
  release(c: Connection): void {
    for (const st of c.types.values()) {
      const ns = this.byNames.get(st.names);
      if (!ns) continue;
      if (st.typeUrl === EDS) this.unwatch(ns, c);
      this.unref(ns);
      st.names = NO_NAMES;
    }
    this.edsWildcard.delete(c);
  }

  /** Names with at least one EDS watcher (bookkeeping). */
  get indexedNames(): number {
    return this.edsIndex.size;
  }

  get wildcardWatchers(): number {
    return this.edsWildcard.size;
  }

  /** Distinct subscription name sets held by streams, and their names (bookkeeping: what sharing saves). */
  get nameSets(): { sets: number; names: number } {
    let names = 0;
    for (const ns of this.byNames.values()) names += ns.names.size;
    return { sets: this.byNames.size, names };
  }

  /** The shared set equal to NAMES (refs not yet taken). */
  private intern(names: ReadonlySet<string>): NameSet {
    const hash = setHash(names);
    const bucket = this.byHash.get(hash);
    for (const ns of bucket ?? []) if (sameNames(ns.names, names)) return ns;
    const ns: NameSet = { names, hash, refs: 0, eds: new Set() };
    if (bucket) bucket.push(ns);
    else this.byHash.set(hash, [ns]);
    this.byNames.set(names, ns);
    return ns;
  }

  private unref(ns: NameSet): void {
    if (--ns.refs > 0) return;
    this.byNames.delete(ns.names);
    const bucket = this.byHash.get(ns.hash)!;
    bucket.splice(bucket.indexOf(ns), 1);
    if (bucket.length === 0) this.byHash.delete(ns.hash);
  }

  private unwatch(ns: NameSet, c: Connection): void {
    if (!ns.eds.delete(c) || ns.eds.size > 0) return;
    for (const n of ns.names) {
      const sets = this.edsIndex.get(n);
      if (!sets) continue;
      sets.delete(ns);
      if (sets.size === 0) this.edsIndex.delete(n); // no empty entry left behind for a name nobody watches
    }
  }
}

/**
 * A Delta request's subscribe and unsubscribe lists over a subscription:
 * unsubscribe first, then subscribe (istiod applies them the other way round;
 * xDS does not allow one name in both lists, so only a client that breaks
 * that sees the difference).
 */
function computeDeltaChange(before: ReadonlySet<string>, wasWildcard: boolean, sub: readonly string[], unsub: readonly string[]): DeltaChange {
  let wildcard = wasWildcard;
  const names = new Set(before);
  const gone: string[] = [];
  for (const n of unsub) {
    if (n === '*') wildcard = false;
    else {
      names.delete(n);
      if (!wildcard) gone.push(n);
    }
  }
  let due = false;
  const added = new Set<string>();
  for (const n of sub) {
    if (n === '*') {
      if (!wildcard) due = true;
      wildcard = true;
    } else if (!names.has(n)) {
      names.add(n);
      added.add(n);
      due = true;
    }
  }
  // A wildcard subscription is answered whole.
  return { wildcard, names, gone, due, ...(due && !wildcard ? { added } : {}) };
}

export function sameNames(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}
