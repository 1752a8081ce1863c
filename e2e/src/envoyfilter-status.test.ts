import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { type Cluster, kubectl, kubectlJson, startCluster, waitFor, waitForCrdsEstablished } from './cluster.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

/**
 * The PatchesApplied condition Sextant writes on EnvoyFilters (istiod writes
 * none), against the real kube-apiserver: a real Envoy sidecar in `shop`
 * gets its config; of the EnvoyFilter's three patches one matches (a Lua
 * filter before the router on port 9080), one matches nothing (port 7777 has
 * no listener) and one cannot apply (a CLUSTER MERGE with a field Envoy's
 * Cluster does not have). The leader writes `PatchesApplied=False`, reason
 * `NotApplied`, naming the last two; once the EnvoyFilter keeps only the
 * first patch the condition turns `True` (reason `Applied`).
 */
const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'envoy');
const crdsDir = fileURLToPath(new URL('../../crds/', import.meta.url));
const ns = 'shop';
const node = `sidecar~10.250.0.8~web-5d4b9c-x2k9p.${ns}~${ns}.svc.cluster.local`;

const service = (name: string, ip: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  clusterIP: ${ip}
  selector: {app: ${name}}
  ports: [{name: http, port: 9080, targetPort: 9080}]
`;

const luaBeforeRouter = (port: number) => `
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        portNumber: ${port}
        filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          default_source_code: {inline_string: "function envoy_on_response(h) h:headers():add('x-ef', '${port}') end"}`;

const envoyFilter = (patches: string) => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua-status, namespace: ${ns}}
spec:
  configPatches:${patches}
`;

const badClusterMerge = `
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND}
    patch: {operation: MERGE, value: {no_such_field: 1}}`;

type Condition = { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string; observedGeneration?: number };

describe('EnvoyFilter status: PatchesApplied names the patches that matched nothing or could not apply', { skip, timeout: 240_000 }, () => {
  let cluster: Cluster;
  let sextant: RunningSextant;
  let envoy: RunningEnvoy;
  let dir = '';
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);
  const conditionOf = async (): Promise<Condition | undefined> => {
    const ef = await kubectlJson<{ status?: { conditions?: Condition[] } }>(cluster.kubeconfig, ['get', 'envoyfilter', '-n', ns, 'lua-status']);
    return ef.status?.conditions?.find((c) => c.type === 'PatchesApplied');
  };

  before(async () => {
    cluster = await startCluster({ nodes: 1 });
    await k(['create', 'namespace', 'istio-system']);
    await k(['create', 'namespace', ns]);
    await k(['apply', '--server-side', '-f', crdsDir]);
    await waitForCrdsEstablished(cluster.kubeconfig);
    await k(['apply', '-f', '-'], service('ratings', '10.96.21.12') + '---\n' + service('details', '10.96.21.11'));
    await k(['apply', '-f', '-'], envoyFilter(luaBeforeRouter(9080) + luaBeforeRouter(7777) + badClusterMerge));
    dir = mkdtempSync(join(tmpdir(), 'sextant-ef-status-'));
    writeFileSync(join(dir, 'mesh.yaml'), 'enableAutoMtls: false\n');
    sextant = await startSextant({
      kubeconfig: cluster.kubeconfig,
      args: ['--namespace', 'istio-system', '--pod-name', 'sextant-ef-status', '--mesh-config', join(dir, 'mesh.yaml'), '--debounce-after', '50ms'],
      readyTimeoutMs: 60_000,
    });
    envoy = await startEnvoy({ adsAddress: sextant.xdsAddress, nodeId: node, metadata: { ISTIO_VERSION: '1.31-dev' } });
    await envoy.waitForStat((s) => Number(s['http.outbound_0.0.0.0_9080;.rds.9080.update_success'] ?? 0) >= 1, 'Envoy accepted route 9080', 60_000);
  });

  after(async () => {
    await envoy?.stop().catch(() => undefined);
    await sextant?.stop().catch(() => undefined);
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('one patch matched, one matched nothing, one could not apply: PatchesApplied=False naming the last two', async () => {
    const cond = await waitFor('PatchesApplied on the EnvoyFilter', async () => {
      const c = await conditionOf();
      return c?.status === 'False' && /configPatches\[1\]/.test(c.message ?? '') && /configPatches\[2\]/.test(c.message ?? '') && !/configPatches\[0\]/.test(c.message ?? '') ? c : undefined;
    }, 30_000);
    assert.equal(cond.reason, 'NotApplied');
    assert.match(cond.message!, /^2 of 3 patches did not apply: /);
    assert.match(cond.message!, /spec\.configPatches\[1\] \(HTTP_FILTER INSERT_BEFORE\) matched nothing/);
    assert.match(cond.message!, /spec\.configPatches\[2\] \(CLUSTER MERGE\) could not apply: .*no_such_field/);
    assert.doesNotMatch(cond.message!, /configPatches\[0\]/);
    assert.ok(cond.lastTransitionTime);
    assert.equal(cond.observedGeneration, 1);
    // The patch that matched is in the running Envoy.
    const dump = JSON.stringify(await envoy.configDump());
    assert.ok(dump.includes('envoy.filters.http.lua'));
  });

  test('with only the matching patch left, the condition turns True (reason Applied)', async () => {
    await k(['apply', '-f', '-'], envoyFilter(luaBeforeRouter(9080)));
    const cond = await waitFor('PatchesApplied=True', async () => {
      const c = await conditionOf();
      return c?.status === 'True' ? c : undefined;
    }, 30_000);
    assert.equal(cond.reason, 'Applied');
    assert.equal(cond.message, 'all 1 patches matched in the config built for connected proxies');
    assert.equal(cond.observedGeneration, 2);
    // Nothing else of Sextant's was written next to it.
    const ef = await kubectlJson<{ status?: { conditions?: Condition[] } }>(cluster.kubeconfig, ['get', 'envoyfilter', '-n', ns, 'lua-status']);
    assert.deepEqual((ef.status?.conditions ?? []).map((c) => c.type), ['PatchesApplied']);
  });
});
