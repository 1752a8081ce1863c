import type { Logger } from '@sextant/api';
import { shortTypeName, type EncodedResource } from '@sextant/envoy';
import type { DiscoveryHooks, NackRecord, XdsProxy } from './types.js';

/** A config object, as the attribution callback names it. */
export interface RejectedObjectRef {
  kind: string;
  namespace: string;
  name: string;
}

/** One open rejection: a proxy NACKed these resources of one type, built from these objects. */
export interface Rejection {
  proxyId: string;
  connectionId: string;
  typeUrl: string;
  /** The version the proxy reported with its NACK (SotW: the last version it accepted). */
  version: string;
  /** The resources blamed: the ones the rejected response changed, narrowed to those Envoy's error names. */
  resources: string[];
  objects: RejectedObjectRef[];
  /** Envoy's error_detail.message. */
  message: string;
  at: string;
}

export interface RejectionTrackerOptions {
  /** The config objects these resources were built from (read at NACK time only). */
  attribute(proxy: XdsProxy, typeUrl: string, rejected: readonly EncodedResource[], errorDetail: string, accepted: ReadonlyMap<string, EncodedResource> | undefined): RejectedObjectRef[];
  /**
   * Objects whose rejection state changed: the text to show on each (undefined
   * once no proxy rejects anything built from it). Called at most once per
   * `minIntervalMs` with everything that changed since.
   */
  onChange?(changes: Array<{ object: RejectedObjectRef; message: string | undefined }>): void;
  /** Default 2000. */
  minIntervalMs?: number;
  log: Logger;
}

const refKey = (r: RejectedObjectRef) => `${r.kind}/${r.namespace}/${r.name}`;
const MAX_MESSAGE = 1024;
/** Resources traced per NACK: decoding is the cost, and a push that changed thousands of clusters must not stall the loop. */
const MAX_TRACED = 64;

/**
 * Traces NACKs back to the config objects behind the rejected resources, and
 * clears them when the proxy ACKs a later version of that type (or goes
 * away). Only the last ACKed set per stream and type is kept (a reference to
 * the server's own map, no copy), so an ACK costs a Map set; all the work
 * happens on a NACK, which is rare.
 */
export class RejectionTracker implements Pick<DiscoveryHooks, 'acked' | 'nacked' | 'disconnected'> {
  /** connectionId → typeUrl → what the proxy last ACKed. */
  private readonly acks = new Map<string, Map<string, ReadonlyMap<string, EncodedResource>>>();
  /** connectionId → typeUrl → open rejection. */
  private readonly open = new Map<string, Map<string, Rejection>>();
  /** Object key → the object, for objects whose text may have changed since the last flush. */
  private dirty = new Map<string, RejectedObjectRef>();
  /** Object key → the text last reported. */
  private readonly reported = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private lastFlush = 0;
  private stopped = false;
  private readonly minIntervalMs: number;

  constructor(private readonly opts: RejectionTrackerOptions) {
    this.minIntervalMs = opts.minIntervalMs ?? 2000;
  }

  acked(proxy: XdsProxy, typeUrl: string, _version: string, sent: ReadonlyMap<string, EncodedResource>): void {
    let byType = this.acks.get(proxy.connectionId);
    if (!byType) this.acks.set(proxy.connectionId, (byType = new Map()));
    byType.set(typeUrl, sent);
    const open = this.open.get(proxy.connectionId);
    const r = open?.get(typeUrl);
    if (!r) return;
    open!.delete(typeUrl);
    if (open!.size === 0) this.open.delete(proxy.connectionId);
    this.touch(r.objects);
  }

  nacked(proxy: XdsProxy, nack: NackRecord & { typeUrl: string; sent: ReadonlyMap<string, EncodedResource> }): void {
    const before = this.acks.get(proxy.connectionId)?.get(nack.typeUrl);
    // What the rejected response changed: Envoy had accepted everything else.
    let blamed = [...nack.sent.values()].filter((r) => before?.get(r.name)?.version !== r.version);
    if (blamed.length === 0) blamed = [...nack.sent.values()];
    // Envoy names the failing resource in many errors ("Error adding/updating listener(s) 0.0.0.0_9080: ...").
    const named = blamed.filter((r) => mentions(nack.message, r.name));
    if (named.length > 0) blamed = named;
    let objects: RejectedObjectRef[] = [];
    try {
      const seen = new Set<string>();
      objects = this.opts.attribute(proxy, nack.typeUrl, blamed.length > MAX_TRACED ? blamed.slice(0, MAX_TRACED) : blamed, nack.message, before).filter((o) => !seen.has(refKey(o)) && seen.add(refKey(o)));
    } catch (err) {
      this.opts.log.error({ proxy: proxy.id, typeUrl: nack.typeUrl, err: (err as Error).message }, 'could not trace a NACK to config objects');
    }
    const r: Rejection = {
      proxyId: proxy.id,
      connectionId: proxy.connectionId,
      typeUrl: nack.typeUrl,
      version: nack.version,
      resources: blamed.map((x) => x.name).sort(),
      objects,
      message: summarize(nack.message),
      at: nack.at,
    };
    let byType = this.open.get(proxy.connectionId);
    if (!byType) this.open.set(proxy.connectionId, (byType = new Map()));
    const prev = byType.get(nack.typeUrl);
    byType.set(nack.typeUrl, r);
    if (prev) this.touch(prev.objects);
    this.touch(objects);
    this.opts.log.warn(
      { proxy: proxy.id, typeUrl: nack.typeUrl, version: nack.version, resources: r.resources, objects: objects.map(refKey), error: r.message },
      `proxy rejected ${shortTypeName[nack.typeUrl] ?? nack.typeUrl} built from ${objects.length ? objects.map(refKey).join(', ') : 'no known config object'}`,
    );
  }

  disconnected(proxy: XdsProxy): void {
    this.acks.delete(proxy.connectionId);
    const open = this.open.get(proxy.connectionId);
    if (!open) return;
    this.open.delete(proxy.connectionId);
    for (const r of open.values()) this.touch(r.objects);
  }

  /** Every open rejection, newest first. */
  list(): Rejection[] {
    const out: Rejection[] = [];
    for (const byType of this.open.values()) out.push(...byType.values());
    return out.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  }

  /** The open rejections that blame one object. */
  forObject(ref: RejectedObjectRef): Rejection[] {
    const key = refKey(ref);
    return this.list().filter((r) => r.objects.some((o) => refKey(o) === key));
  }

  /** Reports everything changed now (tests, shutdown). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lastFlush = Date.now();
    if (this.dirty.size === 0 || !this.opts.onChange) {
      this.dirty.clear();
      return;
    }
    const dirty = this.dirty;
    this.dirty = new Map();
    const changes: Array<{ object: RejectedObjectRef; message: string | undefined }> = [];
    for (const [key, object] of dirty) {
      const text = describe(this.forObject(object));
      if ((this.reported.get(key) ?? undefined) === text) continue;
      if (text === undefined) this.reported.delete(key);
      else this.reported.set(key, text);
      changes.push({ object, message: text });
    }
    if (changes.length === 0) return;
    try {
      this.opts.onChange(changes);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'rejection report failed');
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private touch(objects: readonly RejectedObjectRef[]): void {
    if (objects.length === 0) return;
    for (const o of objects) this.dirty.set(refKey(o), o);
    if (this.timer || this.stopped || !this.opts.onChange) return;
    const wait = Math.max(0, this.lastFlush + this.minIntervalMs - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
    this.timer.unref();
  }
}

/** Whether Envoy's message names a resource (as a whole token: `9080` is not in `"19080"`). */
function mentions(message: string, name: string): boolean {
  let i = message.indexOf(name);
  while (i >= 0) {
    const before = i === 0 ? '' : message[i - 1]!;
    const after = message[i + name.length] ?? '';
    if (!/[A-Za-z0-9_.|-]/.test(before) && !/[A-Za-z0-9_.|-]/.test(after)) return true;
    i = message.indexOf(name, i + 1);
  }
  return false;
}

/**
 * Envoy's error_detail, readable: the validation reason when it is there
 * (Envoy puts a dump of the resource first and truncates at 4 KiB, so it
 * often is not), else the start, bounded.
 */
export function summarize(message: string): string {
  const at = message.indexOf('Proto constraint validation failed');
  const text = at >= 0 ? message.slice(at) : message;
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
}

/** The status text for an object: the newest rejection, and how many proxies reject something built from it. */
export function describe(rs: readonly Rejection[]): string | undefined {
  const newest = rs[0];
  if (!newest) return undefined;
  const proxies = new Set(rs.map((r) => r.proxyId));
  const more = proxies.size > 1 ? ` and ${proxies.size - 1} more` : '';
  const type = shortTypeName[newest.typeUrl]?.toUpperCase() ?? newest.typeUrl;
  return `Envoy rejected ${type} ${newest.resources.join(', ')} built from this object (proxy ${newest.proxyId}${more}): ${newest.message}`;
}
