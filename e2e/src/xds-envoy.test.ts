/**
 * A real Envoy against the ADS server, once over SotW (GRPC) and once over
 * Delta (DELTA_GRPC): it ACKs every resource, routes real HTTP from a loopback
 * listener to a loopback backend, picks up a change without restart, and NACKs
 * an invalid resource while keeping (and being left with) the last good config.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { recordingLogger } from '@sextant/api';
import { TypeUrl } from '@sextant/envoy';
import { edsCluster, httpListener, loadAssignment, routeTo, startHarness, waitFor, type Harness } from '@sextant/testing/xds-harness';
import { freePort, until } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { skipUnless } from './tools.js';

async function get(port: number): Promise<{ status: number; body: string; version: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}/hello`);
  return { status: res.status, body: await res.text(), version: res.headers.get('x-sextant-version') };
}

for (const delta of [false, true]) {
  describe(`Envoy over ${delta ? 'Delta (DELTA_GRPC)' : 'SotW (GRPC)'} ADS`, { skip: skipUnless('envoy') }, () => {
    let h: Harness;
    let backend: Server;
    let envoy: RunningEnvoy;
    let listenPort: number;
    const nodeId = `sidecar~127.0.0.1~envoy-${delta ? 'delta' : 'sotw'}.default~default.svc.cluster.local`;
    const log = recordingLogger();

    before(async () => {
      backend = createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`backend saw ${req.url}`);
      });
      await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
      const backendPort = (backend.address() as { port: number }).port;
      listenPort = await freePort();
      h = await startHarness({ log, controlPlaneId: 'sextant-e2e' });
      h.clusters.replace([edsCluster('backend')]);
      h.endpoints.set('backend', loadAssignment('backend', [{ address: '127.0.0.1', port: backendPort }]));
      h.listeners.replace([httpListener('http', '127.0.0.1', listenPort, 'local-route')]);
      h.routes.replace([routeTo('local-route', 'backend', { key: 'x-sextant-version', value: '1' })]);
      h.pushAll('initial');
      envoy = await startEnvoy({ adsAddress: h.address, nodeId, delta, metadata: { ISTIO_VERSION: 'test' } });
    });

    after(async () => {
      await envoy?.stop();
      await h?.stop();
      await new Promise((r) => backend?.close(r));
    });

    function status() {
      const c = h.server.connections().find((x) => x.proxyId === nodeId);
      assert.ok(c, 'envoy is connected');
      return c;
    }

    test('Envoy ACKs every resource and routes HTTP to the backend', async () => {
      await envoy.waitForListener('http');
      const res = await until(() => get(listenPort), (r) => r.status === 200, 'HTTP 200 through Envoy');
      assert.equal(res.body, 'backend saw /hello');
      assert.equal(res.version, '1');
      await waitFor(
        () => {
          const c = status();
          const types = new Map(c.types.map((t) => [t.typeUrl, t]));
          return [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration].every((t) => {
            const s = types.get(t);
            return s !== undefined && s.nonceSent !== undefined && s.nonceAcked === s.nonceSent && s.nacks === 0;
          });
        },
        'ACKs for CDS, EDS, LDS and RDS',
        10_000,
      );
      const c = status();
      assert.equal(c.delta, delta);
      const eds = c.types.find((t) => t.typeUrl === TypeUrl.ClusterLoadAssignment)!;
      assert.deepEqual(eds.names, ['backend']);
      const dump = await envoy.configDump();
      const routes = dump.configs.find((x) => x['@type'].endsWith('.RoutesConfigDump')) as { dynamic_route_configs?: { route_config: { name: string } }[] };
      assert.deepEqual(routes.dynamic_route_configs?.map((r) => r.route_config.name), ['local-route']);
      const stats = await envoy.stats();
      assert.equal(stats['control_plane.connected_state'], 1);
    });

    test('Envoy picks up a route change without restart', async () => {
      h.routes.set(routeTo('local-route', 'backend', { key: 'x-sextant-version', value: '2' }));
      h.pushAll('route v2');
      const res = await until(() => get(listenPort), (r) => r.version === '2', 'the new route header');
      assert.equal(res.body, 'backend saw /hello');
    });

    test('Envoy NACKs an invalid cluster; the server records it, does not re-send it, and Envoy keeps the last good config', async () => {
      const cdsPushes = () => h.server.metrics().pushesByType['cds'] ?? 0;
      // connect_timeout must be > 0 (a proto constraint Envoy enforces; encoding does not).
      h.clusters.set(edsCluster('broken', { connectTimeout: '-1s' }));
      h.pushAll('invalid cluster');
      await waitFor(() => (status().types.find((t) => t.typeUrl === TypeUrl.Cluster)?.nacks ?? 0) >= 1, 'a CDS NACK', 10_000);
      const cds = status().types.find((t) => t.typeUrl === TypeUrl.Cluster)!;
      assert.ok(cds.lastNack && cds.lastNack.message.length > 0);
      assert.match(cds.lastNack.message, /duration|broken|connect_timeout|constraint/i);
      assert.ok(log.entries.some((e) => e.level === 'warn' && e['proxy'] === nodeId && String(e.msg).includes('NACK')));
      await envoy.waitForStat((s) => Number(s['cluster_manager.cds.update_rejected'] ?? 0) >= 1, 'cds.update_rejected');
      // Traffic still flows on the last good config.
      const res = await get(listenPort);
      assert.equal(res.status, 200);
      assert.equal(res.version, '2');
      // A push that changes nothing does not re-send the rejected clusters.
      const before = cdsPushes();
      const nacks = status().types.find((t) => t.typeUrl === TypeUrl.Cluster)!.nacks;
      h.pushAll('unrelated');
      // Wait for the push to be processed: a route change is sent after CDS in the same pass.
      h.routes.set(routeTo('local-route', 'backend', { key: 'x-sextant-version', value: '3' }));
      h.pushAll('route v3');
      await until(() => get(listenPort), (r) => r.version === '3', 'route v3');
      assert.equal(cdsPushes(), before, 'the NACKed CDS content was not re-sent');
      assert.equal(status().types.find((t) => t.typeUrl === TypeUrl.Cluster)!.nacks, nacks);
      // Fixing the config is accepted again.
      h.clusters.delete('broken');
      h.pushAll('fixed');
      await waitFor(() => {
        const t = status().types.find((x) => x.typeUrl === TypeUrl.Cluster)!;
        return t.nonceAcked === t.nonceSent && t.nonceSent !== cds.nonceSent;
      }, 'the fixed CDS to be ACKed', 10_000);
      assert.equal((await get(listenPort)).status, 200);
    });
  });
}
