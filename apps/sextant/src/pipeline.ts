import type { Logger, ObjectKey } from '@sextant/api';

/**
 * Debounces config changes into pushes, as istiod does: a burst of changes
 * becomes one PushContext rebuild once the config has been quiet for
 * `debounceAfterMs`, or at the latest `debounceMaxMs` after the first change.
 * Endpoint-only changes take the same path but end in an EDS-only push.
 *
 * Generic over the context type so the wiring stays testable without the
 * whole translation stack.
 */
export interface PushPipelineOptions<Ctx extends { version: string }, Scope> {
  /** Builds a new immutable context from the current store contents. */
  build(version: string): Ctx;
  /** What the change between two contexts touches. */
  scope(previous: Ctx | undefined, next: Ctx, changed: ObjectKey[]): Scope;
  /** Sends the push (the xDS server's push, in the daemon). */
  push(next: Ctx, scope: Scope | undefined, changed: ObjectKey[]): void;
  /**
   * The endpoint path: services whose endpoints changed in place (the
   * endpoint index, `namespace/hostname` keys), and addresses of workloads
   * whose own view changed. No context is built for these.
   */
  pushEndpoints?(current: Ctx, services: ReadonlySet<string>, proxyAddresses: ReadonlySet<string>): void;
  debounceAfterMs: number;
  debounceMaxMs: number;
  log: Logger;
  onBuilt?(ctx: Ctx, seconds: number): void;
}

export class PushPipeline<Ctx extends { version: string }, Scope> {
  private current: Ctx | undefined;
  private pendingKeys: ObjectKey[] = [];
  private pendingServices = new Set<string>();
  private pendingAddresses = new Set<string>();
  private batchStart = 0;
  private quietTimer: NodeJS.Timeout | undefined;
  private maxTimer: NodeJS.Timeout | undefined;
  private counter = 0;
  private stopped = false;

  constructor(private readonly opts: PushPipelineOptions<Ctx, Scope>) {}

  get context(): Ctx | undefined {
    return this.current;
  }

  /** When the first change of the batch being (or last) pushed arrived (ms since epoch; 0 before any change). */
  get firstChangeAt(): number {
    return this.batchStart;
  }

  /** Builds the first context and pushes it in full (call once every source has synced). */
  initialize(): Ctx {
    // The first build reads the whole store, so what the sources recorded while
    // syncing is in it already. Left pending, those keys would make the first
    // real change after start look like a change to everything (and a stale
    // firstChangeAt would skip its debounce).
    this.pendingKeys = [];
    this.pendingServices = new Set();
    this.pendingAddresses = new Set();
    this.current = this.rebuild([]);
    this.opts.push(this.current, undefined, []);
    return this.current;
  }

  private get idle(): boolean {
    return this.pendingKeys.length === 0 && this.pendingServices.size === 0 && this.pendingAddresses.size === 0;
  }

  /** Records changed objects; a rebuild follows after the debounce. */
  changed(keys: ObjectKey[]): void {
    if (this.stopped || keys.length === 0) return;
    if (this.idle) this.batchStart = Date.now();
    this.pendingKeys.push(...keys);
    if (!this.current) return; // not initialized: the first build will see these
    this.arm();
  }

  /**
   * Records endpoint changes already applied in place (the endpoint index):
   * after the same debounce they are pushed without building a context,
   * unless a config change in the same batch rebuilds it anyway.
   */
  endpointsChanged(services: Iterable<string>, proxyAddresses: Iterable<string> = []): void {
    if (this.stopped || !this.current) return; // not initialized: the first build reads the index
    const wasIdle = this.idle;
    for (const s of services) this.pendingServices.add(s);
    for (const a of proxyAddresses) this.pendingAddresses.add(a);
    if (this.idle) return;
    if (wasIdle) this.batchStart = Date.now();
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.flush(), this.opts.debounceAfterMs);
    if (!this.maxTimer) {
      this.maxTimer = setTimeout(() => this.flush(), Math.max(0, this.opts.debounceMaxMs - (Date.now() - this.batchStart)));
    }
  }

  /** Rebuilds now with everything pending. */
  flush(): void {
    clearTimeout(this.quietTimer);
    clearTimeout(this.maxTimer);
    this.quietTimer = this.maxTimer = undefined;
    if (this.stopped || !this.current) return;
    if (this.pendingKeys.length === 0) {
      const services = this.pendingServices;
      const addresses = this.pendingAddresses;
      this.pendingServices = new Set();
      this.pendingAddresses = new Set();
      if (services.size > 0 || addresses.size > 0) this.opts.pushEndpoints?.(this.current, services, addresses);
      return;
    }
    // A rebuild's full push carries the endpoint changes too.
    this.pendingServices = new Set();
    this.pendingAddresses = new Set();
    const changed = this.pendingKeys;
    this.pendingKeys = [];
    const previous = this.current;
    let next: Ctx;
    try {
      next = this.rebuild(changed);
    } catch (err) {
      // Never lose the last good context because a build failed: keep serving it.
      this.opts.log.error({ err: (err as Error).stack ?? String(err), changed: changed.length }, 'push context build failed; still serving the previous config');
      return;
    }
    this.current = next;
    let scope: Scope;
    try {
      scope = this.opts.scope(previous, next, changed);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'push scope failed; pushing everything');
      scope = undefined as Scope;
    }
    this.opts.push(next, scope, changed);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.quietTimer);
    clearTimeout(this.maxTimer);
  }

  private rebuild(changed: ObjectKey[]): Ctx {
    const started = process.hrtime.bigint();
    const version = `${new Date().toISOString()}/${++this.counter}`;
    const ctx = this.opts.build(version);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.opts.onBuilt?.(ctx, seconds);
    this.opts.log.info({ version, changed: changed.length, seconds: Number(seconds.toFixed(4)) }, 'push context built');
    return ctx;
  }
}
