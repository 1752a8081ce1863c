import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema, TypeUrl, create, toBinary } from '@sextant/envoy';
import { BufferPool, Deframer, ackFrame, decodeDeltaResponse, fields, frame, retryDelay } from './istiod-wire.js';

/** Splits BUF into chunks of SIZE bytes, as HTTP/2 DATA frames deliver it. */
function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length; p += size) out.push(buf.subarray(p, p + size));
  return out;
}

test('Deframer: messages split over many chunks, several per chunk, and prefixes split, come out whole and in order', () => {
  const msgs = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(70_000, 7), Buffer.from('tail')];
  const wire = Buffer.concat(msgs.map((m) => frame(m)));
  for (const size of [1, 3, 5, 16_384, wire.length]) {
    const got: Buffer[] = [];
    const d = new Deframer((m) => got.push(Buffer.from(m)));
    for (const c of chunks(wire, size)) d.push(c);
    assert.deepEqual(got, msgs, `chunk size ${size}`);
  }
});

test('Deframer: a 4 MB message in 16 KB chunks is copied about once, not once per chunk', () => {
  const msg = Buffer.alloc(4 * 1024 * 1024, 1);
  const d = new Deframer(() => undefined);
  for (const c of chunks(frame(msg), 16_384)) d.push(c);
  // Re-joining everything on every chunk copies ~256 × 2 MB on average; one copy is ~4 MB.
  assert.ok(d.copied <= 2 * msg.length, `copied ${d.copied} bytes for a ${msg.length}-byte message`);
});

test('BufferPool: a buffer given back is taken again for a message of its size class; the least recently used classes make room', () => {
  const MB = 1024 * 1024;
  const pool = new BufferPool(30 * MB);
  const route = pool.take(1_200_000);
  assert.equal(route.length, 19 * 65_536);
  pool.give(route);
  assert.equal(pool.take(1_199_000), route, 'the same class: reused');
  // A cold connect's CDS buffers fill the pool...
  const cds = [pool.take(10 * MB), pool.take(10 * MB), pool.take(10 * MB)];
  for (const b of cds) pool.give(b);
  assert.equal(pool.keptBytes, 30 * MB);
  // ...and route configurations still find room: the 10 MB class, used least recently, gives way.
  pool.give(route);
  assert.ok(pool.keptBytes <= 30 * MB, `kept ${pool.keptBytes}`);
  assert.equal(pool.take(1_200_000), route);
  assert.ok(cds.includes(pool.take(10 * MB)), 'what is left of the 10 MB class is still reused');
});

test('retryDelay: Envoy-like exponential backoff from 500 ms to 30 s, jittered in the upper half, restarting from 0', () => {
  let prev = 0;
  const seen: number[] = [];
  for (let i = 0; i < 10; i++) {
    const { nextMs, delayMs } = retryDelay(prev, () => 1);
    assert.equal(delayMs, nextMs);
    seen.push(nextMs);
    prev = nextMs;
  }
  assert.deepEqual(seen, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  assert.equal(retryDelay(8000, () => 0).delayMs, 8000);
  assert.equal(retryDelay(0, () => 0).delayMs, 250);
});

test('decodeDeltaResponse reads what the clients need as the generic decoder does, also from responses sent in parts', () => {
  const msg = create(DeltaDiscoveryResponseSchema, {
    systemVersionInfo: 'v7',
    typeUrl: TypeUrl.Cluster,
    nonce: 'n-1',
    resources: [
      { name: 'outbound|80||a.ns.svc.cluster.local', version: 'h1', resource: { typeUrl: TypeUrl.Cluster, value: new Uint8Array([8, 3, 18, 2, 1, 2]) } },
      { name: 'inbound|8080||', version: 'h2', resource: { typeUrl: TypeUrl.Cluster, value: new Uint8Array(300).fill(9) } },
    ],
    removedResources: ['gone-1', 'gone-2'],
  });
  const bytes = toBinary(DeltaDiscoveryResponseSchema, msg);
  const got = decodeDeltaResponse(bytes);
  assert.equal(got.typeUrl, TypeUrl.Cluster);
  assert.equal(got.nonce, 'n-1');
  assert.equal(got.systemVersionInfo, 'v7');
  assert.deepEqual(got.removedResources, ['gone-1', 'gone-2']);
  assert.deepEqual(
    got.resources.map((r) => [r.name, r.version, Buffer.from(r.value)]),
    msg.resources.map((r) => [r.name, r.version, Buffer.from(r.resource!.value)]),
  );
  // Fields in another order (a response whose shared resources come first): the same.
  const [first, ...rest] = [Buffer.from(toBinary(DeltaDiscoveryResponseSchema, create(DeltaDiscoveryResponseSchema, { resources: msg.resources }))), Buffer.from(toBinary(DeltaDiscoveryResponseSchema, create(DeltaDiscoveryResponseSchema, { ...msg, resources: [] })))];
  const reordered = decodeDeltaResponse(Buffer.concat([first!, ...rest]));
  assert.deepEqual(reordered.resources.map((r) => r.name), got.resources.map((r) => r.name));
  assert.equal(reordered.nonce, 'n-1');
});

test('ackFrame: the bytes protobuf-es writes for the same ACK, framed', () => {
  for (const [typeUrl, nonce] of [
    [TypeUrl.RouteConfiguration, 'a1b2'],
    [TypeUrl.ClusterLoadAssignment, 'x'.repeat(300)],
    ['', 'n'],
    [TypeUrl.Cluster, ''],
    [`${TypeUrl.Listener}/ünïcode`, 'é'],
  ] as const) {
    const want = frame(toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, { typeUrl, responseNonce: nonce })));
    assert.deepEqual(ackFrame(typeUrl, nonce), want, `${typeUrl} ${nonce.slice(0, 8)}`);
  }
});

test('fields walks top-level fields, and a scan inside its callback does not move it', () => {
  const msg = create(DeltaDiscoveryResponseSchema, {
    systemVersionInfo: 'v1',
    typeUrl: TypeUrl.Cluster,
    resources: [
      { name: 'a', version: 'h1', resource: { typeUrl: TypeUrl.Cluster, value: new Uint8Array([8, 3]) } },
      { name: 'b', version: 'h2', resource: { typeUrl: TypeUrl.Cluster, value: new Uint8Array([8, 1]) } },
    ],
    nonce: 'n',
  });
  const seen: Array<[number, string]> = [];
  fields(toBinary(DeltaDiscoveryResponseSchema, msg), (field, _wt, _v, bytes) => {
    if (field !== 2 || !bytes) return seen.push([field, Buffer.from(bytes ?? []).toString()]);
    let name = '';
    fields(bytes, (rf, _rwt, _rv, rb) => rf === 3 && rb && (name = Buffer.from(rb).toString()));
    return seen.push([field, name]);
  });
  assert.deepEqual(seen, [
    [1, 'v1'],
    [2, 'a'],
    [2, 'b'],
    [4, TypeUrl.Cluster],
    [5, 'n'],
  ]);
});
