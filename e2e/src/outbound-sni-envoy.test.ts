/**
 * TLS ServiceEntries without an address sharing one port, through a real
 * iptables-mode Envoy sidecar in a network namespace this test creates (veth
 * pair, nat OUTPUT REDIRECT to 15001, Envoy's own connections exempted by
 * group 1337, as in outbound-listeners-envoy.test.ts). As istiod, the
 * listener `0.0.0.0_<port>` has one chain per ServiceEntry matched by SNI
 * (TLS inspector) and the passthrough chain as default: a client's TLS
 * ClientHello reaches the endpoint of the ServiceEntry its SNI names, and an
 * SNI no ServiceEntry names follows the outbound traffic policy (ALLOW_ANY:
 * the address dialled). The backends are plain TCP servers that record what
 * arrives (the ClientHello carries the SNI in clear); no handshake completes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { freePort, until } from './backends.js';
import { startNetnsSidecarEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, istio, meshPlaintext, namespace, pod, type ConfigDir } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { canNetns, createPodNetns, type PodNetns } from './fixtures/netns.js';
import { skipUnless } from './tools.js';

/** A TCP server that keeps everything each connection sent (as latin1 text). */
async function recorder(host: string, port: number): Promise<{ server: Server; received: string[] }> {
  const received: string[] = [];
  const server = createServer((s) => {
    const i = received.push('') - 1;
    s.on('data', (d) => (received[i] += d.toString('latin1')));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, received };
}

describe('TLS ServiceEntries without an address on one port, told apart by SNI in an iptables-mode Envoy sidecar', { timeout: 150_000, skip: skipUnless('envoy') || (!canNetns && 'needs root, ip netns and apt-get') }, () => {
  const net = `10.249.${(process.pid % 200) + 1}`;
  const A = `${net}.10`; // endpoint of a.example.test
  const B = `${net}.11`; // endpoint of b.example.test
  const DIAL = `${net}.20`; // what the application dials (as DNS would give it): no listener has this address
  let port = 0;
  let ns: PodNetns | undefined;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  const rec: Record<string, { server: Server; received: string[] }> = {};

  /** From inside the namespace: a TLS ClientHello with `servername` to DIAL:port (the handshake fails: the backends are not TLS servers). */
  async function hello(servername: string): Promise<void> {
    const script = `
      const s = require('node:tls').connect({ host: ${JSON.stringify(DIAL)}, port: ${port}, servername: ${JSON.stringify(servername)}, rejectUnauthorized: false });
      const end = () => { s.destroy(); process.exit(0); };
      s.on('error', end); s.on('close', end);
      setTimeout(end, 1500);`;
    await promisify(execFile)('ip', ['netns', 'exec', ns!.name, process.execPath, '-e', script], { timeout: 30_000 });
  }

  /** Which backends received a ClientHello naming `servername` (waits until one did, bounded). */
  async function reached(servername: string): Promise<string[]> {
    const who = () => Object.entries(rec).filter(([, r]) => r.received.some((x) => x.includes(servername))).map(([n]) => n);
    return until(async () => who(), (w) => w.length > 0, `a backend receiving SNI ${servername}`, 10_000);
  }

  before(async () => {
    ns = createPodNetns('sni', net);
    ns.addHostAddresses([A, B, DIAL]);
    ns.captureOutbound(15001, [DIAL]);
    const POD = ns.pod;

    port = await freePort(A);
    rec.a = await recorder(A, port);
    rec.b = await recorder(B, port);
    rec.dialled = await recorder(DIAL, port);
    const se = (name: string, host: string, address: string) =>
      istio('ServiceEntry', name, 'default', { hosts: [host], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: port, name: 'tls', protocol: 'TLS' }], endpoints: [{ address }] });
    cfg = configDir({
      'kubernetes.yaml': [namespace('default'), namespace('istio-system'), pod('client-abc', 'default', POD, { app: 'client' })],
      'istio.yaml': [meshPlaintext(), se('a', 'a.example.test', A), se('b', 'b.example.test', B)],
    });
    sextant = await startSextant({ configDir: cfg.dir, args: ['--listen-address', ns.host] });
    envoy = await startNetnsSidecarEnvoy(ns, sextant.xdsAddress);
    await envoy.waitForListener(`0.0.0.0_${port}`, 60_000);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await Promise.all(Object.values(rec).map((r) => new Promise((res) => r.server.close(res))));
    cfg?.remove();
    ns?.remove();
  });

  test('each ServiceEntry on the port is reached by its own SNI (the second is not shadowed by the first)', async () => {
    await hello('b.example.test');
    assert.deepEqual(await reached('b.example.test'), ['b']);
    await hello('a.example.test');
    assert.deepEqual(await reached('a.example.test'), ['a']);
  });

  test('an SNI no ServiceEntry names follows the outbound traffic policy (ALLOW_ANY: the address dialled)', async () => {
    await hello('unknown.example.test');
    assert.deepEqual(await reached('unknown.example.test'), ['dialled']);
    assert.equal((await envoy!.stats())['listener_manager.lds.update_rejected'], 0, 'LDS rejected');
  });
});
