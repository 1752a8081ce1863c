/**
 * Dubbo and SOFARPC (bolt) routed by a real MOSN v1.6.1 sidecar, configured
 * with plain Istio objects as in examples/dubbo: a ServiceEntry whose host is
 * the interface (port without a protocol, so sniffed: MOSN gets one HTTP
 * connection manager whose Auto codec decodes Dubbo and bolt), DestinationRule
 * subsets by provider label, and VirtualService http routes matching the
 * `version`, `method` and `service` headers MOSN's codecs expose. Real
 * providers and consumers from npm (sofa-rpc-node with dubbo-remoting, and
 * sofa-bolt-node) on loopback. Live VirtualService edits reach MOSN and a
 * removed route stops being used.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { distribution, freePort, until } from './backends.js';
import { configDir, istio, meshPlaintext, namespace, pod, type ConfigDir } from './fixtures/mesh.js';
import { startMosn, type RunningMosn } from './mosn.js';
import { rpcCaller, startRpcProvider, type RpcCaller, type RpcProvider } from './mosn-rpc.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const DEMO = 'org.apache.dubbo.samples.DemoService';
const HELLO = 'com.alipay.sofa.rpc.quickstart.HelloService';

describe('MOSN sidecar: Dubbo by interface version and method, bolt by service', { skip: skipUnless('mosn') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let mosn: RunningMosn | undefined;
  let dubboPort: number;
  let boltPort: number;
  const providers: RpcProvider[] = [];
  let dubbo: RpcCaller;
  let bolt: RpcCaller;

  const entry = (name: string, host: string, port: number, portName: string, eps: RpcProvider[]) =>
    istio('ServiceEntry', name, 'default', {
      hosts: [host],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: port, name: portName }],
      endpoints: eps.map((p) => ({ address: p.host, ports: { [portName]: p.port }, labels: { app: name, version: p.name.slice(-2) } })),
    });
  const subsets = (name: string, host: string) => istio('DestinationRule', name, 'default', { host, subsets: ['v1', 'v2'].map((v) => ({ name: v, labels: { version: v } })) });
  const to = (host: string, subset: string, weight?: number) => ({ destination: { host, subset }, ...(weight !== undefined ? { weight } : {}) });
  const demoVs = (http: Array<Record<string, unknown>>) => istio('VirtualService', 'demo', 'default', { hosts: [DEMO], http });
  const helloVs = (http: Array<Record<string, unknown>>) => istio('VirtualService', 'hello', 'default', { hosts: [HELLO], http });
  const demoRoutes = [
    { name: 'version-2', match: [{ headers: { version: { exact: '2.0.0' } } }], route: [to(DEMO, 'v2')] },
    { name: 'async', match: [{ headers: { method: { exact: 'sayHelloAsync' } } }], route: [to(DEMO, 'v2')], timeout: '3s' },
    { name: 'default', route: [to(DEMO, 'v1')], retries: { attempts: 2, perTryTimeout: '2s' } },
  ];
  const helloRoutes = [
    { name: 'version-2', match: [{ headers: { service: { exact: `${HELLO}:2.0` } } }], route: [to(HELLO, 'v2')] },
    { name: 'default', route: [to(HELLO, 'v1')] },
  ];

  before(async () => {
    dubboPort = await freePort();
    boltPort = await freePort();
    for (const [protocol, iface, versions, hosts] of [
      ['dubbo', DEMO, ['1.0.0', '2.0.0'], ['127.0.0.31', '127.0.0.32']],
      ['bolt', HELLO, ['1.0', '2.0'], ['127.0.0.41', '127.0.0.42']],
    ] as const) {
      for (const [i, host] of hosts.entries()) {
        providers.push(await startRpcProvider({ protocol, name: `${protocol}-v${i + 1}`, host, interfaceName: iface, versions: [...versions] }));
      }
    }
    const byName = (n: string) => providers.find((p) => p.name === n)!;
    cfg = configDir({
      'kubernetes.yaml': [namespace('default'), namespace('istio-system'), pod('consumer-0', 'default', '127.0.0.1', { app: 'consumer' })],
      'istio.yaml': [
        meshPlaintext(),
        istio('Sidecar', 'consumer', 'default', {
          workloadSelector: { labels: { app: 'consumer' } },
          egress: [
            { port: { number: dubboPort, name: 'tcp-dubbo' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] },
            { port: { number: boltPort, name: 'tcp-bolt' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] },
          ],
        }),
        entry('demo', DEMO, dubboPort, 'tcp-dubbo', [byName('dubbo-v1'), byName('dubbo-v2')]),
        entry('hello', HELLO, boltPort, 'tcp-bolt', [byName('bolt-v1'), byName('bolt-v2')]),
        subsets('demo', DEMO),
        subsets('hello', HELLO),
      ],
      'vs.yaml': [demoVs(demoRoutes), helloVs(helloRoutes)],
    });
    sextant = await startSextant({ configDir: cfg.dir });
    // MOSN identifies itself by the ISTIO_VERSION it fills in by default: no Sextant-specific key here.
    mosn = await startMosn({ adsAddress: sextant.xdsAddress, nodeId: 'sidecar~127.0.0.1~consumer-0.default~default.svc.cluster.local', metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE', ISTIO_VERSION: 'unknow' } });
    await mosn.waitForListener(`127.0.0.1_${dubboPort}`, 60_000);
    await mosn.waitForListener(`127.0.0.1_${boltPort}`, 60_000);
    dubbo = rpcCaller('dubbo', `127.0.0.1:${dubboPort}`);
    bolt = rpcCaller('bolt', `127.0.0.1:${boltPort}`);
    // Routes arrive after listeners (RDS follows LDS).
    await until(() => dubbo.call(DEMO, '2.0.0', 'sayHello'), (w) => w === 'dubbo-v2', 'a Dubbo call routed by version', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\nMOSN output (tail):\n${mosn!.output().slice(-8000)}`);
    });
  });

  after(async () => {
    await dubbo?.close().catch(() => {});
    await bolt?.close().catch(() => {});
    await mosn?.stop();
    await sextant?.stop();
    await Promise.all(providers.map((p) => p.close().catch(() => {})));
    cfg?.remove();
  });

  const only = async (caller: RpcCaller, iface: string, version: string, method: string, n = 20) => [...(await distribution(n, () => caller.call(iface, version, method), 4))];

  test('Dubbo: interface version 2.0.0 goes to the v2 providers, 1.0.0 to v1', async () => {
    assert.deepEqual(await only(dubbo, DEMO, '2.0.0', 'sayHello'), [['dubbo-v2', 20]]);
    assert.deepEqual(await only(dubbo, DEMO, '1.0.0', 'sayHello'), [['dubbo-v1', 20]]);
  });

  test('Dubbo: method sayHelloAsync goes to v2 whatever the version', async () => {
    assert.deepEqual(await only(dubbo, DEMO, '1.0.0', 'sayHelloAsync'), [['dubbo-v2', 20]]);
  });

  test('bolt: service <interface>:2.0 goes to v2, 1.0 to v1', async () => {
    assert.deepEqual(await only(bolt, HELLO, '2.0', 'sayHello'), [['bolt-v2', 20]]);
    assert.deepEqual(await only(bolt, HELLO, '1.0', 'sayHello'), [['bolt-v1', 20]]);
  });

  test('live edits: a weighted split applies, and the removed version route stops being used', async () => {
    cfg.write('vs.yaml', [demoVs([{ name: 'split', route: [to(DEMO, 'v1', 50), to(DEMO, 'v2', 50)] }]), helloVs([{ name: 'default', route: [to(HELLO, 'v1')] }])]);
    await until(() => dubbo.call(DEMO, '2.0.0', 'sayHello'), (w) => w === 'dubbo-v1', 'version 2.0.0 calls reaching v1 after the edit', 30_000);
    const split = await distribution(200, () => dubbo.call(DEMO, '2.0.0', 'sayHello'), 8);
    const v1 = split.get('dubbo-v1') ?? 0;
    assert.equal(v1 + (split.get('dubbo-v2') ?? 0), 200, JSON.stringify([...split]));
    assert.ok(v1 >= 60 && v1 <= 140, `v1 got ${v1}/200 of a 50/50 split`);
    await until(() => only(bolt, HELLO, '2.0', 'sayHello'), (c) => c.length === 1 && c[0]![0] === 'bolt-v1', 'bolt 2.0 calls back on v1', 30_000);
    assert.ok(mosn!.alive());
  });
});
