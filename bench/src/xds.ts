/**
 * xDS server benchmark. The server runs in one child process and the clients
 * (raw HTTP/2 gRPC streams) in another, so server CPU (process.cpuUsage in the
 * server process) and RSS are measured apart from the clients.
 *
 *  - idle memory: RSS per idle stream at 1000 and 5000 streams;
 *  - fan-out: one endpoint change to N streams watching that cluster (N = 1000, 5000):
 *    time until every stream has it (p50, p99) and server CPU seconds;
 *  - full push: 1000 clusters to 1000 streams: xDS bytes per second of wall time
 *    and per server CPU second.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { TypeUrl } from '@sextant/envoy';

type Reply = { op: string; [k: string]: unknown };

class Child {
  private readonly proc: ChildProcess;
  private readonly queue: ((m: Reply) => void)[] = [];
  private readonly exited: Promise<void>;
  constructor(script: string, execArgv: string[] = []) {
    this.proc = fork(new URL(script, import.meta.url), [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: Reply) => {
      const w = this.queue.shift();
      if (w) w(m);
    });
    this.exited = new Promise((r) => this.proc.once('exit', () => r()));
  }
  ask(msg: Reply, timeoutMs = 120_000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`child did not answer ${msg.op} within ${timeoutMs} ms`)), timeoutMs);
      this.queue.push((m) => {
        clearTimeout(t);
        if (m.op === 'error') reject(new Error(String(m['error'])));
        else resolve(m);
      });
      this.proc.send(msg);
    });
  }
  /** Waits up to graceMs for the child to exit on its own, then kills it. */
  async kill(graceMs = 0): Promise<void> {
    if (graceMs > 0) await Promise.race([this.exited, new Promise((r) => setTimeout(r, graceMs))]);
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const median = (xs: number[]) => pct([...xs].sort((a, b) => a - b), 50);
const cpuSec = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => (b.user - a.user + (b.system - a.system)) / 1e6;
const sysSec = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => (b.system - a.system) / 1e6;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

interface Setup {
  server: Child;
  clients: Child;
  port: number;
  version: string;
}

async function setup(clusters: number, pad: number): Promise<Setup> {
  // XDS_BENCH_SERVER_ARGS adds node flags to the server process (e.g. --cpu-prof).
  const extra = (process.env.XDS_BENCH_SERVER_ARGS ?? '').split(' ').filter(Boolean);
  const server = new Child('./xds-server.js', ['--max-old-space-size=8192', ...extra]);
  const clients = new Child('./xds-clients.js', ['--max-old-space-size=8192']);
  const started = await server.ask({ op: 'start', clusters, pad });
  return { server, clients, port: Number(started['port']), version: String(started['version']) };
}

async function teardown(s: Setup): Promise<void> {
  await s.clients.kill();
  await s.server.ask({ op: 'exit' }, 5000).catch(() => undefined);
  await s.server.kill(10_000);
}

export interface XdsBenchReport {
  machine: { cpus: number; model: string; memoryGiB: number; node: string };
  idle: { streams: number; rssPerStreamKB: number; heapPerStreamKB: number; targetKB: number; met: boolean }[];
  /** cpuSeconds = user + system of the server process; systemSeconds is the kernel part (socket writes). */
  fanout: { streams: number; runs: number; p50ms: number; p99ms: number; cpuSeconds: number; systemSeconds: number; targetP99ms: number; met: boolean }[];
  /** Absent when fullPushRuns is 0. */
  fullPush?: {
    streams: number;
    clusters: number;
    runs: number;
    bytesPerPush: number;
    wallSeconds: number;
    cpuSeconds: number;
    mbPerSecondWall: number;
    mbPerCpuSecond: number;
    targetMBPerCpuSecond: number;
    met: boolean;
  };
  notes: string[];
}

export interface XdsBenchOptions {
  idleSizes?: number[];
  fanoutSizes?: number[];
  fanoutRuns?: number;
  fullPushStreams?: number;
  fullPushClusters?: number;
  fullPushRuns?: number;
  /** Padding per cluster, bytes (default 200: ~0.5 KB clusters). */
  pad?: number;
  log?: (line: string) => void;
}

/** Idle streams: each subscribed to CDS (10 clusters) and EDS for one cluster. */
async function idle(n: number, log: (l: string) => void) {
  const s = await setup(10, 0);
  try {
    const before = await s.server.ask({ op: 'stats', gc: true });
    await s.clients.ask({
      op: 'open',
      address: `127.0.0.1:${s.port}`,
      n,
      perConnection: 1,
      requests: [
        { typeUrl: TypeUrl.Cluster, names: [] },
        { typeUrl: TypeUrl.ClusterLoadAssignment, names: ['ep-0'] },
      ],
    });
    await s.clients.ask({ op: 'await', version: s.version, timeoutMs: 60_000 });
    const after = await s.server.ask({ op: 'stats', gc: true });
    const rss = (Number(after['rss']) - Number(before['rss'])) / n / 1024;
    const heap = (Number(after['heapUsed']) - Number(before['heapUsed'])) / n / 1024;
    log(`idle ${n}: ${round(rss)} KB RSS/stream, ${round(heap)} KB heap/stream`);
    return { streams: n, rssPerStreamKB: round(rss), heapPerStreamKB: round(heap), targetKB: 50, met: rss <= 50 };
  } finally {
    await teardown(s);
  }
}

async function fanout(n: number, runs: number, log: (l: string) => void) {
  const s = await setup(10, 0);
  try {
    await s.clients.ask({
      op: 'open',
      address: `127.0.0.1:${s.port}`,
      n,
      perConnection: 1,
      requests: [{ typeUrl: TypeUrl.ClusterLoadAssignment, names: ['ep-0'] }],
    });
    await s.clients.ask({ op: 'await', version: s.version, timeoutMs: 60_000 });
    const p50s: number[] = [];
    const p99s: number[] = [];
    const cpus: number[] = [];
    const syss: number[] = [];
    for (let r = 0; r < runs + 1; r++) {
      const pushed = await s.server.ask({ op: 'eds' });
      const got = await s.clients.ask({ op: 'await', version: String(pushed['version']), timeoutMs: 30_000 });
      const after = await s.server.ask({ op: 'stats' });
      if (Number(got['missing']) > 0) throw new Error(`fan-out ${n}: ${got['missing']} streams did not receive ${pushed['version']}`);
      const lat = (got['times'] as number[]).map((t) => t - Number(pushed['t0'])).sort((a, b) => a - b);
      if (r === 0) continue; // warm-up
      p50s.push(pct(lat, 50));
      p99s.push(pct(lat, 99));
      cpus.push(cpuSec(pushed['cpu'] as NodeJS.CpuUsage, after['cpu'] as NodeJS.CpuUsage));
      syss.push(sysSec(pushed['cpu'] as NodeJS.CpuUsage, after['cpu'] as NodeJS.CpuUsage));
    }
    const res = {
      streams: n,
      runs,
      p50ms: round(median(p50s)),
      p99ms: round(median(p99s)),
      cpuSeconds: round(median(cpus), 3),
      systemSeconds: round(median(syss), 3),
      targetP99ms: 150,
      met: false,
    };
    res.met = res.p99ms <= 150;
    log(`fan-out ${n}: p50 ${res.p50ms} ms, p99 ${res.p99ms} ms, server CPU ${res.cpuSeconds} s (${res.systemSeconds} s system) (median of ${runs})`);
    return res;
  } finally {
    await teardown(s);
  }
}

async function fullPush(streams: number, clusters: number, runs: number, pad: number, log: (l: string) => void) {
  const s = await setup(clusters, pad);
  try {
    await s.clients.ask({
      op: 'open',
      address: `127.0.0.1:${s.port}`,
      n: streams,
      perConnection: 1,
      requests: [{ typeUrl: TypeUrl.Cluster, names: [] }],
    });
    await s.clients.ask({ op: 'await', version: s.version, timeoutMs: 120_000 });
    const walls: number[] = [];
    const cpus: number[] = [];
    const bytes: number[] = [];
    for (let r = 0; r < runs + 1; r++) {
      await s.server.ask({ op: 'prepare', tag: `t${r + 1}`, pad });
      const before = await s.server.ask({ op: 'stats' });
      const pushed = await s.server.ask({ op: 'full' });
      const got = await s.clients.ask({ op: 'await', version: String(pushed['version']), timeoutMs: 120_000 });
      const after = await s.server.ask({ op: 'stats' });
      if (Number(got['missing']) > 0) throw new Error(`full push: ${got['missing']} streams did not receive ${pushed['version']}`);
      const times = got['times'] as number[];
      const wall = (Math.max(...times) - Number(pushed['t0'])) / 1000;
      const b = (after['metrics'] as { bytesSent: number }).bytesSent - (before['metrics'] as { bytesSent: number }).bytesSent;
      if (r === 0) continue;
      walls.push(wall);
      cpus.push(cpuSec(pushed['cpu'] as NodeJS.CpuUsage, after['cpu'] as NodeJS.CpuUsage));
      bytes.push(b);
    }
    const wall = median(walls);
    const cpu = median(cpus);
    const b = median(bytes);
    const res = {
      streams,
      clusters,
      runs,
      bytesPerPush: b,
      wallSeconds: round(wall, 3),
      cpuSeconds: round(cpu, 3),
      mbPerSecondWall: round(b / 1e6 / wall),
      mbPerCpuSecond: round(b / 1e6 / cpu),
      targetMBPerCpuSecond: 800,
      met: false,
    };
    res.met = res.mbPerCpuSecond >= 800;
    log(`full push ${clusters} clusters → ${streams} streams: ${round(b / 1e6)} MB in ${res.wallSeconds} s wall, ${res.cpuSeconds} s server CPU: ${res.mbPerSecondWall} MB/s wall, ${res.mbPerCpuSecond} MB per CPU-second`);
    return res;
  } finally {
    await teardown(s);
  }
}

export async function runXdsBench(opts: XdsBenchOptions = {}): Promise<XdsBenchReport> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`[xds-bench] ${l}\n`));
  const c = cpus();
  const report: XdsBenchReport = {
    machine: { cpus: c.length, model: c[0]?.model ?? 'unknown', memoryGiB: round(totalmem() / 2 ** 30), node: process.version },
    idle: [],
    fanout: [],
    notes: [
      'Server and clients run in separate processes on the same machine; the clients (raw HTTP/2, one connection per stream) compete for the same cores.',
      'CPU is the server process only (process.cpuUsage), from the change until the last stream has the response.',
      'Idle RSS per stream = (server RSS after N streams got their first CDS+EDS responses − RSS before) / N, after GC; it includes the HTTP/2 session and socket of each stream.',
    ],
  };
  for (const n of opts.idleSizes ?? [1000, 5000]) report.idle.push(await idle(n, log));
  for (const n of opts.fanoutSizes ?? [1000, 5000]) report.fanout.push(await fanout(n, opts.fanoutRuns ?? 5, log));
  if ((opts.fullPushRuns ?? 3) > 0) report.fullPush = await fullPush(opts.fullPushStreams ?? 1000, opts.fullPushClusters ?? 1000, opts.fullPushRuns ?? 3, opts.pad ?? 200, log);
  return report;
}

// `node bench/dist/xds.js` runs it alone and prints the report.
// XDS_BENCH_ONLY=fanout runs only the fan-out scenarios (XDS_BENCH_FANOUT=5000 picks sizes, XDS_BENCH_RUNS the runs).
if (import.meta.url === `file://${process.argv[1]}`) {
  const only = process.env.XDS_BENCH_ONLY;
  const sizes = (process.env.XDS_BENCH_FANOUT ?? '').split(',').filter(Boolean).map(Number);
  const runs = process.env.XDS_BENCH_RUNS ? Number(process.env.XDS_BENCH_RUNS) : undefined;
  runXdsBench(
    only === 'fanout'
      ? { idleSizes: [], fullPushRuns: 0, ...(sizes.length ? { fanoutSizes: sizes } : {}), ...(runs ? { fanoutRuns: runs } : {}) }
      : {},
  )
    .then((r) => {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      process.exit(0);
    })
    .catch((err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    });
}
