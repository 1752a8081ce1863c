/**
 * The work loop shared by the leader-only writers (root-cert ConfigMaps,
 * webhook caBundle, object status): keys are marked dirty, reconciled one at a
 * time while the queue is active, and a key whose reconcile throws comes back
 * after an exponential backoff with jitter (capped at 30 s). `idle()` resolves
 * once nothing is dirty, running or waiting to retry.
 */
export interface ReconcileQueueOptions {
  reconcile(key: string): Promise<void>;
  /** Called when a reconcile throws, with the delay before its retry. */
  onFailure(key: string, err: unknown, retryInMs: number): void;
  /** First retry delay (doubles per consecutive failure). */
  retryBaseMs: number;
  /** Retry at once instead of backing off (e.g. a 409 conflict). */
  retryImmediately?(err: unknown): boolean;
}

export class ReconcileQueue {
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private working: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];
  private active = false;

  constructor(private readonly o: ReconcileQueueOptions) {}

  get running(): boolean {
    return this.active;
  }

  start(): void {
    this.active = true;
    this.kick();
  }

  /** Stops reconciling; waits for the reconcile in progress and drops what is pending. */
  async stop(): Promise<void> {
    this.active = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.working;
    this.dirty.clear();
    this.settleIdle();
  }

  add(...keys: string[]): void {
    for (const k of keys) this.dirty.add(k);
    this.kick();
  }

  /** Schedules a key again after `delayMs` (for reconcilers that handle their own errors). */
  retryLater(key: string, delayMs: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.add(key);
      this.settleIdle();
    }, delayMs);
    this.timers.add(t);
  }

  /** Backoff with jitter for the n-th consecutive failure. */
  backoff(attempt: number): number {
    return Math.min(30_000, this.o.retryBaseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() * 0.5);
  }

  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private isIdle(): boolean {
    return !this.working && !this.timers.size && (!this.active || !this.dirty.size);
  }

  private settleIdle(): void {
    if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  private kick(): void {
    if (!this.active || this.working) return;
    if (!this.dirty.size) return this.settleIdle();
    this.working = this.work().finally(() => {
      this.working = undefined;
      if (this.dirty.size && this.active) this.kick();
      else this.settleIdle();
    });
  }

  private async work(): Promise<void> {
    while (this.active && this.dirty.size) {
      const key = this.dirty.values().next().value as string;
      this.dirty.delete(key);
      try {
        await this.o.reconcile(key);
        this.failures.delete(key);
      } catch (err) {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delay = this.o.retryImmediately?.(err) ? 0 : this.backoff(n);
        this.o.onFailure(key, err, Math.round(delay));
        this.retryLater(key, delay);
      }
    }
  }
}
