/**
 * Incremental (Delta) ADS: reading a `DeltaDiscoveryRequest` (initial request
 * with initial_resource_versions, ACK, NACK, stale nonce, subscribe and
 * unsubscribe diffs, wildcard on and off) and writing
 * `DeltaDiscoveryResponse`s that carry only what differs from what the client
 * has (`TypeState.known`), plus the names it must remove. Each resource's
 * `Resource` message is encoded once and shared (FrameCache).
 */
import type { DeltaDiscoveryRequest, EncodedResource } from '@sextant/envoy';
import type { PushRequest } from '../types.js';
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
      for (const [n, v] of initial) st.known.set(n, v);
      c.log.debug({ typeUrl, names: st.names.size, wildcard, initial: st.known.size }, 'ADS delta subscribe');
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
    if (!subs.apply(c, st, wildcard, names)) return;
    if (added) this.d.requestResponse(c, typeUrl);
  }

  /**
   * Sends what differs between `out` and what the client has: changed or new
   * resources, and removals. `only` limits both to those names (incremental
   * EDS); `forced` answers a first wildcard request even when it is empty.
   */
  respond(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, only: ReadonlySet<string> | undefined, forced: boolean): void {
    const inScope = (n: string) => !only || only.has(n);
    const all = st.wildcard || this.d.generators[st.typeUrl]?.answersQuery === true;
    const wanted = (n: string) => all || st.names.has(n);
    const toSend: EncodedResource[] = [];
    if (all && !only) {
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
    const keep = this.d.generators[st.typeUrl]?.neverRemoveDelta === true;
    for (const n of st.known.keys()) if (inScope(n) && (!wanted(n) || !out.has(n))) removed.push(n);
    if (keep) {
      // Nothing is sent as removed; what the client unsubscribed from is simply forgotten.
      for (const n of removed) if (!wanted(n)) st.known.delete(n);
      removed.length = 0;
    }
    if (toSend.length === 0 && removed.length === 0 && !(forced && !st.answered && all)) return;
    const { frames, writer } = this.d;
    const nonce = frames.nonce();
    writer.write(c, st, frames.deltaMessage(st.typeUrl, nonce, req.version, toSend, removed), false);
    const sent = new Map(st.sent);
    for (const n of removed) {
      st.known.delete(n);
      sent.delete(n);
    }
    for (const r of toSend) {
      st.known.set(r.name, r.version);
      sent.set(r.name, r);
    }
    st.recordSent(sent, nonce, req.version);
  }
}
