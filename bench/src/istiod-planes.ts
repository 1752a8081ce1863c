/**
 * The control planes the side-by-side benchmark compares, each started as it
 * runs for real, out of cluster against the benchmark's API server, on
 * loopback, pinned to the same cores:
 *
 *  - `sextant`: the daemon, `node apps/sextant/bin/sextant.js discovery
 *    --kubeconfig …` with the flags and environment the Helm chart gives it
 *    (trust domain, domain suffix, namespace, pod name, V8's helper threads
 *    sized to the cores given; every port on 127.0.0.1, chosen by the kernel);
 *  - `sextant-istio-debounce`: the same with istiod's debounce (100 ms / 10 s,
 *    endpoint changes debounced too) instead of Sextant's defaults (not run unless ISTIOD_BENCH_PLANES names it);
 *  - `istiod`: Istio's pilot-discovery with GOMAXPROCS = the cores given and
 *    its defaults;
 *  - `istiod-unlimited`: the same with its debounce and admission limits
 *    lifted, which separates istiod's policy from its capability.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, startIstiod, startSextant } from '@sextant/e2e';

export type PlaneName = 'sextant' | 'sextant-istio-debounce' | 'istiod' | 'istiod-unlimited';
export const PLANES: PlaneName[] = ['sextant', 'istiod', 'istiod-unlimited'];

/** Sextant with istiod's debounce (100 ms quiet, 10 s at most, endpoint changes included) instead of its own defaults: what the defaults buy. */
export const SEXTANT_ISTIO_DEBOUNCE_ARGS = ['--debounce-after', '100ms', '--debounce-max', '10s', '--eds-debounce', 'true'];

/**
 * istiod's push policy, lifted: no debounce (1 ms quiet period, 10 ms cap),
 * EDS pushes not debounced at all, no cap on concurrent pushes or on the
 * rate of new xDS requests (pilot/pkg/features/tuning.go).
 */
export const ISTIOD_UNLIMITED_ENV: Record<string, string> = {
  PILOT_DEBOUNCE_AFTER: '1ms',
  PILOT_DEBOUNCE_MAX: '10ms',
  PILOT_ENABLE_EDS_DEBOUNCE: 'false',
  PILOT_PUSH_THROTTLE: '100000',
  PILOT_MAX_REQUESTS_PER_SECOND: '1000000',
};

export interface RunningPlane {
  name: PlaneName;
  pid: number;
  /** host:port of plaintext ADS. */
  xdsAddress: string;
  /** Spawn → the control plane's own /ready answers 200. */
  readyMs: number;
  /** Its last warnings and errors, and how many times it turned a stream away for its request rate limit (diagnostics for a cold connect that did not complete). */
  warnings(): string;
  /** Its memory reclaims so far (Sextant's "returned memory ..." log lines: RSS before and after, the pause), for the run log. */
  reclaims(): string[];
  stop(): Promise<void>;
}

/** The last warning/error lines of a control plane's output, and its count of rate-limited streams (istiod: "exceeded rate limit"). */
export function warningSummary(lines: string[]): string {
  const rateLimited = lines.filter((l) => l.includes('exceeded rate limit')).length;
  const warn = lines.filter((l) => /\b(warn|error)\b|"level":(40|50)/i.test(l) && !l.includes('exceeded rate limit')).slice(-6);
  return [`streams turned away by the request rate limit: ${rateLimited}`, ...warn.map((l) => l.slice(0, 400))].join('\n');
}

/**
 * The daemon's NODE_OPTIONS: V8's helper threads sized as the chart sizes
 * them for a pod of CORES CPUs (`v8PoolSize`: the CPUs the event loop
 * leaves, at least one), as istiod gets GOMAXPROCS = CORES; then EXTRA.
 */
export function sextantNodeOptions(cores: number, extra?: string): string {
  return [`--v8-pool-size=${Math.max(1, cores - 1)}`, ...(extra ? [extra] : [])].join(' ');
}

/** The CPU list to pin a control plane to: the first CORES cores. */
export function cpuList(cores: number): string {
  return cores <= 1 ? '0' : `0-${cores - 1}`;
}

/** Pins PID (all its threads) to CPUS with taskset, when taskset is there. */
function pin(pid: number, cpus: string): void {
  spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/**
 * The Node.js binary the daemon runs on, and its version: ISTIOD_BENCH_SEXTANT_NODE, else Node 24 as `make tools`
 * installs it (scripts/install-node.sh; an LTS line in support, where Node 20's support ended in April 2026), else the
 * harness's own. The harness and its simulated proxies run on the harness's Node whatever this is.
 */
export function sextantNode(env: NodeJS.ProcessEnv = process.env): { path: string; version: string } {
  const installed = join(cacheDir, 'bin', 'node24');
  const path = env.ISTIOD_BENCH_SEXTANT_NODE || (existsSync(installed) ? installed : process.execPath);
  if (path === process.execPath) return { path, version: process.version };
  const r = spawnSync(path, ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ISTIOD_BENCH_SEXTANT_NODE=${path}: \`--version\` failed (${r.error?.message ?? r.stderr.trim()})`);
  return { path, version: r.stdout.trim() };
}

export async function startPlane(name: PlaneName, kubeconfig: string, cores: number, sextantNodePath: string): Promise<RunningPlane> {
  const t0 = Date.now();
  if (name === 'sextant' || name === 'sextant-istio-debounce') {
    // The chart's container args and env, minus the in-cluster parts (ports are 0 on 127.0.0.1 here).
    const s = await startSextant({
      kubeconfig,
      // ISTIOD_BENCH_SEXTANT_ARGS: extra daemon flags (space-separated), e.g. to compare debounce settings.
      args: ['--trust-domain', 'cluster.local', '--domain-suffix', 'cluster.local', '--namespace', 'istio-system', '--pod-name', 'sextant-bench', ...(name === 'sextant-istio-debounce' ? SEXTANT_ISTIO_DEBOUNCE_ARGS : []), ...(process.env.ISTIOD_BENCH_SEXTANT_ARGS ?? '').split(' ').filter(Boolean)],
      // ISTIOD_BENCH_SEXTANT_NODE_OPTIONS: Node options for the daemon alone (e.g. `--import bench/scripts/cpu-profile.mjs` for a profile of the run; Node refuses --cpu-prof in NODE_OPTIONS).
      env: { POD_NAMESPACE: 'istio-system', POD_NAME: 'sextant-bench', NODE_OPTIONS: sextantNodeOptions(cores, process.env.ISTIOD_BENCH_SEXTANT_NODE_OPTIONS) },
      readyTimeoutMs: 600_000,
      node: sextantNodePath,
    });
    pin(s.process.pid!, cpuList(cores));
    return {
      name,
      pid: s.process.pid!,
      xdsAddress: s.xdsAddress,
      readyMs: Date.now() - t0,
      warnings: () => warningSummary(s.logs.map((l) => JSON.stringify(l))),
      reclaims: () => s.logs.filter((l) => String((l as { msg?: unknown }).msg ?? '').startsWith('returned memory')).map((l) => String((l as { msg?: unknown }).msg)),
      stop: async () => {
        await s.stop(20_000);
      },
    };
  }
  const env: Record<string, string> = { GOMAXPROCS: String(cores), ...(name === 'istiod-unlimited' ? ISTIOD_UNLIMITED_ENV : {}) };
  const i = await startIstiod({ kubeconfig, env, readyTimeoutMs: 600_000 });
  pin(i.process.pid!, cpuList(cores));
  return {
    name,
    pid: i.process.pid!,
    xdsAddress: i.grpcAddress,
    readyMs: Date.now() - t0,
    warnings: () => warningSummary(i.output().split('\n')),
    reclaims: () => [],
    stop: async () => {
      await i.stop(20_000);
    },
  };
}

/** VmRSS and VmHWM of PID in MB (from /proc). */
export function memory(pid: number): { rssMB: number; peakMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMB: kb('VmRSS') / 1024, peakMB: kb('VmHWM') / 1024 };
}

const CLK_TCK = 100;

/** User + system CPU seconds of PID and all its threads (from /proc/PID/stat). */
export function cpuSeconds(pid: number): number {
  if (!existsSync(`/proc/${pid}/stat`)) return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" that ends the command name; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}
