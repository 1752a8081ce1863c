import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { H2Connection, type H2Stream } from './h2-wire.js';
import { Deframer, frame } from './istiod-wire.js';

// A node:http2 server in the role of the control plane: it echoes each gRPC message's length back
// as a message of that many bytes, and on request ends the stream with trailers, RST_STREAM or GOAWAY.
let server: http2.Http2Server;
let port: number;
const received: number[] = [];

before(async () => {
  server = http2.createServer({ settings: { initialWindowSize: 65_535 } });
  server.on('stream', (stream, headers) => {
    assert.equal(headers[':method'], 'POST');
    assert.equal(headers['content-type'], 'application/grpc');
    assert.equal(headers.te, 'trailers');
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-echo-path': String(headers[':path']) }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '8', 'grpc-message': 'too%20many%20requests' }));
    const deframer = new Deframer((m) => {
      received.push(m.length);
      const cmd = m.length < 16 ? m.toString() : '';
      if (cmd === 'end') stream.end();
      else if (cmd === 'rst') stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      else if (cmd === 'goaway') stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, 0);
      else if (cmd.startsWith('many')) for (let i = 0; i < Number(cmd.slice(4)); i++) stream.write(frame(Buffer.alloc(100 + (i % 7), i % 256)));
      else stream.write(frame(Buffer.alloc(m.length, 7)));
    });
    stream.on('data', (c: Buffer) => deframer.push(c));
    stream.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

/** Opens a stream on a fresh connection with small receive windows, so that replenishing them is exercised. */
function open(conn = new H2Connection({ host: '127.0.0.1', port, streamWindow: 100_000, connectionWindow: 150_000 })) {
  const messages: Buffer[] = [];
  const headers: Array<Map<string, string>> = [];
  let closed: { rstCode: number; reason: string } | undefined;
  const deframer = new Deframer((m) => messages.push(Buffer.from(m)));
  const stream: H2Stream = conn.request('/test.Service/Method', `127.0.0.1:${port}`, {
    data: (c) => deframer.push(c),
    headers: (h) => headers.push(h),
    close: (rstCode, reason) => (closed = { rstCode, reason }),
  });
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(ok(), what);
  };
  return { conn, stream, messages, headers, closed: () => closed, until };
}

test('messages larger than both windows go each way; the response headers are decoded', async () => {
  const c = open();
  // 300 KB out: more than the server's 65,535-byte windows and 16 KiB frames, so sending waits for its WINDOW_UPDATEs.
  c.stream.write(frame(Buffer.alloc(300_000, 1)));
  // 3 MB back: 30 times this client's stream window and 20 times its connection window.
  c.stream.write(frame(Buffer.alloc(3_000_000, 2)));
  await c.until('two echoes', () => c.messages.length === 2);
  assert.deepEqual(received.slice(-2), [300_000, 3_000_000]);
  assert.deepEqual(c.messages.map((m) => m.length), [300_000, 3_000_000]);
  assert.ok(c.messages[1]!.every((b) => b === 7));
  assert.equal(c.headers[0]?.get(':status'), '200');
  assert.equal(c.headers[0]?.get('x-echo-path'), '/test.Service/Method');
  c.conn.destroy();
});

test('many small messages arrive whole and in order, across read boundaries', async () => {
  const c = open();
  c.stream.write(frame(Buffer.from('many5000')));
  await c.until('5000 messages', () => c.messages.length === 5000);
  c.messages.forEach((m, i) => assert.ok(m.length === 100 + (i % 7) && m.every((b) => b === i % 256), `message ${i}`));
  c.conn.destroy();
});

test('two connections read into the shared buffer without mixing their messages', async () => {
  const a = open();
  const b = open();
  a.stream.write(frame(Buffer.from('many3000')));
  b.stream.write(frame(Buffer.alloc(2_000_000, 0)));
  await a.until('both', () => a.messages.length === 3000 && b.messages.length === 1);
  a.messages.forEach((m, i) => assert.ok(m.every((x) => x === i % 256), `message ${i}`));
  assert.ok(b.messages[0]!.length === 2_000_000 && b.messages[0]!.every((x) => x === 7));
  a.conn.destroy();
  b.conn.destroy();
});

test('trailers end the stream with their grpc-status; a second stream opens on the same connection', async () => {
  const c = open();
  c.stream.write(frame(Buffer.from('end')));
  await c.until('closed', () => c.closed() !== undefined);
  assert.deepEqual(c.closed(), { rstCode: 0, reason: 'trailers' });
  const trailers = c.headers.at(-1)!;
  assert.equal(trailers.get('grpc-status'), '8');
  assert.equal(trailers.get('grpc-message'), 'too%20many%20requests');
  assert.ok(c.conn.usable);
  const d = open(c.conn);
  assert.equal(d.stream.id, 3);
  d.stream.write(frame(Buffer.alloc(10, 0)));
  await d.until('echo on stream 3', () => d.messages.length === 1);
  c.conn.destroy();
});

test('RST_STREAM closes the stream with its code', async () => {
  const c = open();
  c.stream.write(frame(Buffer.from('rst')));
  await c.until('closed', () => c.closed() !== undefined);
  assert.equal(c.closed()!.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  c.conn.destroy();
});

test('after GOAWAY the connection takes no new stream; the streams the server took may still finish', async () => {
  const c = open();
  let goaway: number | undefined;
  c.conn.onGoaway((code) => (goaway = code));
  c.stream.write(frame(Buffer.from('goaway')));
  await c.until('goaway', () => goaway !== undefined);
  assert.equal(goaway, http2.constants.NGHTTP2_NO_ERROR);
  assert.equal(c.conn.usable, false);
  assert.throws(() => c.conn.request('/x', 'y', { data() {}, close() {} }), /GOAWAY 0/);
  // Node names stream 1 as the last it took: stream 1 stays open and ends normally.
  assert.equal(c.closed(), undefined);
  c.stream.write(frame(Buffer.from('end')));
  await c.until('closed', () => c.closed() !== undefined);
  assert.equal(c.closed()!.reason, 'trailers');
  c.conn.destroy();
});

test('a refused connection closes its stream and reports the error', async () => {
  const probe = http2.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const unused = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const conn = new H2Connection({ host: '127.0.0.1', port: unused, streamWindow: 65_535, connectionWindow: 65_535 });
  let error: Error | undefined;
  conn.onError((e) => (error = e));
  const c = open(conn);
  await c.until('closed', () => c.closed() !== undefined);
  assert.match(String(error?.message), /ECONNREFUSED/);
  assert.equal(conn.usable, false);
});
