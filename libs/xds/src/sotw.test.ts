import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { recordingLogger } from '@sextant/api';
import { TypeUrl, type DiscoveryResponse } from '@sextant/envoy';
import { enablePreFramedWrites } from './frames.js';
import { SotwClient, decodeResources, openRawStream, resourceNames } from '@sextant/testing/xds-client';
import {
  ExtensionConfigType,
  edsCluster,
  extensionConfig,
  httpListener,
  loadAssignment,
  routeTo,
  secret,
  startHarness,
  waitFor,
  type Harness,
} from '@sextant/testing/xds-harness';

const node = (id: string, metadata: Record<string, unknown> = {}) => ({ id, metadata });
let probeSeq = 0;

/**
 * Proves the server ignored what came before: requests on one stream are
 * handled in order, so if the next response is the answer to a fresh
 * subscription of another type, nothing was sent in between.
 */
async function probe(c: SotwClient): Promise<void> {
  const name = `p${++probeSeq}`;
  c.request(ExtensionConfigType, { resourceNames: [name] });
  const r = await c.next();
  assert.equal(r.typeUrl, ExtensionConfigType, `expected only the probe response, got ${r.typeUrl} ${resourceNames(r)}`);
  assert.deepEqual(resourceNames(r), [name]);
  c.ack(r, [name]);
}

function seed(h: Harness) {
  h.clusters.replace([edsCluster('c1'), edsCluster('c2')]);
  h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 80 }]));
  h.endpoints.set('c2', loadAssignment('c2', [{ address: '10.0.0.2', port: 80 }]));
  h.listeners.replace([httpListener('l1', '127.0.0.1', 10001, 'r1')]);
  h.routes.replace([routeTo('r1', 'c1'), routeTo('r2', 'c2')]);
  h.secrets.replace([secret('default')]);
  h.extensions.replace(Array.from({ length: 200 }, (_, i) => extensionConfig(`p${i + 1}`)));
}

describe('SotW ADS protocol', () => {
  let h: Harness;
  const log = recordingLogger();
  before(async () => {
    h = await startHarness({ log, controlPlaneId: 'sextant-test' });
    seed(h);
    h.pushAll('seed');
  });
  after(() => h.stop());

  test('initial wildcard CDS request gets every cluster, with version, nonce and control plane', async () => {
    const c = new SotwClient(h.address, { node: node('sidecar~10.0.0.1~a.default~default.svc.cluster.local') });
    try {
      c.request(TypeUrl.Cluster);
      const r = await c.next();
      assert.equal(r.typeUrl, TypeUrl.Cluster);
      assert.deepEqual(resourceNames(r), ['c1', 'c2']);
      assert.equal(r.versionInfo, 'v1');
      assert.ok(r.nonce.length > 0);
      assert.equal(r.controlPlane?.identifier, 'sextant-test');
      const json = decodeResources(r)[0]!.json as Record<string, unknown>;
      assert.equal(json['type'], 'EDS');
    } finally {
      c.close();
    }
  });

  test('ACK gets no response; NACK is recorded and the rejected version is not re-sent', async () => {
    const c = new SotwClient(h.address, { node: node('nack-proxy') });
    try {
      c.request(TypeUrl.Cluster);
      const r1 = await c.next();
      c.ack(r1);
      await probe(c);
      // A new cluster set, which this proxy rejects.
      h.clusters.set(edsCluster('c3'));
      h.pushAll('add c3');
      const r2 = await c.next();
      assert.deepEqual(resourceNames(r2), ['c1', 'c2', 'c3']);
      const nacksBefore = h.server.metrics().nacks;
      c.nack(r2, 'cluster c3: invalid', r1.versionInfo);
      await probe(c);
      assert.equal(h.server.metrics().nacks, nacksBefore + 1);
      const st = h.server.connections().find((x) => x.proxyId === 'nack-proxy')!;
      const cds = st.types.find((t) => t.typeUrl === TypeUrl.Cluster)!;
      assert.equal(cds.lastNack?.message, 'cluster c3: invalid');
      assert.equal(cds.lastNack?.nonce, r2.nonce);
      assert.equal(cds.versionAcked, r1.versionInfo);
      assert.ok(log.entries.some((e) => e.level === 'warn' && e['proxy'] === 'nack-proxy' && String(e.msg).includes('NACK')));
      // The same content at a new push version is not re-sent...
      h.pushAll('unrelated');
      await probe(c);
      // ...but new content is.
      h.clusters.delete('c3');
      h.pushAll('remove c3');
      const r3 = await c.next();
      assert.deepEqual(resourceNames(r3), ['c1', 'c2']);
      c.ack(r3);
    } finally {
      c.close();
    }
  });

  test('a request with a stale nonce is ignored', async () => {
    const c = new SotwClient(h.address, { node: node('stale-proxy') });
    try {
      c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: ['c1'] });
      const r1 = await c.next();
      c.ack(r1, ['c1']);
      h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.9', port: 80 }]));
      const r2 = await c.next();
      assert.notEqual(r2.nonce, r1.nonce);
      const staleBefore = h.server.metrics().staleNonces;
      // New names with the old nonce: stale, so not answered.
      c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: ['c1', 'c2'], versionInfo: r1.versionInfo, responseNonce: r1.nonce });
      await probe(c);
      assert.equal(h.server.metrics().staleNonces, staleBefore + 1);
      // A NACK with a stale nonce is not recorded either.
      c.nack(r1, 'late complaint', r1.versionInfo, ['c1']);
      await probe(c);
      const eds = h.server.connections().find((x) => x.proxyId === 'stale-proxy')!.types.find((t) => t.typeUrl === TypeUrl.ClusterLoadAssignment)!;
      assert.equal(eds.lastNack, undefined);
    } finally {
      c.close();
    }
  });

  test('new resource names at an unchanged version are answered; unsubscribe narrows the set', async () => {
    const c = new SotwClient(h.address, { node: node('names-proxy') });
    try {
      c.request(TypeUrl.RouteConfiguration, { resourceNames: ['r1'] });
      const r1 = await c.next();
      assert.deepEqual(resourceNames(r1), ['r1']);
      c.ack(r1, ['r1']);
      c.request(TypeUrl.RouteConfiguration, { resourceNames: ['r1', 'r2'], versionInfo: r1.versionInfo, responseNonce: r1.nonce });
      const r2 = await c.next();
      assert.equal(r2.versionInfo, r1.versionInfo);
      assert.deepEqual(resourceNames(r2), ['r1', 'r2']);
      c.ack(r2, ['r1', 'r2']);
      c.request(TypeUrl.RouteConfiguration, { resourceNames: ['r2'], versionInfo: r2.versionInfo, responseNonce: r2.nonce });
      const r3 = await c.next();
      assert.deepEqual(resourceNames(r3), ['r2']);
      c.ack(r3, ['r2']);
      await probe(c);
    } finally {
      c.close();
    }
  });

  test('an endpoint change wakes only the streams watching that cluster, with only that cluster', async () => {
    const a = new SotwClient(h.address, { node: node('eds-a') });
    const b = new SotwClient(h.address, { node: node('eds-b') });
    try {
      a.request(TypeUrl.ClusterLoadAssignment, { resourceNames: ['c1', 'c2'] });
      b.request(TypeUrl.ClusterLoadAssignment, { resourceNames: ['c2'] });
      const ra = await a.next();
      const rb = await b.next();
      assert.deepEqual(resourceNames(ra), ['c1', 'c2']);
      a.ack(ra, ['c1', 'c2']);
      b.ack(rb, ['c2']);
      h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 81 }]));
      const ra2 = await a.next();
      assert.deepEqual(resourceNames(ra2), ['c1'], 'incremental EDS carries only the changed cluster');
      a.ack(ra2, ['c1', 'c2']);
      await probe(b); // b watches only c2: not woken
      // After b unsubscribes c2, a c2 change does not reach it.
      b.request(TypeUrl.ClusterLoadAssignment, { resourceNames: [], versionInfo: rb.versionInfo, responseNonce: rb.nonce });
      const rb2 = await b.next();
      assert.deepEqual(resourceNames(rb2), []);
      b.ack(rb2, []);
      h.endpoints.set('c2', loadAssignment('c2', [{ address: '10.0.0.2', port: 81 }]));
      const ra3 = await a.next();
      assert.deepEqual(resourceNames(ra3), ['c2']);
      await probe(b);
    } finally {
      a.close();
      b.close();
    }
  });

  test('wildcard LDS gets the full set on every change', async () => {
    const c = new SotwClient(h.address, { node: node('lds-proxy') });
    try {
      c.request(TypeUrl.Listener);
      const r1 = await c.next();
      assert.deepEqual(resourceNames(r1), ['l1']);
      c.ack(r1);
      h.listeners.set(httpListener('l2', '127.0.0.1', 10002, 'r2'));
      h.pushAll('add l2');
      const r2 = await c.next();
      assert.equal(r2.typeUrl, TypeUrl.Listener);
      assert.deepEqual(resourceNames(r2), ['l1', 'l2']);
      c.ack(r2);
      h.listeners.delete('l2');
      h.pushAll('remove l2');
      const r3 = await c.next();
      assert.deepEqual(resourceNames(r3), ['l1']);
    } finally {
      c.close();
    }
  });

  test('a full push goes out in the order CDS, EDS, LDS, RDS, SDS', async () => {
    const c = new SotwClient(h.address, { node: node('order-proxy') });
    try {
      // Subscribe in reverse order; ACK each.
      const subs: [string, string[]][] = [
        [TypeUrl.Secret, ['default']],
        [TypeUrl.RouteConfiguration, ['r1']],
        [TypeUrl.Listener, []],
        [TypeUrl.ClusterLoadAssignment, ['c1']],
        [TypeUrl.Cluster, []],
      ];
      for (const [t, names] of subs) {
        c.request(t, { resourceNames: names });
        const r = await c.next();
        assert.equal(r.typeUrl, t);
        c.ack(r, names);
      }
      // Change every type, then one push.
      h.clusters.set(edsCluster('c1', { connectTimeout: '2s' }));
      h.listeners.set(httpListener('l1', '127.0.0.1', 10001, 'r1', 'changed'));
      h.routes.set(routeTo('r1', 'c1', { key: 'x-v', value: '2' }));
      h.secrets.set(secret('default', 'changed'));
      h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 82 }]));
      // Let the endpoint notification go out on its own first, then push everything.
      const eds = await c.next();
      assert.equal(eds.typeUrl, TypeUrl.ClusterLoadAssignment);
      c.ack(eds, ['c1']);
      h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 83 }]));
      h.pushAll('everything');
      const got: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await c.next();
        got.push(r.typeUrl);
      }
      assert.deepEqual(got, [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Secret]);
    } finally {
      c.close();
    }
  });

  test('reconnect with an old version and nonce is answered as an initial request', async () => {
    const c = new SotwClient(h.address, { node: node('reconnect-proxy') });
    c.request(TypeUrl.Cluster);
    const r1 = await c.next();
    c.close();
    const d = new SotwClient(h.address, { node: node('reconnect-proxy') });
    try {
      d.request(TypeUrl.Cluster, { versionInfo: r1.versionInfo, responseNonce: r1.nonce });
      const r2 = await d.next();
      assert.deepEqual(resourceNames(r2), resourceNames(r1));
    } finally {
      d.close();
    }
  });

  test('push affects() limits a full push to the proxies that depend on the change', async () => {
    const a = new SotwClient(h.address, { node: node('affected', { APP: 'a' }) });
    const b = new SotwClient(h.address, { node: node('unaffected', { APP: 'b' }) });
    try {
      for (const c of [a, b]) {
        c.request(TypeUrl.Cluster);
        c.ack(await c.next());
      }
      h.clusters.set(edsCluster('c4'));
      h.pushAll('only a', (p) => p.metadata['APP'] === 'a');
      const r = await a.next();
      assert.ok(resourceNames(r).includes('c4'));
      await probe(b);
    } finally {
      a.close();
      b.close();
      h.clusters.delete('c4');
    }
  });

  test('streamState shows what was sent (by node ID and by <pod>.<namespace>); connections() shows versions and names', async () => {
    const id = 'sidecar~10.0.0.9~dump-pod.dump-ns~dump-ns.svc.cluster.local';
    const c = new SotwClient(h.address, { node: node(id) });
    try {
      c.request(TypeUrl.RouteConfiguration, { resourceNames: ['r2'] });
      const r = await c.next();
      c.ack(r, ['r2']);
      await probe(c);
      const dump = h.server.streamState(id)!;
      assert.equal(dump.proxy.id, id);
      assert.equal(h.server.streamState('dump-pod.dump-ns')?.connectionId, dump.connectionId);
      assert.equal(h.server.streamState('other-pod.dump-ns'), undefined);
      const rds = dump.types.find((t) => t.typeUrl === TypeUrl.RouteConfiguration)!;
      assert.deepEqual(rds.resources.map((x) => x.name), ['r2']);
      assert.equal(rds.versionSent, r.versionInfo);
      assert.ok(rds.sentAt && Date.parse(rds.sentAt) > 0);
      const st = h.server.connections().find((x) => x.proxyId === id)!;
      const status = st.types.find((t) => t.typeUrl === TypeUrl.RouteConfiguration)!;
      assert.equal(status.versionAcked, r.versionInfo);
      assert.equal(status.nonceAcked, r.nonce);
      assert.deepEqual(status.names, ['r2']);
    } finally {
      c.close();
    }
  });
});

describe('SotW readiness', () => {
  test('the first response waits until the server is ready', async () => {
    const h = await startHarness({ ready: false });
    const c = new SotwClient(h.address, { node: node('early') });
    try {
      c.request(TypeUrl.Cluster);
      await waitFor(() => h.server.connections().some((x) => x.types.some((t) => t.typeUrl === TypeUrl.Cluster)), 'the CDS subscription');
      h.pushAll('not ready yet'); // nothing may be sent: sources have not synced
      await waitFor(() => h.server.connections()[0]!.pending, 'a pending push');
      assert.equal(c.buffered, 0);
      assert.equal(h.server.metrics().pushes, 0);
      seed(h);
      h.ready.value = true;
      const v = h.pushAll('ready');
      const r = await c.next();
      assert.equal(r.versionInfo, v);
      assert.deepEqual(resourceNames(r), ['c1', 'c2']);
    } finally {
      c.close();
      await h.stop();
    }
  });
});

describe('SotW bad input', () => {
  let h: Harness;
  const log = recordingLogger();
  before(async () => {
    h = await startHarness({ log, maxRequestBytes: 64 * 1024 });
    seed(h);
    h.pushAll('seed');
  });
  after(() => h.stop());

  async function healthy(): Promise<void> {
    const c = new SotwClient(h.address, { node: node('bystander') });
    try {
      c.request(TypeUrl.Cluster);
      const r = await c.next();
      assert.deepEqual(resourceNames(r), ['c1', 'c2']);
    } finally {
      c.close();
    }
  }

  test('a first request without a node ends the stream with INVALID_ARGUMENT', async () => {
    const c = new SotwClient(h.address, {});
    c.request(TypeUrl.Cluster);
    const s = await c.status();
    c.close();
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
    assert.match(s.details, /no node/);
    assert.ok(log.entries.some((e) => e.level === 'error' && String(e.msg).includes('no node')));
    await healthy();
  });

  test('a malformed request ends the stream with INVALID_ARGUMENT', async () => {
    const c = openRawStream(h.address, 'sotw');
    c.sendRaw(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    const s = await c.status();
    c.close();
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
    assert.match(s.details, /malformed request/);
    await healthy();
  });

  test('an oversized request ends the stream with RESOURCE_EXHAUSTED', async () => {
    const c = new SotwClient(h.address, { node: node('big') });
    c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: Array.from({ length: 5000 }, (_, i) => `outbound|9080||service-${i}.default.svc.cluster.local`) });
    const s = await c.status();
    c.close();
    assert.equal(s.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(s.details, /exceeds the limit/);
    await healthy();
  });

  test('an unknown type URL is logged and not answered; the stream keeps being served', async () => {
    const c = new SotwClient(h.address, { node: node('unknown-type') });
    try {
      c.request('type.googleapis.com/envoy.service.runtime.v3.Runtime', { resourceNames: ['rtds'] });
      c.request(TypeUrl.Cluster);
      const r = await c.next();
      assert.equal(r.typeUrl, TypeUrl.Cluster);
      assert.ok(log.entries.some((e) => e.level === 'error' && e['proxy'] === 'unknown-type' && String(e.msg).includes('unknown type URL')));
      assert.ok(h.server.metrics().unknownTypes >= 1);
    } finally {
      c.close();
    }
  });

  test('an abrupt disconnect is cleaned up and others keep being served', async () => {
    const c = new SotwClient(h.address, { node: node('vanishing') });
    c.request(TypeUrl.Cluster);
    await c.next();
    c.call.cancel();
    c.client.close();
    await waitFor(() => !h.server.connections().some((x) => x.proxyId === 'vanishing'), 'the stream to be forgotten');
    h.clusters.set(edsCluster('c5'));
    h.pushAll('after disconnect');
    h.clusters.delete('c5');
    await healthy();
  });
});

describe('SotW backpressure', () => {
  test('a client that stops reading is bounded and coalesced, and does not delay others', async () => {
    const h = await startHarness({ maxQueuedPushes: 2 });
    const big = (tag: string) =>
      Array.from({ length: 200 }, (_, i) => edsCluster(`cluster-${i}`, { metadata: { filterMetadata: { sextant: { tag, pad: 'x'.repeat(400) } } } }));
    h.clusters.replace(big('t0'));
    h.pushAll('seed');
    const slow = new SotwClient(h.address, { node: node('slow') });
    const fast = new SotwClient(h.address, { node: node('fast') });
    try {
      for (const c of [slow, fast]) {
        c.request(TypeUrl.Cluster);
        c.ack(await c.next());
      }
      slow.call.pause(); // stops reading: the HTTP/2 window fills
      let last = '';
      let fastGot: DiscoveryResponse | undefined;
      for (let i = 1; i <= 40; i++) {
        h.clusters.replace(big(`t${i}`));
        last = h.pushAll(`change ${i}`);
        // The fast client sees every version promptly.
        fastGot = await fast.next();
        assert.equal(fastGot.versionInfo, last);
        fast.ack(fastGot);
      }
      const st = h.server.connections().find((x) => x.proxyId === 'slow')!;
      assert.ok(st.queuedWrites <= 2, `queued writes ${st.queuedWrites} exceed the bound`);
      assert.ok(h.server.metrics().coalesced > 0, 'pushes to the slow client were coalesced');
      // Once it reads again it catches up to the latest version with far fewer responses than pushes.
      slow.call.resume();
      let r: DiscoveryResponse;
      let n = 0;
      do {
        r = await slow.next();
        n++;
      } while (r.versionInfo !== last && n < 50);
      assert.equal(r.versionInfo, last);
      assert.ok(n < 40, `slow client received ${n} responses for 40 pushes`);
    } finally {
      slow.close();
      fast.close();
      await h.stop();
    }
  });
});

describe('shared frames', () => {
  test('the pinned grpc-js accepts pre-framed responses, and streams with the same config share one frame', async () => {
    assert.equal(enablePreFramedWrites(), true, 'the grpc-js hook is installed (see frames.ts)');
    const h = await startHarness();
    h.clusters.replace([edsCluster('c1'), edsCluster('c2')]);
    h.pushAll('seed');
    const a = new SotwClient(h.address, { node: node('share-a') });
    const b = new SotwClient(h.address, { node: node('share-b') });
    try {
      a.request(TypeUrl.Cluster);
      b.request(TypeUrl.Cluster);
      const [ra, rb] = [await a.next(), await b.next()];
      // One frame for both: same nonce (nonces stay unique per stream), same bytes.
      assert.equal(ra.nonce, rb.nonce);
      assert.deepEqual(resourceNames(ra), ['c1', 'c2']);
      assert.deepEqual(decodeResources(ra), decodeResources(rb));
      a.ack(ra);
      // A later response on the same stream always has a new nonce.
      h.clusters.set(edsCluster('c3'));
      h.pushAll('c3');
      const ra2 = await a.next();
      assert.notEqual(ra2.nonce, ra.nonce);
    } finally {
      a.close();
      b.close();
      await h.stop();
    }
  });
});
