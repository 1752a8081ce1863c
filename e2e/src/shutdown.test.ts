/**
 * SIGTERM on the real daemon (docs/xds.md, "Shutdown"): no new connection or
 * stream is accepted, CSRs the server had already accepted complete with
 * certificates, every ADS stream ends with the documented status (OK), and the
 * process exits 0 within 10 s.
 *
 * A CSR is held "in flight" deterministically: its HTTP/2 stream and all but
 * the last byte of its request are sent before the signal (an HTTP/2 PING
 * round trip proves the server has read them), and the last byte after the
 * daemon says it is draining.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createCsr, generateKey } from '@sextant/ca';
import { TypeUrl } from '@sextant/envoy';
import { DeltaClient, SotwClient } from '@sextant/testing/xds-client';
import { createTestIssuer } from './fixtures/secure.js';
import { sextantBin, startSextant } from './sextant.js';

const bookinfo = join(sextantBin, '..', '..', '..', '..', 'examples', 'bookinfo');
const CSR_PATH = '/istio.v1.auth.IstioCertificateService/CreateCertificate';

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** IstioCertificateRequest { csr = 1; validity_duration = 2 } as one gRPC message. */
function csrFrame(csrPem: string, ttlSeconds: number): Buffer {
  const csr = Buffer.from(csrPem);
  const body = Buffer.concat([Buffer.from([0x0a]), varint(csr.length), csr, Buffer.from([0x10]), varint(ttlSeconds)]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** cert_chain (field 1, repeated string) of an IstioCertificateResponse message. */
function certChain(message: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  const readVarint = () => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = message[i++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
  };
  while (i < message.length) {
    const key = readVarint();
    assert.equal(key & 7, 2, 'only length-delimited fields expected');
    const len = readVarint();
    if (key >> 3 === 1) out.push(message.subarray(i, i + len).toString());
    i += len;
  }
  return out;
}

interface HeldCsr {
  finish(): void;
  result: Promise<{ status: string | undefined; message: string | undefined; chain: string[] }>;
}

/** Opens a CSR stream and sends all but the last byte of the request. */
function holdCsr(session: http2.ClientHttp2Session, token: string): HeldCsr {
  const frame = csrFrame(createCsr(generateKey('ecdsa-p256').privateKey), 3600);
  const stream = session.request({ ':method': 'POST', ':path': CSR_PATH, 'content-type': 'application/grpc', te: 'trailers', authorization: `Bearer ${token}` });
  stream.write(frame.subarray(0, frame.length - 1));
  const chunks: Buffer[] = [];
  let status: string | undefined;
  let message: string | undefined;
  const take = (h: http2.IncomingHttpHeaders) => {
    if (h['grpc-status'] !== undefined) {
      status = String(h['grpc-status']);
      message = h['grpc-message'] === undefined ? undefined : decodeURIComponent(String(h['grpc-message']));
    }
  };
  stream.on('response', take);
  stream.on('trailers', take);
  stream.on('data', (c: Buffer) => chunks.push(c));
  const result = new Promise<{ status: string | undefined; message: string | undefined; chain: string[] }>((resolve, reject) => {
    stream.on('error', reject);
    stream.on('close', () => {
      const body = Buffer.concat(chunks);
      resolve({ status, message, chain: body.length > 5 ? certChain(body.subarray(5)) : [] });
    });
  });
  return { finish: () => stream.end(frame.subarray(frame.length - 1)), result };
}

test('SIGTERM: new work refused, in-flight CSRs complete with certificates, ADS streams end OK, exit 0 within 10 s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-shutdown-'));
  const caDir = join(dir, 'ca');
  const issuer = createTestIssuer(dir);
  const sextant = await startSextant({ configDir: bookinfo, args: ['--ca-dir', caDir, ...issuer.args] });
  const streams: { status(timeoutMs?: number): Promise<grpc.StatusObject>; close(): void }[] = [];
  let session: http2.ClientHttp2Session | undefined;
  try {
    const root = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const token = issuer.token('default', 'bookinfo-productpage');
    const nodeId = (i: number) => `sidecar~10.244.1.${10 + i}~productpage-v1-${i}.default~default.svc.cluster.local`;

    // ADS streams of both kinds, on both ports, each with its first response.
    const plain = [new SotwClient(sextant.xdsAddress, { node: { id: nodeId(1) } }), new SotwClient(sextant.xdsAddress, { node: { id: nodeId(2) } })];
    const delta = new DeltaClient(sextant.xdsAddress, { node: { id: nodeId(3) } });
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const secure = new SotwClient(sextant.secureAddress, {
      node: { id: nodeId(4) },
      credentials: grpc.credentials.createSsl(Buffer.from(root)),
      metadata: md,
      channelOptions: { 'grpc.ssl_target_name_override': 'istiod.istio-system.svc', 'grpc.default_authority': 'istiod.istio-system.svc' },
    });
    for (const c of [...plain, secure]) {
      c.request(TypeUrl.Cluster);
      c.ack(await c.next(20_000));
    }
    delta.request(TypeUrl.Cluster);
    await delta.next(20_000);
    streams.push(...plain, secure, delta);

    // 20 CSRs accepted by the server, their requests not yet complete.
    session = http2.connect(`https://${sextant.secureAddress}`, { ca: root, servername: 'istiod.istio-system.svc' });
    await once(session, 'connect');
    const held = Array.from({ length: 20 }, () => holdCsr(session!, token));
    await new Promise<void>((resolve, reject) => session!.ping((err) => (err ? reject(err) : resolve())));

    const t0 = Date.now();
    const exited = once(sextant.process, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    sextant.process.kill('SIGTERM');
    await sextant.waitForLog((l) => String(l.msg).startsWith('shutting down'), 5000);

    // Soon no new connection is accepted on either gRPC port.
    for (const address of [sextant.secureAddress, sextant.xdsAddress]) {
      const refused = async () => {
        const sock = netConnect(Number(address.slice(address.lastIndexOf(':') + 1)), address.slice(0, address.lastIndexOf(':')));
        const outcome = await new Promise<string | undefined>((resolve) => {
          sock.once('connect', () => resolve('accepted'));
          sock.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
        });
        sock.destroy();
        return outcome === 'ECONNREFUSED';
      };
      let ok = false;
      for (let i = 0; i < 40 && !(ok = await refused()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(ok, `${address} still accepts connections 2 s after SIGTERM`);
    }

    // The accepted CSRs complete with certificates.
    for (const h of held) h.finish();
    const results = await Promise.all(held.map((h) => h.result));
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, '0', `CSR ${i} ended with grpc-status ${r.status}: ${r.message}`);
      assert.ok(r.chain.length >= 2 && r.chain.every((c) => c.includes('BEGIN CERTIFICATE')), `CSR ${i} got a certificate chain`);
    }

    // Every ADS stream ends with the documented status: OK.
    for (const s of streams) {
      const st = await s.status(10_000);
      assert.equal(st.code, grpc.status.OK, `ADS stream ended with ${grpc.status[st.code]}: ${st.details}`);
    }

    const [code] = await exited;
    const took = Date.now() - t0;
    assert.equal(code, 0, 'exit code');
    assert.ok(took < 10_000, `exited ${took} ms after SIGTERM`);
  } finally {
    for (const s of streams) s.close();
    session?.destroy();
    await sextant.stop(2000);
    rmSync(dir, { recursive: true, force: true });
  }
});
