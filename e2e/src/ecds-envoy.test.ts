/**
 * ECDS against a real Envoy, over ADS State of the World and Delta: an
 * EnvoyFilter inserts an HTTP filter whose config comes by
 * `config_discovery` (the filter's name is the extension config's), and an
 * EXTENSION_CONFIG ADD patch of the same EnvoyFilter holds that config (a
 * Lua filter adding a response header). The daemon serves it as
 * `envoy.config.core.v3.TypedExtensionConfig`; Envoy ACKs it (its config
 * dump shows the extension config with Sextant's version and no error) and
 * real requests carry the header. Editing only the extension config
 * reaches the running Envoy over ECDS, the listener untouched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort, getOnNewConnection, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { listeners } from './fixtures/dump.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const LUA = 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua';
const EXT = 'sextant.ecds.lua';

/** The EnvoyFilter: the filter placeholder (config_discovery over ADS) and its config as an EXTENSION_CONFIG. */
function ecdsFilter(header: string): K8sObject {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name: 'ecds-lua', namespace: 'default' },
    spec: {
      workloadSelector: { labels: { app: 'productpage' } },
      configPatches: [
        {
          applyTo: 'EXTENSION_CONFIG',
          patch: {
            operation: 'ADD',
            value: { name: EXT, typed_config: { '@type': LUA, default_source_code: { inline_string: `function envoy_on_response(handle)\n  handle:headers():add("x-ecds", "${header}")\nend\n` } } },
          },
        },
        {
          applyTo: 'HTTP_FILTER',
          match: {
            context: 'SIDECAR_OUTBOUND',
            listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } },
          },
          patch: { operation: 'INSERT_BEFORE', value: { name: EXT, config_discovery: { config_source: { ads: {}, initial_fetch_timeout: '0s' }, type_urls: [LUA] } } },
        },
      ],
    },
  };
}

interface EcdsDump {
  ecds_filters?: Array<{ version_info?: string; ecds_filter?: { name?: string; typed_config?: Record<string, any> }; error_state?: unknown }>;
}

for (const delta of [false, true]) {
  describe(`ECDS (${delta ? 'Delta' : 'SotW'} ADS): an EnvoyFilter's EXTENSION_CONFIG reaches a filter's config_discovery in a real Envoy`, { skip: skipUnless('envoy') }, () => {
    let cfg: ConfigDir;
    let sextant: RunningSextant | undefined;
    let envoy: RunningEnvoy | undefined;
    let backend: HttpBackend;
    let port: number;

    // A new connection per request.
    const get = () => getOnNewConnection(port, '/', 'reviews');
    const ecds = async () => {
      const dump = await envoy!.configDump();
      const c = dump.configs.filter((x) => x['@type'].endsWith('.EcdsConfigDump')) as unknown as EcdsDump[];
      return c.flatMap((x) => x.ecds_filters ?? []).find((f) => f.ecds_filter?.name === EXT);
    };

    before(async () => {
      backend = await startHttpBackend('reviews-v1', '127.0.0.36');
      port = await freePort();
      cfg = configDir({
        'kubernetes.yaml': [
          namespace('default'),
          namespace('istio-system'),
          pod('productpage-v1-abc', 'default', '127.0.0.1', { app: 'productpage', version: 'v1' }),
          service('reviews', 'default', '10.96.3.16', [{ name: 'http', port }]),
          ...workload({ svc: 'reviews', pod: 'reviews-v1-pod', ip: backend.host, labels: { app: 'reviews' }, ports: [{ name: 'http', port: backend.port }] }),
        ],
        'istio.yaml': [
          meshPlaintext(),
          istio('Sidecar', 'productpage', 'default', {
            workloadSelector: { labels: { app: 'productpage' } },
            egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] }],
          }),
        ],
        'envoyfilter.yaml': [ecdsFilter('one')],
      });
      sextant = await startSextant({ configDir: cfg.dir });
      envoy = await startEnvoy({
        adsAddress: sextant.xdsAddress,
        nodeId: 'sidecar~127.0.0.1~productpage-v1-abc.default~default.svc.cluster.local',
        metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'NONE' },
        delta,
      });
      await envoy.waitForListener(`127.0.0.1_${port}`);
    });

    after(async () => {
      await envoy?.stop();
      await sextant?.stop();
      await backend?.close();
      cfg?.remove();
    });

    test('Envoy ACKed the extension config (its version, no error) and the listener names it before the router', async () => {
      const f = await until(ecds, (x) => x?.version_info !== undefined && x.version_info !== '', 'the extension config in the config dump');
      assert.equal(f!.error_state, undefined, JSON.stringify(f));
      assert.equal(f!.ecds_filter?.typed_config?.['@type'], LUA);
      const l = listeners(await envoy!.configDump()).get(`127.0.0.1_${port}`) as Record<string, any>;
      const hcm = (l.filter_chains ?? []).flatMap((fc: Record<string, any>) => fc.filters ?? []).find((x: Record<string, any>) => x.name === 'envoy.filters.network.http_connection_manager');
      const names = (hcm.typed_config.http_filters as Array<{ name: string; config_discovery?: unknown }>).map((h) => h.name);
      assert.deepEqual(names.slice(-2), [EXT, 'envoy.filters.http.router']);
    });

    test('a request through Envoy carries the header the discovered Lua filter adds', async () => {
      const r = await get();
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-ecds'], 'one');
    });

    test('editing only the extension config reaches the running Envoy over ECDS; the listener is not updated', async () => {
      const before = await envoy!.stats();
      cfg.write('envoyfilter.yaml', [ecdsFilter('two')]);
      await until(get, (r) => r.headers['x-ecds'] === 'two', 'the new extension config in use');
      const afterStats = await envoy!.stats();
      assert.equal(typeof afterStats['listener_manager.listener_modified'], 'number');
      assert.equal(afterStats['listener_manager.listener_modified'], before['listener_manager.listener_modified'], 'the listener was not replaced');
      const f = await ecds();
      assert.equal(f!.error_state, undefined, JSON.stringify(f));
    });
  });
}
