import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '@sextant/api';
import { createAdminServer, createMetrics, createMonitoringServer } from './index.js';

test('/ready answers 503 until every source synced, then 200', async () => {
  let ready = false;
  const app = createAdminServer({
    host: '127.0.0.1',
    port: 0,
    isReady: () => ready,
    log: silentLogger,
    debug: { syncz: () => [], configDump: () => undefined, configIssues: () => [], pushStatus: () => ({}) },
  });
  assert.equal((await app.inject({ url: '/ready' })).statusCode, 503);
  ready = true;
  assert.equal((await app.inject({ url: '/ready' })).statusCode, 200);
  await app.close();
});

test('/debug/config_dump needs a proxyID and 404s for unknown proxies', async () => {
  const app = createAdminServer({
    host: '127.0.0.1',
    port: 0,
    isReady: () => true,
    log: silentLogger,
    debug: { syncz: () => [], configDump: (id) => (id === 'p1' ? { configs: [] } : undefined), configIssues: () => [], pushStatus: () => ({}) },
  });
  assert.equal((await app.inject({ url: '/debug/config_dump' })).statusCode, 400);
  assert.equal((await app.inject({ url: '/debug/config_dump?proxyID=nope' })).statusCode, 404);
  const ok = await app.inject({ url: '/debug/config_dump?proxyID=p1' });
  assert.deepEqual(ok.json(), { configs: [] });
  await app.close();
});

test('/metrics serves istiod-named metrics in Prometheus text format', async () => {
  const metrics = createMetrics();
  metrics.xdsPushes.inc({ type: 'cds' }, 3);
  const app = createMonitoringServer(metrics.registry);
  const res = await app.inject({ url: '/metrics' });
  assert.equal(res.statusCode, 200);
  assert.match(res.body, /pilot_xds_pushes\{type="cds"\} 3/);
  await app.close();
});
