/**
 * State of the World ADS: reading a `DiscoveryRequest` (initial request or
 * reconnect, ACK, NACK, stale nonce, changed names, a repeated request) and
 * writing `DiscoveryResponse`s. A response holds every subscribed resource, so
 * streams with the same generator output share one frame; an incremental (EDS)
 * push sends only the changed resources a stream watches, shared the same way.
 */
import type { DiscoveryRequest, EncodedResource } from '@sextant/envoy';
import type { PushRequest, ResourceGenerator } from '../types.js';
import type { AckTracker } from './nacks.js';
import { incrementalKey, type FrameCache } from './shared-frames.js';
import type { Connection, StreamWriter } from './stream.js';
import { TypeState, legacyWildcardTypes, sameNames, type Subscriptions } from './subscriptions.js';

export interface ProtocolDeps {
  generators: Record<string, ResourceGenerator>;
  subs: Subscriptions;
  acks: AckTracker;
  frames: FrameCache;
  writer: StreamWriter;
  /** Asks for a response of this type on the stream's next turn in the push queue; `names`: about these newly subscribed names only (Delta). */
  requestResponse(c: Connection, typeUrl: string, names?: ReadonlySet<string>): void;
}

export class SotwProtocol {
  constructor(private readonly d: ProtocolDeps) {}

  /** A request whose type URL has a generator. */
  onRequest(c: Connection, req: DiscoveryRequest): void {
    const { acks, subs } = this.d;
    const typeUrl = req.typeUrl;
    let st = c.types.get(typeUrl);
    if (req.errorDetail) {
      if (!st || req.responseNonce !== st.nonceSent) return acks.stale(c, typeUrl, req.responseNonce, st?.nonceSent);
      acks.nack(c, st, req.versionInfo, req.responseNonce, req.errorDetail.code, req.errorDetail.message);
      return;
    }
    const wildcard = req.resourceNames.includes('*') || (req.resourceNames.length === 0 && legacyWildcardTypes.has(typeUrl) && (!st || st.wildcard));
    const names = new Set(req.resourceNames.filter((n) => n !== '*'));
    if (!st) {
      // Initial request (or a reconnect carrying an old version/nonce): answer it.
      st = new TypeState(typeUrl);
      if (!subs.apply(c, st, wildcard, names)) return;
      c.types.set(typeUrl, st);
      c.order = undefined;
      c.log.debug({ typeUrl, names: names.size, wildcard, version: req.versionInfo || undefined }, 'ADS subscribe');
      this.d.requestResponse(c, typeUrl);
      return;
    }
    if (req.responseNonce !== '' && req.responseNonce !== st.nonceSent) return acks.stale(c, typeUrl, req.responseNonce, st.nonceSent);
    if (req.responseNonce !== '') acks.ack(c, st, req.versionInfo, req.responseNonce);
    if (st.wildcard !== wildcard || !sameNames(st.names, names)) {
      if (!subs.apply(c, st, wildcard, names)) return;
      c.log.debug({ typeUrl, names: names.size, wildcard }, 'ADS resource names changed');
      this.d.requestResponse(c, typeUrl);
    } else if (req.responseNonce === '') {
      // A repeated request without a nonce (the client restarted the type): answer it.
      this.d.requestResponse(c, typeUrl);
    }
  }

  /**
   * Sends what the stream should have of `out`: when `only` is given, the
   * changed resources among those names (incremental EDS); else the whole
   * subscribed set, unless it is what the stream already has and `forced` is false.
   */
  respond(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, only: ReadonlySet<string> | undefined, forced: boolean): void {
    if (only) return this.respondIncremental(c, st, out, req, only);
    const { frames, writer } = this.d;
    let list: EncodedResource[];
    let whole: boolean;
    if (st.wildcard || this.d.generators[st.typeUrl]?.answersQuery) {
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
    if (whole) {
      const sf = frames.whole(out, st.typeUrl, req.version, list, st.lastSeq);
      frame = sf.frame;
      nonce = sf.nonce;
      st.lastSeq = sf.seq;
    } else {
      nonce = frames.nonce();
      frame = frames.sotwMessage(st.typeUrl, nonce, req.version, list);
    }
    writer.write(c, st, [frame]);
    st.recordSent(whole ? out : new Map(list.map((r) => [r.name, r])), nonce, req.version);
  }

  /** Incremental (EDS): only the changed resources this stream watches. */
  private respondIncremental(c: Connection, st: TypeState, out: ReadonlyMap<string, EncodedResource>, req: PushRequest, only: ReadonlySet<string>): void {
    const { frames, writer } = this.d;
    const share = frames.incrementalShare(req.version, out, only, st.typeUrl);
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
      if (!f || f.seq <= st.lastSeq) f = share.frame = frames.incremental(share.key, st.typeUrl, req.version, share.list, st.lastSeq);
      st.lastSeq = f.seq;
      writer.write(c, st, [f.frame]);
      let merged = share.merged.get(st.sent);
      if (!merged) {
        const m = new Map(st.sent);
        for (const r of share.list) m.set(r.name, r);
        share.merged.set(st.sent, (merged = m));
      }
      st.recordSent(merged, f.nonce, req.version);
      return;
    }
    const list: EncodedResource[] = [];
    for (const r of share.list) {
      if (!st.wildcard && !st.names.has(r.name)) continue;
      if (st.sent.get(r.name)?.version !== r.version) list.push(r);
    }
    if (list.length === 0) return;
    const f = frames.incremental(incrementalKey(st.typeUrl, list), st.typeUrl, req.version, list, st.lastSeq);
    st.lastSeq = f.seq;
    writer.write(c, st, [f.frame]);
    const merged = new Map(st.sent);
    for (const r of list) merged.set(r.name, r);
    st.recordSent(merged, f.nonce, req.version);
  }
}

function sameResources(list: readonly EncodedResource[], sent: ReadonlyMap<string, EncodedResource>): boolean {
  if (list.length !== sent.size) return false;
  for (const r of list) {
    const s = sent.get(r.name);
    if (!s || (s !== r && s.version !== r.version)) return false;
  }
  return true;
}
