/**
 * Read-only views of the server for debug output and tests: every stream's
 * subscriptions and ACK state (`/debug/syncz`, `/debug/connections`), what one
 * stream was last sent (config dumps), and counts of what the server keeps
 * across streams (a stream's state must be released when it ends).
 */
import { splitNodeId } from '@sextant/api';
import type { ConnectionStatus, StreamState, TypeStatus } from '../types.js';
import type { Admission } from './admission.js';
import type { Connection } from './stream.js';
import type { Subscriptions } from './subscriptions.js';

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
  /**
   * Distinct subscription name sets and their names (streams subscribing the
   * same names share one), and distinct maps of what streams have been sent
   * and their entries (streams that have the same resources share one): with
   * `names`, what per-stream state costs and what sharing saves.
   */
  nameSets: number;
  nameSetNames: number;
  sentMaps: number;
  sentEntries: number;
}

const iso = (ms: number | undefined) => (ms !== undefined ? new Date(ms).toISOString() : undefined);

export function connectionStatuses(conns: Iterable<Connection>): ConnectionStatus[] {
  const out: ConnectionStatus[] = [];
  for (const c of conns) {
    const types: TypeStatus[] = [];
    for (const st of c.types.values()) {
      const resources: Record<string, string> = {};
      if (c.delta) for (const [n, v] of st.known()) resources[n] = v;
      else for (const [n, r] of st.sent) resources[n] = r.version;
      types.push({
        typeUrl: st.typeUrl,
        wildcard: st.wildcard,
        names: [...st.names].sort(),
        versionSent: st.versionSent,
        nonceSent: st.nonceSent,
        sentAt: iso(st.sentAt),
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
 * What was last sent to one stream: by connection ID, node ID, or
 * `<pod>.<namespace>` (the third part of a sidecar node ID, as istiod's
 * config_dump accepts); the newest stream when several match.
 */
export function streamState(conns: ReadonlyMap<string, Connection>, id: string): StreamState | undefined {
  const c = findStream(conns, id);
  if (!c?.proxy) return undefined;
  return {
    connectionId: c.id,
    proxy: c.proxy,
    delta: c.delta,
    types: [...c.types.values()].map((st) => ({
      typeUrl: st.typeUrl,
      versionSent: st.versionSent,
      versionAcked: st.versionAcked,
      sentAt: iso(st.sentAt),
      lastNack: st.lastNack,
      resources: [...st.sent.values()],
    })),
  };
}

function findStream(conns: ReadonlyMap<string, Connection>, id: string): Connection | undefined {
  const byConn = conns.get(id);
  if (byConn) return byConn;
  let exact: Connection | undefined;
  let podNs: Connection | undefined;
  for (const c of conns.values()) {
    if (!c.proxy) continue;
    if (c.proxy.id === id) exact = c;
    else if (splitNodeId(c.proxy.id)?.id === id) podNs = c;
  }
  return exact ?? podNs;
}

export function bookkeeping(conns: ReadonlyMap<string, Connection>, admission: Admission, subs: Subscriptions): ServerBookkeeping {
  let pendingBytes = 0;
  let bufferedBytes = 0;
  let names = 0;
  let unknownTypes = 0;
  const sent = new Set<ReadonlyMap<string, unknown>>();
  let sentEntries = 0;
  for (const c of conns.values()) {
    for (const st of c.types.values()) {
      if (st.sent.size === 0 || sent.has(st.sent)) continue;
      sent.add(st.sent);
      sentEntries += st.sent.size;
    }
    pendingBytes += c.pendingBytes;
    bufferedBytes += c.bufferedBytes;
    names += c.names;
    unknownTypes += c.unknown.size;
  }
  return {
    streams: conns.size,
    ...admission.sizes(),
    edsIndexNames: subs.indexedNames,
    edsWildcard: subs.wildcardWatchers,
    names,
    unknownTypes,
    pendingBytes,
    bufferedBytes,
    nameSets: subs.nameSets.sets,
    nameSetNames: subs.nameSets.names,
    sentMaps: sent.size,
    sentEntries,
  };
}
