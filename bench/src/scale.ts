/**
 * Control-plane cost at thousands of services, in process (no sockets):
 *
 *  - PushContext.build: time and retained heap;
 *  - pushScope for one EndpointSlice change (must be EDS-only);
 *  - CDS+EDS+LDS+RDS for one sidecar: time, resource count, bytes;
 *  - CDS+EDS+LDS+RDS for many sidecars over 50 namespaces through the
 *    daemon's TranslationGenerators (one ResourceEncoder, so sharing counts):
 *    CPU seconds and encoder hit ratio;
 *  - one endpoint change end to end: build + scope + EDS for the affected
 *    clusters only.
 *
 * Meshes: see scale-mesh.ts. `SCALE_SIZES=1000,5000` and
 * `SCALE_PROXIES=1000` change the inputs; `SCALE_RUNS` the repetitions.
 */
import { loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { silentLogger, type ObjectKey } from '@sextant/api';
import { TypeUrl } from '@sextant/envoy';
import { parseProxy, PushContext, pushScope, type ConfigObjectLike } from '@sextant/model';
import { buildClusters, buildEndpoints, buildListeners, buildRoutes, edsNamesOf, routeNamesOf } from '@sextant/translate';
import type { PushRequest, WatchedResource, XdsProxy } from '@sextant/xds';
import { TranslationGenerators } from '@sextant/sextant/generators';
import { endpointSlice, NAMESPACES, syntheticMesh, type SyntheticMesh } from './scale-mesh.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const OPTS = { domainSuffix: 'cluster.local', trustDomain: 'cluster.local' };
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
};
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const cpuSec = (a: NodeJS.CpuUsage) => {
  const b = process.cpuUsage(a);
  return (b.user + b.system) / 1e6;
};

function timeRuns<T>(runs: number, f: () => T): { medianMs: number; last: T } {
  const times: number[] = [];
  let last!: T;
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    last = f();
    times.push(ms(t0));
  }
  return { medianMs: round(median(times), 2), last };
}

function build(objects: Iterable<ConfigObjectLike>, version: string) {
  return PushContext.build(objects, { ...OPTS, version });
}

/**
 * Proxy `conn` is replica `conn % 3` of one Deployment of service `floor(conn / 3)`:
 * its own pod IP (so its own inbound config), the Deployment's labels (the
 * synthetic mesh's pods are v1/v2/v3, so the labels come as metadata, as
 * pilot-agent sends them).
 */
function proxyFor(mesh: SyntheticMesh, n: number, conn: number): XdsProxy {
  const s = mesh.svc(Math.floor(conn / REPLICAS) % n);
  const pod = conn % REPLICAS;
  const id = `sidecar~${s.podIps[pod]}~${s.podNames[pod]}.${s.namespace}~${s.namespace}.svc.cluster.local`;
  const metadata = { NAMESPACE: s.namespace, CLUSTER_ID: 'Kubernetes', LABELS: { app: s.name, version: 'v1' } };
  return { connectionId: `c${conn}`, id, node: {} as XdsProxy['node'], metadata, peer: 'ipv4:127.0.0.1:1', delta: false };
}

const REPLICAS = 3;

const wildcard = (typeUrl: string): WatchedResource => ({ typeUrl, wildcard: true, names: new Set() });
const named = (typeUrl: string, names: Iterable<string>): WatchedResource => ({ typeUrl, wildcard: false, names: new Set(names) });

interface SizeReport {
  services: number;
  pods: number;
  destinationRules: number;
  virtualServices: number;
  objects: number;
  build: { medianMs: number; heapMiB: number; issues: number };
  scopeOneSlice: { medianMs: number; full: boolean; edsClusters: number };
  oneSidecar: { medianMs: number; cds: number; eds: number; lds: number; rds: number; resources: number; jsonMiB: number; msByType: Record<string, number> };
  classSharing: { proxies: number; replicasPerClass: number; msPerProxyShared: number; msPerProxyUnshared: number; speedup: number };
  manySidecars: { proxies: number; namespaces: number; cpuSec: number; wallSec: number; msPerProxy: number; encoderHits: number; encoderMisses: number; hitRatio: number; encoderEntries: number; heapMiB: number };
  endpointChange: { medianMs: number; buildMs: number; scopeMs: number; edsMs: number; edsClusters: number; full: boolean };
}

function measureSize(n: number, proxies: number, runs: number): SizeReport {
  const mesh = syntheticMesh(n);
  const objects = mesh.objects;

  // PushContext.build: time (median) and heap retained by one context.
  const b = timeRuns(runs, () => build(objects, 'v1'));
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  let keep: unknown = build(objects, 'heap');
  gc();
  const heapMiB = round((process.memoryUsage().heapUsed - heap0) / 2 ** 20);
  keep = undefined;
  void keep;
  const prev = b.last;

  // One EndpointSlice change: service 7's first pod goes not-ready.
  const target = 7;
  const changedSlice = endpointSlice(mesh, target, { notReady: 0 });
  const sliceIdx = objects.findIndex((o) => o.kind === 'EndpointSlice' && o.metadata.name === changedSlice.metadata.name && o.metadata.namespace === changedSlice.metadata.namespace);
  const objects2 = objects.slice();
  objects2[sliceIdx] = changedSlice;
  const changed: ObjectKey[] = [{ kind: 'EndpointSlice', namespace: changedSlice.metadata.namespace, name: changedSlice.metadata.name }];
  const next = build(objects2, 'v2');
  const sc = timeRuns(runs, () => pushScope(prev, next, changed));
  const scope = sc.last;

  // One sidecar, built directly (JSON), in the namespace of service 1.
  const view = prev.resolveProxy(parseProxy(proxyFor(mesh, 1, 0).id, proxyFor(mesh, 1, 0).metadata));
  const msByType: Record<string, number[]> = { cds: [], eds: [], lds: [], rds: [] };
  const one = timeRuns(runs, () => {
    let t = process.hrtime.bigint();
    const cds = buildClusters(prev, view);
    msByType.cds!.push(ms(t));
    t = process.hrtime.bigint();
    const eds = buildEndpoints(prev, view, edsNamesOf(cds));
    msByType.eds!.push(ms(t));
    t = process.hrtime.bigint();
    const lds = buildListeners(prev, view);
    msByType.lds!.push(ms(t));
    t = process.hrtime.bigint();
    const rds = buildRoutes(prev, view, routeNamesOf(lds));
    msByType.rds!.push(ms(t));
    return { cds, eds, lds, rds };
  });
  const r = one.last;
  const jsonBytes = [r.cds, r.eds, r.lds, r.rds].reduce((s, l) => s + l.reduce((a, x) => a + JSON.stringify(x).length, 0), 0);
  const edsNames = edsNamesOf(r.cds);
  const rdsNames = routeNamesOf(r.lds);

  // Many sidecars through the daemon's generators (one encoder), one full push.
  let current = prev;
  const gens = new TranslationGenerators(() => current, silentLogger);
  const g = gens.generators();
  const req: PushRequest = { full: true, version: prev.version, reason: ['bench'] };
  const conns: XdsProxy[] = [];
  for (let k = 0; k < proxies; k++) conns.push(proxyFor(mesh, n, k));
  const namespaces = new Set(conns.map((c) => c.metadata.NAMESPACE));
  gc();
  const heapG0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  gens.sweep();
  for (const c of conns) {
    g[TypeUrl.Cluster]!.generate(c, wildcard(TypeUrl.Cluster), req);
    g[TypeUrl.ClusterLoadAssignment]!.generate(c, named(TypeUrl.ClusterLoadAssignment, edsNames), req);
    g[TypeUrl.Listener]!.generate(c, wildcard(TypeUrl.Listener), req);
    g[TypeUrl.RouteConfiguration]!.generate(c, named(TypeUrl.RouteConfiguration, rdsNames), req);
  }
  const manyCpu = cpuSec(cpu0);
  const manyWall = ms(wall0) / 1000;
  gc();
  const heapGMiB = round((process.memoryUsage().heapUsed - heapG0) / 2 ** 20);
  const hits = gens.encoder.hits;
  const misses = gens.encoder.misses;
  const entries = gens.encoder.size;

  // Same-run comparison on the first 90 sidecars (30 Deployments × 3 replicas): with and without
  // sharing outbound clusters and routes across the proxies of one class.
  const sample = conns.slice(0, Math.min(conns.length, 30 * REPLICAS));
  const pushAll = (share: boolean) => {
    const gs = new TranslationGenerators(() => current, silentLogger, share).generators();
    const t = process.hrtime.bigint();
    for (const c of sample) {
      gs[TypeUrl.Cluster]!.generate(c, wildcard(TypeUrl.Cluster), req);
      gs[TypeUrl.ClusterLoadAssignment]!.generate(c, named(TypeUrl.ClusterLoadAssignment, edsNames), req);
      gs[TypeUrl.Listener]!.generate(c, wildcard(TypeUrl.Listener), req);
      gs[TypeUrl.RouteConfiguration]!.generate(c, named(TypeUrl.RouteConfiguration, rdsNames), req);
    }
    return ms(t) / sample.length;
  };
  const unsharedMs = pushAll(false);
  const sharedMs = pushAll(true);
  const classSharing = { proxies: sample.length, replicasPerClass: REPLICAS, msPerProxyShared: round(sharedMs, 1), msPerProxyUnshared: round(unsharedMs, 1), speedup: round(unsharedMs / sharedMs, 2) };

  // One endpoint change end to end: build + scope + EDS for the affected clusters (one stream's view; EDS is shared by all).
  const parts = { build: [] as number[], scope: [] as number[], eds: [] as number[] };
  let e2eScope = scope;
  const e2e = timeRuns(runs, () => {
    let t = process.hrtime.bigint();
    const nx = build(objects2, `e2e-${parts.build.length}`);
    parts.build.push(ms(t));
    t = process.hrtime.bigint();
    e2eScope = pushScope(prev, nx, changed);
    parts.scope.push(ms(t));
    t = process.hrtime.bigint();
    current = nx;
    gens.sweep();
    const out = g[TypeUrl.ClusterLoadAssignment]!.generate(conns[0]!, named(TypeUrl.ClusterLoadAssignment, e2eScope.edsClusters ?? []), { full: false, version: nx.version, reason: ['EndpointSlice'], edsUpdates: e2eScope.edsClusters });
    parts.eds.push(ms(t));
    return out.size;
  });

  return {
    services: mesh.services,
    pods: mesh.pods,
    destinationRules: mesh.destinationRules,
    virtualServices: mesh.virtualServices,
    objects: objects.length,
    build: { medianMs: b.medianMs, heapMiB, issues: prev.issues.length },
    scopeOneSlice: { medianMs: sc.medianMs, full: scope.full, edsClusters: scope.edsClusters?.size ?? -1 },
    oneSidecar: {
      medianMs: one.medianMs,
      cds: r.cds.length,
      eds: r.eds.length,
      lds: r.lds.length,
      rds: r.rds.length,
      resources: r.cds.length + r.eds.length + r.lds.length + r.rds.length,
      jsonMiB: round(jsonBytes / 2 ** 20, 2),
      msByType: Object.fromEntries(Object.entries(msByType).map(([k, v]) => [k, round(median(v), 2)])),
    },
    classSharing,
    manySidecars: {
      proxies: conns.length,
      namespaces: namespaces.size,
      cpuSec: round(manyCpu, 2),
      wallSec: round(manyWall, 2),
      msPerProxy: round((manyWall * 1000) / conns.length, 1),
      encoderHits: hits,
      encoderMisses: misses,
      hitRatio: round(hits / Math.max(1, hits + misses), 4),
      encoderEntries: entries,
      heapMiB: heapGMiB,
    },
    endpointChange: {
      medianMs: e2e.medianMs,
      buildMs: round(median(parts.build), 2),
      scopeMs: round(median(parts.scope), 2),
      edsMs: round(median(parts.eds), 2),
      edsClusters: e2eScope.edsClusters?.size ?? -1,
      full: e2eScope.full,
    },
  };
}

export interface ScaleBenchReport {
  inputs: { sizes: number[]; proxies: number[]; runs: number; namespaces: number };
  loadAverage: { start: string; end: string };
  sizes: SizeReport[];
  markdown: string;
}

export async function runScaleBench(): Promise<ScaleBenchReport> {
  const sizes = (process.env.SCALE_SIZES ?? '1000,5000').split(',').map(Number).filter((x) => x > 0);
  // One count for all sizes, or one per size (`SCALE_PROXIES=1000,200`).
  const proxyCounts = (process.env.SCALE_PROXIES ?? '1000').split(',').map(Number);
  const runs = Number(process.env.SCALE_RUNS ?? 5);
  const la = () => loadavg().map((l) => l.toFixed(2)).join(' ');
  const start = la();
  const out: SizeReport[] = [];
  for (const [k, n] of sizes.entries()) {
    const proxies = proxyCounts[Math.min(k, proxyCounts.length - 1)]!;
    process.stderr.write(`bench: scale ${n} services, ${proxies} sidecars...\n`);
    out.push(measureSize(n, proxies, runs));
    gc();
  }
  const report = { inputs: { sizes, proxies: proxyCounts, runs, namespaces: NAMESPACES }, loadAverage: { start, end: la() }, sizes: out };
  return { ...report, markdown: toMarkdown(report) };
}

function toMarkdown(r: Omit<ScaleBenchReport, 'markdown'>): string {
  const L: string[] = [];
  L.push(`Synthetic meshes over ${r.inputs.namespaces} namespaces, medians of ${r.inputs.runs} runs; load average ${r.loadAverage.start} → ${r.loadAverage.end}.`, '');
  L.push('| services (pods, DRs, VSs) | build ms | build heap MiB | scope 1 slice ms (EDS-only, clusters) | 1 sidecar ms (cds/eds/lds/rds) | 1 sidecar resources, JSON MiB | N sidecars CPU s (ms/proxy) | encoder hit ratio | endpoint change e2e ms (build/scope/eds) |');
  L.push('|---|---|---|---|---|---|---|---|---|');
  for (const s of r.sizes) {
    const t = s.oneSidecar.msByType;
    L.push(
      `| ${s.services} (${s.pods}, ${s.destinationRules}, ${s.virtualServices}) | ${s.build.medianMs} | ${s.build.heapMiB} | ${s.scopeOneSlice.medianMs} (${!s.scopeOneSlice.full}, ${s.scopeOneSlice.edsClusters}) | ${s.oneSidecar.medianMs} (${t.cds}/${t.eds}/${t.lds}/${t.rds}) | ${s.oneSidecar.resources}, ${s.oneSidecar.jsonMiB} | ${s.manySidecars.proxies}: ${s.manySidecars.cpuSec} (${s.manySidecars.msPerProxy}) | ${s.manySidecars.hitRatio} | ${s.endpointChange.medianMs} (${s.endpointChange.buildMs}/${s.endpointChange.scopeMs}/${s.endpointChange.edsMs}) |`,
    );
  }
  L.push('', 'Sharing outbound clusters and routes across the sidecars of one Deployment (same run, same sidecars):', '');
  L.push('| services | sidecars (replicas per class) | ms per sidecar, shared | ms per sidecar, unshared | speedup |', '|---|---|---|---|---|');
  for (const s of r.sizes) {
    const c = s.classSharing;
    L.push(`| ${s.services} | ${c.proxies} (${c.replicasPerClass}) | ${c.msPerProxyShared} | ${c.msPerProxyUnshared} | ${c.speedup}× |`);
  }
  return L.join('\n') + '\n';
}
