/**
 * The direct read path (receive.ts directReceiver) on the pinned grpc-js: a
 * real server and a raw HTTP/2 client, so message boundaries, chunking,
 * limits, statuses and half-close are grpc-js's own.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { directReceiver, guardRequests, type WireVerdict } from './receive.js';
import { waitFor } from '@sextant/testing/xds-harness';
import { grpcMessage, rawGrpcCall } from '@sextant/testing/xds-client';

interface Served {
  direct: boolean;
  /** What each path delivered, in order: `direct:<text>` or `data:<text>`, then `end`. */
  events: string[];
  verdicts: WireVerdict[];
}

async function startServer(opts: { maxReceive?: number; guard?: boolean } = {}): Promise<{ address: string; calls: Served[]; stop(): void }> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': opts.maxReceive ?? 1024 * 1024 });
  const calls: Served[] = [];
  const deserialize = (b: Buffer) => {
    if (b.toString() === 'poison') throw new Error('cannot parse');
    return b.toString();
  };
  const method = { path: '/t.T/S', requestStream: true, responseStream: true, requestSerialize: (b: Buffer) => b, requestDeserialize: deserialize, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
  server.addService({ S: method } as grpc.ServiceDefinition, {
    S: (call: grpc.ServerDuplexStream<string, Buffer>) => {
      const s: Served = { direct: false, events: [], verdicts: [] };
      calls.push(s);
      if (opts.guard) {
        // The ADS limits (a SotW request's names): 2 names at most.
        guardRequests(call, false, { maxNamesPerRequest: 2, maxNodeBytes: 1024 }, (v) => {
          s.verdicts.push(v);
          call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `${v.key} ${v.value}` });
        });
      }
      s.direct = directReceiver(call, (m) => {
        if (m === 'throw') throw new Error('handler bug');
        s.events.push(`direct:${m as string}`);
        call.write(Buffer.from(`ack ${m as string}`));
      });
      call.on('data', (m: string) => {
        s.events.push(`data:${m}`);
        call.write(Buffer.from(`ack ${m}`));
      });
      call.on('end', () => {
        s.events.push('end');
        call.end();
      });
      call.on('error', () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, calls, stop: () => server.forceShutdown() };
}

const rawStream = (address: string, headers: Record<string, string> = {}) => rawGrpcCall(address, '/t.T/S', headers);

describe('direct reads (receive.ts directReceiver)', () => {
  test('messages arrive in order however the bytes are cut, none as data events; half-close comes after them', async () => {
    const srv = await startServer();
    const s = rawStream(srv.address);
    try {
      // Three messages in one write, then one cut in three pieces across writes.
      s.req.write(Buffer.concat(['a', 'b', 'c'].map((m) => grpcMessage(Buffer.from(m)))));
      const d = grpcMessage(Buffer.from('dddd'));
      s.req.write(d.subarray(0, 3));
      await waitFor(() => srv.calls[0]?.events.length === 3, 'the three whole messages');
      s.req.write(d.subarray(3, 6));
      s.req.write(d.subarray(6));
      await waitFor(() => srv.calls[0]!.events.length === 4, 'the message cut in pieces');
      s.req.end();
      const st = await s.status;
      assert.equal(st.code, grpc.status.OK);
      const call = srv.calls[0]!;
      assert.equal(call.direct, true, 'installed on the pinned grpc-js');
      assert.deepEqual(call.events, ['direct:a', 'direct:b', 'direct:c', 'direct:dddd', 'end']);
      assert.deepEqual(s.responses(), ['ack a', 'ack b', 'ack c', 'ack dddd']);
    } finally {
      s.close();
      srv.stop();
    }
  });

  test('a compressed call keeps grpc-js\'s own path (data events)', async () => {
    const srv = await startServer();
    const s = rawStream(srv.address, { 'grpc-encoding': 'gzip' });
    try {
      s.req.write(grpcMessage(Buffer.from('plain'))); // flag 0: not compressed, allowed on a gzip call
      await waitFor(() => srv.calls[0]?.events.length === 1, 'the uncompressed message');
      s.req.end();
      await s.status;
      assert.equal(srv.calls[0]!.direct, false);
      assert.deepEqual(srv.calls[0]!.events, ['data:plain', 'end']);
    } finally {
      s.close();
      srv.stop();
    }
  });

  test('failures end the call with grpc-js\'s statuses: a message it cannot deserialize, one over the receive limit; a handler that throws ends its call only', async () => {
    const srv = await startServer({ maxReceive: 16 });
    const bad = rawStream(srv.address);
    const big = rawStream(srv.address);
    try {
      bad.req.write(Buffer.concat([grpcMessage(Buffer.from('ok')), grpcMessage(Buffer.from('poison')), grpcMessage(Buffer.from('never'))]));
      const st = await bad.status;
      assert.deepEqual(st, { code: grpc.status.INTERNAL, message: 'Error deserializing request' });
      assert.deepEqual(srv.calls.find((c) => c.events.includes('direct:ok'))?.events, ['direct:ok'], 'nothing after the message that failed');
      // A handler that throws ends its own call only.
      const thrower = rawStream(srv.address);
      thrower.req.write(grpcMessage(Buffer.from('throw')));
      assert.deepEqual(await thrower.status, { code: grpc.status.INTERNAL, message: 'request handler failed: handler bug' });
      thrower.close();
      big.req.write(grpcMessage(Buffer.alloc(64, 1)));
      const st2 = await big.status;
      assert.equal(st2.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(st2.message, /larger than max/);
      assert.equal(srv.calls.length, 3);
      assert.ok(srv.calls.every((c) => !c.events.some((e) => e.includes('\u0001'))), 'the message over the limit was never delivered');
    } finally {
      bad.close();
      big.close();
      srv.stop();
    }
  });

  test('the wire guard still refuses a request over the limits (it wraps the decoder the direct path reads)', async () => {
    const srv = await startServer({ guard: true });
    const s = rawStream(srv.address);
    try {
      // DiscoveryRequest field 3 (resource_names) three times: over the limit of 2.
      const name = (n: string) => Buffer.concat([Buffer.from([0x1a, n.length]), Buffer.from(n)]);
      s.req.write(grpcMessage(Buffer.concat([name('a'), name('b')])));
      await waitFor(() => srv.calls[0]?.events.length === 1, 'the request within the limits');
      s.req.write(grpcMessage(Buffer.concat([name('a'), name('b'), name('c')])));
      const st = await s.status;
      assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(srv.calls[0]!.verdicts[0]?.key, 'maxNamesPerRequest');
      assert.equal(srv.calls[0]!.events.length, 1, 'the refused request was never delivered');
      assert.equal(srv.calls[0]!.direct, true);
    } finally {
      s.close();
      srv.stop();
    }
  });

  test('directReceiver refuses what is not a grpc-js server call', () => {
    assert.equal(directReceiver({}, () => {}), false);
    assert.equal(directReceiver({ call: { handleDataFrame() {} } }, () => {}), false);
  });
});
