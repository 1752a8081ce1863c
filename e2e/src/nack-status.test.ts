import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { type Cluster, kubectl, kubectlJson, startCluster, waitFor, waitForCrdsEstablished } from './cluster.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { debugJson, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

/**
 * A real Envoy NACKs a route built from a VirtualService: Sextant traces the
 * rejected RouteConfiguration back to that VirtualService and writes
 * `Reconciled=False` (reason ProxyRejected) on its status, lists it on
 * /debug/config_issues and counts it in pilot_total_xds_rejects{type="rds"};
 * once the object is fixed and the proxy ACKs, the condition is cleared.
 *
 * The VirtualService sets a request header whose value holds a newline: Istio's
 * schema (and Sextant's validation) accept it, Envoy's proto validation of
 * HeaderValue.value does not.
 */
const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'envoy');
const crdsDir = fileURLToPath(new URL('../../crds/', import.meta.url));
const ns = 'shop';
const node = `sidecar~10.250.0.7~web-5d4b9c-q7k2m.${ns}~${ns}.svc.cluster.local`;

const service = (name: string, ip: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  clusterIP: ${ip}
  selector: {app: ${name}}
  ports: [{name: http, port: 9080, targetPort: 9080}]
`;

const virtualService = (headerValue: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: ${ns}}
spec:
  hosts: [ratings]
  http:
  - headers:
      request:
        set: {x-debug: ${JSON.stringify(headerValue)}}
    route: [{destination: {host: ratings}}]
`;

const detailsVirtualService = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: ${ns}}
spec:
  hosts: [details]
  http:
  - timeout: 3s
    route: [{destination: {host: details}}]
`;

type Condition = { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string };
type Rejection = { proxyId: string; typeUrl: string; resources: string[]; objects: Array<{ kind: string; namespace: string; name: string }>; message: string };

async function rejects(url: string, type: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^pilot_total_xds_rejects\\{type="${type}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('folder mode: a NACK is traced to the object on /debug/config_issues', { skip: skipUnless('envoy'), timeout: 120_000 }, () => {
  for (const delta of [false, true]) test(`Envoy (${delta ? 'Delta' : 'SotW'} ADS) rejects the route built from one VirtualService: listed with that object only, counted; fixed and ACKed, it clears`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sextant-nack-folder-'));
    writeFileSync(join(dir, 'mesh.yaml'), 'enableAutoMtls: false\n');
    const cfg = join(dir, 'config');
    mkdirSync(cfg);
    writeFileSync(join(cfg, 'services.yaml'), service('ratings', '10.96.20.12') + '---\n' + service('details', '10.96.20.11') + '---\n' + detailsVirtualService);
    const sextant = await startSextant({ configDir: cfg, args: ['--mesh-config', join(dir, 'mesh.yaml'), '--debounce-after', '50ms'] });
    let envoy: RunningEnvoy | undefined;
    try {
      envoy = await startEnvoy({ adsAddress: sextant.xdsAddress, nodeId: node, metadata: { ISTIO_VERSION: '1.31-dev' }, delta });
      const e = envoy;
      await e.waitForStat((s) => Number(s['http.outbound_0.0.0.0_9080;.rds.9080.update_success'] ?? 0) >= 1, 'Envoy accepted route 9080', 30_000);
      writeFileSync(join(cfg, 'ratings.yaml'), virtualService('on\ncall'));
      await e.waitForStat((s) => Number(s['http.outbound_0.0.0.0_9080;.rds.9080.update_rejected'] ?? 0) >= 1, 'Envoy rejected route 9080', 30_000);
      const listed = await waitFor('the rejection on /debug/config_issues', async () =>
        ((await debugJson(sextant.httpUrl, '/debug/config_issues')) as { rejectedByProxy: Rejection[] }).rejectedByProxy.find((r) => r.proxyId === node),
      );
      assert.deepEqual(listed.resources, ['9080']);
      assert.deepEqual(listed.objects, [{ kind: 'VirtualService', namespace: ns, name: 'ratings' }]);
      assert.ok((await rejects(sextant.monitoringUrl, 'rds')) >= 1);
      const accepted = Number((await e.stats())['http.outbound_0.0.0.0_9080;.rds.9080.update_success'] ?? 0);
      writeFileSync(join(cfg, 'ratings.yaml'), virtualService('on-call'));
      await e.waitForStat((s) => Number(s['http.outbound_0.0.0.0_9080;.rds.9080.update_success'] ?? 0) > accepted, 'Envoy accepted the fixed route', 30_000);
      await waitFor('the rejection cleared', async () => ((await debugJson(sextant.httpUrl, '/debug/config_issues')) as { rejectedByProxy: Rejection[] }).rejectedByProxy.length === 0);
    } finally {
      await envoy?.stop();
      await sextant.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a NACK shows on the status of the object that caused it', { skip, timeout: 240_000 }, () => {
  let cluster: Cluster;
  let sextant: RunningSextant;
  let envoy: RunningEnvoy;
  let dir = '';
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);
  const conditionOf = async (): Promise<Condition | undefined> => {
    const vs = await kubectlJson<{ status?: { conditions?: Condition[] } }>(cluster.kubeconfig, ['get', 'virtualservice', '-n', ns, 'ratings']);
    return vs.status?.conditions?.find((c) => c.type === 'Reconciled' && c.reason === 'ProxyRejected');
  };

  before(async () => {
    cluster = await startCluster({ nodes: 1 });
    await k(['create', 'namespace', 'istio-system']);
    await k(['create', 'namespace', ns]);
    await k(['apply', '--server-side', '-f', crdsDir]);
    await waitForCrdsEstablished(cluster.kubeconfig);
    await k(['apply', '-f', '-'], service('ratings', '10.96.20.12') + '---\n' + service('details', '10.96.20.11'));
    await k(['apply', '-f', '-'], detailsVirtualService);
    // Plain-text upstreams: this Envoy has no SDS source for Istio's mTLS secrets.
    dir = mkdtempSync(join(tmpdir(), 'sextant-nack-'));
    writeFileSync(join(dir, 'mesh.yaml'), 'enableAutoMtls: false\n');
    sextant = await startSextant({
      kubeconfig: cluster.kubeconfig,
      args: ['--namespace', 'istio-system', '--pod-name', 'sextant-nack', '--mesh-config', join(dir, 'mesh.yaml'), '--debounce-after', '50ms'],
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

  test('Envoy rejects the route: Reconciled=False/ProxyRejected on the VirtualService, /debug/config_issues, pilot_total_xds_rejects; fixed and ACKed, it clears', async () => {
    const rejectsBefore = await rejects(sextant.monitoringUrl, 'rds');
    await k(['apply', '-f', '-'], virtualService('on\ncall'));
    await envoy.waitForStat((s) => Number(s['http.outbound_0.0.0.0_9080;.rds.9080.update_rejected'] ?? 0) >= 1, 'Envoy rejected route 9080', 30_000);

    const cond = await waitFor('ProxyRejected condition on the VirtualService', conditionOf, 30_000);
    assert.equal(cond.status, 'False');
    assert.match(cond.message ?? '', /^Envoy rejected RDS 9080 built from this object \(proxy sidecar~10\.250\.0\.7~web-5d4b9c-q7k2m\.shop~shop\.svc\.cluster\.local\)/);
    assert.ok(cond.lastTransitionTime, 'the condition carries its transition time');

    const issues = (await debugJson(sextant.httpUrl, '/debug/config_issues')) as { rejectedByProxy: Rejection[] };
    const mine = issues.rejectedByProxy.find((r) => r.proxyId === node);
    assert.ok(mine, 'the rejection is listed on /debug/config_issues');
    assert.equal(mine.typeUrl, 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration');
    assert.deepEqual(mine.resources, ['9080']);
    // Only the object whose virtual host changed is blamed, not every VirtualService or Service of the port.
    assert.deepEqual(mine.objects, [{ kind: 'VirtualService', namespace: ns, name: 'ratings' }]);
    assert.ok((await rejects(sextant.monitoringUrl, 'rds')) > rejectsBefore, 'pilot_total_xds_rejects{type="rds"} counted the NACK');

    // The other VirtualService on the same route stays untouched.
    const details = await kubectlJson<{ status?: { conditions?: Condition[] } }>(cluster.kubeconfig, ['get', 'virtualservice', '-n', ns, 'details']);
    assert.equal((details.status?.conditions ?? []).filter((c) => c.reason === 'ProxyRejected').length, 0);

    // Fixed: Envoy accepts the next version and the condition goes away.
    const accepted = Number((await envoy.stats())['http.outbound_0.0.0.0_9080;.rds.9080.update_success'] ?? 0);
    await k(['apply', '-f', '-'], virtualService('on-call'));
    await envoy.waitForStat((s) => Number(s['http.outbound_0.0.0.0_9080;.rds.9080.update_success'] ?? 0) > accepted, 'Envoy accepted the fixed route 9080', 30_000);
    await waitFor('ProxyRejected condition cleared', async () => (await conditionOf()) === undefined, 30_000);
    const after = (await debugJson(sextant.httpUrl, '/debug/config_issues')) as { rejectedByProxy: Rejection[] };
    assert.deepEqual(after.rejectedByProxy, []);
  });
});
