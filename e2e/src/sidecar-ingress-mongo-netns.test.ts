/**
 * A Sidecar ingress listener for a MONGO port, as istiod renders it, through a
 * stock sidecar in iptables mode: Istio's pilot-agent (root namespace,
 * certificates from Sextant's CA) runs a real Envoy inside a network namespace
 * this test creates, where Istio's inbound capture REDIRECTs the pod's TCP to
 * virtualInbound (15006). The Sidecar declares 27017 (MONGO) with a
 * `defaultEndpoint` on the pod's loopback, where a TCP echo stands in for the
 * database. The chain is named after the pod address (`<podIP>_27017`), and
 * Envoy's Mongo proxy decodes the wire protocol on its way to the app: a real
 * OP_QUERY shows up in the sidecar's `mongo.inbound|27017||` statistics while
 * the bytes reach the app and come back unchanged.
 */
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { until } from './backends.js';
import { startNetnsSidecar, type NetnsSidecar } from './fixtures/agent-netns.js';
import { endpointSlice, istio, namespace, pod, service } from './fixtures/mesh.js';
import { canNetns } from './fixtures/netns.js';
import { skipUnless } from './tools.js';

const MONGO_PORT = 27017;
// The stand-in database listens on the pod's loopback only: reachable through the sidecar's STATIC cluster.
const APP_PORT = 27018;
const LABELS = { app: 'mongo', 'security.istio.io/tlsMode': 'istio' };

/** A MongoDB OP_QUERY (opcode 2004) for `{ping: 1}` on `admin.$cmd`. */
function opQuery(requestId: number): Buffer {
  const doc = Buffer.concat([Buffer.alloc(4), Buffer.from([0x10]), Buffer.from('ping\0'), Buffer.from([1, 0, 0, 0]), Buffer.from([0])]);
  doc.writeInt32LE(doc.length, 0);
  const body = Buffer.concat([Buffer.alloc(4), Buffer.from('admin.$cmd\0'), Buffer.from([0, 0, 0, 0]), Buffer.from([0xff, 0xff, 0xff, 0xff]), doc]);
  const header = Buffer.alloc(16);
  header.writeInt32LE(16 + body.length, 0);
  header.writeInt32LE(requestId, 4);
  header.writeInt32LE(0, 8);
  header.writeInt32LE(2004, 12);
  return Buffer.concat([header, body]);
}

describe('Sidecar ingress MONGO port through a stock sidecar in iptables mode', { timeout: 240_000, skip: skipUnless('pilot-agent', 'envoy') || (!canNetns && 'needs root, ip netns and apt-get') }, () => {
  let sidecar: NetnsSidecar | undefined;
  const ns = () => sidecar!.ns;
  const fail = (e: Error): never => sidecar!.fail(e);
  const admin = (path: string) => sidecar!.admin(path);

  before(async () => {
    const ports = [{ name: 'mongo', port: MONGO_PORT }];
    sidecar = await startNetnsSidecar({
      tag: 'mg',
      net: `10.253.${(process.pid + 71) % 200}`,
      app: `require('node:net').createServer((c) => c.pipe(c)).listen(${APP_PORT}, '127.0.0.1', () => console.log('echo up'));`,
      appReady: ['echo up'],
      files: (podIp) => ({
        'kubernetes.yaml': [namespace('data'), namespace('istio-system'), pod('mongo-0', 'data', podIp, LABELS, 'mongo'), service('mongo', 'data', '10.96.88.8', ports), endpointSlice('mongo', 'data', 'mongo-0', podIp, ports)],
        // No PeerAuthentication: PERMISSIVE, so this plaintext client is let in.
        'istio.yaml': [istio('Sidecar', 'mongo', 'data', { workloadSelector: { labels: { app: 'mongo' } }, ingress: [{ port: { number: MONGO_PORT, protocol: 'MONGO', name: 'mongo' }, defaultEndpoint: `127.0.0.1:${APP_PORT}` }] })],
      }),
      workload: { namespace: 'data', serviceAccount: 'mongo', podName: 'mongo-0', labels: LABELS },
      // Istio's bootstrap keeps only some statistics: the Mongo proxy's too.
      proxyConfig: { proxyStatsMatcher: { inclusionPrefixes: ['mongo.'] } },
    });
  });

  after(async () => {
    await sidecar?.stop();
  });

  /** Sends one message to the pod's MONGO port and resolves with what came back (empty when refused). */
  function roundTrip(msg: Buffer): Promise<Buffer> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let got = 0;
      const s = netConnect({ host: ns().pod, port: MONGO_PORT }, () => s.write(msg));
      s.setTimeout(10_000, () => s.destroy());
      s.on('data', (d: Buffer) => {
        chunks.push(d);
        got += d.length;
        if (got >= msg.length) s.end();
      });
      s.on('error', () => {});
      s.on('close', () => resolve(Buffer.concat(chunks)));
    });
  }

  test('a Mongo OP_QUERY reaches the defaultEndpoint unchanged through the chain <podIP>_27017, decoded by the Mongo proxy', async () => {
    const msg = opQuery(7);
    const back = await until(() => roundTrip(msg), (b) => b.equals(msg), 'the OP_QUERY echoed through the Sidecar ingress chain', 120_000).catch(fail);
    assert.equal(back.length, msg.length);
    const queries = await until(
      async () => admin('/stats?filter=mongo'),
      (s) => /^mongo\.inbound\|27017\|\|\.op_query: [1-9]/m.test(s),
      "the sidecar's Mongo proxy counting the OP_QUERY",
      30_000,
    ).catch(fail);
    assert.match(queries, /^mongo\.inbound\|27017\|\|\.op_query: [1-9]/m);
    const listeners = admin('/config_dump?resource=dynamic_listeners');
    assert.ok(listeners.includes(`"name": "${ns().pod}_${MONGO_PORT}"`), `the chain is named after the pod address ${ns().pod}`);
  });
});
