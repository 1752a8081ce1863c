/**
 * istiod's gateway listener defaults, DNS clusters and the istio.alpn gate
 * through a real (upstream) Envoy: the gateway answers with `Server:
 * istio-envoy`, a DNS ServiceEntry for `localhost` is resolved by Envoy's
 * c-ares resolver with istiod's settings and carries traffic, and Envoy, which
 * reports no istio.alpn extension in node.extensions, gets no istio.alpn
 * filter even though its metadata names an Istio version (it would reject the
 * listener update). Every update is ACKed (no rejected LDS/CDS).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, istio, meshPlaintext, namespace, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

type Json = Record<string, any>;

const HOST = 'shop.example.com';
const DNS_HOST = 'dns.example.com';
const LOCAL_HOST = 'local.example.com';
const LOCAL_CLUSTER = `outbound|8080||${LOCAL_HOST}`;

describe('gateway defaults and DNS clusters as istiod renders them, through a real Envoy', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let web: HttpBackend;
  let local: HttpBackend;
  let gatewayPort: number;

  before(async () => {
    web = await startHttpBackend('web', '127.0.0.31');
    // The DNS ServiceEntry's endpoint is `localhost`: Envoy resolves it itself (c-ares reads /etc/hosts) to 127.0.0.1.
    local = await startHttpBackend('localhost', '127.0.0.1');
    gatewayPort = await freePort();
    const k8s: K8sObject[] = [
      namespace('default'),
      namespace('istio-system'),
      service('istio-ingressgateway', 'istio-system', '10.96.0.50', [{ name: 'http2', port: 80, targetPort: gatewayPort }], { istio: 'ingressgateway' }, { istio: 'ingressgateway' }),
      ...workload({ svc: 'istio-ingressgateway', namespace: 'istio-system', pod: 'istio-ingressgateway-xyz', ip: '127.0.0.1', labels: { istio: 'ingressgateway' }, ports: [{ name: 'http2', port: gatewayPort }] }),
      service('web', 'default', '10.96.1.10', [{ name: 'http', port: 8000 }]),
      ...workload({ svc: 'web', pod: 'web-a', ip: web.host, labels: { app: 'web' }, ports: [{ name: 'http', port: web.port }] }),
    ];
    const istioCfg: K8sObject[] = [
      meshPlaintext(),
      istio('Gateway', 'shop-gateway', 'istio-system', {
        selector: { istio: 'ingressgateway' },
        servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: [HOST, DNS_HOST] }],
      }),
      istio('VirtualService', 'shop', 'default', { hosts: [HOST], gateways: ['istio-system/shop-gateway'], http: [{ route: [{ destination: { host: 'web' } }] }] }),
      // The endpoint is the DNS name `localhost` (a short host would be read as a Service in the namespace).
      istio('ServiceEntry', 'local', 'default', { hosts: [LOCAL_HOST], location: 'MESH_EXTERNAL', resolution: 'DNS', ports: [{ number: 8080, name: 'http', protocol: 'HTTP', targetPort: local.port }], endpoints: [{ address: 'localhost' }] }),
      istio('VirtualService', 'dns', 'default', { hosts: [DNS_HOST], gateways: ['istio-system/shop-gateway'], http: [{ route: [{ destination: { host: LOCAL_HOST, port: { number: 8080 } } }] }] }),
    ];
    cfg = configDir({ 'kubernetes.yaml': k8s, 'istio.yaml': istioCfg });
    sextant = await startSextant({ configDir: cfg.dir });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'router~127.0.0.1~istio-ingressgateway-xyz.istio-system~istio-system.svc.cluster.local',
      // An Istio version as pilot-agent would send: without node.extensions Sextant would assume istio-proxy.
      metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' }, ISTIO_VERSION: '1.29.0' },
    });
    await envoy.waitForListener(`0.0.0.0_${gatewayPort}`);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await web?.close();
    await local?.close();
    cfg?.remove();
  });

  test('gateway responses carry Server: istio-envoy; the listener has istiod\'s accept batching and handshake bound, and no istio.alpn', async () => {
    const r = await until(() => httpGet(gatewayPort, '/hello', { host: HOST }), (x) => x.status === 200, 'GET through the gateway');
    assert.equal(r.backend, 'web');
    assert.equal(r.headers.server, 'istio-envoy');
    const dump = await envoy!.configDump();
    const ls = (dump.configs.find((c) => c['@type'].includes('ListenersConfigDump')) as Json).dynamic_listeners as Json[];
    const l = ls.find((x) => x.name === `0.0.0.0_${gatewayPort}`)!.active_state.listener as Json;
    assert.equal(l.max_connections_to_accept_per_socket_event, 1);
    for (const c of l.filter_chains as Json[]) assert.equal(c.transport_socket_connect_timeout, '15s');
    const hcm = (l.filter_chains as Json[])[0]!.filters[0].typed_config as Json;
    assert.ok(!(hcm.http_filters as Json[]).some((f) => f.name === 'istio.alpn'), 'upstream Envoy lists no istio.alpn extension');
    const stats = await envoy!.stats();
    assert.equal(Number(stats['listener_manager.lds.update_rejected'] ?? 0), 0, 'LDS ACKed');
  });

  test('a DNS ServiceEntry: Envoy resolves the host with istiod\'s c-ares settings and jitter, and routes to it', async () => {
    const r = await until(() => httpGet(gatewayPort, '/dns', { host: DNS_HOST }), (x) => x.status === 200, 'GET to the DNS ServiceEntry through the gateway').catch(async (e: Error) => {
      // Say what Envoy made of the cluster: its hosts and DNS stats.
      const clusters = (await envoy!.admin('/clusters')).split('\n').filter((x) => x.startsWith(LOCAL_CLUSTER)).join('\n');
      const dns = Object.entries(await envoy!.stats()).filter(([k]) => k.includes(LOCAL_HOST) || k.startsWith('dns.')).map(([k, v]) => `${k}=${v}`).join('\n');
      throw new Error(`${e.message}\n${clusters}\n${dns}`);
    });
    assert.equal(r.backend, 'localhost');
    assert.ok(local.requests.some((q) => q.url === '/dns'));
    const dump = await envoy!.configDump();
    const cs = (dump.configs.find((c) => c['@type'].includes('ClustersConfigDump')) as Json).dynamic_active_clusters as Json[];
    const c = cs.find((x) => x.cluster.name === LOCAL_CLUSTER)!.cluster as Json;
    assert.equal(c.type, 'STRICT_DNS');
    assert.equal(c.dns_jitter, '0.100s');
    assert.equal(c.typed_dns_resolver_config.name, 'envoy.network.dns_resolver.cares');
    assert.equal(c.typed_dns_resolver_config.typed_config.udp_max_queries, 100);
    const ep = c.load_assignment.endpoints[0].lb_endpoints[0];
    assert.equal(ep.endpoint.address.socket_address.address, 'localhost');
    assert.equal(ep.health_status, undefined, 'ServiceEntry endpoints carry no health status, as from istiod');
    const stats = await envoy!.stats();
    assert.equal(Number(stats['cluster_manager.cds.update_rejected'] ?? 0), 0, 'CDS ACKed');
    assert.ok(Number(stats[`cluster.${LOCAL_CLUSTER};.update_success`] ?? 0) > 0, 'the host was resolved');
  });
});
