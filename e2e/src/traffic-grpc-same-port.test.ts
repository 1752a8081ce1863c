/**
 * Proxyless gRPC, istiod's grpcgen route scope: the route configuration a
 * listener names (`outbound|7070||<host>`) holds the virtual hosts of every
 * service and VirtualService on port 7070, not only the dialed host's. A real
 * @grpc/grpc-js-xds client picks the virtual host by its channel's authority,
 * so a channel whose authority is another host on the port (a VirtualService
 * host routed to a third service) reaches what that VirtualService routes
 * to. Loopback @grpc/grpc-js servers say who answered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { ECHO_METHOD, startGrpcBackend, until, type GrpcBackend } from './backends.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';

const identity = (b: Buffer) => b;

describe('proxyless gRPC: a VirtualService routes to another service on the same port', () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let echo: GrpcBackend, ratings: GrpcBackend;
  const clients: grpc.Client[] = [];

  function call(client: grpc.Client): Promise<string> {
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(ECHO_METHOD, identity, identity, Buffer.from('hi'), new grpc.Metadata({ waitForReady: true }), { deadline: Date.now() + 10_000 }, (err, res) =>
        err ? reject(err) : resolve(String(JSON.parse(res!.toString()).backend)),
      ),
    );
  }
  const dial = (target: string, options: grpc.ChannelOptions = {}) => {
    const c = new grpc.Client(target, grpc.credentials.createInsecure(), options);
    clients.push(c);
    return c;
  };

  before(async () => {
    echo = await startGrpcBackend('echo-1', '127.0.0.41');
    ratings = await startGrpcBackend('ratings-1', '127.0.0.42');
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('shop'),
        namespace('istio-system'),
        pod('grpc-client-abc', 'default', '127.0.0.1', { app: 'grpc-client' }),
        service('echo', 'default', '10.96.4.10', [{ name: 'grpc', port: 7070 }]),
        service('ratings', 'shop', '10.96.4.11', [{ name: 'grpc', port: 7070 }]),
        // No endpoints of its own: a VirtualService sends its calls to ratings.
        service('catalog', 'shop', '10.96.4.12', [{ name: 'grpc', port: 7070 }]),
        ...workload({ svc: 'echo', pod: 'echo-1-pod', ip: echo.host, labels: { app: 'echo' }, ports: [{ name: 'grpc', port: echo.port }] }),
        ...workload({ svc: 'ratings', namespace: 'shop', pod: 'ratings-1-pod', ip: ratings.host, labels: { app: 'ratings' }, ports: [{ name: 'grpc', port: ratings.port }] }),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('VirtualService', 'catalog', 'shop', { hosts: ['catalog'], http: [{ route: [{ destination: { host: 'ratings', port: { number: 7070 } } }] }] }),
      ],
      'vs.yaml': [],
    });
    sextant = await startSextant({ configDir: cfg.dir });
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
      xds_servers: [{ server_uri: sextant.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: 'sidecar~127.0.0.1~grpc-client-abc.default~default.svc.cluster.local', cluster: 'grpc-client', metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' }, locality: {} },
    });
    grpcXds.register();
  });

  after(async () => {
    for (const c of clients) c.close();
    await sextant?.stop();
    await echo?.close();
    await ratings?.close();
    cfg?.remove();
  });

  test('without a VirtualService each service answers for itself', async () => {
    assert.equal(await call(dial('xds:///echo.default.svc.cluster.local:7070')), 'echo-1');
    assert.equal(await call(dial('xds:///ratings.shop.svc.cluster.local:7070')), 'ratings-1');
  });

  test('a VirtualService for echo sends a connected client to ratings on the same port', async () => {
    const client = dial('xds:///echo.default.svc.cluster.local:7070');
    assert.equal(await call(client), 'echo-1');
    cfg.write('vs.yaml', [istio('VirtualService', 'echo-to-ratings', 'default', { hosts: ['echo'], http: [{ route: [{ destination: { host: 'ratings.shop.svc.cluster.local', port: { number: 7070 } } }] }] })]);
    await until(() => call(client), (who) => who === 'ratings-1', 'echo routed to ratings after the VirtualService');
    // A new channel for echo (short name, as an in-namespace client would write it) goes there too.
    assert.equal(await call(dial('xds:///echo:7070')), 'ratings-1');
  });

  test('a channel to echo with the authority of another VirtualService host on port 7070 reaches what that VirtualService routes to', async () => {
    // Listener echo:7070 names route configuration outbound|7070||echo…; the catalog virtual host must be in it.
    const client = dial('xds:///echo.default.svc.cluster.local:7070', { 'grpc.default_authority': 'catalog.shop.svc.cluster.local:7070' });
    assert.equal(await call(client), 'ratings-1');
    assert.ok(ratings.calls.length > 0);
  });
});
