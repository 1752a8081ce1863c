import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '@sextant/api';
import { createWebhookServer } from '@sextant/admin/webhooks';
import { type Cluster, helm, kubectl, kubectlJson, startCluster, waitForCrdsEstablished } from './cluster.js';
import { selfSignedCert } from './fixtures/secure.js';
import { skipUnless } from './tools.js';

const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'helm');
const chartDir = fileURLToPath(new URL('../../charts/sextant', import.meta.url));

describe('Helm chart and the validation webhook against a real API server', { skip, timeout: 600_000 }, () => {
  let cluster: Cluster;
  let dir: string;
  let webhook: ReturnType<typeof createWebhookServer>;
  let url: string;
  let caBundle: string;
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-chart-'));
    const tls = selfSignedCert(dir);
    caBundle = tls.caBundle;
    webhook = createWebhookServer({ tls, log: silentLogger });
    await webhook.listen({ host: '127.0.0.1', port: 0 });
    const addr = webhook.server.address();
    assert.ok(addr && typeof addr === 'object');
    url = `https://127.0.0.1:${addr.port}`;
    cluster = await startCluster({ nodes: 1 });
    await k(['create', 'namespace', 'istio-system']);
  });
  after(async () => {
    await cluster?.stop();
    await webhook?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('helm lint is clean', async () => {
    const out = await helm(cluster.kubeconfig, ['lint', chartDir, '--strict']);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    const rev = await helm(cluster.kubeconfig, ['lint', chartDir, '--strict', '--set', 'revision=canary', '--set', 'crds.enabled=false']);
    assert.match(rev, /0 chart\(s\) failed/);
  });

  test('the rendered manifests pass a server-side dry run (default and revisioned)', async () => {
    for (const extra of [[], ['--set', 'revision=canary', '--set', 'service.nameAsIstiod=false', '--set', 'crds.enabled=false']]) {
      const manifests = await helm(cluster.kubeconfig, ['template', 'sextant', chartDir, '-n', 'istio-system', '--set', `webhooks.url=${url}`, ...extra]);
      const out = await k(['apply', '--dry-run=server', '-f', '-'], manifests);
      assert.match(out, /validatingwebhookconfiguration\.admissionregistration\.k8s\.io\/istio-validator(-canary)?-istio-system (created|configured) \(server dry run\)/);
      assert.match(out, /deployment\.apps\/sextant(-canary)? (created|configured) \(server dry run\)/);
    }
  });

  test("the daemon's NODE_OPTIONS sizes V8's helper threads (v8PoolSize); env's own NODE_OPTIONS replaces it", async () => {
    const nodeOptions = async (extra: string[]) => {
      const manifests = await helm(cluster.kubeconfig, ['template', 'sextant', chartDir, '-n', 'istio-system', '--show-only', 'templates/deployment.yaml', ...extra]);
      return [...manifests.matchAll(/- name: NODE_OPTIONS\n\s+value: "?([^"\n]*)"?/g)].map((m) => m[1]);
    };
    assert.deepEqual(await nodeOptions([]), ['--v8-pool-size=1']);
    assert.deepEqual(await nodeOptions(['--set', 'v8PoolSize=3']), ['--v8-pool-size=3']);
    assert.deepEqual(await nodeOptions(['--set', 'env.NODE_OPTIONS=--max-old-space-size=2048']), ['--max-old-space-size=2048']);
  });

  test('helm install creates the CRDs, Services and webhook configurations', async () => {
    await helm(cluster.kubeconfig, ['install', 'sextant', chartDir, '-n', 'istio-system', '--set', `webhooks.url=${url}`, '--set', `caBundle=${caBundle}`]);
    await waitForCrdsEstablished(cluster.kubeconfig, ['virtualservices.networking.istio.io', 'destinationrules.networking.istio.io']);
    const vwc = await kubectlJson<{ webhooks: Array<{ name: string; clientConfig: { url?: string; caBundle?: string } }> }>(cluster.kubeconfig, [
      'get', 'validatingwebhookconfiguration', 'istio-validator-istio-system',
    ]);
    assert.equal(vwc.webhooks[0]?.name, 'validation.istio.io');
    assert.equal(vwc.webhooks[0]?.clientConfig.url, `${url}/validate`);
    assert.equal(vwc.webhooks[0]?.clientConfig.caBundle, caBundle);
    const mwc = await kubectlJson<{ webhooks: Array<{ name: string; clientConfig: { url?: string } }> }>(cluster.kubeconfig, ['get', 'mutatingwebhookconfiguration', 'istio-sidecar-injector']);
    assert.ok(mwc.webhooks.some((w) => w.name === 'namespace.sidecar-injector.istio.io' && w.clientConfig.url === `${url}/inject`));
    const svc = await kubectlJson<{ spec: { ports: Array<{ name: string; port: number }> } }>(cluster.kubeconfig, ['get', 'service', '-n', 'istio-system', 'istiod']);
    assert.deepEqual(svc.spec.ports.map((p) => p.port).sort((a, b) => a - b), [443, 15010, 15012, 15014]);
    const cm = await kubectlJson<{ data: { mesh: string } }>(cluster.kubeconfig, ['get', 'configmap', '-n', 'istio-system', 'istio']);
    assert.match(cm.data.mesh, /trustDomain: cluster.local/);
  });

  test('a bad VirtualService is rejected by /validate with a field-level message; a good one is admitted', async () => {
    await k(['create', 'namespace', 'shop']);
    const bad = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - match: [{uri: {regex: "("}}]
    route: [{destination: {host: cart}}]
`;
    await assert.rejects(k(['apply', '-f', '-'], bad), (err: Error) => {
      assert.match(err.message, /admission webhook "validation\.istio\.io" denied the request/);
      assert.match(err.message, /spec\.http\[0\]\.match\[0\]\.uri\.regex: "\(" is not a valid RE2 regex: missing \)/);
      return true;
    });
    await assert.rejects(k(['get', 'virtualservice', '-n', 'shop', 'cart']), /NotFound|not found/);
    const good = bad.replace('regex: "("', 'prefix: /cart');
    await k(['apply', '-f', '-'], good);
    const vs = await kubectlJson<{ spec: { http: Array<{ match: Array<{ uri: { prefix: string } }> }> } }>(cluster.kubeconfig, ['get', 'virtualservice', '-n', 'shop', 'cart']);
    assert.equal(vs.spec.http[0]?.match[0]?.uri.prefix, '/cart');
  });
});
