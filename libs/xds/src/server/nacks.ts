/**
 * What a client says about a response: ACK, NACK, or a stale nonce. An ACK
 * records the acknowledged version and tells the owner what the client now
 * has; a NACK is recorded against the stream and type (debug output, metrics)
 * and handed to the owner with what the rejected response held, so it can be
 * traced to the config objects behind it. Nothing is re-sent because of a
 * NACK: the next change produces the next response. A stale nonce is counted
 * and ignored.
 */
import type { Connection } from './stream.js';
import type { TypeState } from './subscriptions.js';
import { short, type ServerStats } from './metrics.js';

export class AckTracker {
  constructor(private readonly stats: ServerStats) {}

  /** An ACK of the response with nonce `nonce` (version as the client sent it: SotW version_info, Delta the version sent). */
  ack(c: Connection, st: TypeState, version: string | undefined, nonce: string): void {
    st.versionAcked = version;
    st.nonceAcked = nonce;
    this.stats.hook('acked', c.proxy!, st.typeUrl, version ?? '', st.sent);
  }

  nack(c: Connection, st: TypeState, version: string, nonce: string, code: number, message: string): void {
    st.nacks++;
    const rec = { version, nonce, code, message, at: new Date().toISOString() };
    st.lastNack = rec;
    const m = this.stats.m;
    m.nacks++;
    const s = short(st.typeUrl);
    m.nacksByType[s] = (m.nacksByType[s] ?? 0) + 1;
    c.log.warn({ typeUrl: st.typeUrl, version, nonce, error: message }, `ADS NACK: proxy rejected ${s} version ${version}`);
    this.stats.hook('nacked', c.proxy!, { ...rec, typeUrl: st.typeUrl, sent: st.sent });
  }

  /** A request answering a response that is not the latest one sent: ignored. */
  stale(c: Connection, typeUrl: string, got: string, sent: string | undefined): void {
    this.stats.m.staleNonces++;
    c.log.debug({ typeUrl, nonce: got, nonceSent: sent }, 'ADS request with a stale nonce ignored');
  }
}
