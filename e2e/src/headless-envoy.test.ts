/**
 * Headless Services through real Envoy, as istiod serves them.
 *
 * Sidecar: an iptables-mode Envoy in a network namespace this test creates
 * (a veth pair to the host end, an nat OUTPUT rule that REDIRECTs the
 * application's connections to 15001, Envoy's own connections exempted by
 * group 1337, as in outbound-listeners-envoy.test.ts), with a Sidecar whose
 * outbound traffic policy is REGISTRY_ONLY. The TCP port of a headless
 * Service gets one listener per pod (`<podIP>_<port>`), so only the pods'
 * addresses reach the Service's ORIGINAL_DST cluster; any other address on
 * that port follows the outbound traffic policy (BlackHoleCluster). A pod
 * that joins the Service (EndpointSlice edit) gets its listener from the
 * endpoint path, with no push context built.
 *
 * Gateway: an Envoy router on loopback forwarding a Gateway TCP port to a
 * headless Service reaches its pods, through an EDS cluster (an ORIGINAL_DST
 * cluster would send the connection back to the gateway's own address).
 */
import assert from 'node:assert/strict';
import { connect, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { freePort, startNamedTcpEcho, until } from './backends.js';
import { startEnvoy, startNetnsSidecarEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, endpointSlice, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { canNetns, createPodNetns, type PodNetns } from './fixtures/netns.js';
import { skipUnless } from './tools.js';

/** A headless Service (clusterIP None) with one TCP port. */
const headless = (name: string, ns: string, port: number): K8sObject => service(name, ns, 'None', [{ name: 'tcp-db', port }]);

/** One EndpointSlice of `svc` with a ready endpoint per pod. */
function slice(svc: string, ns: string, pods: Array<{ name: string; ip: string }>, port: number): K8sObject {
  const s = endpointSlice(svc, ns, 'all', pods[0]!.ip, [{ name: 'tcp-db', port }]);
  return { ...s, endpoints: pods.map((p) => ({ addresses: [p.ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: p.name, namespace: ns } })) };
}

describe('headless Service on an iptables-mode Envoy sidecar (REGISTRY_ONLY) in a network namespace', { timeout: 180_000, skip: skipUnless('envoy') || (!canNetns && 'needs root, ip netns and apt-get') }, () => {
  const net = `10.254.${(process.pid % 200) + 1}`;
  const DB0 = `${net}.10`;
  const DB1 = `${net}.11`;
  const OTHER = `${net}.20`; // listens on the Service's port, but is no pod of it
  let port = 0;
  let ns: PodNetns | undefined;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  const servers: Server[] = [];
  let k8s: (pods: Array<{ name: string; ip: string }>) => K8sObject[];
  const exchange = (host: string, payload: string) => ns!.exchange(host, port, payload);

  before(async () => {
    ns = createPodNetns('hl', net);
    ns.addHostAddresses([DB0, DB1, OTHER]);
    ns.captureOutbound(15001, [DB0, DB1, OTHER]);
    const POD = ns.pod;
    port = await freePort(DB0);
    servers.push(await startNamedTcpEcho('db-0', DB0, port), await startNamedTcpEcho('db-1', DB1, port), await startNamedTcpEcho('other', OTHER, port));
    k8s = (pods) => [
      namespace('default'),
      namespace('istio-system'),
      pod('client-abc', 'default', POD, { app: 'client' }),
      headless('db', 'default', port),
      pod('db-0', 'default', DB0, { app: 'db' }),
      pod('db-1', 'default', DB1, { app: 'db' }),
      slice('db', 'default', pods, port),
    ];
    cfg = configDir({
      'kubernetes.yaml': k8s([{ name: 'db-0', ip: DB0 }]),
      'istio.yaml': [meshPlaintext(), istio('Sidecar', 'default', 'default', { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } })],
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

  test('the pod of the headless Service has its own listener and is reached through it', async () => {
    await envoy!.waitForListener(`${DB0}_${port}`, 30_000);
    const r = await exchange(DB0, 'hello\n');
    assert.equal(r.reply, 'db-0:hello\n', JSON.stringify(r));
  });

  test('another address on the same port is no pod of the Service: REGISTRY_ONLY blocks it (no wildcard listener takes it)', async () => {
    const listeners = JSON.stringify(await envoy!.configDump());
    assert.ok(!listeners.includes(`"0.0.0.0_${port}"`), `no 0.0.0.0_${port} listener`);
    const r = await exchange(OTHER, 'hello\n');
    assert.equal(r.reply, '', JSON.stringify(r));
  });

  test('a pod joining the Service gets its listener from the endpoint path (no push context built) and is reached', async () => {
    assert.equal((await exchange(DB1, 'before\n')).reply, '', 'not a pod of the Service yet: blocked');
    const builds = () => sextant!.logs.filter((l) => l.msg === 'push context built').length;
    const before = builds();
    cfg.write('kubernetes.yaml', k8s([{ name: 'db-0', ip: DB0 }, { name: 'db-1', ip: DB1 }]));
    await envoy!.waitForListener(`${DB1}_${port}`, 30_000);
    const r = await until(() => exchange(DB1, 'after\n'), (x) => x.reply !== '', 'db-1 reachable', 15_000);
    assert.equal(r.reply, 'db-1:after\n', JSON.stringify(r));
    assert.equal(builds(), before, 'an endpoint change of a headless Service builds no push context');
    assert.equal((await envoy!.stats())['listener_manager.lds.update_rejected'], 0, 'LDS rejected');
  });
});

describe('headless Service behind an Envoy ingress gateway', { timeout: 120_000, skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  const servers: Server[] = [];
  let gatewayPort = 0;

  /** Connects to the gateway's TCP port, sends `payload`, and resolves with what comes back (until newline, close or 3 s). */
  function viaGateway(payload: string): Promise<string> {
    return new Promise((resolve) => {
      const s = connect(gatewayPort, '127.0.0.1');
      let reply = '';
      let done = false;
      const end = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.destroy();
        resolve(reply);
      };
      const timer = setTimeout(end, 3000);
      s.on('connect', () => s.write(payload));
      s.on('data', (d) => {
        reply += d.toString();
        if (reply.includes('\n')) end();
      });
      s.on('close', end);
      s.on('error', end);
    });
  }

  before(async () => {
    const dbPort = await freePort('127.0.0.21');
    servers.push(await startNamedTcpEcho('db-0', '127.0.0.21', dbPort), await startNamedTcpEcho('db-1', '127.0.0.22', dbPort));
    gatewayPort = await freePort();
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        service('istio-ingressgateway', 'istio-system', '10.96.0.50', [{ name: 'tcp', port: 15432, targetPort: gatewayPort }], { istio: 'ingressgateway' }, { istio: 'ingressgateway' }),
        ...workload({ svc: 'istio-ingressgateway', namespace: 'istio-system', pod: 'istio-ingressgateway-xyz', ip: '127.0.0.1', labels: { istio: 'ingressgateway' }, ports: [{ name: 'tcp', port: gatewayPort }] }),
        headless('db', 'default', 5432),
        pod('db-0', 'default', '127.0.0.21', { app: 'db' }),
        pod('db-1', 'default', '127.0.0.22', { app: 'db' }),
        slice(
          'db',
          'default',
          [
            { name: 'db-0', ip: '127.0.0.21' },
            { name: 'db-1', ip: '127.0.0.22' },
          ],
          dbPort,
        ),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('Gateway', 'edge', 'default', { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 15432, name: 'tcp', protocol: 'TCP' }, hosts: ['*'] }] }),
        istio('VirtualService', 'db', 'default', { hosts: ['*'], gateways: ['edge'], tcp: [{ match: [{ port: 15432 }], route: [{ destination: { host: 'db', port: { number: 5432 } } }] }] }),
      ],
    });
    sextant = await startSextant({ configDir: cfg.dir });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'router~127.0.0.1~istio-ingressgateway-xyz.istio-system~istio-system.svc.cluster.local',
      metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' } },
    });
    await envoy.waitForListener(`0.0.0.0_${gatewayPort}`, 60_000);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    cfg?.remove();
  });

  test('TCP through the gateway reaches both pods of the headless Service (EDS cluster)', async () => {
    const seen = new Set<string>();
    // Round robin over two endpoints: both answer within a few connections (bounded).
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const r = await viaGateway(`n${i}\n`);
      assert.match(r, /^db-[01]:n\d+\n$/, `reply ${JSON.stringify(r)}`);
      seen.add(r.slice(0, 4));
    }
    assert.deepEqual([...seen].sort(), ['db-0', 'db-1']);
  });
});
