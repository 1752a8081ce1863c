import assert from 'node:assert/strict';
import { test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient } from '@sextant/testing/xds-client';
import { edsCluster, startHarness, type Harness } from '@sextant/testing/xds-harness';
import type { XdsLimits } from './limits.js';
import type { ResourceGenerator } from './types.js';

const STREAMS = 12;
const GENERATE_MS = 100;

/**
 * A harness whose CDS generator calls `onGenerate` first, and N SotW clients
 * (node IDs `<prefix>-<i>`) subscribed to CDS with their first response
 * ACKed; `close` ends both.
 */
async function cdsClients(n: number, prefix: string, onGenerate: () => void, limits?: Partial<XdsLimits>): Promise<{ h: Harness; clients: SotwClient[]; close(): Promise<void> }> {
  let inner: ResourceGenerator | undefined;
  const cds: ResourceGenerator = {
    generate: (proxy, watch, req) => {
      onGenerate();
      return inner!.generate(proxy, watch, req);
    },
  };
  const h = await startHarness({ extraGenerators: { [TypeUrl.Cluster]: cds }, ...(limits ? { limits } : {}) });
  inner = h.clusters;
  h.clusters.replace([edsCluster('c1')]);
  const clients = Array.from({ length: n }, (_, i) => new SotwClient(h.address, { node: { id: `${prefix}-${i}`, metadata: {} } }));
  const close = async () => {
    for (const c of clients) c.close();
    await h.stop();
  };
  try {
    for (const c of clients) c.request(TypeUrl.Cluster, { resourceNames: [] });
    const first = await Promise.all(clients.map((c) => c.next()));
    first.forEach((r, i) => clients[i]!.ack(r, []));
  } catch (err) {
    await close();
    throw err;
  }
  return { h, clients, close };
}

/**
 * The S=1000, N=100 cold connect that never finished: each stream's first CDS
 * took a second or more to generate, the push queue served its whole batch in
 * one event-loop turn, and the loop was held for minutes, so grpc-js's
 * keepalive timeout (20 s) fired before the pending ping ACKs were read and
 * every connection was dropped; the clients reconnected and were sent CDS
 * again, indefinitely. The queue now yields once a turn has taken
 * `pushTurnMs`: however slow each stream is, the loop is never held for much
 * more than one stream.
 */
test('a push to many slow-to-generate streams yields the event loop between streams (timers and I/O still run)', async () => {
  let slow = false;
  const { h, clients, close } = await cdsClients(STREAMS, 'slow', () => {
    if (!slow) return;
    const until = performance.now() + GENERATE_MS;
    while (performance.now() < until) {
      /* a class's first CDS in a large mesh: synchronous work */
    }
  });
  try {
    // The largest gap between two turns of the event loop while the push is served.
    let last = performance.now();
    let maxGap = 0;
    let turns = 0;
    let watching = true;
    const tick = () => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      turns++;
      if (watching) setImmediate(tick);
    };
    slow = true;
    h.clusters.replace([edsCluster('c2')]);
    setImmediate(tick);
    h.pushAll('slow');
    const second = await Promise.all(clients.map((c) => c.next()));
    watching = false;
    for (const r of second) assert.equal(r.resources.length, 1, 'every stream got the new clusters');
    // Served back to back, the 12 streams held the loop for 12 × 100 ms in one turn.
    assert.ok(maxGap < (STREAMS * GENERATE_MS) / 2, `the event loop was held for ${maxGap.toFixed(0)} ms while ${STREAMS} streams were served (each takes ${GENERATE_MS} ms)`);
    assert.ok(turns >= STREAMS / 2, `the event loop turned ${turns} times during the push`);
  } finally {
    await close();
  }
});

/**
 * HTTP/2 sends what a turn of the push queue wrote only once the turn is
 * over, so the batch is how long the first proxies wait for the others: with
 * 512 streams per turn, a cheap push to 200 streams (an endpoint change) went
 * out only after all 200 were generated. With the default batch the first
 * responses arrive while the push is still being served.
 */
test('a cheap push to many streams reaches the first ones before the last is generated', async () => {
  const N = 200;
  const generatedAt: number[] = [];
  let recording = false;
  // Every client shares one connection from 127.0.0.1: the per-connection and per-address limits are lifted for them.
  const onGenerate = () => {
    if (recording) generatedAt.push(performance.now());
  };
  const { h, clients, close } = await cdsClients(N, 'fan', onGenerate, { maxStreamsPerConnection: 1000, maxOpeningStreamsPerAddress: 1000 });
  try {
    await new Promise((r) => setTimeout(r, 50)); // the ACKs are in
    recording = true;
    h.clusters.replace([edsCluster('c2')]);
    h.pushAll('fan-out');
    const receivedAt = await Promise.all(clients.map((c) => c.next().then(() => performance.now())));
    assert.equal(generatedAt.length, N, 'each stream generated once');
    const firstReceived = Math.min(...receivedAt);
    const lastGenerated = Math.max(...generatedAt);
    assert.ok(firstReceived < lastGenerated, `the first response arrived ${(firstReceived - lastGenerated).toFixed(1)} ms after the last of ${N} streams was generated`);
  } finally {
    await close();
  }
});
