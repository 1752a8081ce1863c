/**
 * `make run`'s command shape on examples/bookinfo: the daemon serving the
 * example folder, checked two ways that must agree with what istiod would
 * generate for productpage's sidecar: the offline `sextant translate`, and a
 * real Envoy (sidecar node for productpage) whose config dump is walked from
 * listener `0.0.0.0_9080` → route `9080` → virtual host
 * `reviews.default.svc.cluster.local:9080` → `outbound|9080|v2|reviews...`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { clusters, listeners, rdsName, routeConfigs } from './fixtures/dump.js';
import { startSdsStandIn, type SdsStandIn } from './fixtures/sds.js';
import { sextantBin, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

type Json = Record<string, any>;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BOOKINFO = join(repoRoot, 'examples', 'bookinfo');
const PRODUCTPAGE = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';
const REVIEWS = 'reviews.default.svc.cluster.local';
const VH = `${REVIEWS}:9080`;

/** The reviews routing Istio generates from examples/bookinfo/istio.yaml, in either JSON spelling. */
function assertReviewsRoutes(vh: Json, snake: boolean): void {
  const k = (camel: string) => (snake ? camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : camel);
  assert.ok((vh.domains as string[]).includes('reviews'), `short name in ${vh.domains}`);
  const [jason, rest] = vh.routes as Json[];
  assert.equal(vh.routes.length, 2, JSON.stringify(vh.routes.map((r: Json) => r.match)));
  assert.deepEqual(
    jason!.match.headers.map((h: Json) => [h.name, h[k('stringMatch')]?.exact]),
    [['end-user', 'jason']],
  );
  assert.equal(jason!.route.cluster, `outbound|9080|v2|${REVIEWS}`);
  assert.equal(rest!.match.prefix, '/');
  const wc = rest!.route[k('weightedClusters')].clusters.map((c: Json) => [c.name, Number(c.weight)]);
  assert.deepEqual(wc, [[`outbound|9080|v1|${REVIEWS}`, 50], [`outbound|9080|v3|${REVIEWS}`, 50]]);
}

describe('examples/bookinfo as `make run` serves it', () => {
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let sds: SdsStandIn | undefined;

  before(async () => {
    sextant = await startSextant({ configDir: 'examples/bookinfo', env: {} });
  });
  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await sds?.stop();
  });

  test('sextant translate: 0.0.0.0_9080 → RDS 9080 → reviews virtual host → subset clusters', async () => {
    const run = (type: string) =>
      promisify(execFile)(process.execPath, [sextantBin, 'translate', '-f', BOOKINFO, '--proxy', PRODUCTPAGE, '--type', type], { cwd: repoRoot, maxBuffer: 64 << 20 }).then(
        (r) => JSON.parse(r.stdout) as Json[],
      );
    const [lds, rds, cds] = await Promise.all([run('lds'), run('rds'), run('cds')]);
    const l = lds.find((x) => x.name === '0.0.0.0_9080')!;
    assert.ok(l, `0.0.0.0_9080 in ${lds.map((x) => x.name)}`);
    assert.equal(l.bindToPort, false);
    assert.equal(l.filterChains[0].filters[0].typedConfig.rds.routeConfigName, '9080');
    const rc = rds.find((r) => r.name === '9080')!;
    assertReviewsRoutes(rc.virtualHosts.find((v: Json) => v.name === VH), false);
    for (const s of ['v1', 'v2', 'v3']) assert.ok(cds.some((c) => c.name === `outbound|9080|${s}|${REVIEWS}`), s);
  });

  test('a real Envoy as productpage sidecar gets the same reviews routing from the running daemon', { skip: skipUnless('envoy') }, async () => {
    // The sidecar binds 15001/15006 (virtualOutbound/virtualInbound) as a pod's Envoy does;
    // per-port listeners such as 0.0.0.0_9080 are bind_to_port false.
    sds = await startSdsStandIn('spiffe://cluster.local/ns/default/sa/bookinfo-productpage');
    envoy = await startEnvoy({
      adsAddress: sextant!.xdsAddress,
      nodeId: PRODUCTPAGE,
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'REDIRECT', LABELS: { app: 'productpage', version: 'v1' } },
      bootstrapExtra: sds.bootstrapExtra(sextant!.xdsAddress),
    });
    await envoy.waitForListener('virtualOutbound');
    await envoy.waitForListener('0.0.0.0_9080');
    const dump = await envoy.configDump();
    const l = listeners(dump).get('0.0.0.0_9080');
    assert.ok(l, `0.0.0.0_9080 in ${[...listeners(dump).keys()]}`);
    assert.equal(rdsName(l), '9080');
    const rc = routeConfigs(dump).get('9080')?.config;
    assert.ok(rc, `route 9080 in ${[...routeConfigs(dump).keys()]}`);
    const vh = (rc.virtual_hosts as Json[]).find((v) => v.name === VH);
    assert.ok(vh, `${VH} in ${(rc.virtual_hosts as Json[]).map((v) => v.name)}`);
    assertReviewsRoutes(vh, true);
    const cs = clusters(dump);
    for (const s of ['v1', 'v2', 'v3']) assert.ok(cs.has(`outbound|9080|${s}|${REVIEWS}`), `${s} active in ${[...cs.keys()]}`);
  });
});
