import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TypeUrl } from '@sextant/envoy';
import { DeltaClient, SotwClient } from '@sextant/testing/xds-client';
import { edsCluster, loadAssignment, routeTo, startHarness, waitFor, type Harness } from '@sextant/testing/xds-harness';
import { FrameCache } from './server/shared-frames.js';
import { TypeState } from './server/subscriptions.js';

/**
 * Per-stream state the server shares between streams that hold the same
 * thing (memory per proxy, issue 10): subscription name sets, and the map of
 * what a stream has been sent. Observed through DiscoveryServer.bookkeeping().
 */
const CLUSTERS = Array.from({ length: 40 }, (_, i) => `c${i}`);
const shuffled = (xs: string[], k: number) => [...xs.slice(k), ...xs.slice(0, k)];
const names = (r: { resources: { name: string }[] }) => r.resources.map((x) => x.name).sort();

/** A Delta client that has CDS (wildcard) and EDS for every cluster, in Envoy's order, ACKed. */
async function deltaProxy(h: Harness, id: string, order: number): Promise<DeltaClient> {
  const c = new DeltaClient(h.address, { node: { id } });
  c.request(TypeUrl.Cluster);
  const cds = await c.next();
  assert.equal(cds.resources.length, CLUSTERS.length);
  c.ack(cds);
  c.request(TypeUrl.ClusterLoadAssignment, { subscribe: shuffled(CLUSTERS, order) });
  const eds = await c.next();
  assert.deepEqual(names(eds), [...CLUSTERS].sort());
  c.ack(eds);
  return c;
}

/** Counts the walks of every name a stream holds (TypeState.known), until restored. */
function countWalks(): { count: number; restore(): void } {
  const known = TypeState.prototype.known;
  const counter = {
    count: 0,
    restore: () => {
      TypeState.prototype.known = known;
    },
  };
  TypeState.prototype.known = function (this: TypeState) {
    counter.count++;
    return known.call(this);
  };
  return counter;
}

describe('state shared between streams', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    h.clusters.replace(CLUSTERS.map((n) => edsCluster(n)));
    CLUSTERS.forEach((n, i) => h.endpoints.set(n, loadAssignment(n, [{ address: `10.0.0.${i + 1}`, port: 80 }])));
    h.pushAll('seed');
  });
  after(() => h.stop());

  test('Delta streams with the same resources share one sent map per type and one EDS name set, through pushes and endpoint changes', async () => {
    const clients = await Promise.all([0, 7, 13].map((k, i) => deltaProxy(h, `shared-${i}`, k)));
    try {
      const b = () => h.server.bookkeeping();
      // Three streams: CDS (wildcard) and EDS each share one map of what was sent, and the 40 EDS names are held once.
      await waitFor(() => b().sentMaps === 2, `2 sent maps (have ${b().sentMaps})`);
      assert.equal(b().sentEntries, 2 * CLUSTERS.length);
      assert.equal(b().nameSetNames, CLUSTERS.length);
      assert.equal(b().edsIndexNames, CLUSTERS.length);
      assert.equal(b().names, 3 * CLUSTERS.length, 'each stream still counts its own names against maxNamesPerStream');

      // A config push changing one cluster: each stream gets only that one, and they still share.
      h.clusters.set(edsCluster('c3', { connectTimeout: '3s' }));
      h.pushAll('change c3');
      for (const c of clients) {
        const r = await c.next();
        assert.deepEqual(names(r), ['c3']);
        c.ack(r);
      }
      assert.equal(b().sentMaps, 2);

      // An endpoint change (incremental EDS) reaches every watcher once; the streams still share.
      h.endpoints.set('c5', loadAssignment('c5', [{ address: '10.1.0.5', port: 80 }]));
      for (const c of clients) {
        const r = await c.next();
        assert.equal(r.typeUrl, TypeUrl.ClusterLoadAssignment);
        assert.deepEqual(names(r), ['c5']);
        c.ack(r);
      }
      assert.equal(b().sentMaps, 2);
      assert.equal(b().sentEntries, 2 * CLUSTERS.length);

      // One stream leaves the shared subscription: it gets its own name set and sent map; the others keep theirs.
      clients[2]!.request(TypeUrl.ClusterLoadAssignment, { unsubscribe: ['c0'] });
      await waitFor(() => b().nameSets === 3, `3 name sets (have ${b().nameSets})`);
      assert.equal(b().sentMaps, 3);
      h.endpoints.set('c0', loadAssignment('c0', [{ address: '10.1.0.1', port: 80 }]));
      for (const c of clients.slice(0, 2)) {
        const r = await c.next();
        assert.deepEqual(names(r), ['c0']);
        c.ack(r);
      }
      h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.1.0.2', port: 80 }]));
      for (const c of clients) {
        const r = await c.next();
        assert.deepEqual(names(r), ['c1'], 'the unsubscribed stream got nothing for c0');
        c.ack(r);
      }
    } finally {
      for (const c of clients) c.close();
    }
    await waitFor(() => h.server.bookkeeping().streams === 0, 'the server to drop the closed streams');
    const b = h.server.bookkeeping();
    assert.deepEqual({ nameSets: b.nameSets, edsIndexNames: b.edsIndexNames, sentMaps: b.sentMaps }, { nameSets: 0, edsIndexNames: 0, sentMaps: 0 });
  });

  test('an incremental EDS push looks up only the changed names in what each stream holds', async () => {
    const clients = await Promise.all([0, 5].map((k, i) => deltaProxy(h, `walk-${i}`, k)));
    // What a stream holds is walked whole only where a response can remove more than one name.
    const walks = countWalks();
    try {
      h.endpoints.set('c6', loadAssignment('c6', [{ address: '10.3.0.6', port: 80 }]));
      const nonces = new Set<string>();
      for (const c of clients) {
        const r = await c.next();
        assert.deepEqual(names(r), ['c6']);
        assert.deepEqual(r.removedResources, []);
        nonces.add(r.nonce);
        c.ack(r);
      }
      assert.equal(walks.count, 0, 'an incremental push walked every name a stream holds');
      assert.equal(nonces.size, 1, 'streams sent the same changed endpoints share one frame (one nonce)');
      // A push naming two clusters of which one changed (a service's subset clusters, rebuilt the same): the streams still share.
      const shared = h.server.bookkeeping().sentMaps;
      h.endpoints.fill('c4', loadAssignment('c4', [{ address: '10.3.0.4', port: 80 }]));
      h.server.push({ full: false, version: 'named-unchanged', reason: ['test'], edsUpdates: new Set(['c4', 'c6']) });
      nonces.clear();
      for (const c of clients) {
        const r = await c.next();
        assert.deepEqual(names(r), ['c4']);
        nonces.add(r.nonce);
        c.ack(r);
      }
      assert.equal(nonces.size, 1, 'streams sent the same one of the named clusters share one frame too');
      assert.equal(h.server.bookkeeping().sentMaps, shared, 'each stream copied what it holds');
      // Two clusters gone in one push: both removed, for every stream.
      h.endpoints.delete('c8');
      h.endpoints.delete('c9');
      for (const c of clients) {
        const r = await c.next();
        assert.deepEqual(r.resources, []);
        assert.deepEqual([...r.removedResources].sort(), ['c8', 'c9']);
        c.ack(r);
      }
    } finally {
      walks.restore();
      for (const c of clients) c.close();
      h.endpoints.set('c8', loadAssignment('c8', [{ address: '10.0.0.9', port: 80 }]));
      h.endpoints.set('c9', loadAssignment('c9', [{ address: '10.0.0.10', port: 80 }]));
    }
    await waitFor(() => h.server.bookkeeping().streams === 0, 'the server to drop the closed streams');
  });

  test('a Delta EDS subscription moved by one name (a renamed subset) is worked out once and shared; no stream walks what it holds', async () => {
    const clients = await Promise.all([0, 3, 7].map((k, i) => deltaProxy(h, `move-${i}`, k)));
    h.endpoints.set('moved', loadAssignment('moved', [{ address: '10.4.0.1', port: 80 }]));
    const walks = countWalks();
    try {
      const before = h.server.bookkeeping();
      for (const c of clients) {
        c.request(TypeUrl.ClusterLoadAssignment, { subscribe: ['moved'], unsubscribe: ['c3'] });
        const r = await c.next();
        assert.equal(r.typeUrl, TypeUrl.ClusterLoadAssignment);
        assert.deepEqual(names(r), ['moved']);
        assert.deepEqual(r.removedResources, []);
        c.ack(r);
      }
      assert.equal(walks.count, 0, 'a subscription change walked every name a stream holds');
      const after = h.server.bookkeeping();
      assert.deepEqual({ nameSets: after.nameSets, sentMaps: after.sentMaps }, { nameSets: before.nameSets, sentMaps: before.sentMaps }, 'streams that moved alike hold one name set and one sent map');
      // The move took: a change of the unsubscribed cluster reaches no one, one of the new cluster reaches all.
      h.endpoints.set('c3', loadAssignment('c3', [{ address: '10.4.0.3', port: 80 }]));
      h.endpoints.set('moved', loadAssignment('moved', [{ address: '10.4.0.2', port: 80 }]));
      for (const c of clients) {
        const r = await c.next();
        assert.deepEqual(names(r), ['moved']);
        c.ack(r);
      }
    } finally {
      walks.restore();
      for (const c of clients) c.close();
      h.endpoints.delete('moved');
      h.endpoints.set('c3', loadAssignment('c3', [{ address: '10.0.0.4', port: 80 }]));
    }
    await waitFor(() => h.server.bookkeeping().streams === 0, 'the server to drop the closed streams');
  });

  test('a full push works out what streams that had the same and watch the same are sent once, not per stream', async () => {
    const clients = await Promise.all([0, 2, 4].map((k, i) => deltaProxy(h, `full-${i}`, k)));
    const walks = countWalks();
    try {
      h.endpoints.fill('c7', loadAssignment('c7', [{ address: '10.5.0.7', port: 80 }]));
      h.pushAll('full push after an endpoint refill');
      for (const c of clients) {
        let r = await c.next();
        if (r.typeUrl === TypeUrl.Cluster) r = await c.next(); // CDS unchanged: nothing; EDS next
        assert.equal(r.typeUrl, TypeUrl.ClusterLoadAssignment);
        assert.deepEqual(names(r), ['c7']);
        c.ack(r);
      }
      // CDS and EDS: the first stream walks what it holds of each type; the others with the same take its result.
      assert.equal(walks.count, 2, 'walked per stream, not per type');
    } finally {
      walks.restore();
      for (const c of clients) c.close();
      h.endpoints.set('c7', loadAssignment('c7', [{ address: '10.0.0.8', port: 80 }]));
    }
    await waitFor(() => h.server.bookkeeping().streams === 0, 'the server to drop the closed streams');
  });

  test('a Delta reconnect declaring versions shares the map once it has been sent what differs', async () => {
    const first = await deltaProxy(h, 'declared-0', 0);
    const c = new DeltaClient(h.address, { node: { id: 'declared-1' } });
    try {
      const versions = Object.fromEntries(CLUSTERS.map((n) => [n, h.clusters.resources.get(n)!.version]));
      versions['c9'] = 'stale';
      c.request(TypeUrl.Cluster, { initialResourceVersions: { ...versions, gone: 'x' } });
      const r = await c.next();
      assert.deepEqual(names(r), ['c9']);
      assert.deepEqual(r.removedResources, ['gone']);
      c.ack(r);
      // CDS shared by both streams; EDS only the first stream has.
      await waitFor(() => h.server.bookkeeping().sentMaps === 2, `2 sent maps (have ${h.server.bookkeeping().sentMaps})`);
    } finally {
      c.close();
      first.close();
    }
    await waitFor(() => h.server.bookkeeping().streams === 0, 'the server to drop the closed streams');
  });

  test('a full push sends streams that had the same and watch the same one shared Delta frame (one nonce)', async () => {
    h.routes.replace([routeTo('r1', 'c1'), routeTo('r2', 'c2')]);
    h.pushAll('routes');
    const clients = [0, 1, 2].map((i) => new DeltaClient(h.address, { node: { id: `rds-${i}` } }));
    try {
      for (const c of clients) {
        c.request(TypeUrl.RouteConfiguration, { subscribe: ['r1', 'r2'] });
        const r = await c.next();
        assert.deepEqual(names(r), ['r1', 'r2']);
        c.ack(r);
      }
      // Each client's response to a change of r1: only r1, nothing removed, ACKed; their nonces.
      const nonces = async () => {
        const out: string[] = [];
        for (const c of clients) {
          const r = await c.next();
          assert.deepEqual(names(r), ['r1']);
          assert.deepEqual(r.removedResources, []);
          c.ack(r);
          out.push(r.nonce);
        }
        return out;
      };
      h.routes.set(routeTo('r1', 'c3'));
      h.pushAll('r1 changed');
      const got = await nonces();
      // One frame for the three, the first stream's included (kept weakly until the second asked for it).
      assert.equal(new Set(got).size, 1, `nonces ${got.join(', ')}`);
      // A stream that watches other names is not sent that frame.
      clients[2]!.request(TypeUrl.RouteConfiguration, { unsubscribe: ['r2'] });
      const rdsNames = (id: string) => h.server.connections().find((c) => c.proxyId === id)?.types.find((t) => t.typeUrl === TypeUrl.RouteConfiguration)?.names.join(',');
      await waitFor(() => rdsNames('rds-2') === 'r1', 'the unsubscribe applied');
      h.routes.set(routeTo('r1', 'c4'));
      h.pushAll('r1 changed again');
      const again = await nonces();
      assert.equal(new Set(again).size, 2, 'the two streams that had the same, and one with other names: two frames');
      assert.equal(again[0], again[1]);
    } finally {
      for (const c of clients) c.close();
    }
  });

  test('SotW and Delta streams watching the same EDS names are woken by one index entry per name', async () => {
    const d = await deltaProxy(h, 'mixed-d', 3);
    const s = new SotwClient(h.address, { node: { id: 'mixed-s' } });
    try {
      s.request(TypeUrl.ClusterLoadAssignment, { resourceNames: shuffled(CLUSTERS, 11) });
      s.ack(await s.next());
      assert.equal(h.server.bookkeeping().nameSets, 2, 'the wildcard CDS set and the one EDS set');
      h.endpoints.set('c7', loadAssignment('c7', [{ address: '10.2.0.7', port: 80 }]));
      const [rd, rs] = await Promise.all([d.next(), s.next()]);
      assert.deepEqual(names(rd), ['c7']);
      assert.equal(rs.resources.length, 1);
    } finally {
      d.close();
      s.close();
    }
  });
});

test('FrameCache.deltaWhole: the first stream\'s frame is shared by the next ones with the same output until the push queue drains, never twice to one stream', () => {
  const frames = new FrameCache('t', undefined);
  const out = new Map(CLUSTERS.slice(0, 3).map((n) => [n, edsCluster(n)]));
  const list = [...out.values()];
  // The first stream's frame is held weakly (a proxy's own output may never have a second stream), and shared while it lives.
  const first = frames.deltaWhole(out, TypeUrl.Cluster, 'v1', list, 0)!;
  const second = frames.deltaWhole(out, TypeUrl.Cluster, 'v1', list, 0)!;
  assert.equal(second.nonce, first.nonce, 'a second stream gets the first one\'s bytes');
  assert.equal(second.frame, first.frame);
  assert.equal(frames.deltaWhole(out, TypeUrl.Cluster, 'v1', list, 0), second, 'a third stream shares it');
  const again = frames.deltaWhole(out, TypeUrl.Cluster, 'v1', list, second.seq)!;
  assert.notEqual(again.nonce, second.nonce, 'a stream that had the frame gets a new one (nonces stay unique per stream)');
  assert.notEqual(frames.deltaWhole(out, TypeUrl.Cluster, 'v2', list, 0), again, 'per version');
  frames.release();
  assert.notEqual(frames.deltaWhole(out, TypeUrl.Cluster, 'v1', list, 0)!.nonce, second.nonce, 'nothing kept once the queue drained');
});
