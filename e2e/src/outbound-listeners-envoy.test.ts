/**
 * Outbound listener layout against a real Envoy as an iptables-mode sidecar
 * (INTERCEPTION_MODE REDIRECT), in a network namespace this test creates: a
 * veth pair to the host end (the daemon and the upstreams listen there), an
 * nat OUTPUT rule that REDIRECTs the namespace's connections to 15001, and
 * Istio's exemption of the proxy's own connections (Envoy runs with group
 * 1337, as istio-proxy does). iptables is Debian's package, downloaded once
 * into $SEXTANT_CACHE and run only inside that namespace; the host end
 * carries only 10.251.<n>.0/24 addresses and nothing routes beyond the pair.
 *
 * - A ServiceEntry with a CIDR address and STATIC resolution: Envoy accepts
 *   the listeners (a listener whose address is the CIDR would NACK the whole
 *   LDS), and a connection to an address inside the range reaches the
 *   ServiceEntry's endpoint (`0.0.0.0_<port>`, prefix-range chain).
 * - A MONGO port's listener (Mongo proxy filter before tcp_proxy) is accepted.
 * - Non-HTTP bytes to an unknown destination on a mesh HTTP port go through
 *   the passthrough default chain to that destination, not into the HTTP
 *   connection manager (which would answer 400).
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { freePort, startNamedTcpEcho } from './backends.js';
import { startNetnsSidecarEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, type ConfigDir } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { canNetns, createPodNetns, type PodNetns } from './fixtures/netns.js';
import { skipUnless } from './tools.js';

describe('outbound listeners of an iptables-mode Envoy sidecar in a network namespace', { timeout: 120_000, skip: skipUnless('envoy') || (!canNetns && 'needs root, ip netns and apt-get') }, () => {
  const net = `10.251.${(process.pid % 200) + 1}`;
  const CIDR = `${net}.128/25`;
  const PARTNER = `${net}.140`; // the ServiceEntry's endpoint, inside the range
  const IN_RANGE = `${net}.150`; // what the application dials: no listener there, only the range matches
  const UNKNOWN = `${net}.20`; // a destination no service names
  const PARTNER_PORT = 7443;
  let httpPort = 0;
  let ns: PodNetns | undefined;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  const servers: Server[] = [];
  const exchange = (host: string, port: number, payload: string) => ns!.exchange(host, port, payload);

  before(async () => {
    ns = createPodNetns('out', net);
    ns.addHostAddresses([PARTNER, UNKNOWN]);
    // The application's connections to the range and to the unknown destination go to 15001.
    ns.captureOutbound(15001, [CIDR, UNKNOWN]);
    const POD = ns.pod;

    httpPort = await freePort(UNKNOWN);
    servers.push(await startNamedTcpEcho('partner', PARTNER, await freePort(PARTNER)));
    servers.push(await startNamedTcpEcho('unknown', UNKNOWN, httpPort));
    const partnerPort = (servers[0]!.address() as { port: number }).port;
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        pod('client-abc', 'default', POD, { app: 'client' }),
        // A mesh HTTP service on the port the unknown destination listens on: its listener is 0.0.0.0_<port>.
        service('reviews', 'default', '10.96.7.13', [{ name: 'http', port: httpPort }]),
        // A MONGO port: its listener carries Envoy's Mongo proxy filter before tcp_proxy, as istiod's.
        service('mongo', 'default', '10.96.7.20', [{ name: 'mongo', port: 27017 }]),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('ServiceEntry', 'partner-range', 'default', {
          hosts: ['partners.default.internal'],
          addresses: [CIDR],
          location: 'MESH_EXTERNAL',
          resolution: 'STATIC',
          ports: [{ number: PARTNER_PORT, name: 'tcp-partner', protocol: 'TCP' }],
          endpoints: [{ address: PARTNER, ports: { 'tcp-partner': partnerPort } }],
        }),
      ],
    });
    sextant = await startSextant({ configDir: cfg.dir, args: ['--listen-address', ns.host] });
    envoy = await startNetnsSidecarEnvoy(ns, sextant.xdsAddress);
    await envoy.waitForListener('virtualOutbound', 60_000);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    cfg?.remove();
    ns?.remove();
  });

  test('Envoy accepts the CIDR ServiceEntry (no NACK): 0.0.0.0_<port> is active', async () => {
    await envoy!.waitForListener(`0.0.0.0_${PARTNER_PORT}`, 30_000);
    const stats = await envoy!.stats();
    assert.equal(stats['listener_manager.lds.update_rejected'], 0, 'LDS rejected');
  });

  test('a connection to an address inside the CIDR reaches the ServiceEntry endpoint', async () => {
    const r = await exchange(IN_RANGE, PARTNER_PORT, 'hello\n');
    assert.equal(r.reply, 'partner:hello\n', JSON.stringify(r));
  });

  test('Envoy accepts the Mongo proxy filter on a MONGO port', async () => {
    await envoy!.waitForListener('10.96.7.20_27017', 30_000);
    const dump = JSON.stringify(await envoy!.configDump());
    assert.match(dump, /envoy\.extensions\.filters\.network\.mongo_proxy\.v3\.MongoProxy/);
  });

  test('non-HTTP bytes to an unknown destination on a mesh HTTP port are passed through, not answered by the HTTP manager', async () => {
    await envoy!.waitForListener(`0.0.0.0_${httpPort}`, 30_000);
    const r = await exchange(UNKNOWN, httpPort, '\u0001\u0002raw bytes\n');
    assert.equal(r.reply, 'unknown:\u0001\u0002raw bytes\n', JSON.stringify(r));
  });
});
