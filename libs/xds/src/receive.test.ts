/**
 * What a refused or served large request leaves behind (receive.ts): the
 * bytes grpc-js held for it are this call's own copies, released when grpc-js
 * no longer needs them, so a young-generation GC frees them however long the
 * request took to arrive. A real grpc-js server and a raw HTTP/2 client.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { DiscoveryRequestSchema, TypeUrl, create, fromBinary, toBinary } from '@sextant/envoy';
import { guardRequests, type GuardStats, type WireVerdict } from './receive.js';
import { minorGc } from './reclaim.js';
import { waitFor } from '@sextant/testing/xds-harness';
import { grpcMessage, rawGrpcCall } from '@sextant/testing/xds-client';

const MB = 1024 * 1024;
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(7, '0')}.example.svc.cluster.local`);

interface Served {
  stats?: GuardStats;
  /** Request bytes the server's HTTP/2 stream delivered. */
  received: number;
  verdicts: WireVerdict[];
  requests: { typeUrl: string; names: number }[];
}

/** A grpc-js server with one bidi method whose calls are guarded as the ADS server guards them. */
async function startServer(limits: { maxNamesPerRequest: number; maxNodeBytes: number }): Promise<{ address: string; calls: Served[]; stop(): void }> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * MB });
  const calls: Served[] = [];
  const method = { path: '/t.T/S', requestStream: true, responseStream: true, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
  server.addService({ S: method } as grpc.ServiceDefinition, {
    S: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const s: Served = { verdicts: [], requests: [], received: 0 };
      (call as unknown as { call: { stream: http2.ServerHttp2Stream } }).call.stream.on('data', (d: Buffer) => (s.received += d.length)); 
      calls.push(s);
      s.stats = guardRequests(call, false, limits, (v) => {
        s.verdicts.push(v);
        call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `${v.key} ${v.value}` });
      });
      call.on('data', (b: Buffer) => {
        const r = fromBinary(DiscoveryRequestSchema, b);
        s.requests.push({ typeUrl: r.typeUrl, names: r.resourceNames.length });
        call.write(Buffer.from([1]));
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, calls, stop: () => server.forceShutdown() };
}

const rawStream = (address: string) => rawGrpcCall(address, '/t.T/S');

const gc = minorGc();
const arrayBuffers = () => process.memoryUsage().arrayBuffers;

describe('receive: large requests', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    srv = await startServer({ maxNamesPerRequest: 100_000, maxNodeBytes: 1024 });
  });
  after(() => srv.stop());

  test('a large request refused after its first MBs were held (and aged): a young-generation GC frees them', async () => {
    assert.ok(gc, 'V8 GC exposed at run time');
    // 120,000 names of 37 bytes on the wire (~4.4 MB); the first 3 MB (~85,000 names) are under the limit and held by grpc-js.
    const framed = grpcMessage(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: names('n', 120_000) })));
    const head = 3 * MB;
    const { session, req, status } = rawStream(srv.address);
    try {
      req.write(framed.subarray(0, head));
      const call = () => srv.calls.at(-1);
      await waitFor(() => (call()?.received ?? 0) >= head, 'the server to hold the first 3 MB');
      // Two young-generation GCs while the request is incomplete: what the server holds of it is now old.
      gc!();
      gc!();
      const held = arrayBuffers();
      req.write(framed.subarray(head));
      assert.equal((await status).code, grpc.status.RESOURCE_EXHAUSTED);
      assert.deepEqual(call()?.verdicts.map((v) => v.key), ['maxNamesPerRequest']);
      // Nothing but young-generation GCs: the 3 MB must go without V8's next full GC.
      await waitFor(() => (gc!(), held - arrayBuffers() > head - MB / 2), "the refused request's bytes to be freed by young GCs", 3000);
      assert.equal(call()?.stats?.releasedBytes, call()?.stats?.copiedBytes, 'every copy released');
    } finally {
      session.destroy();
    }
  });

  test('large requests within the limits, back to back in odd-sized writes, arrive intact; their copies are released', async () => {
    const reqs = [3000, 5000, 1].map((n, i) => grpcMessage(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: `${TypeUrl.ClusterLoadAssignment}#${i}`, resourceNames: names(`r${i}`, n) }))));
    const all = Buffer.concat(reqs);
    const { session, req } = rawStream(srv.address);
    try {
      for (let i = 0; i < all.length; i += 7919) req.write(all.subarray(i, i + 7919));
      const call = () => srv.calls.at(-1)!;
      await waitFor(() => call().requests.length === 3, 'three requests decoded');
      assert.deepEqual(
        call().requests,
        [3000, 5000, 1].map((n, i) => ({ typeUrl: `${TypeUrl.ClusterLoadAssignment}#${i}`, names: n })),
      );
      assert.ok(call().stats!.copiedBytes > 64 * 1024, 'the two large ones were copied');
      assert.equal(call().stats!.releasedBytes, call().stats!.copiedBytes, 'and released once assembled');
    } finally {
      session.destroy();
    }
  });
});
