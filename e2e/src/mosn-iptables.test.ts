/**
 * MOSN v1.6.1 as an iptables-mode sidecar (INTERCEPTION_MODE REDIRECT, the
 * normal sidecar config) on Bookinfo-shaped services, in a network namespace
 * this test creates: a veth pair to the host (the daemon and the backends
 * listen on the host end), and an nat OUTPUT rule that REDIRECTs the
 * namespace's connections to service VIPs (10.96.0.0/16) to MOSN's 15001.
 * iptables is Debian's package, downloaded once into $SEXTANT_CACHE and run
 * only inside that namespace.
 *
 * MOSN must stay up (it reads bind_to_port only from deprecated_v1 and would
 * otherwise bind each `<VIP>_<port>` listener and exit on the first, "cannot
 * assign requested address"), and route the redirected HTTP by header and by
 * weight through virtualOutbound → `0.0.0.0_9080` → RDS `9080` → subset
 * clusters. Real Dubbo and bolt consumers in the namespace call ServiceEntry
 * VIPs whose host is the interface (sniffed port, as in examples/dubbo), and
 * MOSN routes them by interface version, method and service; a live
 * VirtualService edit removes the version routes and they stop being used.
 * Clients run inside the namespace as child processes, awaited
 * asynchronously: the backends live in this process and must keep answering.
 *
 * The host end of the veth stays in the root namespace, by choice: Sextant,
 * the HTTP backends and the RPC providers run in (or under) the test process
 * there, so that the test reads Sextant's logs and ports directly. That end
 * carries only 10.253.<n>.0/24 addresses, its only peer is the test's own
 * namespace, and nothing routes or forwards beyond the pair: no traffic
 * leaves it. Moving it into a second namespace would put every check of the
 * daemon behind `ip netns exec`.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startHttpBackend, until, type HttpBackend } from './backends.js';
import { startRpcProvider, type RpcProtocol, type RpcProvider } from './mosn-rpc.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir } from './fixtures/mesh.js';
import { mosnListeners, startMosn, type RunningMosn } from './mosn.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { canNetns, createPodNetns, debianIptables, type PodNetns } from './fixtures/netns.js';
import { skipUnless } from './tools.js';

const DEMO = 'org.apache.dubbo.samples.DemoService';
const HELLO = 'com.alipay.sofa.rpc.quickstart.HelloService';
const DUBBO_VIP = '10.96.5.10';
const BOLT_VIP = '10.96.5.20';
const DUBBO_PORT = 20880;
const BOLT_PORT = 12200;
const rpcCli = fileURLToPath(new URL('./mosn-rpc-cli.js', import.meta.url));

// Bounded: a stuck child must fail the test, not block the runner.
const sh = (cmd: string, args: string[], env?: Record<string, string>) => execFileSync(cmd, args, { stdio: 'pipe', timeout: 60_000, env: { ...process.env, ...env } }).toString();

describe('MOSN as an iptables-mode sidecar in a network namespace', { timeout: 120_000, skip: skipUnless('mosn') || (!canNetns && 'needs root, ip netns and apt-get') }, () => {
  const id = process.pid % 200;
  const net = `10.253.${id}`;
  const HOST = `${net}.1`;
  const POD = `${net}.2`;
  let ns: PodNetns | undefined;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let mosn: RunningMosn | undefined;
  const backends: HttpBackend[] = [];
  const providers: RpcProvider[] = [];
  const to = (host: string, subset: string, weight?: number) => ({ destination: { host, subset }, ...(weight !== undefined ? { weight } : {}) });
  const demoVs = (http: Array<Record<string, unknown>>) => istio('VirtualService', 'demo', 'default', { hosts: [DEMO], http });
  const helloVs = (http: Array<Record<string, unknown>>) => istio('VirtualService', 'hello', 'default', { hosts: [HELLO], http });
  const demoRoutes = [
    { name: 'version-2', match: [{ headers: { version: { exact: '2.0.0' } } }], route: [to(DEMO, 'v2')] },
    { name: 'async', match: [{ headers: { method: { exact: 'sayHelloAsync' } } }], route: [to(DEMO, 'v2')] },
    { name: 'default', route: [to(DEMO, 'v1')] },
  ];
  const helloRoutes = [
    { name: 'version-2', match: [{ headers: { service: { exact: `${HELLO}:2.0` } } }], route: [to(HELLO, 'v2')] },
    { name: 'default', route: [to(HELLO, 'v1')] },
  ];

  /** `n` RPC calls from inside the namespace to a service VIP (redirected to MOSN), by a real consumer; counts by answering provider. */
  async function rpcFromPod(protocol: RpcProtocol, vip: string, port: number, iface: string, version: string, method: string, n: number): Promise<Record<string, number>> {
    const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', ns!.name, process.execPath, rpcCli, protocol, `${vip}:${port}`, iface, version, method, String(n)], { timeout: 60_000 });
    return JSON.parse(stdout) as Record<string, number>;
  }

  /** `n` GETs from inside the namespace to VIP:9080 (redirected to MOSN); counts by answering backend. */
  async function fromPod(n: number, host: string, headers: Record<string, string> = {}): Promise<Record<string, number>> {
    const script = `
      const http = require('node:http'); const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const counts = {}; let left = ${n};
      const one = () => new Promise((res) => { const req = http.get({ host: '10.96.2.13', port: 9080, path: '/reviews/0', agent, timeout: 5000, headers: ${JSON.stringify({ host, ...headers })} }, (r) => { r.resume(); r.on('end', () => { const b = r.headers['x-backend'] || ('status-' + r.statusCode); counts[b] = (counts[b] || 0) + 1; res(); }); }); req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' }))); req.on('error', (e) => { counts['error-' + e.code] = (counts['error-' + e.code] || 0) + 1; res(); }); });
      (async () => { const w = async () => { while (left > 0) { left--; await one(); } }; await Promise.all([w(), w(), w(), w()]); console.log(JSON.stringify(counts)); agent.destroy(); })();`;
    const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', ns!.name, process.execPath, '-e', script], { timeout: 60_000 });
    return JSON.parse(stdout) as Record<string, number>;
  }

  before(async () => {
    const ipt = debianIptables();
    ns = createPodNetns('mosn', net);
    // The backends' addresses, on the host end beside <net>.1.
    for (const b of [11, 12, 13, 14, 31, 32, 41, 42]) sh('ip', ['addr', 'add', `${net}.${b}/32`, 'dev', ns.hostIf]);
    ns.exec('ip', ['route', 'add', '10.96.0.0/16', 'dev', ns.podIf]);
    // Istio's outbound capture, reduced to what this test needs: service VIPs to 15001.
    ns.exec(ipt.bin, ['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.96.0.0/16', '-j', 'REDIRECT', '--to-ports', '15001'], ipt.env);

    for (const [name, last] of [['reviews-v1', 11], ['reviews-v2', 12], ['reviews-v3', 13], ['mysql-v1', 14]] as const) backends.push(await startHttpBackend(name, `${net}.${last}`));
    const [r1, r2, r3, db] = backends as [HttpBackend, HttpBackend, HttpBackend, HttpBackend];
    // Real Dubbo and bolt providers, one per version subset (sofa-rpc-node listens on every address of the host end).
    for (const [protocol, iface, versions, lasts] of [
      ['dubbo', DEMO, ['1.0.0', '2.0.0'], [31, 32]],
      ['bolt', HELLO, ['1.0', '2.0'], [41, 42]],
    ] as const) {
      for (const [i, last] of lasts.entries()) providers.push(await startRpcProvider({ protocol, name: `${protocol}-v${i + 1}`, host: `${net}.${last}`, interfaceName: iface, versions: [...versions] }));
    }
    const rpcEntry = (name: string, host: string, vip: string, port: number, protocol: RpcProtocol) =>
      istio('ServiceEntry', name, 'default', {
        hosts: [host],
        addresses: [vip],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        // No protocol: sniffed, so MOSN gets an HTTP connection manager whose codecs decode Dubbo and bolt.
        ports: [{ number: port, name: `tcp-${protocol}` }],
        endpoints: providers.filter((p) => p.name.startsWith(protocol)).map((p) => ({ address: p.host, ports: { [`tcp-${protocol}`]: p.port }, labels: { app: name, version: p.name.slice(-2) } })),
      });
    const wl = (svc: string, b: HttpBackend, labels: Record<string, string>, portName: string) =>
      workload({ svc, pod: `${b.name}-pod`, ip: b.host, labels: { app: svc, ...labels }, ports: [{ name: portName, port: b.port }] });
    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        pod('productpage-v1-abc', 'default', POD, { app: 'productpage', version: 'v1' }),
        service('reviews', 'default', '10.96.2.13', [{ name: 'http', port: 9080 }]),
        // A TCP service: its listener is `<VIP>_3306`, which MOSN must not bind.
        service('mysql', 'default', '10.96.2.20', [{ name: 'tcp', port: 3306 }]),
        ...wl('reviews', r1, { version: 'v1' }, 'http'),
        ...wl('reviews', r2, { version: 'v2' }, 'http'),
        ...wl('reviews', r3, { version: 'v3' }, 'http'),
        ...wl('mysql', db, { version: 'v1' }, 'tcp'),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('DestinationRule', 'reviews', 'default', { host: 'reviews', subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { version: v } })) }),
        rpcEntry('demo', DEMO, DUBBO_VIP, DUBBO_PORT, 'dubbo'),
        rpcEntry('hello', HELLO, BOLT_VIP, BOLT_PORT, 'bolt'),
        ...[['demo', DEMO], ['hello', HELLO]].map(([n, h]) => istio('DestinationRule', n!, 'default', { host: h, subsets: ['v1', 'v2'].map((v) => ({ name: v, labels: { version: v } })) })),
        istio('VirtualService', 'reviews', 'default', {
          hosts: ['reviews'],
          http: [
            { match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
            { route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 50 }, { destination: { host: 'reviews', subset: 'v3' }, weight: 50 }] },
          ],
        }),
      ],
      'rpc-vs.yaml': [demoVs(demoRoutes), helloVs(helloRoutes)],
    });
    sextant = await startSextant({ configDir: cfg.dir, args: ['--listen-address', HOST, '--debounce-after', '10ms', '--debounce-max', '200ms'] });
    mosn = await startMosn({
      adsAddress: sextant.xdsAddress,
      nodeId: `sidecar~${POD}~productpage-v1-abc.default~default.svc.cluster.local`,
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'REDIRECT', SEXTANT_DATA_PLANE: 'mosn' },
      netns: ns!.name,
      adminHost: POD,
      ...(process.env.SEXTANT_MOSN_LOG_LEVEL ? { logLevel: process.env.SEXTANT_MOSN_LOG_LEVEL } : {}),
    });
    await mosn.waitForListener('0.0.0.0_9080', 60_000);
  });

  after(async () => {
    await mosn?.stop();
    await sextant?.stop();
    await Promise.all(backends.map((b) => b.close()));
    await Promise.all(providers.map((p) => p.close().catch(() => {})));
    cfg?.remove();
    ns?.remove();
  });

  test('MOSN stays up with virtualOutbound, virtualInbound and the per-port listeners it must not bind', async () => {
    const ls = mosnListeners(await mosn!.configDump());
    for (const n of ['virtualOutbound', 'virtualInbound', '0.0.0.0_9080', '10.96.2.20_3306']) assert.ok(ls.has(n), `${n} in ${[...ls.keys()]}`);
    assert.equal(ls.get('0.0.0.0_9080')!.bind_port, undefined, 'not bound');
    // RDS comes after LDS: once MOSN holds route 9080 it has processed (and bound) every listener.
    await mosn!.waitForDump((d) => JSON.stringify(d).includes('"router_config_name":"9080"'), 'route configuration 9080', 30_000);
    const sockets = ns!.exec('ss', ['-ltnH']);
    const ports = [...sockets.matchAll(/:(\d+)\s/g)].map((m) => Number(m[1]));
    assert.ok(ports.includes(15001) && ports.includes(15006), sockets);
    assert.ok(!ports.includes(9080) && !ports.includes(3306), `only 15001, 15006 and the admin port are bound:\n${sockets}`);
    assert.ok(mosn!.alive(), mosn!.output().slice(-3000));
  });

  test('redirected HTTP: end-user jason goes to v2 only', async () => {
    assert.deepEqual(await fromPod(20, 'reviews', { 'end-user': 'jason' }), { 'reviews-v2': 20 });
  });

  test('redirected HTTP: everyone else is split between v1 and v3 (50/50 ±10% over 400), never v2; MOSN stays up', async () => {
    const c = await fromPod(400, 'reviews.default.svc.cluster.local:9080');
    assert.equal(c['reviews-v2'], undefined, JSON.stringify(c));
    assert.equal((c['reviews-v1'] ?? 0) + (c['reviews-v3'] ?? 0), 400, JSON.stringify(c));
    assert.ok(Math.abs((c['reviews-v1'] ?? 0) / 400 - 0.5) <= 0.1, JSON.stringify(c));
    assert.ok(mosn!.alive());
  });

  test('redirected Dubbo: by interface version and by method, to the subsets the VirtualService names', async () => {
    await until(() => rpcFromPod('dubbo', DUBBO_VIP, DUBBO_PORT, DEMO, '2.0.0', 'sayHello', 1), (c) => c['dubbo-v2'] === 1, 'a Dubbo call through MOSN routed by version', 30_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${mosn!.output().slice(-4000)}`);
    });
    assert.deepEqual(await rpcFromPod('dubbo', DUBBO_VIP, DUBBO_PORT, DEMO, '2.0.0', 'sayHello', 12), { 'dubbo-v2': 12 });
    assert.deepEqual(await rpcFromPod('dubbo', DUBBO_VIP, DUBBO_PORT, DEMO, '1.0.0', 'sayHello', 12), { 'dubbo-v1': 12 });
    assert.deepEqual(await rpcFromPod('dubbo', DUBBO_VIP, DUBBO_PORT, DEMO, '1.0.0', 'sayHelloAsync', 12), { 'dubbo-v2': 12 });
  });

  test('redirected bolt: by service (<interface>:<version>)', async () => {
    assert.deepEqual(await rpcFromPod('bolt', BOLT_VIP, BOLT_PORT, HELLO, '2.0', 'sayHello', 12), { 'bolt-v2': 12 });
    assert.deepEqual(await rpcFromPod('bolt', BOLT_VIP, BOLT_PORT, HELLO, '1.0', 'sayHello', 12), { 'bolt-v1': 12 });
  });

  test('live edit: the removed version routes stop being used (Dubbo 2.0.0 and bolt 2.0 go to v1); MOSN stays up', async () => {
    cfg.write('rpc-vs.yaml', [demoVs(demoRoutes.filter((r) => r.name !== 'version-2')), helloVs(helloRoutes.filter((r) => r.name !== 'version-2'))]);
    await until(() => rpcFromPod('dubbo', DUBBO_VIP, DUBBO_PORT, DEMO, '2.0.0', 'sayHello', 4), (c) => c['dubbo-v1'] === 4, 'Dubbo 2.0.0 on v1 after the edit', 30_000);
    assert.deepEqual(await rpcFromPod('dubbo', DUBBO_VIP, DUBBO_PORT, DEMO, '2.0.0', 'sayHello', 12), { 'dubbo-v1': 12 });
    // The method route is still there.
    assert.deepEqual(await rpcFromPod('dubbo', DUBBO_VIP, DUBBO_PORT, DEMO, '2.0.0', 'sayHelloAsync', 8), { 'dubbo-v2': 8 });
    assert.deepEqual(await rpcFromPod('bolt', BOLT_VIP, BOLT_PORT, HELLO, '2.0', 'sayHello', 12), { 'bolt-v1': 12 });
    assert.ok(mosn!.alive());
  });
});
