import { keyString, type Logger, type ObjectKey } from '@sextant/api';
import type { PushRequest, XdsProxy } from '../types.js';

/**
 * What a change touches, as the mesh sees it (injected: libs/xds knows no
 * config kinds). The controller turns it into a PushRequest.
 */
export interface PushScope {
  /** A config push (true) or endpoints-only (false). */
  full: boolean;
  /** Endpoints-only: the clusters whose endpoints changed (empty: nothing to push). */
  edsClusters?: ReadonlySet<string> | undefined;
  /** Full: the xDS types the change can alter; undefined = every type. */
  types?: ReadonlySet<string> | undefined;
  /** Full: of those types, which resources the change can alter (absent for a type: all of it). */
  resources?: ReadonlyMap<string, (name: string) => boolean> | undefined;
  /** Which proxies depend on the change; undefined = every proxy. */
  affects?: ((proxy: XdsProxy) => boolean) | undefined;
}

export type EdsDebounce = 'leading' | 'true';

export interface PushControllerOptions<Ctx extends { version: string }> {
  /** Builds a new immutable context from the current config (the mesh's PushContext). */
  build(version: string, changed: readonly ObjectKey[]): Ctx;
  /** What the change between two contexts touches (the mesh decides; a throw means "everything"). */
  scope(previous: Ctx, next: Ctx, changed: readonly ObjectKey[]): PushScope;
  /**
   * Sends a push: the caches advance with `req` (dropping what it invalidates),
   * then the xDS server pushes it. `ctx` is the context it was built from.
   */
  push(req: PushRequest, ctx: Ctx): void;
  /**
   * The endpoint path: what endpoint changes applied in place since the last
   * push touch (`services` and `proxies` as `endpointsChanged` recorded them,
   * opaque here), as scopes: an endpoints-only one naming clusters, and a
   * full one for proxies whose own workload changed. No context is built.
   */
  endpointScopes?(current: Ctx, services: ReadonlySet<string>, proxies: ReadonlySet<string>): PushScope[];
  /** Quiet period before a batch of changes is pushed (Istio's PILOT_DEBOUNCE_AFTER). */
  debounceAfterMs: number;
  /** Longest a batch waits while changes keep coming (Istio's PILOT_DEBOUNCE_MAX). */
  debounceMaxMs: number;
  /**
   * How endpoint changes are debounced: `leading` (default) pushes one that
   * arrives after a quiet period at once, on the next event-loop turn, and
   * debounces those that follow it within `debounceAfterMs`; `true` waits for
   * the quiet period like a config change (istiod's PILOT_ENABLE_EDS_DEBOUNCE).
   */
  edsDebounce?: EdsDebounce;
  log: Logger;
  onBuilt?(ctx: Ctx, seconds: number): void;
}

/**
 * The push controller (Istio's debounce and push decision): a burst of config
 * changes becomes one context rebuild once the config has been quiet for
 * `debounceAfterMs`, or at the latest `debounceMaxMs` after the first change;
 * the mesh's scope then says whether the push is full or endpoints-only, which
 * types and resources it concerns and which proxies it reaches, and the
 * controller hands that on as one PushRequest.
 */
export class PushController<Ctx extends { version: string }> {
  private current: Ctx | undefined;
  private pendingKeys: ObjectKey[] = [];
  private pendingServices = new Set<string>();
  private pendingProxies = new Set<string>();
  private endpointPushes = 0;
  private batchStart = 0;
  private quietTimer: NodeJS.Timeout | undefined;
  private maxTimer: NodeJS.Timeout | undefined;
  private leadingFlush: NodeJS.Immediate | undefined;
  /** When the endpoint path last pushed (performance.now(); -Infinity before). */
  private lastEndpointPushAt = -Infinity;
  private counter = 0;
  private stopped = false;

  constructor(private readonly opts: PushControllerOptions<Ctx>) {}

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
    this.pendingProxies = new Set();
    this.batchStart = 0;
    this.current = this.rebuild([]);
    this.opts.push({ full: true, version: this.current.version, reason: ['initial'], start: Date.now() }, this.current);
    return this.current;
  }

  private get idle(): boolean {
    return this.pendingKeys.length === 0 && this.pendingServices.size === 0 && this.pendingProxies.size === 0;
  }

  /** Records changed objects; a rebuild follows after the debounce. */
  changed(keys: readonly ObjectKey[]): void {
    if (this.stopped || keys.length === 0) return;
    if (this.idle) this.batchStart = Date.now();
    this.pendingKeys.push(...keys);
    if (!this.current) return; // not initialized: the first build will see these
    this.arm();
  }

  /**
   * Records endpoint changes already applied in place (the mesh's endpoint
   * index): the services whose endpoints changed and the proxies whose own
   * workload did. After the same debounce they are pushed as `endpointScopes`
   * says, without building a context. When a config change in the same batch
   * rebuilds it, they are pushed at the new context after the config push,
   * unless that push already covered every type for every proxy.
   */
  endpointsChanged(services: Iterable<string>, proxies: Iterable<string> = []): void {
    if (this.stopped || !this.current) return; // not initialized: the first build reads them
    const wasIdle = this.idle;
    for (const s of services) this.pendingServices.add(s);
    for (const p of proxies) this.pendingProxies.add(p);
    if (this.idle) return;
    if (wasIdle) this.batchStart = Date.now();
    // Leading edge: an endpoint change after a quiet period is pushed at once (what arrives in the same
    // event-loop turn goes with it); one close behind a push is debounced, so a burst costs one extra push.
    if (wasIdle && this.opts.edsDebounce !== 'true' && performance.now() - this.lastEndpointPushAt >= this.opts.debounceAfterMs) {
      this.leadingFlush ??= setImmediate(() => {
        this.leadingFlush = undefined;
        // A config change arrived meanwhile: its debounce (armed by changed()) carries these too.
        if (this.pendingKeys.length === 0) this.flush();
      });
      return;
    }
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.flush(), this.opts.debounceAfterMs);
    if (!this.maxTimer) {
      this.maxTimer = setTimeout(() => {
        // Changes never went quiet for debounceAfterMs: say so (istiod logs its debounce too), with what kept coming.
        this.opts.log.info(
          { waitedMs: Date.now() - this.batchStart, configs: this.pendingKeys.length, kinds: [...new Set(this.pendingKeys.map((k) => k.kind))], services: this.pendingServices.size, workloads: this.pendingProxies.size },
          'push debounce reached its maximum: changes kept coming',
        );
        this.flush();
      }, Math.max(0, this.opts.debounceMaxMs - (Date.now() - this.batchStart)));
    }
  }

  /** Rebuilds now with everything pending, and pushes what the change touches. */
  flush(): void {
    this.clearTimers();
    if (this.stopped || !this.current) return;
    const services = this.pendingServices;
    const proxies = this.pendingProxies;
    this.pendingServices = new Set();
    this.pendingProxies = new Set();
    if (this.pendingKeys.length === 0) {
      if (services.size > 0 || proxies.size > 0) this.pushEndpoints(this.current, services, proxies);
      return;
    }
    const changed = this.pendingKeys;
    this.pendingKeys = [];
    const previous = this.current;
    let next: Ctx;
    try {
      next = this.rebuild(changed);
    } catch (err) {
      // Never lose the last good context because a build failed: keep serving it.
      this.opts.log.error({ err: (err as Error).stack ?? String(err), changed: changed.length }, 'push context build failed; still serving the previous config');
      // The endpoint changes are already applied in place: they still go out.
      if (services.size > 0 || proxies.size > 0) this.pushEndpoints(previous, services, proxies);
      return;
    }
    this.current = next;
    let scope: PushScope;
    try {
      scope = this.opts.scope(previous, next, changed);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'push scope failed; pushing everything');
      scope = { full: true };
    }
    const req = pushRequest(next.version, changed, scope, this.batchStart);
    // An endpoints-only change that moved no cluster still advances the context, but pushes nothing.
    if (req) this.opts.push(req, next);
    // Endpoint changes of the same batch were applied to the index in place, so the new
    // context does not see them as changes: unless the config push already pushed every
    // type to every proxy, they need their own pushes, or their clusters stay stale.
    const everything = req?.full === true && !req.types && !req.affects;
    if (!everything && (services.size > 0 || proxies.size > 0)) this.pushEndpoints(next, services, proxies);
  }

  /** The endpoint path's pushes, at the current context (EDS versions are the context's, suffixed). */
  private pushEndpoints(current: Ctx, services: ReadonlySet<string>, proxies: ReadonlySet<string>): void {
    let scopes: PushScope[];
    try {
      scopes = this.opts.endpointScopes?.(current, services, proxies) ?? [];
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'endpoint scope failed; pushing everything');
      scopes = [{ full: true }];
    }
    for (const scope of scopes) {
      const version = scope.full ? current.version : `${current.version}/eds${++this.endpointPushes}`;
      const req = pushRequest(version, [], scope, this.batchStart);
      if (!req) continue;
      // Only a push sent counts for the leading edge (a new pod's address no proxy runs at pushes nothing).
      this.lastEndpointPushAt = performance.now();
      this.opts.push({ ...req, reason: [scope.full ? 'proxy' : 'endpoints'] }, current);
    }
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
  }

  private clearTimers(): void {
    clearTimeout(this.quietTimer);
    clearTimeout(this.maxTimer);
    clearImmediate(this.leadingFlush);
    this.quietTimer = this.maxTimer = this.leadingFlush = undefined;
  }

  private rebuild(changed: ObjectKey[]): Ctx {
    const started = process.hrtime.bigint();
    const version = `${new Date().toISOString()}/${++this.counter}`;
    const ctx = this.opts.build(version, changed);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.opts.onBuilt?.(ctx, seconds);
    this.opts.log.info({ version, changed: changed.length, seconds: Number(seconds.toFixed(4)) }, 'push context built');
    return ctx;
  }
}

/**
 * The full-or-incremental decision: an endpoints-only scope becomes an EDS
 * push naming its clusters (or no push at all), anything else a full push
 * naming the types, resources and proxies it concerns.
 */
export function pushRequest(version: string, changed: readonly ObjectKey[], scope: PushScope, start: number): PushRequest | undefined {
  const reason = changed.length ? [...new Set(changed.map((k) => k.kind))] : ['unknown'];
  const configsUpdated = new Set(changed.map(keyString));
  if (!scope.full && scope.edsClusters !== undefined) {
    if (scope.edsClusters.size === 0) return undefined;
    return { full: false, version, reason, configsUpdated, edsUpdates: scope.edsClusters, start };
  }
  return {
    full: true,
    version,
    reason,
    configsUpdated,
    start,
    ...(scope.types ? { types: scope.types } : {}),
    ...(scope.types && scope.resources ? { resources: scope.resources } : {}),
    ...(scope.affects ? { affects: scope.affects } : {}),
  };
}
