/**
 * Telemetry against a real Envoy and real requests: the daemon serves a
 * sidecar (no capture, an egress listener on 127.0.0.1:<port>) with a
 * MeshConfig that sets accessLogFile/accessLogFormat, a JSON file access-log
 * provider, a zipkin provider whose collector is a loopback HTTP server run by
 * the test, and Prometheus as the default metrics provider. Telemetry objects
 * written to the watched folder then switch access logging (provider, CEL
 * filter, disabled) and tracing (100 % and 0 % sampling), and each change is
 * seen in what Envoy writes and sends for real requests.
 *
 * The Envoy under test is upstream Envoy: its node lists the extensions it
 * was built with, and Istio's istio.stats / istio.metadata_exchange are not
 * among them. The node also says ISTIO_VERSION, so without the decision from
 * that list Sextant would send istiod's filters and Envoy would reject the
 * listeners and clusters.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, getOnNewConnection, listenEphemeral, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { clusters, listeners } from './fixtures/dump.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

type Json = Record<string, any>;

const telemetry = (name: string, ns: string, spec: Json): K8sObject => ({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name, namespace: ns }, spec });

/** A Zipkin v2 collector on loopback: keeps every span POSTed to /api/v2/spans. */
async function startZipkin(host: string): Promise<{ port: number; spans: Json[]; close(): Promise<void> }> {
  const spans: Json[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/api/v2/spans') {
        try {
          spans.push(...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json[]));
        } catch {
          // not a span list: ignored, the test then misses spans and says so
        }
      }
      res.writeHead(202).end();
    });
  });
  return { ...(await listenEphemeral(server, host)), spans };
}

describe('Telemetry: access logs and zipkin spans from a real Envoy, as MeshConfig and Telemetry objects say', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let backend: HttpBackend;
  let zipkin: Awaited<ReturnType<typeof startZipkin>>;
  let port: number;
  let dir: string;
  let meshLog: string;
  let telemetryLog: string;

  const get = async (path: string) => (await getOnNewConnection(port, path, 'reviews')).status;
  const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');
  const hcm = async (): Promise<Json | undefined> => {
    const l = listeners(await envoy!.configDump()).get(`127.0.0.1_${port}`);
    return ((l?.filter_chains ?? []) as Json[]).flatMap((fc) => fc.filters ?? []).find((f: Json) => f.name === 'envoy.filters.network.http_connection_manager')?.typed_config;
  };
  const logPaths = (h: Json | undefined): string[] => ((h?.access_log ?? []) as Json[]).map((a) => a.typed_config?.path);
  const spanPaths = () => zipkin.spans.map((s) => String(s.tags?.['http.url'] ?? ''));
  const tracingTelemetry = (pct: number) => cfg.write('tracing.yaml', [telemetry('mesh-tracing', 'istio-system', { tracing: [{ providers: [{ name: 'zipkin' }], randomSamplingPercentage: pct }] })]);
  const sampling = async () => {
    const t = (await hcm())?.tracing;
    return t?.provider?.name === 'envoy.tracers.zipkin' ? Number(t.random_sampling?.value ?? 0) : undefined;
  };

  before(async () => {
    backend = await startHttpBackend('reviews-v1', '127.0.0.41');
    zipkin = await startZipkin('127.0.0.42');
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'sextant-telemetry-'));
    meshLog = join(dir, 'mesh.log');
    telemetryLog = join(dir, 'telemetry.log');
    const meshFile = join(dir, 'mesh.yaml');
    writeFileSync(
      meshFile,
      JSON.stringify({
        rootNamespace: 'istio-system',
        accessLogFile: meshLog,
        accessLogFormat: 'MESH %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE%\n',
        defaultProviders: { metrics: ['prometheus'] },
        extensionProviders: [
          { name: 'zipkin', zipkin: { service: 'zipkin.default.svc.cluster.local', port: 9411 } },
          { name: 'file-json', envoyFileAccessLog: { path: telemetryLog, logFormat: { labels: { path: '%REQ(:PATH)%', code: '%RESPONSE_CODE%' } } } },
        ],
      }),
    );
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        pod('productpage-v1-abc', 'default', '127.0.0.1', { app: 'productpage', version: 'v1' }),
        service('reviews', 'default', '10.96.3.13', [{ name: 'http', port }]),
        ...workload({ svc: 'reviews', pod: 'reviews-v1-pod', ip: backend.host, labels: { app: 'reviews' }, ports: [{ name: 'http', port: backend.port }] }),
        service('zipkin', 'default', '10.96.3.14', [{ name: 'http', port: 9411 }]),
        ...workload({ svc: 'zipkin', pod: 'zipkin-pod', ip: '127.0.0.42', labels: { app: 'zipkin' }, ports: [{ name: 'http', port: zipkin.port }] }),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('Sidecar', 'productpage', 'default', {
          workloadSelector: { labels: { app: 'productpage' } },
          egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] }],
        }),
      ],
    });
    sextant = await startSextant({ configDir: cfg.dir, args: ['--mesh-config', meshFile], readyTimeoutMs: 90_000 });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'sidecar~127.0.0.1~productpage-v1-abc.default~default.svc.cluster.local',
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE', ISTIO_VERSION: '1.31.0' },
    });
    await envoy.waitForListener(`127.0.0.1_${port}`);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await backend?.close();
    await zipkin?.close();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("upstream Envoy's extension list keeps Istio's own filters out, and Envoy accepts every update", async () => {
    const dump = await envoy!.configDump();
    const h = await hcm();
    const names = ((h?.http_filters ?? []) as Json[]).map((f) => f.name);
    assert.ok(names.length > 0 && !names.some((n) => n.startsWith('istio.')), names.join(','));
    for (const [name, c] of clusters(dump)) assert.ok(!((c.filters ?? []) as Json[]).some((f) => String(f.name).startsWith('istio.')), name);
    const stats = await envoy!.stats();
    assert.equal(Number(stats['listener_manager.lds.update_rejected'] ?? 0), 0, 'LDS rejected');
    assert.equal(Number(stats['cluster_manager.cds.update_rejected'] ?? 0), 0, 'CDS rejected');
    assert.ok(Number(stats['listener_manager.lds.update_success'] ?? 0) > 0);
  });

  test('meshConfig.accessLogFile: one line per request, in accessLogFormat', async () => {
    assert.deepEqual(logPaths(await hcm()), [meshLog]);
    assert.equal(await get('/mesh-1'), 200);
    assert.equal(await get('/mesh-2?x=1'), 200);
    const text = await until(async () => read(meshLog), (t) => t.includes('/mesh-2'), 'the access log lines in the mesh log file', 20_000);
    const lines = text.split('\n').filter((l) => l.includes('/mesh-'));
    assert.deepEqual(lines, ['MESH GET /mesh-1 200', 'MESH GET /mesh-2?x=1 200']);
  });

  test('a Telemetry provider with a CEL filter replaces the mesh log: JSON lines, only for failed requests', async () => {
    const filtered = [telemetry('logs', 'default', { accessLogging: [{ providers: [{ name: 'file-json' }], filter: { expression: 'response.code >= 400' } }] })];
    cfg.write('telemetry.yaml', filtered);
    await until(hcm, (h) => logPaths(h).join() === telemetryLog, 'the Telemetry access log on the listener', 20_000);
    backend.failNext(1, 404);
    assert.equal(await get('/bad-1'), 404);
    assert.equal(await get('/good-1'), 200);
    backend.failNext(1, 404);
    assert.equal(await get('/bad-2'), 404);
    // Lines are written in request order: once /bad-2 is there, /good-1 would have been too.
    const text = await until(async () => read(telemetryLog), (t) => t.includes('/bad-2'), 'the filtered JSON lines', 20_000);
    const entries = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Json);
    assert.deepEqual(entries, [{ path: '/bad-1', code: 404 }, { path: '/bad-2', code: 404 }]);
    assert.doesNotMatch(read(meshLog), /bad-|good-/);
  });

  test('a Telemetry that disables the provider stops the log lines; re-enabled, they come back', async () => {
    cfg.write('telemetry.yaml', [telemetry('logs', 'default', { accessLogging: [{ providers: [{ name: 'file-json' }], disabled: true }] })]);
    await until(hcm, (h) => h !== undefined && logPaths(h).length === 0, 'the listener without access logs', 20_000);
    backend.failNext(1, 404);
    assert.equal(await get('/off-1'), 404);
    cfg.write('telemetry.yaml', [telemetry('logs', 'default', { accessLogging: [{ providers: [{ name: 'file-json' }], filter: { expression: 'response.code >= 400' } }] })]);
    await until(hcm, (h) => logPaths(h).join() === telemetryLog, 'the access log back on the listener', 20_000);
    backend.failNext(1, 404);
    assert.equal(await get('/bad-3'), 404);
    const text = await until(async () => read(telemetryLog), (t) => t.includes('/bad-3'), 'the line after re-enabling', 20_000);
    assert.doesNotMatch(text, /off-1/);
    assert.doesNotMatch(read(meshLog), /off-1/);
  });

  test('tracing at 100 %: the loopback zipkin collector receives a span for every request', async () => {
    tracingTelemetry(100);
    await until(sampling, (v) => v === 100, 'the zipkin tracer at 100 % on the listener', 20_000);
    const paths = ['/trace-1', '/trace-2', '/trace-3', '/trace-4', '/trace-5'];
    for (const p of paths) assert.equal(await get(p), 200);
    await until(async () => spanPaths(), (seen) => paths.every((p) => seen.some((u) => u.endsWith(p))), 'a span per request at the collector', 30_000);
    const traced = zipkin.spans.filter((s) => paths.some((p) => String(s.tags?.['http.url'] ?? '').endsWith(p)));
    assert.equal(new Set(traced.map((s) => s.traceId)).size, paths.length, 'one trace per request');
    assert.ok(traced.every((s) => s.kind === 'CLIENT' && s.tags?.['istio.namespace'] === 'default'), JSON.stringify(traced[0]));
  });

  test('tracing at 0 %: no span reaches the collector', async () => {
    tracingTelemetry(0);
    await until(sampling, (v) => v === 0, 'the zipkin tracer at 0 % on the listener', 20_000);
    for (const p of ['/zero-1', '/zero-2', '/zero-3', '/zero-4', '/zero-5']) assert.equal(await get(p), 200);
    // Back to 100 % and one marker request: spans are flushed in order, so once the marker's
    // span is in, any span of the 0 % requests would be too.
    tracingTelemetry(100);
    await until(sampling, (v) => v === 100, 'the zipkin tracer back at 100 %', 20_000);
    for (let i = 1; i <= 5; i++) assert.equal(await get(`/marker-${i}`), 200);
    await until(async () => spanPaths(), (seen) => seen.some((u) => u.endsWith('/marker-5')), 'the marker spans', 30_000);
    assert.deepEqual(spanPaths().filter((u) => u.includes('/zero-')), []);
  });
});
