/**
 * Abuse bounds (`make bench BENCH=abuse`): the real `sextant discovery`
 * process, default limits, the bookinfo example config. For each attack of
 * issue 9 finding 2, an attacker process repeats it for a while (reconnecting
 * each round, as a hostile client would) while this process plays a well-behaved
 * proxy and the daemon's RSS is sampled from /proc.
 *
 * Push latency: the victim's SotW stream changes its EDS subscription (ACKing
 * the last response) ABUSE_RATE times a second; the latency is from sending the
 * request to receiving the response that carries the newly subscribed cluster
 * — the server's own push path (schedule, generate, frame, write), without the
 * config sources' debounce, which an attacker does not touch.
 *
 * Bounds, per attack: victim p99 < 100 ms while the attack runs; daemon RSS
 * grows < 50 MB at peak; 5 s after the attack stops RSS is within 10 MB of its
 * baseline and the daemon holds no attacker stream (/debug/syncz). The report
 * also says where the memory is (V8 heap and external memory from the
 * daemon's /metrics), how many memory reclaims the daemon ran, how much it
 * read from its sockets, and the victim's latency after the attack (a reclaim
 * pauses the daemon briefly).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient } from '@sextant/testing/xds-client';
import { attacks, type Attack } from './abuse-attacker.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const sextantBin = join(repo, 'apps', 'sextant', 'bin', 'sextant.js');
const bookinfo = join(repo, 'examples', 'bookinfo');

const ATTACK_MS = Number(process.env.ABUSE_ATTACK_MS ?? 8000);
// V8 shrinks a fresh daemon's heap (startup garbage) some 10 s after start, by itself: a baseline taken before
// that is inflated by tens of MB, and the drop would then pass for memory released after an attack.
const WARMUP_MS = Number(process.env.ABUSE_WARMUP_MS ?? 12000);
const BASELINE_MS = Number(process.env.ABUSE_BASELINE_MS ?? 3000);
const SETTLE_MS = Number(process.env.ABUSE_SETTLE_MS ?? 5000);
const RATE = Number(process.env.ABUSE_RATE ?? 50);
const BOUND_P99_MS = 100;
const BOUND_RSS_MB = 50;
const BOUND_RELEASED_MB = 10;

const MB = 1024 * 1024;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((s.length * p) / 100) - 1)]!;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Daemon {
  proc: ChildProcess;
  xds: string;
  http: string;
  monitoring: string;
  stop(): Promise<number | null>;
}

/** `sextant discovery` as a user runs it, every port picked by the kernel, default limits. */
async function startDaemon(): Promise<Daemon> {
  // ABUSE_DAEMON_NODE_ARGS: node flags for the daemon only (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to see where its time goes).
  const nodeArgs = process.env.ABUSE_DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const args = [...nodeArgs, sextantBin, 'discovery', '--listen-address', '127.0.0.1', '--config-dir', bookinfo];
  for (const p of ['xds-port', 'secure-port', 'monitoring-port', 'http-port', 'webhook-port']) args.push(`--${p}`, '0');
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const addresses: Record<string, string> = {};
  const limitLines: Record<string, unknown>[] = [];
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  createInterface({ input: proc.stderr! }).on('line', (text) => {
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (l.msg === 'listening') addresses[String(l.server)] = String(l.address);
    if (typeof l.msg === 'string' && l.msg.startsWith('ready')) readyResolve();
    if (l.limit) limitLines.push(l);
  });
  const failed = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`sextant exited with ${code} before it was ready`))));
  await Promise.race([ready, failed, sleep(60_000).then(() => Promise.reject(new Error('sextant not ready within 60 s')))]);
  return {
    proc,
    xds: addresses.xds!,
    http: `http://${addresses.http!}`,
    monitoring: `http://${addresses.monitoring!}`,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      return new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    },
  };
}

/** Bytes the process has read (sockets included), from /proc. */
function bytesReadBy(pid: number): number {
  const m = /rchar:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Where the daemon's memory is, from its own /metrics: V8 heap used, V8 external memory (ArrayBuffers, …), memory reclaims so far. */
async function memoryOf(d: Daemon): Promise<{ heapUsedMB: number; externalMB: number; reclaims: number }> {
  const text = await (await fetch(`${d.monitoring}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { heapUsedMB: round(metric('nodejs_heap_size_used_bytes') / MB), externalMB: round(metric('nodejs_external_memory_bytes') / MB), reclaims: metric('sextant_xds_memory_reclaims_total') };
}

/** CPU time (user + system, ms) the process has used, from /proc (clock ticks are 100 Hz on Linux). */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** A well-behaved proxy: changes its EDS subscription at a fixed rate and times each answer. */
class Victim {
  private readonly c: SotwClient;
  private toggle = false;
  private last?: { nonce: string; version: string };
  private timer?: NodeJS.Timeout;
  private busy = false;
  samples: { at: number; ms: number }[] = [];
  errors = 0;
  constructor(address: string) {
    this.c = new SotwClient(address, { node: { id: 'sidecar~10.244.1.10~productpage-v1-abc.default~default.svc.cluster.local' }, timeoutMs: 10_000 });
  }
  async start(): Promise<void> {
    this.c.request(TypeUrl.Cluster);
    this.c.ack(await this.c.next(20_000));
    await this.once();
    this.timer = setInterval(() => void this.once(), 1000 / RATE);
  }
  private async once(): Promise<void> {
    if (this.busy) return; // never more than one request outstanding: a late answer is one long sample, not many
    this.busy = true;
    this.toggle = !this.toggle;
    const want = ['outbound|9080||reviews.default.svc.cluster.local', ...(this.toggle ? ['outbound|9080||ratings.default.svc.cluster.local'] : [])];
    const t0 = performance.now();
    this.c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: want, versionInfo: this.last?.version ?? '', responseNonce: this.last?.nonce ?? '' });
    try {
      for (;;) {
        const r = await this.c.next();
        if (r.typeUrl !== TypeUrl.ClusterLoadAssignment) continue;
        this.last = { nonce: r.nonce, version: r.versionInfo };
        if (r.resources.length === want.length) break;
      }
      this.samples.push({ at: performance.now(), ms: performance.now() - t0 });
    } catch {
      this.errors++;
    } finally {
      this.busy = false;
    }
  }
  between(from: number, to: number): number[] {
    return this.samples.filter((s) => s.at >= from && s.at <= to).map((s) => s.ms);
  }
  stop(): void {
    clearInterval(this.timer);
    this.c.close();
  }
}

interface AttackResult {
  attack: Attack;
  description: string;
  attacker: { iterations: number; statuses: Record<string, number>; requestsSent: number; bytesSent: number; cpuMs: number } | { error: string };
  victim: { baselineP50Ms: number; baselineP99Ms: number; duringP50Ms: number; duringP99Ms: number; duringMaxMs: number; samples: number; afterP99Ms: number; afterMaxMs: number; errors: number };
  rssMB: { baseline: number; peak: number; peakGrowth: number; after: number; afterGrowth: number };
  /** The daemon's V8 heap and external memory at the baseline and after; memory reclaims it ran in between; MB it read during the attack. */
  daemon: { baseline: { heapUsedMB: number; externalMB: number }; after: { heapUsedMB: number; externalMB: number }; reclaims: number; readMB: number; cpuMsPerS: { baseline: number; attack: number } };
  streamsAfter: number;
  limitsHit: Record<string, number>;
  bounds: { p99Under100ms: boolean; rssGrowthUnder50MB: boolean; released: boolean };
}

async function runAttack(d: Daemon, victim: Victim, attack: Attack): Promise<AttackResult> {
  const pid = d.proc.pid!;
  await sleep(WARMUP_MS);
  const tb = performance.now();
  const cpuB = cpuMsOf(pid);
  await sleep(BASELINE_MS);
  const baselineCpu = (cpuMsOf(pid) - cpuB) / ((performance.now() - tb) / 1000);
  const baselineRss = rssOf(pid);
  const base = victim.between(tb, performance.now());
  const metricsBefore = await limitCounts(d);
  const memBefore = await memoryOf(d);
  const readBefore = bytesReadBy(pid);

  let peak = baselineRss;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 25);
  const child = spawn(process.execPath, [join(here, 'abuse-attacker.js'), attack, d.xds, String(ATTACK_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let t0 = Infinity; // the attack window starts once the attacker has encoded its requests
  let cpu0 = NaN;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.includes('"ready"')) {
      t0 = performance.now();
      cpu0 = cpuMsOf(pid);
    }
    else out += line + '\n';
  });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  const t1 = performance.now();
  const attackCpu = (cpuMsOf(pid) - cpu0) / ((t1 - t0) / 1000);
  const readMB = round((bytesReadBy(pid) - readBefore) / MB);
  clearInterval(sampler);
  peak = Math.max(peak, rssOf(pid));
  const during = victim.between(t0, t1);

  await sleep(SETTLE_MS);
  const after = rssOf(pid);
  const settled = victim.between(t1, performance.now());
  const memAfter = await memoryOf(d);
  const syncz = (await (await fetch(`${d.http}/debug/syncz`)).json()) as unknown[];
  const metricsAfter = await limitCounts(d);
  const limitsHit: Record<string, number> = {};
  for (const [k, v] of Object.entries(metricsAfter)) if (v - (metricsBefore[k] ?? 0) > 0) limitsHit[k] = v - (metricsBefore[k] ?? 0);

  const p99 = pct(during, 99);
  const growth = (peak - baselineRss) / MB;
  const afterGrowth = (after - baselineRss) / MB;
  return {
    attack,
    description: attacks[attack],
    attacker: code === 0 ? (JSON.parse(out.trim().split('\n').pop()!) as AttackResult['attacker']) : { error: `attacker exited with ${code}` },
    victim: {
      baselineP50Ms: round(pct(base, 50), 2),
      baselineP99Ms: round(pct(base, 99), 2),
      duringP50Ms: round(pct(during, 50), 2),
      duringP99Ms: round(p99, 2),
      duringMaxMs: round(Math.max(...during), 2),
      samples: during.length,
      afterP99Ms: round(pct(settled, 99), 2),
      afterMaxMs: round(Math.max(...settled), 2),
      errors: victim.errors,
    },
    daemon: {
      baseline: { heapUsedMB: memBefore.heapUsedMB, externalMB: memBefore.externalMB },
      after: { heapUsedMB: memAfter.heapUsedMB, externalMB: memAfter.externalMB },
      reclaims: memAfter.reclaims - memBefore.reclaims,
      readMB,
      cpuMsPerS: { baseline: Math.round(baselineCpu), attack: Math.round(attackCpu) },
    },
    rssMB: { baseline: round(baselineRss / MB), peak: round(peak / MB), peakGrowth: round(growth), after: round(after / MB), afterGrowth: round(afterGrowth) },
    streamsAfter: syncz.length,
    limitsHit,
    bounds: { p99Under100ms: p99 < BOUND_P99_MS, rssGrowthUnder50MB: growth < BOUND_RSS_MB, released: afterGrowth < BOUND_RELEASED_MB && syncz.length === 1 },
  };
}

/** sextant_xds_limit_exceeded_total by limit, from the daemon's own /metrics (monitoring port is not needed: pushStatus has them). */
async function limitCounts(d: Daemon): Promise<Record<string, number>> {
  const res = await fetch(`${d.http}/debug/push_status`).catch(() => undefined);
  if (!res?.ok) return {};
  const body = (await res.json()) as { xds?: { limitsExceeded?: Record<string, number> } };
  return body.xds?.limitsExceeded ?? {};
}

export async function runAbuseBench(): Promise<unknown> {
  const only = process.env.ABUSE_ONLY?.split(',').filter(Boolean) as Attack[] | undefined;
  const list = (Object.keys(attacks) as Attack[]).filter((a) => !only || only.includes(a));
  const results: AttackResult[] = [];
  const exitCodes: (number | null)[] = [];
  // A fresh daemon and victim per attack: one attack's cooldown or leftovers do not shape the next one's figures.
  for (const a of list) {
    process.stderr.write(`[abuse] ${a}...\n`);
    const d = await startDaemon();
    const victim = new Victim(d.xds);
    try {
      await victim.start();
      results.push(await runAttack(d, victim, a));
    } finally {
      victim.stop();
      exitCodes.push(await d.stop());
    }
  }
  const exitCode = exitCodes.every((c) => c === 0) ? 0 : exitCodes.find((c) => c !== 0) ?? null;
  const ok = (b: boolean) => (b ? '✔' : '✘');
  const lines = [
    `The real \`sextant discovery\` process (default limits, \`examples/bookinfo\`, a fresh one per attack, ${WARMUP_MS / 1000} s of warm-up, then ${BASELINE_MS / 1000} s of baseline); each attack repeated by an attacker process for ${ATTACK_MS / 1000} s while a`,
    `well-behaved SotW client changes its EDS subscription ${RATE} times a second (latency: request → response carrying the new cluster, the server's push path).`,
    `Bounds: victim p99 < ${BOUND_P99_MS} ms during the attack; daemon RSS growth < ${BOUND_RSS_MB} MB at peak; ${SETTLE_MS / 1000} s later RSS within ${BOUND_RELEASED_MB} MB of the baseline and only the victim's stream left.`,
    `Load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}. Daemon exit codes on SIGTERM: ${exitCodes.join(', ')}.`,
    '',
    '| attack | rounds (stream ends) | limits hit | victim p50 / p99 / max, ms (baseline p99) | RSS MB: baseline → peak (+growth) → after (+) | p99 < 100 ms | growth < 50 MB | released |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const att = 'error' in r.attacker ? r.attacker.error : r.attacker.iterations === 0 ? '—' : `${r.attacker.iterations} (${Object.entries(r.attacker.statuses).map(([k, v]) => `${v} ${k}`).join(', ')})`;
    const hits = Object.entries(r.limitsHit).map(([k, v]) => `${k} ×${v}`).join(', ') || '—';
    lines.push(
      `| ${r.description} | ${att} | ${hits} | ${r.victim.duringP50Ms} / ${r.victim.duringP99Ms} / ${r.victim.duringMaxMs} (${r.victim.baselineP99Ms}), n=${r.victim.samples} | ${r.rssMB.baseline} → ${r.rssMB.peak} (+${r.rssMB.peakGrowth}) → ${r.rssMB.after} (${r.rssMB.afterGrowth >= 0 ? '+' : ''}${r.rssMB.afterGrowth}) | ${ok(r.bounds.p99Under100ms)} | ${ok(r.bounds.rssGrowthUnder50MB)} | ${ok(r.bounds.released)} |`,
    );
  }
  lines.push(
    '',
    `Where the memory is (the daemon's own /metrics): V8 heap used and V8 external memory at the baseline → ${SETTLE_MS / 1000} s after; memory reclaims the daemon ran (\`--xds-reclaim-after\`); MB the daemon read from its sockets during the attack; the victim after the attack (p99 / max, ms, over the ${SETTLE_MS / 1000} s); the daemon's CPU time (user + system, ms per second) in the baseline and during the attack, and the attacker process's own (both compete for the same cores).`,
    '',
    `The machine is shared: the victim's latency also holds the time the daemon waits for a core (the load average above; the attacker process itself is one of the competitors). "p99 − control" is the attack's victim p99 minus the control row's, both measured in this run.`,
    '',
    '| attack | heap used MB | external MB | reclaims | read MB | victim after: p99 / max, ms | daemon CPU ms/s: baseline → attack | attacker CPU ms/s | victim p99 − control, ms |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  const control = results.find((r) => r.attack === 'control');
  for (const r of results) {
    const dm = r.daemon;
    const vsControl = control ? round(r.victim.duringP99Ms - control.victim.duringP99Ms, 1) : NaN;
    lines.push(`| ${r.attack} | ${dm.baseline.heapUsedMB} → ${dm.after.heapUsedMB} | ${dm.baseline.externalMB} → ${dm.after.externalMB} | ${dm.reclaims} | ${dm.readMB} | ${r.victim.afterP99Ms} / ${r.victim.afterMaxMs} | ${dm.cpuMsPerS.baseline} → ${dm.cpuMsPerS.attack} | ${'error' in r.attacker ? '—' : Math.round(r.attacker.cpuMs / (ATTACK_MS / 1000))} | ${Number.isNaN(vsControl) ? '—' : vsControl} |`);
  }
  const markdown = lines.join('\n');
  process.stderr.write(markdown + '\n');
  return { attackMs: ATTACK_MS, rate: RATE, exitCode, results, markdown };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  await runAbuseBench();
}
