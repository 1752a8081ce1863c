import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl, type DiscoveryResponse } from '@sextant/envoy';
import { directSender, enablePreFramedWrites, grpcFramed } from './frames.js';
import { adsServiceDefinition } from './service.js';
import { SotwClient, decodeResources, openRawStream, resourceNames } from '@sextant/testing/xds-client';
import { edsCluster, loadAssignment, startHarness } from '@sextant/testing/xds-harness';

const node = (id: string) => ({ id, metadata: {} });
const EDS = TypeUrl.ClusterLoadAssignment;
const ports = (r: DiscoveryResponse) =>
  decodeResources(r).map((d) => {
    const j = d.json as { endpoints?: { lbEndpoints?: { endpoint?: { address?: { socketAddress?: { portValue?: number } } } }[] }[] };
    return j.endpoints?.[0]?.lbEndpoints?.[0]?.endpoint?.address?.socketAddress?.portValue;
  });

describe('direct writes (frames.ts directSender)', () => {
  test('the pinned grpc-js call takes messages through call.call.sendMessage, in order, before the status', async () => {
    enablePreFramedWrites();
    const server = new grpc.Server();
    let send: ReturnType<typeof directSender>;
    server.addService(adsServiceDefinition(() => 1 << 20), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<unknown, Buffer>) => {
        send = directSender(call);
        if (!send) {
          call.emit('error', { code: grpc.status.INTERNAL, details: 'no direct sender' });
          return;
        }
        let done = 0;
        // A pre-framed message and a plain one (grpc-js frames it), then end: the status must follow both.
        send(grpcFramed(Buffer.from('first')), () => done++);
        send(Buffer.from('second'), () => done++);
        call.end();
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, Buffer>) => call.end(),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const s = openRawStream(`127.0.0.1:${port}`, 'sotw');
    try {
      s.sendRaw(Buffer.alloc(0));
      assert.equal((await s.next()).toString(), 'first');
      assert.equal((await s.next()).toString(), 'second');
      const st = await s.status();
      assert.equal(st.code, grpc.status.OK);
      assert.equal(typeof send, 'function', 'the direct path is available on grpc-js 1.14');
    } finally {
      s.close();
      server.forceShutdown();
    }
  });

  test('directSender refuses anything that is not a grpc-js server duplex call', () => {
    assert.equal(directSender({}), undefined);
    assert.equal(directSender({ call: { sendMessage() {} } }), undefined);
  });
});

// The direct paths on both sides, and grpc-js's own (a regression in either shows as a difference between the two).
for (const direct of [true, false]) {
  const paths = { directWrites: direct, directReads: direct };
  describe(`EDS fan-out (directWrites, directReads: ${direct})`, () => {
    test('one change: watchers share one response (same nonce); a stream that already has it gets nothing; ACKs stay per stream', async () => {
      const h = await startHarness(paths);
      h.clusters.replace([edsCluster('c1'), edsCluster('c2')]);
      h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 80 }]));
      h.endpoints.set('c2', loadAssignment('c2', [{ address: '10.0.0.2', port: 80 }]));
      h.pushAll('seed');
      const a = new SotwClient(h.address, { node: node('fan-a') });
      const b = new SotwClient(h.address, { node: node('fan-b') });
      const c = new SotwClient(h.address, { node: node('fan-c') });
      try {
        a.request(EDS, { resourceNames: ['c1'] });
        b.request(EDS, { resourceNames: ['c1'] });
        c.request(EDS, { resourceNames: ['c1', 'c2'] });
        const first = await Promise.all([a.next(), b.next(), c.next()]);
        first.forEach((r, i) => [a, b, c][i]!.ack(r, i === 2 ? ['c1', 'c2'] : ['c1']));

        h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 81 }]));
        const [ra, rb, rc] = await Promise.all([a.next(), b.next(), c.next()]);
        assert.equal(ra.nonce, rb.nonce, 'one shared frame');
        assert.equal(ra.nonce, rc.nonce, 'the changed resource is the same for a stream watching more names');
        for (const r of [ra, rb, rc]) {
          assert.deepEqual(resourceNames(r), ['c1']);
          assert.deepEqual(ports(r), [81]);
        }
        a.ack(ra, ['c1']);
        c.ack(rc, ['c1', 'c2']);
        await h.server.close(0).catch(() => undefined);
        const conns = new Map(h.server.connections().map((x) => [x.proxyId, x]));
        assert.equal(conns.size, 0, 'closed');
      } finally {
        a.close();
        b.close();
        c.close();
        await h.stop();
      }
    });

    test('what each stream was sent stays exact: ACK/NACK per stream after shared incremental pushes', async () => {
      const h = await startHarness(paths);
      h.clusters.replace([edsCluster('c1')]);
      h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 80 }]));
      h.endpoints.set('c2', loadAssignment('c2', [{ address: '10.0.0.2', port: 80 }]));
      h.pushAll('seed');
      const a = new SotwClient(h.address, { node: node('exact-a') });
      const b = new SotwClient(h.address, { node: node('exact-b') });
      try {
        a.request(EDS, { resourceNames: ['c1', 'c2'] });
        b.request(EDS, { resourceNames: ['c1'] });
        const [a0, b0] = [await a.next(), await b.next()];
        a.ack(a0, ['c1', 'c2']);
        b.ack(b0, ['c1']);
        h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 90 }]));
        const [a1, b1] = [await a.next(), await b.next()];
        assert.equal(a1.nonce, b1.nonce);
        a.ack(a1, ['c1', 'c2']);
        b.nack(b1, 'rejected by test', b0.versionInfo, ['c1']);
        // Per-stream bookkeeping: a has both clusters, c1 at the new content; b's NACK is recorded for b only.
        const deadline = Date.now() + 5000;
        let sa, sb;
        do {
          await new Promise((r) => setImmediate(r));
          const byId = new Map(h.server.connections().map((x) => [x.proxyId, x.types.find((t) => t.typeUrl === EDS)]));
          sa = byId.get('exact-a');
          sb = byId.get('exact-b');
        } while ((sa?.nonceAcked !== a1.nonce || !sb?.lastNack) && Date.now() < deadline);
        assert.equal(sa?.nonceAcked, a1.nonce);
        assert.deepEqual(Object.keys(sa?.resources ?? {}).sort(), ['c1', 'c2']);
        assert.equal(sa?.lastNack, undefined);
        assert.equal(sb?.lastNack?.nonce, b1.nonce);
        assert.deepEqual(Object.keys(sb?.resources ?? {}), ['c1']);
        assert.equal(sa?.resources['c1'], sb?.resources['c1'], 'both were sent the same c1');
        // A second change: a new shared frame, a fresh nonce on both streams.
        h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 91 }]));
        const [a2, b2] = [await a.next(), await b.next()];
        assert.equal(a2.nonce, b2.nonce);
        assert.notEqual(a2.nonce, a1.nonce);
        assert.deepEqual(ports(a2), [91]);
        assert.deepEqual(resourceNames(b2), ['c1']);
      } finally {
        a.close();
        b.close();
        await h.stop();
      }
    });
  });
}
