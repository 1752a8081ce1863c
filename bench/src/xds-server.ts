/**
 * Child process for the xDS benchmark: one DiscoveryServer on 127.0.0.1:0,
 * driven over IPC, so its CPU and memory are measured alone.
 *   { op: 'start', clusters, pad }           → { op: 'started', port }
 *   { op: 'stats' }                          → { op: 'stats', rss, heapUsed, external, arrayBuffers, cpu, metrics }
 *   { op: 'eds', name, port }                → { op: 'pushed', t0, version, cpu }
 *   { op: 'prepare', tag } then { op: 'full' } → { op: 'pushed', t0, version, cpu }
 */
import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { silentLogger } from '@sextant/api';
import { TypeUrl, type EncodedResource } from '@sextant/envoy';
import * as xdsLib from '@sextant/xds';
import { edsCluster, loadAssignment } from '@sextant/xds/testing/fixtures';

// XDS_BENCH_XDS_MODULE loads another build of @sextant/xds (an absolute path), for A/B runs in one session.
const { CachedGenerator, DiscoveryServer, EndpointCache, StaticGenerator } = (
  process.env.XDS_BENCH_XDS_MODULE ? await import(process.env.XDS_BENCH_XDS_MODULE) : xdsLib
) as typeof xdsLib;
type DiscoveryServer = xdsLib.DiscoveryServer;
type EndpointCache = xdsLib.EndpointCache;
type StaticGenerator = xdsLib.StaticGenerator;

setFlagsFromString('--expose-gc');

// XDS_BENCH_PROFILE=<file>: CPU-profile the server from the first endpoint change to exit (push windows only, not
// stream set-up), written as a .cpuprofile (sampling interval 100 µs).
const profileFile = process.env.XDS_BENCH_PROFILE;
let profiler: Session | undefined;
async function startProfile(): Promise<void> {
  if (!profileFile || profiler) return;
  profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
  await profiler.post('Profiler.start');
}
async function stopProfile(): Promise<void> {
  if (windowsFile) writeFileSync(windowsFile, JSON.stringify(windows));
  if (!profiler || !profileFile) return;
  const { profile } = await profiler.post('Profiler.stop');
  writeFileSync(profileFile, JSON.stringify(profile));
  // Push windows (µs, monotonic clock like the profile's timestamps): from each endpoint change to the next stats.
  writeFileSync(`${profileFile}.windows.json`, JSON.stringify(windows));
}
const windows: [number, number][] = [];
// XDS_BENCH_WINDOWS=<file>: only record the push windows (e.g. to cut a `perf record -k CLOCK_MONOTONIC` trace).
const windowsFile = process.env.XDS_BENCH_WINDOWS;
const micros = () => Number(process.hrtime.bigint() / 1000n);
const gc = runInNewContext('gc') as () => void;
const now = () => performance.timeOrigin + performance.now();

let server: DiscoveryServer;
let clusters: StaticGenerator;
let endpoints: EndpointCache;
let prepared: EncodedResource[] = [];
let version = 0;
let edsPort = 1000;

function clusterSet(n: number, tag: string, pad: number): EncodedResource[] {
  // Realistic-size clusters (~0.5 KB each, like Istio's outbound clusters with metadata and TLS context).
  return Array.from({ length: n }, (_, i) =>
    edsCluster(`outbound|9080||svc-${i}.ns-${i % 50}.svc.cluster.local`, {
      metadata: { filterMetadata: { istio: { services: [{ host: `svc-${i}.ns-${i % 50}.svc.cluster.local`, name: `svc-${i}`, namespace: `ns-${i % 50}` }], tag, pad: 'x'.repeat(pad) } } },
      circuitBreakers: { thresholds: [{ maxConnections: 4294967295, maxPendingRequests: 4294967295, maxRequests: 4294967295, maxRetries: 4294967295 }] },
    }),
  );
}

process.on('message', (m: { op: string; [k: string]: unknown }) => {
  void (async () => {
    if (m.op === 'start') {
      clusters = new StaticGenerator(clusterSet(Number(m['clusters']), 't0', Number(m['pad'] ?? 0)));
      endpoints = new EndpointCache();
      endpoints.set('ep-0', loadAssignment('ep-0', [{ address: '10.1.0.1', port: edsPort }]));
      server = new DiscoveryServer({
        log: silentLogger,
        isReady: () => true,
        generators: {
          // Every sidecar is in the same class: one result per push version, framed once.
          [TypeUrl.Cluster]: new CachedGenerator(clusters, () => 'sidecar'),
          [TypeUrl.ClusterLoadAssignment]: endpoints,
        },
        maxQueuedPushes: 16,
      });
      server.push({ full: true, version: `v${++version}`, reason: ['start'] });
      const g = new grpc.Server({ 'grpc.max_concurrent_streams': 100000 });
      server.addTo(g);
      const port = await new Promise<number>((resolve, reject) =>
        g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      process.send!({ op: 'started', port, version: `v${version}` });
    } else if (m.op === 'stats') {
      const cpu = process.cpuUsage();
      const w = windows[windows.length - 1];
      if (w && w[1] === 0) w[1] = micros();
      if (m['gc']) {
        gc();
        gc();
      }
      const mem = process.memoryUsage();
      process.send!({ op: 'stats', rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers, cpu, metrics: server.metrics() });
    } else if (m.op === 'eds') {
      await startProfile();
      if (profiler || windowsFile) windows.push([micros(), 0]);
      const cpu = process.cpuUsage();
      const t0 = now();
      endpoints.set('ep-0', loadAssignment('ep-0', [{ address: '10.1.0.1', port: ++edsPort }]));
      // EndpointCache notifies in a microtask; its version names the push.
      await Promise.resolve();
      process.send!({ op: 'pushed', t0, version: endpoints.version, cpu });
    } else if (m.op === 'exit') {
      await stopProfile();
      process.send!({ op: 'bye' }, () => process.exit(0));
    } else if (m.op === 'prepare') {
      prepared = clusterSet(clusters.resources.size, String(m['tag']), Number(m['pad'] ?? 0));
      process.send!({ op: 'prepared' });
    } else if (m.op === 'full') {
      const cpu = process.cpuUsage();
      const t0 = now();
      clusters.replace(prepared);
      const v = `v${++version}`;
      server.push({ full: true, version: v, reason: ['bench'] });
      process.send!({ op: 'pushed', t0, version: v, cpu });
    }
  })();
});
