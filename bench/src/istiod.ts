/**
 * `make bench BENCH=istiod`: Sextant's daemon side by side with Istio's own
 * pilot-discovery, on one local cluster (scripts/cluster.sh: etcd,
 * kube-apiserver, controller manager, scheduler, kwok), one control plane at
 * a time, alternated, pinned to the same cores.
 *
 * The mesh (istiod-mesh.ts): S Services × R kwok replicas over 50 namespaces
 * with DestinationRules and VirtualServices, applied through the API server;
 * measured once without Sidecar scoping and once with one Sidecar per
 * namespace. N simulated sidecars per control plane (istiod-clients.ts, in
 * child processes): Delta ADS, the node ID and metadata of a real pod of the
 * mesh, Envoy's subscription order, every response ACKed.
 *
 * Per control plane and run: time to ready, RSS idle and with N, peak RSS,
 * cold connect of N, and for each change (a Deployment scaled up, a
 * VirtualService edit, a DestinationRule edit, all in the namespace every
 * proxy imports) the time until every client received a response carrying
 * the changed content, CPU seconds of the control-plane process and bytes
 * received by the clients until the control plane fell quiet. Reported as
 * medians over runs, with the ratio Sextant / istiod.
 *
 * Environment: ISTIOD_BENCH_SERVICES (default 100), ISTIOD_BENCH_REPLICAS (2),
 * ISTIOD_BENCH_PROXIES (comma list, default 50), ISTIOD_BENCH_RUNS (2),
 * ISTIOD_BENCH_CHANGES (changes of each kind per run, 3),
 * ISTIOD_BENCH_SCOPES (none,sidecar), ISTIOD_BENCH_PLANES
 * (sextant,istiod,istiod-unlimited), ISTIOD_BENCH_CORES (all cores),
 * ISTIOD_BENCH_TIMEOUT (seconds a change may take to reach a client before
 * it counts as not delivered, 180), ISTIOD_BENCH_MARKS (a file: the cold connect's and each change's
 * window as a JSON line, to slice a CPU profile with bench/scripts/cpu-window.mjs).
 * Run alone: `node bench/dist/istiod.js` (ISTIOD_BENCH_JSON=<file> writes the
 * report as JSON too).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { istiodShareFile, startCluster, waitForCrdsEstablished, kubectl, type Cluster } from '@sextant/e2e';
import { TypeUrl, type JsonValue } from '@sextant/envoy';
import { podNode, type PodLike } from '@sextant/xds/compare';
import type { ClientSpec } from './istiod-clients.js';
import { Kube, type KubeObject } from './istiod-kube.js';
import { NAMESPACES, SHARED_NAMESPACE, destinationRule, hasDestinationRule, hasVirtualService, istioConfig, namespaces, serviceRef, sidecars, virtualService, workloads, type MeshSize } from './istiod-mesh.js';
import { PLANES, cpuList, cpuSeconds, memory, sextantNode, sextantNodeOptions, startPlane, ISTIOD_UNLIMITED_ENV, type PlaneName, type RunningPlane } from './istiod-planes.js';

const now = () => performance.timeOrigin + performance.now();
const round = (x: number, d = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const median = (xs: number[]) => pct(xs.filter((x) => Number.isFinite(x)), 50);

export interface IstiodBenchOptions {
  services: number;
  replicas: number;
  proxies: number[];
  runs: number;
  changes: number;
  scopes: Scope[];
  planes: PlaneName[];
  cores: number;
  /** The Node.js binary the daemon runs on and its version (sextantNode), resolved once, before any set-up. */
  sextantNode: { path: string; version: string };
  log: (line: string) => void;
}
export type Scope = 'none' | 'sidecar';

export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): IstiodBenchOptions {
  const num = (k: string, d: number) => (env[k] ? Number(env[k]) : d);
  const listOf = (k: string, d: string) => (env[k] ?? d).split(',').map((s) => s.trim()).filter(Boolean);
  return {
    services: num('ISTIOD_BENCH_SERVICES', 100),
    replicas: num('ISTIOD_BENCH_REPLICAS', 2),
    proxies: listOf('ISTIOD_BENCH_PROXIES', '50').map(Number),
    runs: num('ISTIOD_BENCH_RUNS', 2),
    changes: num('ISTIOD_BENCH_CHANGES', 3),
    scopes: listOf('ISTIOD_BENCH_SCOPES', 'none,sidecar') as Scope[],
    planes: listOf('ISTIOD_BENCH_PLANES', PLANES.join(',')) as PlaneName[],
    cores: num('ISTIOD_BENCH_CORES', cpus().length),
    sextantNode: sextantNode(env),
    log: (l) => process.stderr.write(`[istiod-bench ${new Date().toISOString().slice(11, 19)}] ${l}\n`),
  };
}

// --- the clients' child process ---

type Reply = { op: string; [k: string]: unknown };

/** How many processes the simulated sidecars are split over. */
const clientProcs = () => Math.max(1, Number(process.env.ISTIOD_BENCH_CLIENT_PROCS ?? 2));

/** One child process of simulated sidecars. */
class ClientProc {
  readonly proc: ChildProcess;
  private readonly queue: ((m: Reply) => void)[] = [];
  readonly exited: Promise<void>;
  constructor() {
    // ISTIOD_BENCH_CLIENT_PROFILE=<dir>: a CPU profile of the clients' own processes (they share the cores with the control
    // plane), taken by scripts/cpu-profile.mjs so that it carries the clock anchor cpu-window.mjs slices by the change windows.
    const dir = process.env.ISTIOD_BENCH_CLIENT_PROFILE;
    const profile = dir ? ['--import', fileURLToPath(new URL('../scripts/cpu-profile.mjs', import.meta.url))] : [];
    const env = dir ? { ...process.env, CPU_PROFILE_DIR: dir, CPU_PROFILE_NAME: 'clients', GC_LOG_FILE: '' } : process.env;
    this.proc = fork(new URL('./istiod-clients.js', import.meta.url), [], { execArgv: ['--max-old-space-size=8192', ...profile], env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: Reply) => this.queue.shift()?.(m));
    this.exited = new Promise((r) => this.proc.once('exit', () => r()));
  }
  ask(msg: Reply, timeoutMs: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`clients did not answer ${msg.op} within ${timeoutMs} ms`)), timeoutMs);
      this.queue.push((m) => {
        clearTimeout(t);
        if (m.op === 'error') reject(new Error(String(m['error'])));
        else resolve(m);
      });
      this.proc.send(msg);
    });
  }
}

/**
 * The simulated sidecars, split over ISTIOD_BENCH_CLIENT_PROCS child processes
 * (2): each process holds a contiguous slice of the clients, and every
 * question goes to all of them, their answers merged. One process for 1,000
 * clients became the bottleneck of the cold connect (one core decoding 1,000
 * first responses while the control plane waited), which real sidecars, each
 * its own process, never are.
 */
class Clients {
  private readonly procs: ClientProc[];
  constructor(count = clientProcs()) {
    this.procs = Array.from({ length: count }, () => new ClientProc());
  }
  /** CPU seconds the clients' processes have used so far (user + system). */
  cpuSeconds(): number {
    return this.procs.reduce((a, p) => a + cpuSeconds(p.proc.pid!), 0);
  }
  /** Clients per process, in the order their answers are merged (set by `open`). */
  private sizes: number[] = [];
  /** The latest of each process's clients' times (merged answers of `await`, in process order). */
  lastByProcess(times: readonly (number | null)[]): number[] {
    let at = 0;
    return this.sizes.map((n) => {
      const mine = times.slice(at, (at += n)).filter((t): t is number => t !== null);
      return mine.length ? Math.max(...mine) : NaN;
    });
  }
  async ask(msg: Reply, timeoutMs = 600_000): Promise<Reply> {
    if (msg.op === 'open') {
      const all = msg['clients'] as ClientSpec[];
      const per = Math.ceil(all.length / this.procs.length);
      const slices = this.procs.map((_, i) => all.slice(i * per, (i + 1) * per));
      this.sizes = slices.map((s) => s.length);
      const replies = await Promise.all(this.procs.map((p, i) => p.ask({ ...msg, clients: slices[i]!, offset: i * per }, timeoutMs)));
      return { op: 'opened', readyAt: replies.flatMap((r) => r['readyAt'] as number[]), failed: replies.flatMap((r) => r['failed'] as string[]), errors: replies.flatMap((r) => r['errors'] as string[]) };
    }
    const replies = await Promise.all(this.procs.map((p) => p.ask(msg, timeoutMs)));
    if (msg.op === 'await') return { op: 'delivered', times: replies.flatMap((r) => r['times'] as (number | null)[]) };
    if (msg.op === 'quiet') return { op: 'quiet', at: Math.max(...replies.map((r) => Number(r['at']))) };
    if (msg.op === 'stats') {
      const sum = (k: string) => replies.reduce((a, r) => a + Number(r[k]), 0);
      return { op: 'stats', bytes: sum('bytes'), responses: sum('responses'), reconnects: sum('reconnects'), errorCount: sum('errorCount'), errors: replies.flatMap((r) => r['errors'] as string[]).slice(0, 20) };
    }
    return replies[0]!;
  }
  async close(): Promise<void> {
    await this.ask({ op: 'close' }, 10_000).catch(() => undefined);
    await Promise.race([Promise.all(this.procs.map((p) => p.exited)), new Promise((r) => setTimeout(r, process.env.ISTIOD_BENCH_CLIENT_PROFILE ? 60_000 : 5000))]); // a profile is written on exit
    for (const p of this.procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => p.exited));
  }
}

// --- proxies: real pods of the mesh ---

type PodInfo = PodLike & { metadata: { namespace: string }; status: { podIP?: string; phase?: string } };

/** The node pilot-agent sends for POD (node ID, cluster and ISTIO_META_* metadata; @sextant/xds/compare, shared with the parity suite). */
function sidecarNode(pod: PodInfo): ClientSpec {
  const node = podNode(pod);
  return { nodeId: node.id, cluster: String(node['cluster']), metadata: node.metadata as Record<string, JsonValue> };
}

/** N proxies spread over the services (and so the namespaces): proxy k is a replica of service k mod S. */
async function pickProxies(kube: Kube, size: MeshSize, n: number): Promise<ClientSpec[]> {
  const { items } = await kube.list<PodInfo>('/api/v1/pods?labelSelector=app');
  const byApp = new Map<string, PodInfo[]>();
  for (const p of items) {
    if (!p.status.podIP || p.status.phase !== 'Running') continue;
    const app = p.metadata.labels?.['app'];
    if (!app) continue;
    (byApp.get(app) ?? byApp.set(app, []).get(app)!).push(p);
  }
  for (const l of byApp.values()) l.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const out: ClientSpec[] = [];
  for (let k = 0; k < n; k++) {
    const pods = byApp.get(serviceRef(k % size.services).name) ?? [];
    const pod = pods[Math.floor(k / size.services) % Math.max(1, pods.length)];
    if (!pod) throw new Error(`no running pod for proxy ${k} (service ${serviceRef(k % size.services).name})`);
    out.push(sidecarNode(pod));
  }
  return out;
}

// --- the cluster and the mesh ---

interface Slice {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  endpoints?: Array<{ addresses: string[]; conditions?: { ready?: boolean } }>;
}
const readyIps = (slices: Iterable<Slice>) => {
  const ips = new Set<string>();
  for (const s of slices) for (const e of s.endpoints ?? []) if (e.conditions?.ready !== false) for (const a of e.addresses) ips.add(a);
  return ips;
};

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 2000);
  }
}

async function readyEndpointCount(kube: Kube): Promise<number> {
  const { items } = await kube.list<Slice>('/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io/service-name');
  return [...readyIps(items.filter((s) => s.metadata.namespace.startsWith('ns-')))].length;
}

async function setUpMesh(cluster: Cluster, kube: Kube, size: MeshSize, log: (l: string) => void): Promise<void> {
  const t0 = Date.now();
  await kubectl(cluster.kubeconfig, ['apply', '--server-side', '-f', istiodShareFile('istio-crds.yaml')], undefined, 300_000);
  await waitForCrdsEstablished(cluster.kubeconfig, undefined, 120_000);
  await kube.createAll(namespaces() as KubeObject[]);
  await kube.createAll(workloads(size) as KubeObject[]);
  await kube.createAll(istioConfig(size) as KubeObject[]);
  const want = size.services * size.replicas;
  let last = 0;
  await waitUntil(
    `${want} ready endpoints`,
    async () => {
      last = await readyEndpointCount(kube);
      return last >= want;
    },
    30 * 60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message} (have ${last})`);
  });
  log(`mesh ready: ${size.services} services × ${size.replicas} replicas in ${NAMESPACES} namespaces, ${want} endpoints, in ${round((Date.now() - t0) / 1000)} s`);
}

// --- measurements ---

export interface ChangeFigures {
  kind: 'endpoint' | 'virtualService' | 'destinationRule';
  /** API write → the last client has the changed content. */
  allMs: number;
  p50Ms: number;
  p99Ms: number;
  /** Endpoint changes: API write → the harness's EndpointSlice watch sees the new endpoint, and from there → all. */
  writeToSeenMs?: number;
  seenToAllMs?: number;
  /** Endpoint changes: EndpointSlice seen → proxy, per proxy (issue 10's target is put this way). */
  seenP50Ms?: number;
  seenP99Ms?: number;
  undelivered: number;
  cpuSeconds: number;
  /** CPU seconds of the clients' own processes in the same window (they share the machine with the control plane). */
  clientCpuSeconds: number;
  bytes: number;
}

export interface PlaneRun {
  plane: PlaneName;
  scope: Scope;
  proxies: number;
  run: number;
  readyMs: number;
  rssIdleMB: number;
  rssWithNMB: number;
  mbPerProxy: number;
  peakRssMB: number;
  connectMs: number;
  connectCpuSeconds: number;
  /** CPU seconds of the clients' own process during the cold connect (it shares the machine with the control plane). */
  clientConnectCpuSeconds: number;
  connectFailed: number;
  /** Clients that never completed the cold connect (first 10): what each had and why its streams ended. */
  connectFailures: string[];
  /** Streams the control plane ended (e.g. istiod's request rate limit) that clients opened again, over the whole run. */
  reconnects: number;
  changes: ChangeFigures[];
  clientErrors: string[];
}

/** Waits until PID used under 5% of a core for QUIETSECONDS whole seconds in a row (start-up or a push finished), at most MAXMS. */
async function cpuQuiet(pid: number, maxMs: number, quietSeconds = 1): Promise<void> {
  const end = Date.now() + maxMs;
  let prev = cpuSeconds(pid);
  let quiet = 0;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 1000));
    const c = cpuSeconds(pid);
    quiet = c - prev < 0.05 ? quiet + 1 : 0;
    if (quiet >= quietSeconds) return;
    prev = c;
  }
}

/**
 * ISTIOD_BENCH_HEAP_PROFILE=<dir>: with the daemon started under
 * bench/scripts/heap-profile.mjs (ISTIOD_BENCH_SEXTANT_NODE_OPTIONS) and
 * HEAP_PROFILE_DIR=<dir>, asks a Sextant plane for its live heap by allocation
 * site once the N proxies are connected (SIGUSR2), and waits for it (at most 5 min).
 */
async function heapProfile(plane: RunningPlane, log: (l: string) => void): Promise<void> {
  const dir = process.env.ISTIOD_BENCH_HEAP_PROFILE;
  if (!dir || !plane.name.startsWith('sextant')) return;
  const had = new Set(existsSync(dir) ? readdirSync(dir) : []);
  process.kill(plane.pid, 'SIGUSR2');
  const end = Date.now() + 300_000;
  while (Date.now() < end) {
    const fresh = (existsSync(dir) ? readdirSync(dir) : []).filter((f) => f.endsWith('.heapprofile') && !had.has(f));
    if (fresh.length) {
      const mem = existsSync(`${dir}/${fresh[0]}.memory.json`) ? readFileSync(`${dir}/${fresh[0]}.memory.json`, 'utf8') : '';
      log(`  heap profile: ${dir}/${fresh[0]} ${mem}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  log(`  heap profile: none written within 5 min (is the daemon running under bench/scripts/heap-profile.mjs?)`);
}

/** A change not seen by a client within this long counts as not delivered to it (ISTIOD_BENCH_TIMEOUT, seconds). */
const deliveryTimeoutMs = Number(process.env.ISTIOD_BENCH_TIMEOUT ?? 180) * 1000;
/** How long the cold connect of N may take before the clients still incomplete are reported (ISTIOD_BENCH_CONNECT_TIMEOUT, seconds). */
const connectTimeoutMs = Number(process.env.ISTIOD_BENCH_CONNECT_TIMEOUT ?? 600) * 1000;

let markerSeq = 0;
const marker = () => String(++markerSeq).padStart(6, '0');

/** The bytes of a protobuf string field 2 (SocketAddress.address) holding IP: tag, length, text. */
function addressPattern(ip: string): string {
  return Buffer.concat([Buffer.from([0x12, ip.length]), Buffer.from(ip)]).toString('base64');
}

async function measureChange(
  kind: ChangeFigures['kind'],
  clients: Clients,
  plane: RunningPlane,
  n: number,
  watch: { typeUrl: string; name: string },
  write: () => Promise<void>,
  expect: () => Promise<{ contains: string[]; notContains: string[]; seenAt?: number }>,
): Promise<ChangeFigures> {
  await clients.ask({ op: 'watch', ...watch });
  const bytes0 = Number((await clients.ask({ op: 'stats' }))['bytes']);
  const cpu0 = cpuSeconds(plane.pid);
  const clientCpu0 = clients.cpuSeconds();
  const t0 = now();
  await write();
  const e = await expect();
  const got = await clients.ask({ op: 'await', ...watch, ...e, since: t0, timeoutMs: deliveryTimeoutMs });
  await clients.ask({ op: 'quiet', quietMs: 1000, maxMs: 15_000 });
  const cpu1 = cpuSeconds(plane.pid);
  const clientCpu1 = clients.cpuSeconds();
  const bytes1 = Number((await clients.ask({ op: 'stats' }))['bytes']);
  // ISTIOD_BENCH_MARKS=<file>: each change's window (epoch ms, write to quiet) for slicing a CPU profile of the run (the cold connect's is `connect`).
  // lastByProcess: when each clients' process had its last delivery (whether one process's clients are served last).
  if (process.env.ISTIOD_BENCH_MARKS) appendFileSync(process.env.ISTIOD_BENCH_MARKS, JSON.stringify({ plane: plane.name, kind, t0, seenAt: e.seenAt, t1: now(), lastByProcess: clients.lastByProcess(got['times'] as (number | null)[]) }) + '\n');
  const times = (got['times'] as (number | null)[]).filter((t): t is number => t !== null).map((t) => t - t0);
  const undelivered = n - times.length;
  const all = undelivered ? NaN : Math.max(...times);
  return {
    kind,
    allMs: round(all),
    p50Ms: round(pct(times, 50)),
    p99Ms: round(pct(times, 99)),
    ...(e.seenAt !== undefined ? fromSeen(e.seenAt - t0, times, all) : {}),
    undelivered,
    cpuSeconds: round(cpu1 - cpu0, 2),
    clientCpuSeconds: round(clientCpu1 - clientCpu0, 2),
    bytes: bytes1 - bytes0,
  };
}

/** An endpoint change's figures from the moment the harness saw the EndpointSlice (`seenMs` after the write). */
function fromSeen(seenMs: number, times: number[], all: number): Pick<ChangeFigures, 'writeToSeenMs' | 'seenToAllMs' | 'seenP50Ms' | 'seenP99Ms'> {
  const after = times.map((t) => t - seenMs);
  return { writeToSeenMs: round(seenMs), seenToAllMs: round(all - seenMs), seenP50Ms: round(pct(after, 50)), seenP99Ms: round(pct(after, 99)) };
}

/** Scales a Deployment in the shared namespace up by one; the new pod's IP must reach every client's EDS. */
async function endpointChange(kube: Kube, clients: Clients, plane: RunningPlane, n: number, size: MeshSize, index: number): Promise<ChangeFigures> {
  const s = serviceRef(index);
  const slicesPath = `/apis/discovery.k8s.io/v1/namespaces/${s.namespace}/endpointslices?labelSelector=kubernetes.io/service-name%3D${s.name}`;
  const initial = await kube.list<Slice>(slicesPath);
  const state = new Map(initial.items.map((i) => [i.metadata.name, i]));
  const before = readyIps(state.values());
  let resolveSeen!: (v: { ip: string; at: number }) => void;
  const seen = new Promise<{ ip: string; at: number }>((r) => (resolveSeen = r));
  const stop = kube.watch<Slice>(slicesPath, initial.metadata.resourceVersion, (type, obj) => {
    const at = now();
    if (type === 'DELETED') state.delete(obj.metadata.name);
    else state.set(obj.metadata.name, obj);
    const added = [...readyIps(state.values())].filter((ip) => !before.has(ip));
    if (added.length) resolveSeen({ ip: added[0]!, at });
  });
  try {
    return await measureChange(
      'endpoint',
      clients,
      plane,
      n,
      { typeUrl: TypeUrl.ClusterLoadAssignment, name: `outbound|80||${s.host}` },
      async () => {
        await kube.mergePatch('apps/v1', 'Deployment', s.namespace, s.name, { spec: { replicas: size.replicas + 1 } });
      },
      async () => {
        const v = await Promise.race([seen, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`EndpointSlice of ${s.name} did not gain an endpoint in 120 s`)), 120_000))]);
        return { contains: [addressPattern(v.ip)], notContains: [], seenAt: v.at };
      },
    );
  } finally {
    stop();
  }
}

/** Edits the VirtualService of service 0 (shared namespace): a new route prefix every client's RDS "80" must carry. */
async function virtualServiceChange(kube: Kube, clients: Clients, plane: RunningPlane, n: number): Promise<ChangeFigures> {
  const prefix = `/bench-${marker()}`;
  return measureChange(
    'virtualService',
    clients,
    plane,
    n,
    { typeUrl: TypeUrl.RouteConfiguration, name: '80' },
    async () => {
      await kube.replace(virtualService(0, prefix) as KubeObject);
    },
    async () => ({ contains: [Buffer.from(prefix).toString('base64')], notContains: [] }),
  );
}

/** Renames the third subset of service 0's DestinationRule: every client must receive the new subset's cluster. */
async function destinationRuleChange(kube: Kube, clients: Clients, plane: RunningPlane, n: number): Promise<ChangeFigures> {
  const subset = `s${marker()}`;
  return measureChange(
    'destinationRule',
    clients,
    plane,
    n,
    { typeUrl: TypeUrl.Cluster, name: `outbound|80|${subset}|${serviceRef(0).host}` },
    async () => {
      await kube.replace(destinationRule(0, subset) as KubeObject);
    },
    async () => ({ contains: [], notContains: [] }),
  );
}

/** Services in the shared namespace the endpoint changes scale (one per change, restored after each plane). */
function endpointTargets(size: MeshSize, changes: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < size.services && out.length < changes; i += NAMESPACES) out.push(i);
  return out;
}

async function restoreEndpoints(kube: Kube, size: MeshSize, targets: number[]): Promise<void> {
  for (const i of targets) {
    const s = serviceRef(i);
    await kube.mergePatch('apps/v1', 'Deployment', s.namespace, s.name, { spec: { replicas: size.replicas } });
  }
  const want = size.services * size.replicas;
  await waitUntil(`endpoints back to ${want}`, async () => (await readyEndpointCount(kube)) === want, 300_000);
}

async function measurePlane(
  name: PlaneName,
  cluster: Cluster,
  kube: Kube,
  size: MeshSize,
  scope: Scope,
  proxies: ClientSpec[],
  run: number,
  opts: IstiodBenchOptions,
): Promise<PlaneRun> {
  const n = proxies.length;
  const plane = await startPlane(name, cluster.kubeconfig, opts.cores, opts.sextantNode.path);
  const clients = new Clients();
  try {
    await cpuQuiet(plane.pid, 60_000);
    const idle = memory(plane.pid);
    const cpu0 = cpuSeconds(plane.pid);
    const clientCpu0 = clients.cpuSeconds();
    const connectT0 = now();
    const opened = await clients.ask({ op: 'open', address: plane.xdsAddress, clients: proxies, timeoutMs: connectTimeoutMs }, connectTimeoutMs + 60_000);
    const readyAt = opened['readyAt'] as number[];
    const failed = (opened['failed'] as string[]).length;
    const connectMs = failed ? NaN : Math.max(...readyAt) - connectT0;
    const connectCpu = cpuSeconds(plane.pid) - cpu0;
    const clientConnectCpu = clients.cpuSeconds() - clientCpu0;
    if (process.env.ISTIOD_BENCH_MARKS) appendFileSync(process.env.ISTIOD_BENCH_MARKS, JSON.stringify({ plane: plane.name, kind: 'connect', t0: connectT0, t1: now() }) + '\n');
    // Three quiet seconds: the daemon returns a push burst's memory 1 s after its queue drains (a full GC of ~0.5 s);
    // with one, that could start inside the first change and stand in its figures (672 ms and 1.2 CPU s once, against ~160 ms).
    await cpuQuiet(plane.pid, 60_000, 3);
    const withN = memory(plane.pid);
    await heapProfile(plane, opts.log);
    const failures = (opened['failed'] as string[]).slice(0, 10);
    opts.log(`${name} [${scope}, N=${n}, run ${run}]: ready ${plane.readyMs} ms, RSS idle ${round(idle.rssMB)} MB, with N ${round(withN.rssMB)} MB, connect ${round(connectMs)} ms (${round(connectCpu, 1)} CPU s; the clients' processes ${round(clientConnectCpu, 1)} CPU s)${failed ? ` (${failed} clients never complete)` : ''}`);
    for (const r of plane.reclaims()) opts.log(`  ${r}`);
    for (const f of failures) opts.log(`  incomplete: ${f}`);
    if (failed) opts.log(`  ${name}'s log: ${plane.warnings().replace(/\n/g, '\n    ')}`);
    const changes: ChangeFigures[] = [];
    // Changes are timed to every client: with some never connected each would only wait out the timeout, so they are not measured.
    if (!failed) {
      const targets = endpointTargets(size, opts.changes);
      for (const t of targets) changes.push(await endpointChange(kube, clients, plane, n, size, t));
      for (let c = 0; c < opts.changes; c++) changes.push(await virtualServiceChange(kube, clients, plane, n));
      for (let c = 0; c < opts.changes; c++) changes.push(await destinationRuleChange(kube, clients, plane, n));
    }
    for (const c of changes) opts.log(`  ${c.kind}: all ${c.allMs} ms (p50 ${c.p50Ms}, p99 ${c.p99Ms}${c.writeToSeenMs !== undefined ? `, write→seen ${c.writeToSeenMs}, seen→all ${c.seenToAllMs}, seen→proxy p50 ${c.seenP50Ms}, p99 ${c.seenP99Ms}` : ''}), ${c.cpuSeconds} CPU s (the clients' ${c.clientCpuSeconds}), ${round(c.bytes / 1e6, 2)} MB${c.undelivered ? `, ${c.undelivered} UNDELIVERED` : ''}`);
    const peak = memory(plane.pid);
    const stats = await clients.ask({ op: 'stats' });
    return {
      plane: name,
      scope,
      proxies: n,
      run,
      readyMs: plane.readyMs,
      rssIdleMB: round(idle.rssMB),
      rssWithNMB: round(withN.rssMB),
      mbPerProxy: round((withN.rssMB - idle.rssMB) / n, 2),
      peakRssMB: round(peak.peakMB),
      connectMs: round(connectMs),
      connectCpuSeconds: round(connectCpu, 2),
      clientConnectCpuSeconds: round(clientConnectCpu, 2),
      connectFailed: failed,
      connectFailures: failures,
      reconnects: Number(stats['reconnects']),
      changes,
      clientErrors: stats['errors'] as string[],
    };
  } finally {
    await clients.close();
    await plane.stop();
    await restoreEndpoints(kube, size, endpointTargets(size, opts.changes));
  }
}

// --- summary ---

type Summary = Record<string, number>;

function summarise(runs: PlaneRun[]): Summary {
  const m = (f: (r: PlaneRun) => number) => round(median(runs.map(f)), 2);
  const ch = (kind: ChangeFigures['kind'], f: (c: ChangeFigures) => number | undefined) =>
    round(median(runs.flatMap((r) => r.changes.filter((c) => c.kind === kind).map((c) => f(c) ?? NaN))), 2);
  const sum = (kind: ChangeFigures['kind']) => runs.reduce((a, r) => a + r.changes.filter((c) => c.kind === kind).reduce((b, c) => b + c.undelivered, 0), 0);
  return {
    readyMs: m((r) => r.readyMs),
    rssIdleMB: m((r) => r.rssIdleMB),
    rssWithNMB: m((r) => r.rssWithNMB),
    mbPerProxy: m((r) => r.mbPerProxy),
    peakRssMB: m((r) => r.peakRssMB),
    connectMs: m((r) => r.connectMs),
    connectCpuSeconds: m((r) => r.connectCpuSeconds),
    clientConnectCpuSeconds: m((r) => r.clientConnectCpuSeconds),
    reconnects: m((r) => r.reconnects),
    endpointAllMs: ch('endpoint', (c) => c.allMs),
    endpointP50Ms: ch('endpoint', (c) => c.p50Ms),
    endpointP99Ms: ch('endpoint', (c) => c.p99Ms),
    endpointWriteToSeenMs: ch('endpoint', (c) => c.writeToSeenMs),
    endpointSeenToAllMs: ch('endpoint', (c) => c.seenToAllMs),
    endpointSeenP50Ms: ch('endpoint', (c) => c.seenP50Ms),
    endpointSeenP99Ms: ch('endpoint', (c) => c.seenP99Ms),
    endpointCpuSeconds: ch('endpoint', (c) => c.cpuSeconds),
    endpointClientCpuSeconds: ch('endpoint', (c) => c.clientCpuSeconds),
    endpointBytes: ch('endpoint', (c) => c.bytes),
    vsAllMs: ch('virtualService', (c) => c.allMs),
    vsP50Ms: ch('virtualService', (c) => c.p50Ms),
    vsCpuSeconds: ch('virtualService', (c) => c.cpuSeconds),
    vsClientCpuSeconds: ch('virtualService', (c) => c.clientCpuSeconds),
    vsBytes: ch('virtualService', (c) => c.bytes),
    drAllMs: ch('destinationRule', (c) => c.allMs),
    drP50Ms: ch('destinationRule', (c) => c.p50Ms),
    drCpuSeconds: ch('destinationRule', (c) => c.cpuSeconds),
    drClientCpuSeconds: ch('destinationRule', (c) => c.clientCpuSeconds),
    drBytes: ch('destinationRule', (c) => c.bytes),
    undelivered: sum('endpoint') + sum('virtualService') + sum('destinationRule') + runs.reduce((a, r) => a + r.connectFailed, 0),
  };
}

const ROWS: Array<[keyof Summary & string, string, (v: number) => string]> = [
  ['readyMs', 'time to ready (spawn → /ready), ms', (v) => String(round(v, 0))],
  ['rssIdleMB', 'RSS idle, MB', (v) => String(round(v))],
  ['rssWithNMB', 'RSS with N proxies, MB', (v) => String(round(v))],
  ['mbPerProxy', 'RSS per proxy, MB', (v) => String(round(v, 2))],
  ['peakRssMB', 'peak RSS, MB', (v) => String(round(v))],
  ['connectMs', 'cold connect of N (all 4 types), ms', (v) => String(round(v, 0))],
  ['connectCpuSeconds', 'CPU for the cold connect, s', (v) => String(round(v, 2))],
  ['clientConnectCpuSeconds', '  the clients\' processes\' CPU, same window, s', (v) => String(round(v, 2))],
  ['reconnects', 'streams turned away and opened again (whole run)', (v) => String(v)],
  ['endpointAllMs', 'endpoint change → all N, ms', (v) => String(round(v, 0))],
  ['endpointP50Ms', 'endpoint change → proxy, p50, ms', (v) => String(round(v, 0))],
  ['endpointP99Ms', 'endpoint change → proxy, p99, ms', (v) => String(round(v, 0))],
  ['endpointWriteToSeenMs', '  API write → EndpointSlice seen, ms', (v) => String(round(v, 0))],
  ['endpointSeenToAllMs', '  EndpointSlice seen → all N, ms', (v) => String(round(v, 0))],
  ['endpointSeenP50Ms', '  EndpointSlice seen → proxy, p50, ms', (v) => String(round(v, 0))],
  ['endpointSeenP99Ms', '  EndpointSlice seen → proxy, p99, ms', (v) => String(round(v, 0))],
  ['endpointCpuSeconds', 'CPU per endpoint change, s', (v) => String(round(v, 2))],
  ['endpointClientCpuSeconds', '  the clients\' processes\' CPU, same window, s', (v) => String(round(v, 2))],
  ['endpointBytes', 'bytes sent per endpoint change, KB', (v) => String(round(v / 1024))],
  ['vsAllMs', 'VirtualService edit → all N, ms', (v) => String(round(v, 0))],
  ['vsP50Ms', 'VirtualService edit → proxy, p50, ms', (v) => String(round(v, 0))],
  ['vsCpuSeconds', 'CPU per VirtualService edit, s', (v) => String(round(v, 2))],
  ['vsClientCpuSeconds', '  the clients\' processes\' CPU, same window, s', (v) => String(round(v, 2))],
  ['vsBytes', 'bytes sent per VirtualService edit, KB', (v) => String(round(v / 1024))],
  ['drAllMs', 'DestinationRule edit → all N, ms', (v) => String(round(v, 0))],
  ['drP50Ms', 'DestinationRule edit → proxy, p50, ms', (v) => String(round(v, 0))],
  ['drCpuSeconds', 'CPU per DestinationRule edit, s', (v) => String(round(v, 2))],
  ['drClientCpuSeconds', '  the clients\' processes\' CPU, same window, s', (v) => String(round(v, 2))],
  ['drBytes', 'bytes sent per DestinationRule edit, KB', (v) => String(round(v / 1024))],
  ['undelivered', 'changes not delivered (client × change)', (v) => String(v)],
];

export interface IstiodBenchReport {
  inputs: Omit<IstiodBenchOptions, 'log' | 'sextantNode'> & { istiodUnlimitedEnv: Record<string, string>; cpuList: string; loadAverageAtStart: string };
  /** scope/N → plane → medians over runs. */
  summary: Record<string, Partial<Record<PlaneName, Summary>>>;
  runs: PlaneRun[];
  /** Plane runs that did not complete (their figures are not in the summary). */
  failures: Array<{ plane: PlaneName; scope: Scope; proxies: number; run: number; error: string }>;
  notes: string[];
  markdown: string;
}

export function toMarkdown(r: Omit<IstiodBenchReport, 'markdown'>): string {
  const out: string[] = [];
  out.push(
    `S = ${r.inputs.services} Services × R = ${r.inputs.replicas} replicas over ${NAMESPACES} namespaces; N = ${r.inputs.proxies.join(', ')} Delta sidecars; ` +
      `${r.inputs.runs} runs per control plane, alternated (${r.inputs.planes.join(' → ')}); ${r.inputs.changes} changes of each kind per run; control planes pinned to CPUs ${r.inputs.cpuList}. ` +
      `Figures are medians over runs (changes: over every change of every run). Ratio = Sextant / istiod (defaults); below 1 is better for Sextant.`,
    '',
  );
  for (const [key, planes] of Object.entries(r.summary)) {
    out.push(`### ${key}`, '');
    const cols = r.inputs.planes.filter((p) => planes[p]);
    const label: Record<PlaneName, string> = { istiod: 'istiod', 'istiod-unlimited': 'istiod, limits lifted', sextant: 'Sextant', 'sextant-istio-debounce': 'Sextant, debounce 100 ms / 10 s' };
    const ordered = (['istiod', 'istiod-unlimited', 'sextant-istio-debounce', 'sextant'] as PlaneName[]).filter((p) => cols.includes(p));
    const ratio = planes.sextant && planes.istiod;
    out.push(`| metric | ${ordered.map((p) => label[p]).join(' | ')}${ratio ? ' | Sextant / istiod |' : ' |'}`);
    out.push(`|---|${ordered.map(() => '---:').join('|')}${ratio ? '|---:|' : '|'}`);
    for (const [k, name, fmt] of ROWS) {
      const vals = ordered.map((p) => planes[p]![k]!);
      const rt = ratio ? planes.sextant![k]! / planes.istiod![k]! : NaN;
      out.push(`| ${name} | ${vals.map((v) => (Number.isFinite(v) ? fmt(v) : '—')).join(' | ')}${ratio ? ` | ${k === 'undelivered' || !Number.isFinite(rt) ? '' : `${round(rt, 2)}×`} |` : ' |'}`);
    }
    out.push('');
  }
  // The medians hide the order: the first changes after a cold connect can differ from the rest (Sextant's JIT warm-up, docs/scale.md).
  const withEndpoints = r.runs.filter((x) => x.changes.some((c) => c.kind === 'endpoint'));
  if (withEndpoints.length) {
    out.push('Endpoint changes one by one (EndpointSlice seen → proxy p50 / p99, ms, in the order they were made; the first follows the cold connect):', '');
    const ms = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '—' : String(Math.round(v)));
    for (const x of withEndpoints) {
      const figures = x.changes.filter((c) => c.kind === 'endpoint').map((c) => `${ms(c.seenP50Ms)} / ${ms(c.seenP99Ms)}`);
      out.push(`- ${x.plane}, ${x.scope}, N = ${x.proxies}, run ${x.run}: ${figures.join(', ')}`);
    }
    out.push('');
  }
  const incomplete = r.runs.filter((x) => x.connectFailed > 0);
  if (incomplete.length) {
    out.push('Cold connects that did not complete (RSS figures kept; changes not measured, since each would only wait out the delivery timeout):', '');
    for (const x of incomplete) out.push(`- ${x.plane}, ${x.scope}, N = ${x.proxies}, run ${x.run}: ${x.connectFailed} of ${x.proxies} clients incomplete after the connect timeout; e.g. ${x.connectFailures[0] ?? ''}`);
    out.push('');
  }
  if (r.failures.length) {
    out.push('Runs that did not complete (not in the figures above):', '');
    for (const f of r.failures) out.push(`- ${f.plane}, ${f.scope}, N = ${f.proxies}, run ${f.run}: ${f.error.split('\n')[0]}`);
    out.push('');
  }
  out.push('Notes:', '', ...r.notes.map((n) => `- ${n}`));
  return out.join('\n');
}

export async function runIstiodBench(opts: IstiodBenchOptions = optionsFromEnv()): Promise<IstiodBenchReport> {
  const log = opts.log;
  const size: MeshSize = { services: opts.services, replicas: opts.replicas };
  const loadAverageAtStart = loadavg().map((l) => l.toFixed(2)).join(' ');
  const cluster = await startCluster({ nodes: Math.ceil((size.services * (size.replicas + 1)) / 200) + 1, waitSeconds: 300 });
  const kube = new Kube(cluster.kubeconfig);
  const runs: PlaneRun[] = [];
  const failures: IstiodBenchReport['failures'] = [];
  try {
    await setUpMesh(cluster, kube, size, log);
    for (const scope of opts.scopes) {
      if (scope === 'sidecar') await kube.createAll(sidecars() as KubeObject[]);
      else await kube.deleteAll(sidecars() as KubeObject[]);
      for (const n of opts.proxies) {
        const proxies = await pickProxies(kube, size, n);
        for (let run = 1; run <= opts.runs; run++) {
          for (const plane of opts.planes) {
            try {
              runs.push(await measurePlane(plane, cluster, kube, size, scope, proxies, run, opts));
              // ISTIOD_BENCH_PROGRESS=<file>: the report so far, after every control-plane run (a long run stopped early keeps what it measured).
              if (process.env.ISTIOD_BENCH_PROGRESS) writeFileSync(process.env.ISTIOD_BENCH_PROGRESS, JSON.stringify(buildReport(opts, runs, failures, loadAverageAtStart), null, 2) + '\n');
            } catch (err) {
              // One control plane failing (a crash, a timeout) is a finding, not the end of the comparison.
              log(`${plane} [${scope}, N=${n}, run ${run}] FAILED: ${(err as Error).message}`);
              failures.push({ plane, scope, proxies: n, run, error: (err as Error).message.slice(0, 2000) });
            }
          }
        }
      }
    }
  } finally {
    kube.close();
    await cluster.stop();
  }
  return buildReport(opts, runs, failures, loadAverageAtStart);
}

function buildReport(opts: IstiodBenchOptions, runs: PlaneRun[], failures: IstiodBenchReport['failures'], loadAverageAtStart: string): IstiodBenchReport {
  const summary: IstiodBenchReport['summary'] = {};
  for (const scope of opts.scopes) {
    for (const n of opts.proxies) {
      const key = `${scope === 'sidecar' ? 'per-namespace Sidecars' : 'no Sidecar scoping'}, N = ${n}`;
      summary[key] = {};
      for (const p of opts.planes) {
        const rs = runs.filter((r) => r.scope === scope && r.proxies === n && r.plane === p);
        if (rs.length) summary[key][p] = summarise(rs);
      }
    }
  }
  const notes = [
    'One local cluster (scripts/cluster.sh: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) for every run; pods are kwok pods of Deployments, EndpointSlices come from the real EndpointSlice controller.',
    `Sextant runs as the daemon (\`node apps/sextant/bin/sextant.js discovery --kubeconfig …\` on Node ${opts.sextantNode.version} with the chart's flags, and NODE_OPTIONS=${sextantNodeOptions(opts.cores)} as the chart's v8PoolSize gives a pod of ${opts.cores} CPUs); istiod is` +
      " `pilot-discovery discovery --kubeconfig …` with GOMAXPROCS = the cores given; 'limits lifted' adds " +
      Object.entries(ISTIOD_UNLIMITED_ENV).map(([k, v]) => `${k}=${v}`).join(', ') + '.',
    `The clients run in ${clientProcs()} separate processes on the same machine (ISTIOD_BENCH_CLIENT_PROCS; they compete for the same cores; their CPU is not the control plane's, and is shown under it). Each client is one HTTP/2 connection from its own loopback address with one Delta ADS stream, node ID and metadata of a real pod of the mesh.`,
    "Delivered = the client received a response carrying the changed content: the new pod's address in the EDS resource of the scaled Service, the new route prefix in route configuration \"80\", the new subset's cluster in CDS. Changes are made in the namespace every proxy imports (with Sidecars too), so every change concerns all N.",
    'CPU seconds are user + system of the control-plane process (/proc/<pid>/stat, all threads) from the API write until no byte reached any client for 1 s; bytes are what the clients received in that window. The CPU of the clients\' processes in the same window is shown under each: they share the cores with the control plane. RSS is VmRSS, peak VmHWM (/proc/<pid>/status); "idle" is after start-up settled (under 5% of a core for 1 s); "with N" and the changes follow 3 such seconds after the cold connect.',
    `Load average at start: ${loadAverageAtStart} (the machine is shared; other work moves every figure).`,
  ];
  const base = {
    inputs: { services: opts.services, replicas: opts.replicas, proxies: opts.proxies, runs: opts.runs, changes: opts.changes, scopes: opts.scopes, planes: opts.planes, cores: opts.cores, istiodUnlimitedEnv: ISTIOD_UNLIMITED_ENV, cpuList: cpuList(opts.cores), loadAverageAtStart },
    summary,
    runs,
    failures,
    notes,
  };
  return { ...base, markdown: toMarkdown(base) };
}

// `node bench/dist/istiod.js` runs it alone and prints the report (ISTIOD_BENCH_JSON=<file> also writes it as JSON).
if (import.meta.url === `file://${process.argv[1]}`) {
  runIstiodBench()
    .then((r) => {
      if (process.env.ISTIOD_BENCH_JSON) writeFileSync(process.env.ISTIOD_BENCH_JSON, JSON.stringify(r, null, 2) + '\n');
      process.stdout.write(r.markdown + '\n');
      process.exit(0);
    })
    .catch((err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    });
}

