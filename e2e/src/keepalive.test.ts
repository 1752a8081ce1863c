/**
 * The xDS server's keepalive: it pings every connection every 30 s, and a
 * client busy reading its config answers only once it has read the bytes
 * ahead of the ping. grpc-js drops a connection whose answer takes over 20 s
 * by default; the daemon waits 60 s (docs/xds.md, "Keepalive"). Here the
 * client's answer is held back ~25 s by a TCP relay between client and
 * daemon, as a slow reader's would be, and its stream must stay open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TypeUrl } from '@sextant/envoy';
import { DeltaClient } from '@sextant/testing/xds-client';
import { startSextant } from './sextant.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP relay to `target` whose client → server direction can be held (bytes queued) and released. */
async function relay(target: string) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  let held = false;
  const queued: Buffer[] = [];
  const upstreams: net.Socket[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((client) => {
    const up = net.connect({ host, port });
    upstreams.push(up);
    sockets.push(client, up);
    client.on('data', (b: Buffer) => (held ? queued.push(b) : up.write(b)));
    up.on('data', (b: Buffer) => client.write(b));
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    upstreams,
    hold: () => (held = true),
    release: () => {
      held = false;
      for (const up of upstreams) for (const b of queued.splice(0)) up.write(b);
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test('a client whose keepalive answer comes 25 s late keeps its stream (grpc-js alone drops it after 20 s)', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-keepalive-'));
  writeFileSync(
    join(dir, 'services.yaml'),
    `apiVersion: v1
kind: Service
metadata: { name: r, namespace: default }
spec: { clusterIP: 10.96.0.1, selector: { app: r }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
`,
  );
  const sextant = await startSextant({ configDir: dir });
  const r = await relay(sextant.xdsAddress);
  const client = new DeltaClient(r.address, { node: { id: 'sidecar~10.0.9.1~a.default~default.svc.cluster.local' }, timeoutMs: 10_000 });
  try {
    const connectedAt = Date.now();
    client.request(TypeUrl.Cluster, { subscribe: ['*'] });
    const cds = await client.next();
    assert.ok(cds.resources.some((x) => x.name === 'outbound|80||r.default.svc.cluster.local'));
    client.ack(cds);
    assert.equal(r.upstreams.length, 1);
    // The daemon pings 30 s after the connection opened: hold from 25 s to 56 s, so the answer comes ~26 s late.
    await sleep(Math.max(0, connectedAt + 25_000 - Date.now()));
    r.hold();
    await sleep(Math.max(0, connectedAt + 56_000 - Date.now()));
    r.release();
    await sleep(3_000);
    await assert.rejects(client.status(1_000), /not ended/, 'the stream is still open');
    assert.equal(r.upstreams.length, 1, 'one connection to the daemon, never reopened');
    assert.equal(r.upstreams[0]!.destroyed, false, 'and still open');
    // And it still works: a request is answered on it.
    client.request(TypeUrl.Listener, { subscribe: ['*'] });
    const lds = await client.next();
    assert.equal(lds.typeUrl, TypeUrl.Listener);
  } finally {
    client.close();
    r.close();
    await sextant.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
