/**
 * Proxyless gRPC traffic management end to end: a real @grpc/grpc-js-xds
 * client (node metadata GENERATOR: grpc) bootstrapped against the real daemon
 * serving a config folder, calling `xds:///echo.default.svc.cluster.local:7070`.
 * A VirtualService splits calls by weight between DestinationRule subsets
 * (selected by pod labels) and sends a header to one subset; loopback
 * @grpc/grpc-js servers say who answered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { ECHO_METHOD, distribution, startGrpcBackend, until, type GrpcBackend } from './backends.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';

const identity = (b: Buffer) => b;
const TARGET = 'xds:///echo.default.svc.cluster.local:7070';

function echoVs(rules: Array<Record<string, unknown>>): K8sObject {
  return istio('VirtualService', 'echo', 'default', { hosts: ['echo'], http: rules });
}
const subset = (name: string, weight?: number) => ({ destination: { host: 'echo', subset: name, port: { number: 7070 } }, ...(weight !== undefined ? { weight } : {}) });

describe('proxyless gRPC (@grpc/grpc-js-xds) routed by weights and headers', () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let client: grpc.Client | undefined;
  let v1: GrpcBackend, v2: GrpcBackend;

  function call(headers: Record<string, string> = {}): Promise<string> {
    const md = new grpc.Metadata({ waitForReady: true });
    for (const [k, v] of Object.entries(headers)) md.set(k, v);
    return new Promise((resolve, reject) =>
      client!.makeUnaryRequest(ECHO_METHOD, identity, identity, Buffer.from('hi'), md, { deadline: Date.now() + 10_000 }, (err, res) =>
        err ? reject(err) : resolve(String(JSON.parse(res!.toString()).backend)),
      ),
    );
  }

  before(async () => {
    v1 = await startGrpcBackend('echo-v1', '127.0.0.31');
    v2 = await startGrpcBackend('echo-v2', '127.0.0.32');
    const wl = (b: GrpcBackend, version: string) => workload({ svc: 'echo', pod: `${b.name}-pod`, ip: b.host, labels: { app: 'echo', version }, ports: [{ name: 'grpc', port: b.port }] });
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        pod('grpc-client-abc', 'default', '127.0.0.1', { app: 'grpc-client' }),
        service('echo', 'default', '10.96.3.10', [{ name: 'grpc', port: 7070 }]),
        ...wl(v1, 'v1'),
        ...wl(v2, 'v2'),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('DestinationRule', 'echo', 'default', { host: 'echo', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
      ],
      'vs.yaml': [echoVs([{ match: [{ headers: { 'x-user': { exact: 'tester' } } }], route: [subset('v2')] }, { route: [subset('v1', 80), subset('v2', 20)] }])],
    });
    sextant = await startSextant({ configDir: cfg.dir });
    // The bootstrap is read once per process: node --test runs each file in its own process.
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
      xds_servers: [{ server_uri: sextant.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: 'sidecar~127.0.0.1~grpc-client-abc.default~default.svc.cluster.local', cluster: 'grpc-client', metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' }, locality: {} },
    });
    grpcXds.register();
    client = new grpc.Client(TARGET, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await sextant?.stop();
    await v1?.close();
    await v2?.close();
    cfg?.remove();
  });

  test('weights 80/20 hold within ±5% over 1000 calls', async () => {
    const counts = await distribution(1000, () => call(), 16);
    const a = counts.get('echo-v1') ?? 0;
    const b = counts.get('echo-v2') ?? 0;
    assert.equal(a + b, 1000, JSON.stringify([...counts]));
    assert.ok(Math.abs(a / 1000 - 0.8) <= 0.05, `echo-v1 got ${a}/1000`);
  });

  test('the x-user: tester header goes to v2 only', async () => {
    const counts = await distribution(100, () => call({ 'x-user': 'tester' }), 8);
    assert.deepEqual([...counts], [['echo-v2', 100]]);
    assert.ok(v2.calls.some((m) => m['x-user'] === 'tester'));
  });

  test('a VirtualService edit in the folder reaches the connected client', async () => {
    cfg.write('vs.yaml', [echoVs([{ match: [{ headers: { 'x-user': { exact: 'tester' } } }], route: [subset('v1')] }, { route: [subset('v2')] }])]);
    await until(() => call({ 'x-user': 'tester' }), (who) => who === 'echo-v1', 'tester routed to v1 after the edit');
    const counts = await distribution(100, () => call(), 8);
    assert.deepEqual([...counts], [['echo-v2', 100]]);
  });
});
