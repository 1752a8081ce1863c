/**
 * A real proxyless gRPC client (@grpc/grpc-js-xds) against the ADS server: it
 * completes LDS → RDS → CDS → EDS and makes RPCs to a loopback backend, then
 * follows an endpoint change to a second backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { recordingLogger } from '@sextant/api';
import { TypeUrl, encodeResource } from '@sextant/envoy';
import { startHarness, waitFor, type Harness } from '@sextant/testing/xds-harness';

const identity = (b: Buffer) => b;
const echoService: grpc.ServiceDefinition = {
  Echo: { path: '/sextant.test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

async function startBackend(name: string): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(echoService, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`${name}:${call.request.toString()}`)),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port };
}

const hcm = (routeConfigName: string) => ({
  '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  rds: { routeConfigName, configSource: { ads: {}, resourceApiVersion: 'V3' } },
  httpFilters: [{ name: 'router', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
});

function cla(port: number) {
  return encodeResource(TypeUrl.ClusterLoadAssignment, 'outbound|7070||echo.default.svc.cluster.local', {
    clusterName: 'outbound|7070||echo.default.svc.cluster.local',
    endpoints: [
      {
        locality: { region: 'r1', zone: 'z1' },
        loadBalancingWeight: 1,
        lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } }, loadBalancingWeight: 1 }],
      },
    ],
  });
}

describe('proxyless gRPC (@grpc/grpc-js-xds) over ADS', () => {
  let h: Harness;
  let b1: { server: grpc.Server; port: number };
  let b2: { server: grpc.Server; port: number };
  let client: grpc.Client;
  const log = recordingLogger();
  const nodeId = 'sidecar~127.0.0.1~grpc-client.default~default.svc.cluster.local';
  const cluster = 'outbound|7070||echo.default.svc.cluster.local';

  before(async () => {
    b1 = await startBackend('b1');
    b2 = await startBackend('b2');
    h = await startHarness({ log });
    h.listeners.replace([encodeResource(TypeUrl.Listener, 'echo.default.svc.cluster.local:7070', { name: 'echo.default.svc.cluster.local:7070', apiListener: { apiListener: hcm('echo-route') } })]);
    h.routes.replace([
      encodeResource(TypeUrl.RouteConfiguration, 'echo-route', {
        name: 'echo-route',
        virtualHosts: [{ name: 'echo', domains: ['echo.default.svc.cluster.local:7070', '*'], routes: [{ match: { prefix: '' }, route: { cluster } }] }],
      }),
    ]);
    h.clusters.replace([
      encodeResource(TypeUrl.Cluster, cluster, { name: cluster, type: 'EDS', lbPolicy: 'ROUND_ROBIN', edsClusterConfig: { edsConfig: { ads: {}, resourceApiVersion: 'V3' } } }),
    ]);
    h.endpoints.set(cluster, cla(b1.port));
    h.pushAll('initial');
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
      xds_servers: [{ server_uri: h.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: nodeId, cluster: 'grpc-client', metadata: { GENERATOR: 'grpc' }, locality: {} },
    });
    grpcXds.register();
    client = new grpc.Client('xds:///echo.default.svc.cluster.local:7070', grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await h?.stop();
    b1?.server.forceShutdown();
    b2?.server.forceShutdown();
  });

  function call(msg: string): Promise<string> {
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        '/sextant.test.Echo/Echo',
        identity,
        identity,
        Buffer.from(msg),
        new grpc.Metadata({ waitForReady: true }),
        { deadline: Date.now() + 10_000 },
        (err, res) => (err ? reject(err) : resolve(res!.toString())),
      ),
    );
  }

  test('completes LDS → RDS → CDS → EDS, ACKs all four, and makes RPCs to the backend', async () => {
    assert.equal(await call('hello'), 'b1:hello');
    const subscribed = log.entries
      .filter((e) => e['proxy'] === nodeId && e.msg === 'ADS subscribe')
      .map((e) => e['typeUrl']);
    assert.deepEqual(subscribed, [TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment]);
    await waitFor(() => {
      const c = h.server.connections().find((x) => x.proxyId === nodeId);
      return !!c && c.types.length === 4 && c.types.every((t) => t.nonceSent !== undefined && t.nonceAcked === t.nonceSent && t.nacks === 0);
    }, 'ACKs for all four types');
    const c = h.server.connections().find((x) => x.proxyId === nodeId)!;
    assert.deepEqual(c.types.find((t) => t.typeUrl === TypeUrl.Listener)!.names, ['echo.default.svc.cluster.local:7070']);
  });

  test('follows an endpoint change to another backend', async () => {
    h.endpoints.set(cluster, cla(b2.port));
    const end = Date.now() + 10_000;
    let got = '';
    while (Date.now() < end) {
      got = await call('again');
      if (got.startsWith('b2:')) break;
    }
    assert.equal(got, 'b2:again');
  });
});
