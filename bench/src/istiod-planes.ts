/**
 * The control planes the side-by-side benchmark compares, each started as it
 * runs for real, out of cluster against the benchmark's API server, on
 * loopback, pinned to the same cores:
 *
 *  - `sextant`: the daemon, `node apps/sextant/bin/sextant.js discovery
 *    --kubeconfig …` with the flags and environment the Helm chart gives it
 *    (trust domain, domain suffix, namespace, pod name; every port on
 *    127.0.0.1, chosen by the kernel);
 *  - `istiod`: Istio's pilot-discovery with GOMAXPROCS = the cores given and
 *    its defaults;
 *  - `istiod-unlimited`: the same with its debounce and admission limits
 *    lifted, which separates istiod's policy from its capability.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSextant, toolPath } from '@sextant/e2e';

// TEMPORARY until e2e/src/istiod.ts (branch parity) lands: replaced by its launcher.
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
async function startIstiod(opts: { kubeconfig: string; env: Record<string, string>; readyTimeoutMs: number }) {
  const bin = toolPath('pilot-discovery');
  if (!bin) throw new Error('pilot-discovery is not installed; run make tools');
  const cwd = mkdtempSync(join(tmpdir(), 'bench-istiod-'));
  writeFileSync(join(cwd, 'mesh'), 'trustDomain: cluster.local\n');
  const [grpc, http, mon, https, secure] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const args = ['discovery', '--kubeconfig', opts.kubeconfig, '--meshConfig', join(cwd, 'mesh'), '--networksConfig', join(cwd, 'networks'),
    '--grpcAddr', `127.0.0.1:${grpc}`, '--httpAddr', `127.0.0.1:${http}`, '--monitoringAddr', `127.0.0.1:${mon}`, '--httpsAddr', `127.0.0.1:${https}`,
    '--secureGRPCAddr', `127.0.0.1:${secure}`, '--domain', 'cluster.local', '--keepaliveMaxServerConnectionAge', '30m'];
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, POD_NAMESPACE: 'istio-system', POD_NAME: 'istiod-bench', REVISION: 'default',
    VALIDATION_WEBHOOK_CONFIG_NAME: '', INJECTION_WEBHOOK_CONFIG_NAME: '', PILOT_ENABLE_ANALYSIS: 'false', CLUSTER_ID: 'Kubernetes', ...opts.env };
  const proc = spawn(bin, args, { cwd, env, stdio: ['ignore', 'ignore', process.env.SEXTANT_TEST_LOGS ? 'inherit' : 'ignore'] });
  let exited = false;
  proc.once('exit', () => (exited = true));
  const deadline = Date.now() + opts.readyTimeoutMs;
  for (;;) {
    if (exited) throw new Error('pilot-discovery exited before ready');
    const ok = await fetch(`http://127.0.0.1:${http}/ready`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error('pilot-discovery not ready in time');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: proc.pid!,
    xdsAddress: `127.0.0.1:${grpc}`,
    stop: async () => {
      if (!exited) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        await gone;
        clearTimeout(t);
      }
      rmSync(cwd, { recursive: true, force: true });
    },
  };
}

export type PlaneName = 'sextant' | 'istiod' | 'istiod-unlimited';
export const PLANES: PlaneName[] = ['sextant', 'istiod', 'istiod-unlimited'];

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
  stop(): Promise<void>;
}

/** The CPU list to pin a control plane to: the first CORES cores. */
export function cpuList(cores: number): string {
  return cores <= 1 ? '0' : `0-${cores - 1}`;
}

/** Pins PID (all its threads) to CPUS with taskset, when taskset is there. */
function pin(pid: number, cpus: string): void {
  spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

export async function startPlane(name: PlaneName, kubeconfig: string, cores: number): Promise<RunningPlane> {
  const t0 = Date.now();
  if (name === 'sextant') {
    // The chart's container args and env, minus the in-cluster parts (ports are 0 on 127.0.0.1 here).
    const s = await startSextant({
      kubeconfig,
      args: ['--trust-domain', 'cluster.local', '--domain-suffix', 'cluster.local', '--namespace', 'istio-system', '--pod-name', 'sextant-bench'],
      env: { POD_NAMESPACE: 'istio-system', POD_NAME: 'sextant-bench' },
      readyTimeoutMs: 600_000,
    });
    pin(s.process.pid!, cpuList(cores));
    return {
      name,
      pid: s.process.pid!,
      xdsAddress: s.xdsAddress,
      readyMs: Date.now() - t0,
      stop: async () => {
        await s.stop(20_000);
      },
    };
  }
  const env: Record<string, string> = { GOMAXPROCS: String(cores), ...(name === 'istiod-unlimited' ? ISTIOD_UNLIMITED_ENV : {}) };
  const i = await startIstiod({ kubeconfig, env, readyTimeoutMs: 600_000 });
  pin(i.pid, cpuList(cores));
  return {
    name,
    pid: i.pid,
    xdsAddress: i.xdsAddress,
    readyMs: Date.now() - t0,
    stop: () => i.stop(),
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
