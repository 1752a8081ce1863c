/**
 * A sidecar without traffic capture, end to end: the real daemon, a real
 * Envoy as `sidecar~127.0.0.1~productpage-v1-abc.default~...` with
 * INTERCEPTION_MODE NONE, and a Sidecar whose egress listener binds
 * 127.0.0.1:<port> with `captureMode: NONE`. Requests to that listener are
 * routed by VirtualService to DestinationRule subsets, which select backends
 * by their Pods' labels. Edits in the config folder (a VirtualService, a
 * Pod's labels) reach the running Envoy without a restart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertEvenSplit, distribution, freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { type RunningEnvoy } from './envoy.js';
import { clusters, listeners, rdsName, routeConfigs } from './fixtures/dump.js';
import { configDir, istio, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { productpagePod, productpageSidecar, reviewsAndRatings, startProductpageProxy } from './fixtures/productpage.js';
import { type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

describe('sidecar (captureMode NONE egress listener) routing to subsets by pod labels', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let port: number;
  const backends: HttpBackend[] = [];
  let r1: HttpBackend, r2: HttpBackend, r3: HttpBackend, ratings: HttpBackend;
  let k8s: K8sObject[];
  const FQDN = 'reviews.default.svc.cluster.local';

  const reviewsVs = (rules: Array<Record<string, unknown>>) => istio('VirtualService', 'reviews', 'default', { hosts: ['reviews'], http: rules });
  const subset = (name: string, weight?: number) => ({ destination: { host: 'reviews', subset: name }, ...(weight !== undefined ? { weight } : {}) });
  const get = (host: string, headers: Record<string, string> = {}) => httpGet(port, '/reviews/0', { host, ...headers });

  before(async () => {
    r1 = await startHttpBackend('reviews-v1', '127.0.0.21');
    r2 = await startHttpBackend('reviews-v2', '127.0.0.22');
    r3 = await startHttpBackend('reviews-v3', '127.0.0.23');
    ratings = await startHttpBackend('ratings-v1', '127.0.0.24');
    backends.push(r1, r2, r3, ratings);
    // Services listen on the egress port (istiod only routes services with that port on an egress listener).
    port = await freePort();
    k8s = [...productpagePod(), ...reviewsAndRatings([{ name: 'http', port }], [{ name: 'http', port }], [r1, r2, r3], ratings)];
    cfg = configDir({
      'kubernetes.yaml': k8s,
      'istio.yaml': [
        ...productpageSidecar(port),
        istio('DestinationRule', 'reviews', 'default', {
          host: 'reviews',
          subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { version: v } })),
        }),
      ],
      'vs.yaml': [reviewsVs([{ match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [subset('v2')] }, { route: [subset('v1', 50), subset('v3', 50)] }])],
    });
    ({ sextant, envoy } = await startProductpageProxy(cfg.dir, port));
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await Promise.all(backends.map((b) => b.close()));
    cfg?.remove();
  });

  test('only the bound egress listener exists (no 15001/15006), RDS named by the port, subset clusters', async () => {
    const dump = await envoy!.configDump();
    const ls = listeners(dump);
    assert.deepEqual([...ls.keys()], [`127.0.0.1_${port}`]);
    assert.equal(rdsName(ls.get(`127.0.0.1_${port}`)!), String(port));
    const rc = routeConfigs(dump).get(String(port))!.config;
    const names = (rc.virtual_hosts as Array<{ name: string }>).map((v) => v.name);
    assert.deepEqual(names, [`ratings.default.svc.cluster.local:${port}`, `${FQDN}:${port}`, 'allow_any']);
    const cs = [...clusters(dump).keys()];
    for (const s of ['v1', 'v2', 'v3']) assert.ok(cs.includes(`outbound|${port}|${s}|${FQDN}`), `${s} in ${cs}`);
  });

  test('end-user: jason goes to the v2 pod only', async () => {
    for (let i = 0; i < 30; i++) assert.equal((await get('reviews', { 'end-user': 'jason' })).backend, 'reviews-v2');
  });

  test('everyone else is split 50/50 between v1 and v3 (±5% over 2000), never v2', async () => {
    const counts = await distribution(2000, async () => (await get(FQDN)).backend);
    assertEvenSplit(counts, 2000, 'reviews-v1', 'reviews-v3', 'reviews-v2', 0.05);
  });

  test('a service without a VirtualService gets the default route; short names and VIP match', async () => {
    assert.equal((await get('ratings')).backend, 'ratings-v1');
    assert.equal((await get('ratings.default')).backend, 'ratings-v1');
    assert.equal((await get('10.96.2.12')).backend, 'ratings-v1');
  });

  test('a VirtualService edit (everything to v3) reaches the running Envoy', async () => {
    const before = routeConfigs(await envoy!.configDump()).get(String(port))!.version;
    cfg.write('vs.yaml', [reviewsVs([{ route: [subset('v3')] }])]);
    await until(async () => routeConfigs(await envoy!.configDump()).get(String(port))?.version, (v) => !!v && v !== before, 'a new route version');
    const counts = await distribution(200, async () => (await get('reviews', { 'end-user': 'jason' })).backend, 8);
    assert.deepEqual([...counts], [['reviews-v3', 200]]);
  });

  test("relabelling a Pod moves its endpoint between subsets (EDS), no restart", async () => {
    // reviews-v1's pod becomes version v3: subset v3 now has both backends.
    const relabelled = k8s.map((o) => (o.kind === 'Pod' && o.metadata.name === `${r1.name}-pod` ? { ...o, metadata: { ...o.metadata, labels: { app: 'reviews', version: 'v3' } } } : o));
    cfg.write('kubernetes.yaml', relabelled);
    const seen = await until(
      () => distribution(40, async () => (await get('reviews')).backend, 4),
      (c) => (c.get('reviews-v1') ?? 0) > 0,
      'traffic to the relabelled pod through subset v3',
    );
    assert.equal(seen.get('reviews-v2'), undefined);
  });
});
