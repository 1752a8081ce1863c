/**
 * Shutdown (SIGTERM): once `close()` starts, new streams are refused with
 * UNAVAILABLE; open streams get until `graceMs` to flush what was already
 * written, then end with OK so clients reconnect to another instance.
 */
import type { Connection } from './stream.js';

export class Drain {
  /** Set by close(): new streams are refused. */
  closing = false;
  /** Checks run whenever a stream flushes everything or ends. */
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly conns: ReadonlyMap<string, Connection>,
    /** Drops an ended stream's state (the server's forget). */
    private readonly forget: (c: Connection) => void,
  ) {}

  /** A stream flushed everything or ended: a waiting close() looks again. */
  notify(): void {
    if (this.waiters.size === 0) return;
    for (const w of this.waiters) w();
  }

  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const busy = () => [...this.conns.values()].some((c) => c.inflight > 0);
    if (busy()) {
      await new Promise<void>((resolve) => {
        const check = () => {
          if (busy()) return;
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          this.waiters.delete(check);
          resolve();
        }, graceMs);
        this.waiters.add(check);
      });
    }
    for (const c of [...this.conns.values()]) {
      this.forget(c);
      try {
        c.call.end();
      } catch {
        /* already gone */
      }
    }
  }
}
