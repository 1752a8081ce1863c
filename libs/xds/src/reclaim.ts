/**
 * Gives back the memory a burst of refused xDS requests, or of pushes, leaves
 * behind.
 *
 * What a refused request costs is garbage, not state the server keeps (the
 * limits drop every reference at once), but on Node that garbage stays in the
 * process's RSS. The request's bytes are copies of this process's own that
 * `receive.ts` detaches as soon as the request is refused, so a
 * young-generation GC frees them; but an idle daemon may not run one for a
 * long time, and once they are freed glibc's malloc keeps the pages in its
 * main arena (the chunks sit between live allocations, so `free` cannot
 * shrink the heap): only `malloc_trim` hands them back to the kernel.
 * Measured on the abuse benchmark (docs/xds.md): after a names attack the
 * daemon's RSS stayed ~35 MB up in free malloc pages, which `malloc_trim(0)`
 * returned.
 *
 * Pushes leave the same behind on a larger scale: every response is a buffer
 * written once and dropped (a sidecar's first CDS response is ~10 MB at 1,000
 * services), and a cold connect of many proxies, or a push to all of them,
 * leaves glibc holding free pages that RSS counts.
 *
 * So once a burst of limit hits, or of pushes past `afterPushedBytes`, has
 * been quiet for a moment, the reclaimer
 * runs one young-generation GC (a few ms: its cost does not grow with the
 * heap) and, once V8's background sweeper has freed the collected buffers'
 * memory (`settleMs` later; a trim right after the GC finds little to
 * return), `malloc_trim(0)`, at most once per interval.
 */
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import vm from 'node:vm';

export interface ReclaimResult {
  /** When it started (the clock the interval is kept by), ms since the epoch. */
  at: number;
  /** Limit hits since the previous reclaim. */
  hits: number;
  /** Bytes pushed since the previous reclaim (as last noted). */
  pushedBytes: number;
  /** Whether a GC ran (false where it is unavailable): a full one after a push burst, else a young-generation one. */
  gc: boolean;
  /** Whether malloc_trim ran (false where it is unavailable: not glibc, or koffi missing). */
  trimmed: boolean;
  /** Time the GC and the trim took together (not the settle time between them), ms. */
  pauseMs: number;
  rssBefore: number;
  rssAfter: number;
}

export interface ReclaimerOptions {
  /** Quiet time after the last limit hit (or push burst) before reclaiming, ms; 0 turns the reclaimer off. */
  afterMs: number;
  /** Bytes pushed since the last reclaim that make a push burst worth reclaiming after; 0 or absent: pushes never do. */
  afterPushedBytes?: number;
  /**
   * GC after a push burst: a full one (default: V8's, exposed at run time),
   * since what a burst leaves lives long enough to be promoted (a cold
   * connect's responses wait in the queue for seconds), so a young GC frees
   * none of it. Null: the young one.
   */
  fullGc?: (() => void) | null;
  /** Least time between two reclaims, ms. */
  minIntervalMs?: number;
  /** Time between the GC and the trim, for V8 to free the collected buffers off-thread, ms. */
  settleMs?: number;
  /** Young-generation GC; default: V8's, exposed at run time. Null to skip. */
  gc?: (() => void) | null;
  /**
   * Whether the server still has writes its transport has not taken: a
   * reclaim waits until it has none for `afterMs`, since a full GC's pause
   * would hold back the bytes clients are waiting for (the push queue drains
   * long before the last of a large push reaches its streams).
   */
  busy?: () => boolean;
  /**
   * A push burst reclaims only if RSS has grown by this factor over what the
   * last reclaim left (or, before any, over RSS at start): the full GC's
   * pause grows with the heap, and after a push that left little behind (a
   * VirtualService edit at S = 1000: 2 s of pause for 76 MB) it is not worth
   * it. Default 1.25; 0: any burst.
   */
  minRssGrowth?: number;
  /** RSS in bytes; default process.memoryUsage.rss. */
  rss?: () => number;
  /** glibc malloc_trim; default: loaded through koffi where available. Null to skip. */
  trim?: ((pad: number) => number) | null;
  onReclaim?: (r: ReclaimResult) => void;
}

export const defaultReclaimIntervalMs = 3_000;
export const defaultReclaimSettleMs = 100;
export const defaultMinRssGrowth = 1.25;

let gcFn: (() => void) | null | undefined;
let exposedGc: ((o: { type: string }) => void) | null | undefined;
/** V8's gc(), exposed at run time without `--expose-gc` on the command line; null if that fails. */
function v8Gc(): ((o: { type: string }) => void) | null {
  if (exposedGc !== undefined) return exposedGc;
  try {
    v8.setFlagsFromString('--expose-gc');
    const f = vm.runInNewContext('gc') as unknown;
    exposedGc = typeof f === 'function' ? (f as (o: { type: string }) => void) : null;
  } catch {
    exposedGc = null;
  }
  return exposedGc;
}

/** V8's young-generation GC (`gc({ type: 'minor' })`); null where gc() cannot be exposed. */
export function minorGc(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  const f = v8Gc();
  gcFn = f ? () => f({ type: 'minor' }) : null;
  return gcFn;
}

/**
 * V8's full GC: `gc()` without options (on Node 20, `gc({ type: 'major' })`
 * does not collect the old generation; `reclaim.test.ts` checks what this one
 * frees); null where gc() cannot be exposed. Its pause grows with the live heap.
 */
export function majorGc(): (() => void) | null {
  const f = v8Gc() as (() => void) | null;
  return f ? () => f() : null;
}

let trimFn: ((pad: number) => number) | null | undefined;
/**
 * glibc's `malloc_trim`, called through koffi (an FFI library with prebuilt
 * binaries); null on other C libraries (musl has no such function) or when
 * koffi cannot be loaded.
 */
export function mallocTrim(): ((pad: number) => number) | null {
  if (trimFn !== undefined) return trimFn;
  trimFn = null;
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
  if (process.platform !== 'linux' || !glibc) return trimFn;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as { load(lib: string): { func(sig: string): (pad: number) => number } };
    trimFn = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)');
  } catch {
    trimFn = null;
  }
  return trimFn;
}

export class MemoryReclaimer {
  private hits = 0;
  private lastHit = 0;
  /** The push total last noted, and at the last reclaim. */
  private pushedTotal = 0;
  private pushedAtRun = 0;
  private lastRun = -Infinity;
  private timer?: NodeJS.Timeout;
  private readonly minIntervalMs: number;
  private readonly gc: (() => void) | null;
  private readonly fullGc: (() => void) | null;
  private readonly trim: ((pad: number) => number) | null;
  /** Reclaims run so far. */
  runs = 0;
  private readonly rss: () => number;
  /** RSS the last reclaim left, or at start. */
  private rssBase: number;

  constructor(private readonly opts: ReclaimerOptions) {
    this.rss = opts.rss ?? (() => process.memoryUsage.rss());
    this.rssBase = this.rss();
    this.minIntervalMs = opts.minIntervalMs ?? defaultReclaimIntervalMs;
    const on = opts.afterMs > 0;
    this.gc = !on ? null : opts.gc !== undefined ? opts.gc : minorGc();
    this.fullGc = !on ? null : opts.fullGc !== undefined ? opts.fullGc : majorGc();
    this.trim = !on ? null : opts.trim !== undefined ? opts.trim : mallocTrim();
  }

  /** Whether a reclaim can do anything here (on, and a GC or a trim available). */
  get enabled(): boolean {
    return this.opts.afterMs > 0 && (this.gc !== null || this.trim !== null);
  }

  /** A stream was refused for a limit: reclaim once the refusals have been quiet for `afterMs`. */
  noteLimitHit(now = Date.now()): void {
    if (!this.enabled) return;
    this.hits++;
    this.lastHit = now;
    this.arm(now);
  }

  /**
   * The server's push queue drained with `totalBytes` written since it
   * started: reclaim once quiet if that is `afterPushedBytes` past the last
   * reclaim. Each drain postpones it, as each limit hit does.
   */
  notePushed(totalBytes: number, now = Date.now()): void {
    this.pushedTotal = totalBytes;
    const after = this.opts.afterPushedBytes ?? 0;
    if (!this.enabled || after <= 0 || totalBytes - this.pushedAtRun < after) return;
    this.lastHit = now;
    this.arm(now);
  }

  private arm(now: number): void {
    if (this.timer) return;
    const at = Math.max(this.lastHit + this.opts.afterMs, this.lastRun + this.minIntervalMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const t = Date.now();
      // Writes still in flight count as activity: quiet means flushed too.
      if (this.opts.busy?.()) this.lastHit = t;
      // Still refusing, or too soon after the last reclaim: look again later.
      if (t < this.lastHit + this.opts.afterMs || t < this.lastRun + this.minIntervalMs) return this.arm(t);
      // A push burst that left little behind: not worth a full GC's pause (its bytes still count towards the next one).
      if (this.hits === 0 && this.rss() < this.rssBase * (this.opts.minRssGrowth ?? defaultMinRssGrowth)) return;
      void this.reclaim(t);
    }, Math.max(0, at - now));
    this.timer.unref();
  }

  /** Runs a young-generation GC now and malloc_trim once the sweeper has settled. */
  async reclaim(now = Date.now()): Promise<ReclaimResult> {
    const rssBefore = this.rss();
    const hits = this.hits;
    this.hits = 0;
    const pushedBytes = this.pushedTotal - this.pushedAtRun;
    this.pushedAtRun = this.pushedTotal;
    this.lastRun = now;
    const afterPushes = (this.opts.afterPushedBytes ?? 0) > 0 && pushedBytes >= this.opts.afterPushedBytes!;
    let t0 = performance.now();
    let gc = false;
    const collect = afterPushes ? (this.fullGc ?? this.gc) : this.gc;
    if (collect) {
      collect();
      gc = true;
    }
    let pauseMs = performance.now() - t0;
    let trimmed = false;
    if (this.trim) {
      if (gc) await new Promise((r) => setTimeout(r, this.opts.settleMs ?? defaultReclaimSettleMs));
      t0 = performance.now();
      this.trim(0);
      pauseMs += performance.now() - t0;
      trimmed = true;
    }
    const rssAfter = this.rss();
    this.rssBase = rssAfter;
    const r: ReclaimResult = { at: now, hits, pushedBytes, gc, trimmed, pauseMs: Math.round(pauseMs * 10) / 10, rssBefore, rssAfter };
    this.runs++;
    this.opts.onReclaim?.(r);
    return r;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
