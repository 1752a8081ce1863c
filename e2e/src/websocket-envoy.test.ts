/**
 * WebSocket through a sidecar's inbound HTTP connection manager, against a
 * real Envoy: a Sidecar ingress listener bound to 127.0.0.1 (captureMode
 * NONE) in front of a loopback WebSocket server. istiod allows the
 * `websocket` upgrade on every HTTP connection manager, inbound included;
 * without it Envoy refuses the upgrade (403) and the application never sees
 * the handshake. Also checks the inbound server name istiod sets.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { freePort } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, istio, meshPlaintext, namespace, pod, type ConfigDir } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A minimal WebSocket server: completes the RFC 6455 handshake, then echoes raw bytes prefixed with `echo:`. */
async function wsServer(host: string): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((_req, res) => res.writeHead(426).end('upgrade required'));
  const upgraded = new Set<{ destroy(): void }>();
  server.on('upgrade', (req, socket) => {
    upgraded.add(socket);
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const close = async () => {
    // Upgraded sockets belong to no HTTP exchange any more: close them, or the server never closes.
    for (const s of upgraded) s.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return { server, port: (server.address() as { port: number }).port, close };
}

/** Sends a WebSocket handshake to host:port, then `message` once upgraded; resolves with everything read (bounded). */
function upgradeAndSend(host: string, port: number, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host);
    let got = '';
    let sent = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve(got);
    }, 10_000);
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    s.on('connect', () =>
      s.write(`GET /chat HTTP/1.1\r\nHost: web\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`),
    );
    s.on('data', (d) => {
      got += d.toString();
      if (!sent && got.includes('\r\n\r\n')) {
        sent = true;
        if (got.startsWith('HTTP/1.1 101')) s.write(message);
        else done();
      }
      if (got.includes(`echo:${message}`)) done();
    });
    s.on('end', done);
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

describe('WebSocket upgrade through a sidecar inbound listener', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let app: Awaited<ReturnType<typeof wsServer>> | undefined;
  let inPort = 0;

  before(async () => {
    app = await wsServer('127.0.0.1');
    inPort = await freePort();
    cfg = configDir({
      'kubernetes.yaml': [namespace('default'), namespace('istio-system'), pod('web-abc', 'default', '127.0.0.1', { app: 'web' })],
      'istio.yaml': [
        meshPlaintext(),
        istio('Sidecar', 'web', 'default', {
          workloadSelector: { labels: { app: 'web' } },
          ingress: [{ port: { number: inPort, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', defaultEndpoint: `127.0.0.1:${app!.port}` }],
          egress: [{ hosts: ['./*'] }],
        }),
      ],
    });
    sextant = await startSextant({ configDir: cfg.dir });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'sidecar~127.0.0.1~web-abc.default~default.svc.cluster.local',
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE', LABELS: { app: 'web' } },
    });
    await envoy.waitForListener(`127.0.0.1_${inPort}`, 60_000);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await app?.close();
    cfg?.remove();
  });

  test('the upgrade reaches the application (101) and frames flow both ways', async () => {
    const got = await upgradeAndSend('127.0.0.1', inPort, 'ping');
    assert.match(got, /^HTTP\/1\.1 101 /, got);
    assert.ok(got.includes('echo:ping'), got);
  });

  test('plain requests still pass, answered with istiod\'s inbound server name', async () => {
    const res = await fetch(`http://127.0.0.1:${inPort}/`);
    assert.equal(res.status, 426);
    assert.equal(res.headers.get('server'), 'istio-envoy');
  });
});
