/**
 * The Datadog and SkyWalking tracing providers against a real Envoy: the
 * daemon serves a sidecar (no capture, an egress listener on
 * 127.0.0.1:<port>) whose MeshConfig names both, and a Telemetry picks one.
 * With Datadog, requests through Envoy reach a loopback HTTP server standing
 * in for the Datadog agent as trace uploads (`/v0.4/traces`); with SkyWalking,
 * Envoy accepts the tracer (its gRPC collector is not run here).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, getOnNewConnection, listenEphemeral, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { listeners } from './fixtures/dump.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

type Json = Record<string, any>;
const telemetry = (provider: string): K8sObject => ({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'mesh-tracing', namespace: 'istio-system' }, spec: { tracing: [{ providers: [{ name: provider }], randomSamplingPercentage: 100 }] } });

/** A stand-in for the Datadog agent on loopback: records the path and size of every upload. */
async function startAgent(host: string): Promise<{ port: number; uploads: Array<{ path: string; bytes: number }>; close(): Promise<void> }> {
  const uploads: Array<{ path: string; bytes: number }> = [];
  const server: Server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      uploads.push({ path: req.url ?? '', bytes });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return { ...(await listenEphemeral(server, host)), uploads };
}

describe('Telemetry: Datadog and SkyWalking tracers in a real Envoy', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let backend: HttpBackend;
  let agent: Awaited<ReturnType<typeof startAgent>>;
  let port: number;
  let dir: string;

  const get = async (path: string) => (await getOnNewConnection(port, path, 'reviews')).status;
  const tracer = async (): Promise<Json | undefined> => {
    const l = listeners(await envoy!.configDump()).get(`127.0.0.1_${port}`);
    return ((l?.filter_chains ?? []) as Json[]).flatMap((fc) => fc.filters ?? []).find((f: Json) => f.name === 'envoy.filters.network.http_connection_manager')?.typed_config?.tracing;
  };

  before(async () => {
    backend = await startHttpBackend('reviews-v1', '127.0.0.61');
    agent = await startAgent('127.0.0.62');
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'sextant-tracers-'));
    const meshFile = join(dir, 'mesh.yaml');
    writeFileSync(
      meshFile,
      JSON.stringify({
        rootNamespace: 'istio-system',
        extensionProviders: [
          { name: 'dd', datadog: { service: 'datadog-agent.default.svc.cluster.local', port: 8126 } },
          { name: 'sw', skywalking: { service: 'skywalking-oap.default.svc.cluster.local', port: 11800 } },
        ],
      }),
    );
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        pod('productpage-v1-abc', 'default', '127.0.0.1', { app: 'productpage' }),
        service('reviews', 'default', '10.96.6.13', [{ name: 'http', port }]),
        ...workload({ svc: 'reviews', pod: 'reviews-v1-pod', ip: backend.host, labels: { app: 'reviews' }, ports: [{ name: 'http', port: backend.port }] }),
        service('datadog-agent', 'default', '10.96.6.14', [{ name: 'http', port: 8126 }]),
        ...workload({ svc: 'datadog-agent', pod: 'datadog-agent-pod', ip: '127.0.0.62', labels: { app: 'datadog-agent' }, ports: [{ name: 'http', port: agent.port }] }),
        service('skywalking-oap', 'default', '10.96.6.15', [{ name: 'grpc', port: 11800 }]),
        ...workload({ svc: 'skywalking-oap', pod: 'skywalking-oap-pod', ip: '127.0.0.63', labels: { app: 'skywalking-oap' }, ports: [{ name: 'grpc', port: 11800 }] }),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('Sidecar', 'productpage', 'default', {
          workloadSelector: { labels: { app: 'productpage' } },
          egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] }],
        }),
      ],
      'tracing.yaml': [telemetry('dd')],
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
    await agent?.close();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('Datadog: Envoy holds the tracer and uploads the spans of real requests to the loopback agent', async () => {
    const t = await until(tracer, (x) => x?.provider?.name === 'envoy.tracers.datadog', 'the Datadog tracer on the listener', 20_000);
    assert.equal(t!.provider.typed_config.collector_cluster, 'outbound|8126||datadog-agent.default.svc.cluster.local');
    for (let i = 1; i <= 5; i++) assert.equal(await get(`/dd-${i}`), 200);
    // dd-trace-cpp flushes every couple of seconds; a non-empty trace upload is the proof.
    await until(async () => agent.uploads.filter((u) => /\/v0\.[45]\/traces/.test(u.path) && u.bytes > 1), (u) => u.length > 0, 'a trace upload at the agent', 30_000);
    const stats = await envoy!.stats();
    assert.equal(Number(stats['listener_manager.lds.update_rejected'] ?? 0), 0, 'LDS rejected');
  });

  test('SkyWalking: the listener update with the tracer (and an upstream span) is accepted', async () => {
    cfg.write('tracing.yaml', [telemetry('sw')]);
    const t = await until(tracer, (x) => x?.provider?.name === 'envoy.tracers.skywalking', 'the SkyWalking tracer on the listener', 20_000);
    assert.equal(t!.provider.typed_config.grpc_service.envoy_grpc.cluster_name, 'outbound|11800||skywalking-oap.default.svc.cluster.local');
    assert.equal(t!.spawn_upstream_span, true);
    assert.equal(await get('/sw-1'), 200);
    const stats = await envoy!.stats();
    assert.equal(Number(stats['listener_manager.lds.update_rejected'] ?? 0), 0, 'LDS rejected');
  });
});
