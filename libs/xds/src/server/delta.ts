/**
 * Incremental (Delta) ADS: reading a `DeltaDiscoveryRequest` (initial request
 * with initial_resource_versions, ACK, NACK, stale nonce, subscribe and
 * unsubscribe diffs, wildcard on and off) and writing
 * `DeltaDiscoveryResponse`s that carry only what differs from what the client
 * has (`TypeState.known`), plus the names it must remove. Each resource's
 * `Resource` message is encoded once and shared (FrameCache).
 */
import type { DeltaDiscoveryRequest, EncodedResource } from '@sextant/envoy';
import { layeredChanges } from '../cache/layered-map.js';
import type { PushRequest } from '../types.js';
import type { IncrementalShare, SharedFrame } from './shared-frames.js';
import type { ProtocolDeps } from './sotw.js';
import type { Connection } from './stream.js';
import { TypeState, legacyWildcardTypes } from './subscriptions.js';

export class DeltaProtocol {
  constructor(private readonly d: ProtocolDeps) {}

  /** A request whose type URL has a generator. */
  onRequest(c: Connection, req: DeltaDiscoveryRequest): void {
    const { acks, subs } = this.d;
    const typeUrl = req.typeUrl;
    let st = c.types.get(typeUrl);
    const sub = req.resourceNamesSubscribe;
    const unsub = req.resourceNamesUnsubscribe;
    if (!st) {
      st = new TypeState(typeUrl);
      const wildcard = sub.includes('*') || (sub.length === 0 && legacyWildcardTypes.has(typeUrl));
      const initial = Object.entries(req.initialResourceVersions);
      // initial_resource_versions is kept until the first response prunes it: it counts towards the stream's names.
      if (!subs.apply(c, st, wildcard, new Set(sub.filter((n) => n !== '*')), initial.length)) return;
      c.types.set(typeUrl, st);
      c.order = undefined;
      // On reconnect the client says what it has; only what differs is sent.
      if (initial.length) st.declared = new Map(initial);
      c.log.debug({ typeUrl, names: st.names.size, wildcard, initial: initial.length }, 'ADS delta subscribe');
      this.d.requestResponse(c, typeUrl);
      return;
    }
    if (req.responseNonce !== '') {
      if (req.responseNonce !== st.nonceSent) acks.stale(c, typeUrl, req.responseNonce, st.nonceSent);
      else if (req.errorDetail) acks.nack(c, st, st.versionSent ?? '', req.responseNonce, req.errorDetail.code, req.errorDetail.message);
      else acks.ack(c, st, st.versionSent, req.responseNonce);
    }
    // Subscription changes are diffs: they apply whatever the nonce.
    if (sub.length === 0 && unsub.length === 0) return;
    const wasWildcard = st.wildcard;
    const change = subs.deltaChange(st, sub, unsub);
    if (!subs.applyChange(c, st, change)) return;
    st.forget(change.gone);
    // Leaving wildcard: forget what is no longer subscribed.
    if (!change.wildcard && wasWildcard) st.forget([...st.known()].map(([n]) => n).filter((n) => !change.names.has(n)));
    if (change.due) this.d.requestResponse(c, typeUrl, change.added);
  }

  /**
   * Sends what differs between `out` and what the client has: changed or new
   * resources, and removals. `only` limits both to those names (incremental
   * EDS, newly subscribed names); `forced` answers a first wildcard request
   * even when it is empty (never with `only`). What the client then has is
   * recorded as `out` itself whenever the two are equal (the usual case: a
   * wildcard type, or EDS/RDS names that are all in `out`), so the streams of
   * a class share one map instead of a copy each.
   */
  respond(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, only: ReadonlySet<string> | undefined, forced: boolean): void {
    // Two paths: an endpoint change runs only the named one, so what V8 learnt of it is not undone by full pushes (or the reverse).
    if (only) this.respondNamed(c, st, out, req, only);
    else this.respondAll(c, st, out, req, forced);
  }

  /** Everything in `out` against what the client has (a full push, a request for the whole type). */
  private respondAll(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, forced: boolean): void {
    const all = this.answersAll(st);
    // What the client has and the new output are views of the same layer units: only names some unit changed can differ.
    const layered = all && !st.declared ? layeredChanges(st.sent, out) : undefined;
    // Otherwise a full push walks everything: once for the streams that had the same and watch the same (a class).
    const walk = !layered && !st.declared ? fullWalk(out, st.sent, all ? undefined : st.names) : undefined;
    const diff = walk ? (walk.diff ??= diffOf(st, out, undefined, layered, all)) : diffOf(st, out, undefined, layered, all);
    const toSend = diff.toSend;
    const removed = this.neverRemoves(st) ? [] : diff.removed;
    if (toSend.length === 0 && removed.length === 0 && !(forced && !st.answered && all)) return;
    const { frames } = this.d;
    // Everything in the output (a class's first response): one frame for the streams that get it.
    const whole = removed.length === 0 && toSend.length > 0 && toSend.length === out.size;
    let f = whole ? frames.deltaWhole(out, st.typeUrl, req.version, toSend, st.lastSeq) : undefined;
    // A full push's changes, the same for streams that had the same and see the same: one frame for them too.
    if (!f && !whole && !st.declared) f = frames.deltaDiff(out, st.sent, st.wildcard ? undefined : st.names, st.typeUrl, req.version, toSend, removed, st.lastSeq);
    const nonce = this.write(c, st, out, req, f, whole, toSend, removed);
    st.recordSent(walk ? (walk.after ??= this.after(st, out, undefined, undefined, all, toSend, removed)) : this.after(st, out, undefined, undefined, all, toSend, removed), nonce, req.version);
  }

  /** Only the names in `only` (changed endpoints, newly subscribed names): the others are as the client has them. */
  private respondNamed(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, only: ReadonlySet<string>): void {
    const all = this.answersAll(st);
    const diff = diffOf(st, out, only, undefined, all);
    const toSend = diff.toSend;
    const removed = this.neverRemoves(st) ? [] : diff.removed;
    if (toSend.length === 0 && removed.length === 0) return;
    const { frames } = this.d;
    // What streams with the same output and names share.
    const share = !st.declared && removed.length === 0 ? frames.incrementalShare(req.version, out, only, st.typeUrl) : undefined;
    const whole = removed.length === 0 && toSend.length > 0 && toSend.length === out.size;
    let f = whole ? frames.deltaWhole(out, st.typeUrl, req.version, toSend, st.lastSeq) : undefined;
    // The streams of the share sent the same resources get one frame.
    if (!f && !whole && share && toSend.length > 0) f = frames.deltaIncremental(share, toSend, st.typeUrl, req.version, st.lastSeq);
    const nonce = this.write(c, st, out, req, f, whole, toSend, removed);
    st.recordSent(this.after(st, out, only, share, all, toSend, removed), nonce, req.version);
  }

  private answersAll(st: TypeState): boolean {
    return st.wildcard || this.d.generators[st.typeUrl]?.answersQuery === true;
  }

  /** istiod's neverRemoveDelta (ECDS): nothing is sent as removed; unsubscribed names were forgotten on unsubscribe. */
  private neverRemoves(st: TypeState): boolean {
    return this.d.generators[st.typeUrl]?.neverRemoveDelta === true;
  }

  /** Writes the shared frame `f`, else a message of the stream's own (in parts when it is a layered output whole); returns its nonce. */
  private write(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, f: SharedFrame | undefined, whole: boolean, toSend: readonly EncodedResource[], removed: string[]): string {
    const { frames, writer } = this.d;
    if (f) {
      st.lastSeq = f.seq;
      writer.write(c, st, [f.frame]);
      return f.nonce;
    }
    const nonce = frames.nonce();
    const parts = whole ? frames.deltaLayeredWhole(out, st.typeUrl, nonce, req.version) : undefined;
    writer.write(c, st, parts ?? [frames.deltaMessage(st.typeUrl, nonce, req.version, toSend, removed)]);
    return nonce;
  }

  /** What the client has after this response: `out` itself when equal (shared), else the stream's own map. */
  private after(st: TypeState, out: ReadonlyMap<string, EncodedResource>, only: ReadonlySet<string> | undefined, share: IncrementalShare | undefined, all: boolean, toSend: readonly EncodedResource[], removed: readonly string[]): ReadonlyMap<string, EncodedResource> {
    const declared = st.declared;
    if (declared) {
      for (const n of removed) declared.delete(n);
      for (const r of toSend) declared.delete(r.name);
    }
    if (!only) {
      // Every name of `out` the stream wants is now sent or held at out's version, and nothing else is kept.
      let equal = all;
      if (!equal && st.names.size >= out.size) {
        equal = true;
        for (const n of out.keys()) {
          if (!st.names.has(n)) {
            equal = false;
            break;
          }
        }
      }
      if (equal && (!declared || declared.size === 0 || [...declared.keys()].every((n) => out.has(n)))) {
        st.declared = undefined; // declared versions equal to out's are out's resources
        return out;
      }
    } else if (share) {
      // Incremental EDS: streams that had the same map and are sent every changed resource share the result.
      // A named resource not sent (rebuilt unchanged: a subset whose endpoints stayed) is one the stream has at that version.
      if (toSend.length === share.list.length || share.list.every((r) => st.sent.get(r.name)?.version === r.version || toSend.includes(r))) {
        let merged = share.merged.get(st.sent);
        if (!merged) {
          // What the client had with the changed resources over it is usually `out` itself: checked before building a copy.
          if (mergedIsOut(st.sent, share.list, out)) merged = out;
          else {
            const m = new Map(st.sent);
            for (const r of share.list) m.set(r.name, r);
            merged = m;
          }
          share.merged.set(st.sent, merged);
        }
        return merged;
      }
    }
    const sent = new Map(st.sent);
    for (const n of removed) sent.delete(n);
    for (const r of toSend) sent.set(r.name, r);
    if (declared?.size === 0) st.declared = undefined;
    return sent;
  }
}

/**
 * What differs between `out` and what the client has: changed or new
 * resources to send, and names to remove; `only` limits both to those names,
 * `layered` to the names some layer unit changed.
 */
function diffOf(st: TypeState, out: ReadonlyMap<string, EncodedResource>, only: ReadonlySet<string> | undefined, layered: Iterable<string> | undefined, all: boolean): { toSend: EncodedResource[]; removed: string[] } {
  const wanted = (n: string) => all || st.names.has(n);
  const toSend: EncodedResource[] = [];
  if (layered) {
    for (const n of layered) {
      const r = out.get(n);
      if (r && st.knownVersion(n) !== r.version) toSend.push(r);
    }
  } else if (all && !only) {
    for (const r of out.values()) if (st.knownVersion(r.name) !== r.version) toSend.push(r);
  } else {
    for (const n of only ?? st.names) {
      if (!wanted(n)) continue;
      const r = out.get(n);
      if (r && st.knownVersion(n) !== r.version) toSend.push(r);
    }
  }
  const gone = (n: string) => !wanted(n) || !out.has(n);
  let removed: string[] = [];
  if (only) {
    // Incremental: only the changed names can be removed; looking them up spares walking all the client has, per stream.
    for (const n of only) if (st.knownVersion(n) !== undefined && gone(n)) removed.push(n);
    // In the order the client's names are held (as the full walk gives them), when there is an order to keep.
    if (removed.length > 1) {
      removed = [];
      for (const [n] of st.known()) if (only.has(n) && gone(n)) removed.push(n);
    }
  } else if (layered) {
    for (const n of layered) if (st.knownVersion(n) !== undefined && gone(n)) removed.push(n);
  } else {
    for (const [n] of st.known()) if (gone(n)) removed.push(n);
  }
  return { toSend, removed };
}

/**
 * A full push's diff for the streams that had `sent`, watch `names`
 * (undefined: every resource) and are given `out`, with no declared versions:
 * what to send and remove and what the stream then has follow from those
 * three alone, so the streams of a class work them out once (a DestinationRule
 * edit pushes EDS, ~9,000 names per stream, to every proxy). Held weakly by
 * the output and the sent map.
 */
interface FullWalk {
  diff?: { toSend: EncodedResource[]; removed: string[] };
  after?: ReadonlyMap<string, EncodedResource>;
}
const ALL_NAMES = Symbol('all names');
const fullWalks = new WeakMap<ReadonlyMap<string, EncodedResource>, WeakMap<ReadonlyMap<string, EncodedResource>, Map<ReadonlySet<string> | typeof ALL_NAMES, FullWalk>>>();
function fullWalk(out: ReadonlyMap<string, EncodedResource>, sent: ReadonlyMap<string, EncodedResource>, names: ReadonlySet<string> | undefined): FullWalk {
  let bySent = fullWalks.get(out);
  if (!bySent) fullWalks.set(out, (bySent = new WeakMap()));
  let byNames = bySent.get(sent);
  if (!byNames) bySent.set(sent, (byNames = new Map()));
  const key = names ?? ALL_NAMES;
  let w = byNames.get(key);
  if (!w) byNames.set(key, (w = {}));
  return w;
}

/** Whether `sent` with `list` set over it has exactly `out`'s names at `out`'s versions. */
function mergedIsOut(sent: ReadonlyMap<string, EncodedResource>, list: readonly EncodedResource[], out: ReadonlyMap<string, EncodedResource>): boolean {
  const over = new Map<string, string>();
  for (const r of list) over.set(r.name, r.version);
  let size = sent.size;
  for (const n of over.keys()) if (!sent.has(n)) size++;
  if (size !== out.size) return false;
  for (const [n, v] of over) if (out.get(n)?.version !== v) return false;
  for (const [n, r] of sent) if (!over.has(n) && out.get(n)?.version !== r.version) return false;
  return true;
}
