/**
 * Envoy's gRPC stats filter, as istiod puts it in every HCM, against a real
 * Envoy and a real gRPC call: the daemon serves a sidecar (no capture, an
 * egress listener on 127.0.0.1:<port> for a gRPC Service) and a @grpc/grpc-js
 * client calls a loopback @grpc/grpc-js server through that listener. Envoy
 * then reports the call in its gRPC stats (`cluster.<cluster>.grpc.*`, not per
 * method: `stats_for_all_methods: false`) and puts the message counts in
 * filter state (`emit_filter_state`), which istio.stats reads for Istio's
 * gRPC message metrics; the access log prints that filter state here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ECHO_METHOD, freePort, startGrpcBackend, until, type GrpcBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { listeners } from './fixtures/dump.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

type Json = Record<string, any>;
const identity = (b: Buffer) => b;

describe("Telemetry: istiod's gRPC stats filter in a real Envoy counts a real gRPC call", { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let backend: GrpcBackend;
  let client: grpc.Client | undefined;
  let port: number;
  let dir: string;
  let log: string;
  let cluster: string;

  const call = (text: string) =>
    new Promise<string>((resolve, reject) =>
      client!.makeUnaryRequest(ECHO_METHOD, identity, identity, Buffer.from(text), new grpc.Metadata(), { deadline: Date.now() + 20_000 }, (err, res) =>
        err ? reject(err) : resolve(String(JSON.parse(res!.toString()).backend)),
      ),
    );

  before(async () => {
    backend = await startGrpcBackend('echo-v1', '127.0.0.51');
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'sextant-telemetry-grpc-'));
    log = join(dir, 'access.log');
    const meshFile = join(dir, 'mesh.yaml');
    // The filter state the gRPC stats filter emits, per request, next to the path.
    writeFileSync(meshFile, JSON.stringify({ rootNamespace: 'istio-system', accessLogFile: log, accessLogFormat: 'GRPC %REQ(:PATH)% %FILTER_STATE(envoy.filters.http.grpc_stats)%\n' }));
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        pod('client-v1-abc', 'default', '127.0.0.1', { app: 'client' }),
        service('echo', 'default', '10.96.5.10', [{ name: 'grpc', port }]),
        ...workload({ svc: 'echo', pod: 'echo-v1-pod', ip: backend.host, labels: { app: 'echo' }, ports: [{ name: 'grpc', port: backend.port }] }),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('Sidecar', 'client', 'default', {
          workloadSelector: { labels: { app: 'client' } },
          egress: [{ port: { number: port, protocol: 'GRPC', name: 'grpc' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] }],
        }),
      ],
    });
    cluster = `outbound|${port}||echo.default.svc.cluster.local`;
    sextant = await startSextant({ configDir: cfg.dir, args: ['--mesh-config', meshFile], readyTimeoutMs: 90_000 });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'sidecar~127.0.0.1~client-v1-abc.default~default.svc.cluster.local',
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE', ISTIO_VERSION: '1.31.0' },
    });
    await envoy.waitForListener(`127.0.0.1_${port}`);
    // The authority names the Service, as a client of echo:<port> sends it.
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': `echo:${port}` });
  });

  after(async () => {
    client?.close();
    await envoy?.stop();
    await sextant?.stop();
    await backend?.close();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the listener carries the filter as istiod writes it, and Envoy accepted the update', async () => {
    const l = listeners(await envoy!.configDump()).get(`127.0.0.1_${port}`);
    const hcm = ((l?.filter_chains ?? []) as Json[]).flatMap((fc) => fc.filters ?? []).find((f: Json) => f.name === 'envoy.filters.network.http_connection_manager')?.typed_config as Json;
    const f = ((hcm?.http_filters ?? []) as Json[]).find((x) => x.name === 'envoy.filters.http.grpc_stats');
    assert.ok(f, JSON.stringify(hcm?.http_filters?.map((x: Json) => x.name)));
    assert.equal(f.typed_config.emit_filter_state, true);
    assert.equal(f.typed_config.stats_for_all_methods, false);
    const stats = await envoy!.stats();
    assert.equal(Number(stats['listener_manager.lds.update_rejected'] ?? 0), 0, 'LDS rejected');
  });

  test('a gRPC call through the sidecar is counted in the cluster’s gRPC stats (not per method) and its message counts are in filter state', async () => {
    for (let i = 1; i <= 3; i++) assert.equal(await call(`hi-${i}`), 'echo-v1');
    // Stats are flushed to the admin endpoint as they happen; the cluster's stat name is its alt_stat_name.
    const stat = (s: Record<string, string | number>, suffix: string) => s[`cluster.${cluster};${suffix}`];
    const stats = await until(() => envoy!.stats(), (s) => Number(stat(s, '.grpc.success') ?? 0) >= 3, 'grpc.success for the three calls', 20_000);
    assert.equal(Number(stat(stats, '.grpc.success')), 3);
    assert.equal(Number(stat(stats, '.grpc.total')), 3);
    assert.equal(Number(stat(stats, '.grpc.request_message_count')), 3);
    assert.equal(Number(stat(stats, '.grpc.response_message_count')), 3);
    assert.deepEqual(Object.keys(stats).filter((k) => k.includes('sextant.test')), [], 'no per-method stats');
    const text = await until(async () => (existsSync(log) ? readFileSync(log, 'utf8') : ''), (t) => t.split('\n').filter((l) => l.startsWith('GRPC')).length >= 3, 'three access-log lines', 20_000);
    const lines = text.split('\n').filter((l) => l.startsWith(`GRPC ${ECHO_METHOD} `));
    assert.equal(lines.length, 3, text);
    for (const l of lines) {
      const state = JSON.parse(l.slice(`GRPC ${ECHO_METHOD} `.length)) as Json;
      assert.deepEqual({ req: Number(state.requestMessageCount ?? state.request_message_count), resp: Number(state.responseMessageCount ?? state.response_message_count) }, { req: 1, resp: 1 }, l);
    }
  });
});
