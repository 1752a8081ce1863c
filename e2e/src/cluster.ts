import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir, toolPath } from './tools.js';

/**
 * A local Kubernetes control plane on loopback (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler and kwok), started by
 * scripts/cluster.sh. Pods become Running with IPs on fake kwok nodes, without
 * containers; pod IPs are in 198.18.0.0/15 (nothing listens there: never send
 * traffic to them) unless `podCidr` says otherwise.
 */
export interface Cluster {
  /** Admin kubeconfig (client certificate in group system:masters). */
  kubeconfig: string;
  /** The state directory: pki/, logs/<component>.log, pids/, args/, data/. */
  dir: string;
  /** https://127.0.0.1:<port> */
  apiServerUrl: string;
  /** PEM of the cluster CA (signs the apiserver's serving cert and kube-root-ca.crt). */
  caCertPath: string;
  /** Kills kube-apiserver only, starts it again with the same flags and waits for /readyz. */
  restartApiServer(): Promise<void>;
  /** Stops every process and removes the data (and the directory, when startCluster made it). */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** State directory; default a fresh temp dir, removed by stop(). */
  dir?: string;
  /** Fake nodes to create (kwok-node-0..N-1); default 1. */
  nodes?: number;
  /** kwok's pod IP range; default 198.18.0.1/15 (EndpointSlices reject loopback IPs). */
  podCidr?: string;
  /** Bound for each wait inside the script, in seconds; default 120. */
  waitSeconds?: number;
  /** The cluster is torn down by a watchdog once this process exits; default this process. */
  ownerPid?: number;
}

const scriptPath = fileURLToPath(new URL('../../scripts/cluster.sh', import.meta.url));
const running = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test process that dies without calling stop() must still not leave a cluster behind.
  process.on('exit', () => {
    for (const dir of running) spawnSync('bash', [scriptPath, 'down', dir], { stdio: 'ignore', timeout: 30_000 });
  });
}

interface RunResult {
  stdout: string;
  stderr: string;
}

function run(
  file: string,
  args: string[],
  opts: { input?: string; timeoutMs: number; env?: NodeJS.ProcessEnv; what: string },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs, maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) {
          const how = err.killed ? `timed out after ${opts.timeoutMs}ms` : `exit ${String(err.code)}`;
          reject(new Error(`${opts.what} failed (${how}): ${String(stderr).trim().split('\n').slice(-20).join('\n')}`));
          return;
        }
        resolve({ stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

function clusterScript(cmd: string, dir: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<RunResult> {
  return run('bash', [scriptPath, cmd, dir], { env, timeoutMs, what: `scripts/cluster.sh ${cmd} ${dir}` });
}

function readPorts(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(dir, 'ports.env'), 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(\d+)$/.exec(line.trim());
    if (m?.[1] && m[2]) out[m[1]] = m[2];
  }
  return out;
}

/** The pids recorded for the cluster in DIR (component name to pid). */
export function clusterPids(dir: string): Record<string, number> {
  const pidsDir = join(dir, 'pids');
  const out: Record<string, number> = {};
  if (!existsSync(pidsDir)) return out;
  for (const f of readdirSync(pidsDir)) {
    if (!f.endsWith('.pid')) continue;
    const pid = Number(readFileSync(join(pidsDir, f), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0) out[f.slice(0, -'.pid'.length)] = pid;
  }
  return out;
}

/** Starts a cluster and resolves once the API server, controllers, scheduler and fake nodes are ready. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  for (const t of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'] as const) {
    if (toolPath(t) === undefined) throw new Error(`${t} is not installed in ${cacheDir}/bin; run \`make tools\``);
  }
  const madeDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'sextant-cluster-'));
  const waitSeconds = opts.waitSeconds ?? 120;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SEXTANT_CACHE: cacheDir,
    SEXTANT_KWOK_NODES: String(opts.nodes ?? 1),
    SEXTANT_CLUSTER_TIMEOUT: String(waitSeconds),
    // The script's watchdog tears the cluster down if this process dies without stop().
    SEXTANT_CLUSTER_OWNER_PID: String(opts.ownerPid ?? process.pid),
    ...(opts.podCidr ? { SEXTANT_POD_CIDR: opts.podCidr } : {}),
  };
  // Five sequential waits at most, plus certificate generation.
  const scriptTimeout = (waitSeconds * 5 + 60) * 1000;
  installExitHook();
  running.add(dir);
  let up: RunResult;
  try {
    up = await clusterScript('up', dir, env, scriptTimeout);
  } catch (err) {
    // The script stops what it started on failure; make sure, and keep the logs for the report.
    await clusterScript('down', dir, env, 60_000).catch(() => undefined);
    running.delete(dir);
    throw new Error(`${(err as Error).message}\n(logs in ${join(dir, 'logs')})`);
  }
  const kubeconfig = up.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(kubeconfig)) throw new Error(`scripts/cluster.sh up printed no kubeconfig path (got ${JSON.stringify(kubeconfig)})`);
  const ports = readPorts(dir);
  let stopped = false;
  return {
    kubeconfig,
    dir,
    apiServerUrl: `https://127.0.0.1:${ports['APISERVER_PORT'] ?? '?'}`,
    caCertPath: join(dir, 'pki', 'ca.crt'),
    async restartApiServer() {
      if (stopped) throw new Error('cluster is stopped');
      await clusterScript('restart-apiserver', dir, env, (waitSeconds + 30) * 1000);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await clusterScript('down', dir, env, 90_000);
      running.delete(dir);
      if (madeDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs kubectl against KUBECONFIG; resolves to stdout, rejects with stderr. */
export async function kubectl(kubeconfig: string, args: string[], input?: string, timeoutMs = 60_000): Promise<string> {
  const bin = process.env['KUBECTL'] ?? 'kubectl';
  const r = await run(bin, ['--kubeconfig', kubeconfig, ...args], {
    input,
    timeoutMs,
    what: `kubectl ${args.join(' ')}`,
  });
  return r.stdout;
}

/** kubectl with `-o json`, parsed. */
export async function kubectlJson<T = unknown>(kubeconfig: string, args: string[], input?: string): Promise<T> {
  return JSON.parse(await kubectl(kubeconfig, [...args, '-o', 'json'], input)) as T;
}

/** Runs the cached helm against KUBECONFIG, with its state kept under the kubeconfig's directory. */
export async function helm(kubeconfig: string, args: string[], input?: string, timeoutMs = 180_000): Promise<string> {
  const bin = toolPath('helm');
  if (!bin) throw new Error(`helm is not installed in ${cacheDir}/bin; run \`make tools\``);
  const home = join(kubeconfig, '..', 'helm');
  const r = await run(bin, ['--kubeconfig', kubeconfig, ...args], {
    input,
    timeoutMs,
    what: `helm ${args.join(' ')}`,
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
  });
  return r.stdout;
}

/**
 * Re-evaluates CHECK until it returns a value other than undefined/false, with
 * backoff up to 500 ms between tries, and fails after TIMEOUT naming WHAT and
 * the last error. For conditions the API offers no watchable event for.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
    delay = Math.min(delay * 2, 500);
  }
}

/**
 * Waits until every CRD (or the named ones) is Established. `kubectl wait
 * --for=condition=Established` fails instead of waiting when it reads a CRD
 * the API server has not given a status yet, right after it was created.
 */
export async function waitForCrdsEstablished(kubeconfig: string, names?: string[], timeoutMs = 60_000): Promise<void> {
  type Crd = { metadata: { name: string }; status?: { conditions?: Array<{ type: string; status: string }> } };
  await waitFor(`CRDs Established${names ? ` (${names.join(', ')})` : ''}`, async () => {
    const { items } = await kubectlJson<{ items: Crd[] }>(kubeconfig, ['get', 'crd']);
    const wanted = names ? items.filter((i) => names.includes(i.metadata.name)) : items;
    if (wanted.length === 0 || (names && wanted.length < names.length)) return false;
    return wanted.every((i) => i.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'));
  }, timeoutMs);
}
