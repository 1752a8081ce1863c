import type { Logger } from '@sextant/api';
import { collectionPath, KubeApiError, type KubeClient, type KubeList, type KubeObject, type WatchEvent, type WatchHandle } from './client.js';

/** A change the informer observed; `old` is the previous raw object it held. */
export type RawChange =
  | { type: 'add'; object: KubeObject }
  | { type: 'update'; object: KubeObject; old: KubeObject }
  | { type: 'delete'; object: KubeObject };

export interface InformerTiming {
  /** First retry delay (ms); doubles per consecutive failure. */
  backoffInitialMs: number;
  /** Cap of the retry delay (ms). */
  backoffMaxMs: number;
  /** A watch that delivered nothing (not even a bookmark) for this long is restarted (ms). */
  stallTimeoutMs: number;
  /** Server-side watch timeout range (s): each watch asks for a random value in [min, max). */
  watchTimeoutSeconds: [number, number];
  /** Page size for lists. */
  pageSize: number;
}

export const defaultTiming: InformerTiming = {
  backoffInitialMs: 200,
  backoffMaxMs: 30_000,
  stallTimeoutMs: 5 * 60_000 + 30_000,
  watchTimeoutSeconds: [240, 300],
  pageSize: 500,
};

export interface InformerStatus {
  name: string;
  synced: boolean;
  running: boolean;
  resourceVersion: string;
  objects: number;
  lists: number;
  watches: number;
  restarts: number;
  stalls: number;
  relistsOnGone: number;
  lastError: string | undefined;
}

export interface InformerSpec {
  client: KubeClient;
  group: string;
  version: string;
  plural: string;
  /** Watch one namespace only (default: all). */
  namespace?: string | undefined;
  /** How the informer is named in logs and status (e.g. `VirtualService.networking.istio.io/v1`). */
  name: string;
  log: Logger;
  /** Restricts the informer, e.g. `{ fieldSelector: 'metadata.name=istio-ca-root-cert' }`. */
  selectors?: { fieldSelector?: string; labelSelector?: string } | undefined;
  timing?: Partial<InformerTiming> | undefined;
  /** Receives every batch of changes: a (re)list's diff at once, a watch event alone. */
  onChanges(changes: RawChange[]): void;
  /** Called after each successful list (the first one marks the informer synced). */
  onListed?: (() => void) | undefined;
}

function objKey(o: KubeObject): string {
  const m = o.metadata ?? {};
  return `${m.namespace ?? ''}/${m.name ?? ''}`;
}

/** managedFields are large and never read; dropping them halves the memory of a Pod. */
function trim(o: KubeObject): KubeObject {
  if (o.metadata && 'managedFields' in o.metadata) {
    const { managedFields: _drop, ...meta } = o.metadata;
    return { ...o, metadata: meta };
  }
  return o;
}

/**
 * One list+watch loop for one resource, supervised: any error or end of the
 * watch leads to a new watch from the last resourceVersion (after a backoff
 * with jitter when it failed); 410 Gone, or a failure to resume, leads to a
 * relist that is diffed against what the informer already holds, so only real
 * changes become events. A watchdog restarts a watch that has been silent for
 * `stallTimeoutMs` (bookmarks count as activity).
 */
export class SupervisedInformer {
  private readonly timing: InformerTiming;
  private readonly objects = new Map<string, KubeObject>();
  private rv = '';
  private stopped = true;
  private loop: Promise<void> | undefined;
  private current: WatchHandle | undefined;
  private listAbort: AbortController | undefined;
  private wake: (() => void) | undefined;
  private syncedOnce = false;
  /** Set when the current attempt delivered anything, so a later failure starts the backoff afresh. */
  private progressed = false;
  private syncWaiters: Array<() => void> = [];
  private readonly st: Omit<InformerStatus, 'name' | 'synced' | 'running' | 'resourceVersion' | 'objects'> = {
    lists: 0,
    watches: 0,
    restarts: 0,
    stalls: 0,
    relistsOnGone: 0,
    lastError: undefined,
  };

  constructor(private readonly spec: InformerSpec) {
    this.timing = { ...defaultTiming, ...spec.timing };
  }

  get name(): string {
    return this.spec.name;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Stops the loop and closes the watch; resolves when the loop has exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.abort();
    this.listAbort?.abort();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  hasSynced(): boolean {
    return this.syncedOnce;
  }

  whenSynced(): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  /** The raw objects currently held. */
  list(): KubeObject[] {
    return [...this.objects.values()];
  }

  /** Pre-populates the held state without events (a successor informer taking over another's objects). */
  seed(objects: KubeObject[]): void {
    for (const o of objects) this.objects.set(objKey(o), o);
  }

  /** Forgets every object, emitting deletes (the resource itself went away, e.g. its CRD was deleted). */
  clear(): void {
    const gone = [...this.objects.values()].map((object): RawChange => ({ type: 'delete', object }));
    this.objects.clear();
    this.rv = '';
    if (gone.length) this.spec.onChanges(gone);
  }

  /** Drops the current watch connection, as a network failure would (the supervisor resumes it). */
  dropConnection(): void {
    this.current?.abort();
  }

  status(): InformerStatus {
    return {
      name: this.spec.name,
      synced: this.syncedOnce,
      running: !this.stopped,
      resourceVersion: this.rv,
      objects: this.objects.size,
      ...this.st,
    };
  }

  private path(): string {
    return collectionPath(this.spec.group, this.spec.version, this.spec.plural, this.spec.namespace);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let healthy = false;
      this.progressed = false;
      try {
        if (!this.rv) await this.relist();
        healthy = await this.watchOnce();
        if (healthy) failures = 0;
      } catch (err) {
        if (this.stopped) break;
        const e = err as Error;
        if (e instanceof KubeApiError && e.statusCode === 410) {
          // Resource version too old (list continue token or watch start): relist now.
          this.rv = '';
          this.st.relistsOnGone++;
          this.spec.log.info({ informer: this.spec.name }, 'resource version expired (410 Gone); relisting');
          continue;
        }
        if (this.progressed) failures = 0;
        failures++;
        this.st.restarts++;
        this.st.lastError = e.message;
        const delay = this.backoff(failures);
        this.spec.log.warn({ informer: this.spec.name, err: e.message, retryInMs: Math.round(delay), failures }, 'informer failed; restarting');
        await this.sleep(delay);
      }
    }
  }

  private backoff(failures: number): number {
    const { backoffInitialMs, backoffMaxMs } = this.timing;
    const ceiling = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(failures - 1, 20));
    // "Equal jitter": half fixed, half random, so retries from many replicas spread out.
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async relist(): Promise<void> {
    const items: KubeObject[] = [];
    let cont: string | undefined;
    let rv = '';
    let pages = 0;
    this.listAbort = new AbortController();
    do {
      const list = await this.spec.client.request<KubeList>('GET', this.path(), {
        query: { ...this.spec.selectors, limit: this.timing.pageSize, continue: cont },
        signal: this.listAbort.signal,
      });
      for (const it of list.items ?? []) items.push(trim(it));
      cont = list.metadata?.continue || undefined;
      rv = list.metadata?.resourceVersion ?? '';
      if (++pages > 100_000) throw new Error('list did not terminate');
    } while (cont && !this.stopped);
    this.listAbort = undefined;
    if (this.stopped) return;
    this.st.lists++;
    this.replace(items);
    this.rv = rv;
    this.spec.onListed?.();
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      this.spec.log.info({ informer: this.spec.name, objects: items.length }, 'informer synced');
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  /** Replaces the held state with a fresh list, emitting only what differs. */
  private replace(items: KubeObject[]): void {
    const changes: RawChange[] = [];
    const seen = new Set<string>();
    for (const object of items) {
      const k = objKey(object);
      seen.add(k);
      const old = this.objects.get(k);
      if (!old) changes.push({ type: 'add', object });
      else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion || old.metadata?.uid !== object.metadata?.uid) {
        changes.push({ type: 'update', object, old });
      }
      this.objects.set(k, object);
    }
    for (const [k, object] of this.objects) {
      if (!seen.has(k)) {
        this.objects.delete(k);
        changes.push({ type: 'delete', object });
      }
    }
    if (changes.length) this.spec.onChanges(changes);
  }

  /**
   * Runs one watch until it ends. Returns true when it ended normally after
   * making progress (server timeout), false for a non-event; throws on errors
   * so that the loop backs off.
   */
  private async watchOnce(): Promise<boolean> {
    const [lo, hi] = this.timing.watchTimeoutSeconds;
    const timeoutSeconds = Math.floor(lo + Math.random() * Math.max(0, hi - lo));
    let lastActivity = Date.now();
    let stalled = false;
    let gone = false;
    let errorStatus: { code?: number; message?: string } | undefined;
    this.st.watches++;
    const handle = await this.spec.client.watch(
      this.path(),
      { ...this.spec.selectors, resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds },
      (ev: WatchEvent) => {
        lastActivity = Date.now();
        this.progressed = true;
        if (ev.type === 'ERROR') {
          const s = ev.object as { code?: number; message?: string };
          if (s.code === 410) gone = true;
          else errorStatus = s;
          handle?.abort();
          return;
        }
        const rv = ev.object?.metadata?.resourceVersion;
        if (ev.type !== 'BOOKMARK') this.apply(ev);
        if (rv) this.rv = rv;
      },
    );
    this.current = handle;
    if (this.stopped) handle.abort();
    const watchdogEvery = Math.max(50, Math.min(5_000, this.timing.stallTimeoutMs / 4));
    const watchdog = setInterval(() => {
      if (Date.now() - lastActivity > this.timing.stallTimeoutMs) {
        stalled = true;
        handle.abort();
      }
    }, watchdogEvery);
    const started = Date.now();
    let err: Error | undefined;
    try {
      err = await handle.done;
    } finally {
      clearInterval(watchdog);
      this.current = undefined;
    }
    if (this.stopped) return true;
    if (gone) throw new KubeApiError(410, 'Expired', `watch ${this.spec.name}: resource version ${this.rv} too old`);
    if (errorStatus) throw new Error(`watch ${this.spec.name}: error event ${errorStatus.code ?? ''} ${errorStatus.message ?? ''}`);
    if (stalled) {
      this.st.stalls++;
      this.spec.log.warn({ informer: this.spec.name, silentMs: Date.now() - lastActivity }, 'watch stalled; restarting it');
      throw new Error(`watch ${this.spec.name}: no events for ${this.timing.stallTimeoutMs} ms`);
    }
    if (err && err.message !== 'aborted') throw err;
    if (err) throw new Error(`watch ${this.spec.name}: connection dropped`);
    // A clean close right away (e.g. an API server going down) counts as a failure so that we back off.
    if (Date.now() - started < 1_000 && lastActivity <= started) throw new Error(`watch ${this.spec.name}: closed immediately`);
    return true;
  }

  private apply(ev: WatchEvent): void {
    const object = trim(ev.object);
    const k = objKey(object);
    const old = this.objects.get(k);
    if (ev.type === 'DELETED') {
      if (old) {
        this.objects.delete(k);
        this.spec.onChanges([{ type: 'delete', object }]);
      }
      return;
    }
    this.objects.set(k, object);
    if (!old) this.spec.onChanges([{ type: 'add', object }]);
    else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion) this.spec.onChanges([{ type: 'update', object, old }]);
  }
}
