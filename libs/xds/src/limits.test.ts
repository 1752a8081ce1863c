/**
 * Protocol table for the per-client limits (docs/xds.md, "Limits"): a stream
 * over a limit ends with RESOURCE_EXHAUSTED, the hit is counted and logged
 * with the peer, everything the server kept for that stream is released
 * (checked on the server's own bookkeeping), and other streams keep being
 * served. Limits are set small here so the tests stay fast.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { recordingLogger } from '@sextant/api';
import { TypeUrl } from '@sextant/envoy';
import http2 from 'node:http2';
import net from 'node:net';
import { DeltaDiscoveryRequestSchema, DiscoveryRequestSchema, NodeSchema, create, fromJson, toBinary } from '@sextant/envoy';
import { addressOfPeer, scanRequest, type LimitName, type XdsLimits } from './limits.js';
import { RequestWireScanner } from './receive.js';
import { DeltaClient, SotwClient, resourceNames } from '@sextant/testing/xds-client';
import type { AdsListener } from './index.js';
import { edsCluster, loadAssignment, startHarness, waitFor, type Harness } from '@sextant/testing/xds-harness';

const small: Partial<XdsLimits> = {
  maxNamesPerRequest: 100,
  maxNamesPerStream: 150,
  maxNodeBytes: 4096,
  maxUnknownTypes: 2,
};
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
/** A channel of its own (grpc-js shares one connection between clients with the same options otherwise). */
const ownConnection = (): grpc.ChannelOptions => ({ 'grpc.use_local_subchannel_pool': 1 });

let seq = 0;

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';

/** A message with its gRPC length prefix (uncompressed). */
function grpcFrame(msg: Uint8Array): Buffer {
  const out = Buffer.alloc(msg.length + 5);
  out.writeUInt32BE(msg.length, 1);
  out.set(msg, 5);
  return out;
}

/** A raw HTTP/2 gRPC stream (the grpc-js client only sends whole messages). */
function rawStream(address: string, method: string): { session: http2.ClientHttp2Session; req: http2.ClientHttp2Stream } {
  const session = http2.connect(`http://${address}`);
  session.on('error', () => {});
  const req = session.request({ ':method': 'POST', ':path': `${ADS}/${method}`, 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => {});
  return { session, req };
}

/**
 * Sends only `bytes` (a prefix of a request) and keeps the stream open: the
 * gRPC status the server ends it with, within 5 s.
 */
async function partialRequest(address: string, method: string, bytes: Buffer): Promise<{ status: number; message: string }> {
  const { session, req } = rawStream(address, method);
  try {
    req.write(bytes);
    req.resume();
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server did not end the stream within 5 s of a partial over-limit request')), 5000);
      const onHeaders = (hd: http2.IncomingHttpHeaders) => {
        if (hd['grpc-status'] === undefined) return;
        clearTimeout(timer);
        resolve({ status: Number(hd['grpc-status']), message: decodeURIComponent(String(hd['grpc-message'] ?? '')) });
      };
      req.on('response', onHeaders);
      req.on('trailers', onHeaders);
    });
  } finally {
    session.destroy();
  }
}

/** Sends a request in `pieces` writes, a tick apart; resolves with the bytes of the first response data. */
async function piecewiseRequest(address: string, method: string, framed: Buffer, pieces: number): Promise<Buffer> {
  const { session, req } = rawStream(address, method);
  try {
    const got = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no response within 5 s')), 5000);
      req.once('data', (d: Buffer) => {
        clearTimeout(timer);
        resolve(d);
      });
      req.on('trailers', (hd) => reject(new Error(`stream ended: ${hd['grpc-status']} ${hd['grpc-message']}`)));
      req.on('response', (hd) => {
        if (hd['grpc-status'] !== undefined) reject(new Error(`stream ended: ${hd['grpc-status']} ${hd['grpc-message']}`));
      });
    });
    const step = Math.ceil(framed.length / pieces);
    for (let i = 0; i < framed.length; i += step) {
      req.write(framed.subarray(i, i + step));
      await new Promise((r) => setImmediate(r));
    }
    return await got;
  } finally {
    session.destroy();
  }
}

/** A wildcard CDS stream that has its first response: the stream that must not notice an attack. */
async function bystander(h: Harness, id = 'bystander'): Promise<SotwClient> {
  const b = new SotwClient(h.address, { node: { id } });
  b.request(TypeUrl.Cluster);
  b.ack(await b.next());
  return b;
}

/** The bystander still gets pushes. */
async function stillServed(h: Harness, b: SotwClient): Promise<void> {
  const name = `after-${++seq}`;
  h.clusters.set(edsCluster(name));
  h.pushAll(`add ${name}`);
  const r = await b.next();
  assert.ok(resourceNames(r).includes(name), `bystander got the push after the attack: ${resourceNames(r)}`);
  b.ack(r);
}

async function exhausted(s: { status(): Promise<grpc.StatusObject> }, limit: string): Promise<void> {
  const st = await s.status();
  assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED, `status ${grpc.status[st.code]}: ${st.details}`);
  assert.match(st.details, new RegExp(limit));
}

/** What one wildcard CDS bystander leaves in the server's books: nothing per name, one stream, one connection. */
function onlyBystander(h: Harness): void {
  const b = h.server.bookkeeping();
  assert.deepEqual(
    { streams: b.streams, addresses: b.addresses, edsIndexNames: b.edsIndexNames, edsWildcard: b.edsWildcard, names: b.names, unknownTypes: b.unknownTypes, bufferedBytes: b.bufferedBytes },
    { streams: 1, addresses: 1, edsIndexNames: 0, edsWildcard: 0, names: 0, unknownTypes: 0, bufferedBytes: 0 },
  );
}

describe('xDS limits: names and node size', () => {
  let h: Harness;
  let b: SotwClient;
  const log = recordingLogger();
  before(async () => {
    h = await startHarness({ log, limits: small });
    h.clusters.replace([edsCluster('c1')]);
    h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 80 }]));
    h.pushAll('seed');
    b = await bystander(h);
  });
  after(async () => {
    b.close();
    await h.stop();
  });
  afterEach(() => stillServed(h, b));

  function hit(limit: LimitName, before: number): void {
    assert.equal(h.server.metrics().limitsExceeded[limit], before + 1, `${limit} counted`);
    const line = log.entries.filter((e) => e['limit'] === limit).at(-1);
    assert.ok(line, `a log line names the ${limit} limit`);
    assert.equal(line['level'], 'warn');
    assert.match(String(line['peer']), /127\.0\.0\.1:\d+$/, 'the log line names the peer');
  }
  const count = (l: LimitName) => h.server.metrics().limitsExceeded[l] ?? 0;

  test('SotW: more names in one request than maxNamesPerRequest', async () => {
    const before = count('names_per_request');
    const c = new SotwClient(h.address, { node: { id: 'sotw-names' } });
    c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: names('n', 101) });
    await exhausted(c, 'names_per_request');
    c.close();
    hit('names_per_request', before);
    onlyBystander(h);
  });

  test('Delta: subscribe + initial_resource_versions count together per request', async () => {
    const before = count('names_per_request');
    const c = new DeltaClient(h.address, { node: { id: 'delta-names' } });
    c.request(TypeUrl.ClusterLoadAssignment, { subscribe: names('s', 60), initialResourceVersions: Object.fromEntries(names('i', 50).map((n) => [n, 'v'])) });
    await exhausted(c, 'names_per_request');
    c.close();
    hit('names_per_request', before);
    onlyBystander(h);
  });

  test('SotW: names over all types of a stream beyond maxNamesPerStream; the EDS index is released', async () => {
    const before = count('names_per_stream');
    const c = new SotwClient(h.address, { node: { id: 'sotw-stream' } });
    c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: ['c1', ...names('e', 79)] });
    const r = await c.next();
    assert.deepEqual(resourceNames(r), ['c1']);
    assert.equal(h.server.bookkeeping().edsIndexNames, 80);
    c.request(TypeUrl.RouteConfiguration, { resourceNames: names('r', 80) });
    await exhausted(c, 'names_per_stream');
    c.close();
    hit('names_per_stream', before);
    onlyBystander(h);
  });

  test('Delta: subscriptions that add up beyond maxNamesPerStream', async () => {
    const before = count('names_per_stream');
    const c = new DeltaClient(h.address, { node: { id: 'delta-stream' } });
    c.request(TypeUrl.ClusterLoadAssignment, { subscribe: ['c1', ...names('a', 59)] });
    c.ack(await c.next(), { subscribe: names('b', 60) });
    c.request(TypeUrl.ClusterLoadAssignment, { subscribe: names('c', 60) });
    await exhausted(c, 'names_per_stream');
    c.close();
    hit('names_per_stream', before);
    onlyBystander(h);
  });

  test('SotW: names a stream moved away from leave nothing behind once it disconnects', async () => {
    const c = new SotwClient(h.address, { node: { id: 'sotw-moving' } });
    try {
      for (let round = 0; round < 5; round++) {
        c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: ['c1', ...names(`m${round}`, 99)] });
        const r = await c.next();
        assert.deepEqual(resourceNames(r), ['c1']);
      }
      assert.equal(h.server.bookkeeping().edsIndexNames, 100, 'only the current 100 names are indexed');
    } finally {
      c.close();
    }
    await waitFor(() => h.server.bookkeeping().streams === 1, 'the server to drop the closed stream');
    onlyBystander(h);
  });

  test('a node larger than maxNodeBytes', async () => {
    const before = count('node_bytes');
    const c = new SotwClient(h.address, { node: { id: 'fat-node', metadata: { ANNOTATIONS: { blob: 'x'.repeat(5000) } } } });
    c.request(TypeUrl.Cluster);
    await exhausted(c, 'node_bytes');
    c.close();
    hit('node_bytes', before);
    onlyBystander(h);
    // A node under the limit is served.
    const ok = new SotwClient(h.address, { node: { id: 'normal-node', metadata: { ANNOTATIONS: { blob: 'x'.repeat(3000) } } } });
    try {
      ok.request(TypeUrl.Cluster);
      assert.ok(resourceNames(await ok.next()).includes('c1'));
    } finally {
      ok.close();
    }
    await waitFor(() => h.server.bookkeeping().streams === 1, 'the server to drop the closed stream');
  });

  test('more distinct unknown type URLs than maxUnknownTypes; at most that many are kept', async () => {
    const before = count('unknown_types');
    const c = new SotwClient(h.address, { node: { id: 'unknown-types' } });
    // Long type URLs that differ only after the part kept for display count as distinct; a repeat does not count.
    const long = (i: number) => `type.googleapis.com/unknown.${'C'.repeat(10_000)}.${i}`;
    c.request(long(1));
    c.request(long(2));
    c.request(long(1));
    c.request(TypeUrl.Cluster);
    await c.next(); // served meanwhile
    const conn = h.server.connections().find((x) => x.proxyId === 'unknown-types')!;
    const shown = conn.types.filter((t) => t.unknownType).map((t) => t.typeUrl);
    assert.equal(shown.length, 2);
    assert.ok(shown.every((t) => t.length < 300 && t.includes('10030 chars')), `kept clipped: ${shown}`);
    assert.equal(h.server.bookkeeping().unknownTypes, 2);
    c.request('type.googleapis.com/unknown.A');
    await exhausted(c, 'unknown_types');
    c.close();
    hit('unknown_types', before);
    onlyBystander(h);
  });

  // The request is sent in part only: the server must refuse it from the bytes it has, before its last byte arrives.
  test('a node larger than maxNodeBytes is refused from its length on the wire, before the request is whole', async () => {
    const before = count('node_bytes');
    const req = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: TypeUrl.Cluster, node: fromJson(NodeSchema, { id: 'partial-node', metadata: { blob: 'x'.repeat(200_000) } }) }));
    const framed = grpcFrame(req);
    const r = await partialRequest(h.address, 'StreamAggregatedResources', framed.subarray(0, 64));
    assert.equal(r.status, grpc.status.RESOURCE_EXHAUSTED, `status ${r.status}: ${r.message}`);
    assert.match(r.message, /node_bytes limit exceeded/);
    hit('node_bytes', before);
    await waitFor(() => h.server.bookkeeping().streams === 1, 'the server to drop the refused stream');
    onlyBystander(h);
  });

  test('Delta: a request with more names than maxNamesPerRequest is refused at the name over the limit, before it is whole', async () => {
    const before = count('names_per_request');
    const req = toBinary(
      DeltaDiscoveryRequestSchema,
      create(DeltaDiscoveryRequestSchema, { typeUrl: TypeUrl.ClusterLoadAssignment, node: { id: 'partial-names' }, resourceNamesSubscribe: names('partial', 2000) }),
    );
    const framed = grpcFrame(req);
    // 101 names fit well inside the first 10% of this 2,000-name request; the other 90% is never sent.
    const r = await partialRequest(h.address, 'DeltaAggregatedResources', framed.subarray(0, Math.floor(framed.length / 10)));
    assert.equal(r.status, grpc.status.RESOURCE_EXHAUSTED, `status ${r.status}: ${r.message}`);
    assert.match(r.message, /names_per_request limit exceeded: .*> 100/);
    hit('names_per_request', before);
    await waitFor(() => h.server.bookkeeping().streams === 1, 'the server to drop the refused stream');
    onlyBystander(h);
  });

  test('a request under the limits, sent in many small pieces, is served', async () => {
    const req = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: TypeUrl.ClusterLoadAssignment, node: fromJson(NodeSchema, { id: 'pieces', metadata: { blob: 'y'.repeat(3000) } }), resourceNames: ['c1', ...names('p', 98)] }));
    const framed = grpcFrame(req);
    const got = await piecewiseRequest(h.address, 'StreamAggregatedResources', framed, 7);
    assert.ok(got.length > 5, 'a response message arrived');
    await waitFor(() => h.server.bookkeeping().streams === 1, 'the server to drop the closed stream');
  });
});

describe('xDS limits: streams per connection and per address', () => {
  let h: Harness;
  const log = recordingLogger();
  const open: SotwClient[] = [];
  before(async () => {
    h = await startHarness({ log, limits: { maxStreamsPerConnection: 3, maxStreamsPerAddress: 4 } });
    h.clusters.replace([edsCluster('c1')]);
    h.pushAll('seed');
  });
  after(async () => {
    for (const c of open) c.close();
    await h.stop();
  });

  async function served(c: SotwClient): Promise<void> {
    c.request(TypeUrl.Cluster);
    c.ack(await c.next());
  }

  test('a stream beyond maxStreamsPerConnection on one HTTP/2 connection is refused; closing one makes room', async () => {
    const shared: grpc.ChannelOptions = {}; // clients with the same options share grpc-js's global subchannel: one connection
    for (let i = 0; i < 3; i++) {
      const c = new SotwClient(h.address, { node: { id: `conn-${i}` }, channelOptions: shared });
      open.push(c);
      await served(c);
    }
    assert.equal(h.server.bookkeeping().connections, 1, 'the three streams share one connection');
    const fourth = new SotwClient(h.address, { node: { id: 'conn-3' }, channelOptions: shared });
    fourth.request(TypeUrl.Cluster);
    await exhausted(fourth, 'streams_per_connection');
    fourth.close();
    assert.equal(h.server.metrics().limitsExceeded.streams_per_connection, 1);
    assert.ok(log.entries.some((e) => e['limit'] === 'streams_per_connection' && /127\.0\.0\.1:\d+$/.test(String(e['peer']))));
    // The others are unaffected.
    h.clusters.set(edsCluster('c2'));
    h.pushAll('c2');
    for (const c of open) assert.ok(resourceNames(await c.next()).includes('c2'));
    open.shift()!.close();
    await waitFor(() => h.server.bookkeeping().streams === 2, 'the closed stream to be released');
    const again = new SotwClient(h.address, { node: { id: 'conn-again' }, channelOptions: shared });
    open.push(again);
    await served(again);
  });

  test('a stream beyond maxStreamsPerAddress from one client address is refused, whatever the connection', async () => {
    // Three streams on the shared connection already; one more on its own connection reaches 4.
    const c4 = new SotwClient(h.address, { node: { id: 'addr-4' }, channelOptions: ownConnection() });
    open.push(c4);
    await served(c4);
    assert.equal(h.server.bookkeeping().connections, 2);
    const c5 = new SotwClient(h.address, { node: { id: 'addr-5' }, channelOptions: ownConnection() });
    c5.request(TypeUrl.Cluster);
    await exhausted(c5, 'streams_per_address');
    c5.close();
    assert.equal(h.server.metrics().limitsExceeded.streams_per_address, 1);
    for (const c of open.splice(0)) c.close();
    await waitFor(() => h.server.bookkeeping().streams === 0, 'every stream to be released');
    assert.deepEqual({ ...h.server.bookkeeping() }, { streams: 0, addresses: 0, openingAddresses: 0, cooldownAddresses: 0, connections: 0, edsIndexNames: 0, edsWildcard: 0, names: 0, unknownTypes: 0, pendingBytes: 0, bufferedBytes: 0, nameSets: 0, nameSetNames: 0, sentMaps: 0, sentEntries: 0 });
  });
});

describe('xDS limits: pending bytes of a client that stops reading', () => {
  let h: Harness;
  const log = recordingLogger();
  before(async () => {
    h = await startHarness({ log, limits: { maxPendingBytes: 512 * 1024 } });
    h.clusters.replace([edsCluster('c1')]);
    h.pushAll('seed');
  });
  after(() => h.stop());

  test('unflushed responses beyond maxPendingBytes reset the stream; its buffers and state are dropped', async () => {
    const b = await bystander(h);
    const c = new SotwClient(h.address, { node: { id: 'stalled' }, channelOptions: ownConnection() });
    try {
      c.request(TypeUrl.Cluster);
      await c.next();
      c.call.pause(); // stops reading: HTTP/2 flow control stops the server's writes from completing
      // ~150 KB of clusters per push, different each time; the bystander keeps reading. grpc-js buffers
      // 16 messages of a paused call before it stops reading, so the stall shows after ~17 pushes.
      for (let i = 0; i < 60 && (h.server.metrics().limitsExceeded.pending_bytes ?? 0) === 0; i++) {
        h.clusters.replace(Array.from({ length: 50 }, (_, k) => edsCluster(`big-${k}`, { metadata: { filterMetadata: { pad: { v: `${i}`.padEnd(3000, 'x') } } } })));
        h.pushAll(`big ${i}`);
        b.ack(await b.next());
      }
      assert.equal(h.server.metrics().limitsExceeded.pending_bytes, 1, 'the stalled stream went over the pending-bytes limit');
      assert.ok(log.entries.some((e) => e['limit'] === 'pending_bytes' && e['proxy'] === 'stalled'));
      onlyBystander(h);
      assert.equal(h.server.bookkeeping().pendingBytes, 0, 'the bystander reads, so nothing stays pending');
      c.call.resume();
      await exhausted(c, 'RESOURCE_EXHAUSTED|exhausted');
      await stillServed(h, b);
    } finally {
      c.close();
      b.close();
    }
  });
});

describe('xDS limits: an address that keeps going over limits', () => {
  let h: Harness;
  const log = recordingLogger();
  before(async () => {
    h = await startHarness({ log, limits: { maxNamesPerRequest: 10 }, limitCooldownMs: 300 });
    h.clusters.replace([edsCluster('c1')]);
    h.pushAll('seed');
  });
  after(() => h.stop());

  test('three hits within 10 s: new streams from that address are refused for the cooldown, open ones keep being served', async () => {
    const b = await bystander(h);
    try {
      let started = 0;
      for (let i = 0; i < 3; i++) {
        const c = new SotwClient(h.address, { node: { id: `greedy-${i}` } });
        c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: names('g', 11) });
        await exhausted(c, 'names_per_request');
        c.close();
        started = Date.now();
      }
      assert.ok(log.entries.some((e) => e['cooldownMs'] === 300 && e['address'] === '127.0.0.1' && /127\.0\.0\.1:\d+$/.test(String(e['peer']))), 'the cooldown is logged with the address');
      // A well-formed stream from the same address is refused before any request is read.
      const refused = new SotwClient(h.address, { node: { id: 'neighbour' } });
      refused.request(TypeUrl.Cluster);
      await exhausted(refused, 'repeatedly');
      refused.close();
      assert.equal(h.server.metrics().limitsExceeded.address_cooldown, 1);
      await stillServed(h, b);
      // Once the cooldown is over, the address is served again.
      let served = false;
      for (let i = 0; i < 40 && !served; i++) {
        const again = new SotwClient(h.address, { node: { id: `after-${i}` } });
        again.request(TypeUrl.Cluster);
        served = await again.next(2000).then(
          () => true,
          () => false,
        );
        again.close();
        if (!served) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(served, 'served again after the cooldown');
      assert.ok(Date.now() - started >= 250, 'not before the cooldown ended');
    } finally {
      b.close();
    }
  });
});

describe('xDS limits: an address in cooldown is refused at TCP accept (DiscoveryServer.listen)', () => {
  let h: Harness;
  let ads: AdsListener;
  before(async () => {
    h = await startHarness({ limits: { maxNamesPerRequest: 10 }, limitCooldownMs: 5000 });
    h.clusters.replace([edsCluster('c1')]);
    h.pushAll('seed');
    ads = await h.server.listen(h.grpcServer, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
  });
  after(async () => {
    await h.stop();
    await ads.close();
  });

  /** What a raw TCP client gets from the port before the server closes the connection (or 3 s pass). */
  function rawConnect(port: number): Promise<{ bytes: number; closed: boolean }> {
    return new Promise((resolve) => {
      let bytes = 0;
      const s = net.connect(port, '127.0.0.1');
      const done = (closed: boolean) => {
        clearTimeout(timer);
        s.destroy();
        resolve({ bytes, closed });
      };
      const timer = setTimeout(() => done(false), 3000);
      s.on('data', (d: Buffer) => {
        bytes += d.length;
        done(false);
      });
      s.on('error', () => undefined);
      s.on('close', () => done(true));
    });
  }

  test('served through the listener; once in cooldown, a new connection is reset before HTTP/2 and nothing of it is read', async () => {
    const b = new SotwClient(`127.0.0.1:${ads.port}`, { node: { id: 'bystander' } });
    try {
      b.request(TypeUrl.Cluster);
      b.ack(await b.next());
      // Before the cooldown, a raw TCP client gets the server's HTTP/2 SETTINGS.
      assert.ok((await rawConnect(ads.port)).bytes > 0, 'HTTP/2 is set up for an address not in cooldown');
      for (let i = 0; i < 3; i++) {
        const c = new SotwClient(`127.0.0.1:${ads.port}`, { node: { id: `greedy-${i}` } });
        c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: names('g', 11) });
        await exhausted(c, 'names_per_request');
        c.close();
      }
      const before = h.server.metrics().limitsExceeded.address_cooldown ?? 0;
      assert.deepEqual(await rawConnect(ads.port), { bytes: 0, closed: true }, 'closed at accept, without a byte of HTTP/2');
      // A gRPC client from the address cannot open a stream either (a new connection each time: UNAVAILABLE).
      const refused = new SotwClient(`127.0.0.1:${ads.port}`, { node: { id: 'neighbour' }, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } });
      refused.request(TypeUrl.Cluster);
      const st = await refused.status();
      refused.close();
      assert.equal(st.code, grpc.status.UNAVAILABLE, `status ${grpc.status[st.code]}: ${st.details}`);
      assert.ok((h.server.metrics().limitsExceeded.address_cooldown ?? 0) >= before + 2, 'refused connections are counted as address_cooldown');
      // The open connection keeps being served.
      await stillServed(h, b);
    } finally {
      b.close();
    }
  });
});

describe('limit helpers', () => {
  test('scanRequest counts name fields and node bytes without decoding', async () => {
    const { DiscoveryRequestSchema, DeltaDiscoveryRequestSchema, create, toBinary } = await import('@sextant/envoy');
    const sotw = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: 't', resourceNames: ['a', 'b', 'c'], node: { id: 'x'.repeat(100) } }));
    assert.deepEqual(scanRequest(sotw, false), { names: 3, nodeBytes: 102 });
    const delta = toBinary(
      DeltaDiscoveryRequestSchema,
      create(DeltaDiscoveryRequestSchema, { typeUrl: 't', resourceNamesSubscribe: ['a'], resourceNamesUnsubscribe: ['b', 'c'], initialResourceVersions: { d: '1', e: '2' } }),
    );
    assert.deepEqual(scanRequest(delta, true), { names: 5, nodeBytes: 0 });
    assert.equal(scanRequest(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]), false), undefined);
  });

  test('RequestWireScanner: same counts as scanRequest, one byte at a time, across messages', () => {
    const a = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: 't', resourceNames: names('a', 5), node: { id: 'x'.repeat(300) } }));
    const b = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: 't', resourceNames: names('b', 7) }));
    const stream = Buffer.concat([grpcFrame(a), grpcFrame(new Uint8Array(0)), grpcFrame(b)]);
    const feedAll = (maxNames: number, maxNode: number) => {
      const s = new RequestWireScanner(false, maxNames, maxNode);
      for (let i = 0; i < stream.length; i++) {
        const v = s.feed(stream.subarray(i, i + 1));
        if (v) return { ...v, at: i };
      }
      return undefined;
    };
    // Limits are per request: 5 + 7 names over two requests never exceed 7.
    assert.equal(feedAll(7, 303), undefined);
    assert.deepEqual({ ...feedAll(6, 1000), at: undefined }, { key: 'maxNamesPerRequest', value: 7, at: undefined });
    const node = feedAll(100, 302)!;
    assert.deepEqual([node.key, node.value], ['maxNodeBytes', 303]);
    assert.ok(node.at < 10, `the node's length is enough to refuse it (at byte ${node.at})`);
    // A compressed message is left to the deserializer.
    const compressed = grpcFrame(a);
    compressed[0] = 1;
    assert.equal(new RequestWireScanner(false, 1, 1).feed(compressed), undefined);
  });

  test('addressOfPeer', () => {
    assert.equal(addressOfPeer('127.0.0.1:5555'), '127.0.0.1');
    assert.equal(addressOfPeer('::1:5555'), '::1');
    assert.equal(addressOfPeer('[::1]:5555'), '::1');
    assert.equal(addressOfPeer('unknown'), 'unknown');
  });
});
