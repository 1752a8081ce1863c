/**
 * DNS through Istio's own pilot-agent, from Sextant's NDS: a stock sidecar
 * (pilot-agent running Envoy, INTERCEPTION_MODE NONE) with DNS capture and
 * auto-allocation asks Sextant for the name table over its Delta ADS stream,
 * and its DNS proxy (on a free loopback port, DNS_PROXY_ADDR) answers real DNS
 * queries: a ServiceEntry without addresses resolves to its allocated
 * 240.240.0.0/16 address, one with an address to that address, a Kubernetes
 * service to its VIP, also by the short forms. A new ServiceEntry becomes
 * resolvable without a restart. Only names the table holds are queried, and
 * the agent's upstream resolver is 127.0.0.1 (its own mount namespace), so a
 * miss stays on loopback too.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, until } from './backends.js';
import { startAgent, type RunningAgent } from './fixtures/agent.js';
import { configDir, istio, namespace, pod, service, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { createTestIssuer } from './fixtures/secure.js';
import { debugJson, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

describe('pilot-agent DNS proxy answers from Sextant\'s NDS', { skip: skipUnless('envoy', 'pilot-agent') }, () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let agent: RunningAgent | undefined;
  let dns: Resolver;
  const NS = 'shop';
  const se = (name: string, spec: Record<string, unknown>) => istio('ServiceEntry', name, NS, { location: 'MESH_EXTERNAL', resolution: 'DNS', ...spec });
  const objects = (extra: K8sObject[] = []): K8sObject[] => [
    namespace(NS),
    namespace('istio-system'),
    pod('productpage-v1-0', NS, '127.0.0.1', { app: 'productpage' }, 'productpage'),
    service('reviews', NS, '10.96.3.13', [{ name: 'http', port: 9080 }]),
    se('api', { hosts: ['api.example.com'], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }] }),
    se('db', { hosts: ['db.internal'], addresses: ['192.168.50.10'], resolution: 'STATIC', ports: [{ number: 5432, name: 'tcp', protocol: 'TCP' }], endpoints: [{ address: '192.168.50.11' }] }),
    ...extra,
  ];
  const a = (name: string) => dns.resolve4(name);
  const NDS = 'type.googleapis.com/istio.networking.nds.v1.NameTable';
  /** The NDS version the agent last ACKed, from /debug/syncz (names are queried only once the table holds them). */
  const ndsAcked = async (): Promise<string | undefined> => {
    const conns = (await debugJson(sextant!.httpUrl, '/debug/syncz')) as Array<{ proxyId: string; types: Array<{ typeUrl: string; versionAcked?: string; versionSent?: string }> }>;
    const t = conns.find((c) => c.proxyId === agent!.nodeId)?.types.find((x) => x.typeUrl === NDS);
    return t?.versionAcked && t.versionAcked === t.versionSent ? t.versionAcked : undefined;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-nds-agent-'));
    const issuer = createTestIssuer(dir);
    cfg = configDir({ 'config.yaml': objects() });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--ca-dir', caDir, ...issuer.args, '--debounce-after', '10ms', '--debounce-max', '200ms'] });
    const rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const dnsPort = await freePort();
    agent = await startAgent({
      discoveryAddress: `localhost:${sextant.secureAddress.split(':').pop()}`,
      rootPem,
      token: issuer.token(NS, 'productpage'),
      podName: 'productpage-v1-0',
      namespace: NS,
      serviceAccount: 'productpage',
      ip: '127.0.0.1',
      labels: { app: 'productpage' },
      proxyConfig: { interceptionMode: 'NONE' },
      env: { ISTIO_META_INTERCEPTION_MODE: 'NONE', ISTIO_META_DNS_CAPTURE: 'true', ISTIO_META_DNS_AUTO_ALLOCATE: 'true', DNS_PROXY_ADDR: `127.0.0.1:${dnsPort}` },
      // A name missing from the table is forwarded upstream: keep that on loopback.
      loopbackResolver: true,
    });
    dns = new Resolver({ timeout: 2000, tries: 1 });
    dns.setServers([`127.0.0.1:${dnsPort}`]);
    await until(ndsAcked, (v) => v !== undefined, 'the agent ACKing a name table', 40_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- agent ---\n${agent!.output().slice(-6000)}`);
    });
  });

  after(async () => {
    await agent?.stop();
    await sextant?.stop();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a ServiceEntry without addresses resolves to its allocated 240.240.0.0/16 address', async () => {
    const [ip] = await a('api.example.com');
    assert.match(ip!, /^240\.240\.\d+\.\d+$/);
    // (That the same address names its listener in iptables mode is shown in nds.test.ts; this sidecar runs without iptables.)
    assert.deepEqual(await a('api.example.com'), [ip]);
  });

  test('a ServiceEntry with an address and a Kubernetes service (also by its short forms) resolve to their VIPs', async () => {
    assert.deepEqual(await a('db.internal'), ['192.168.50.10']);
    assert.deepEqual(await a(`reviews.${NS}.svc.cluster.local`), ['10.96.3.13']);
    assert.deepEqual(await a(`reviews.${NS}`), ['10.96.3.13']);
  });

  test('a new ServiceEntry becomes resolvable without a restart', async () => {
    const before = await ndsAcked();
    cfg.write('config.yaml', objects([se('cache', { hosts: ['cache.example.com'], ports: [{ number: 6379, name: 'tcp', protocol: 'TCP' }] })]));
    // Only ask once the agent has the new table: an unknown name would be forwarded upstream.
    await until(ndsAcked, (v) => v !== undefined && v !== before, 'the agent ACKing the new name table', 20_000);
    const ips = await a('cache.example.com');
    assert.equal(ips.length, 1);
    assert.match(ips[0]!, /^240\.240\./);
    assert.notDeepEqual(ips, await a('api.example.com'));
  });
});
