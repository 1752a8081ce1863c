import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '@sextant/api';
import { createWebhookServer } from '@sextant/admin/webhooks';
import { createKubeSource, registryKinds, type KubeSource } from '@sextant/sources';
import { type Cluster, helm, kubectl, kubectlJson, startCluster } from './cluster.js';
import { selfSignedCert } from './fixtures/secure.js';
import { skipUnless } from './tools.js';

const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'helm');
const chartDir = fileURLToPath(new URL('../../charts/sextant', import.meta.url));

interface PodJson {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: Array<{ name: string; image: string; args?: string[] }>; initContainers?: Array<{ name: string }>; volumes?: Array<{ name: string }> };
}

describe('sidecar injection through the API server', { skip, timeout: 600_000 }, () => {
  let cluster: Cluster;
  let dir: string;
  let webhook: ReturnType<typeof createWebhookServer>;
  let namespaces: KubeSource;
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-inject-'));
    const tls = selfSignedCert(dir);
    cluster = await startCluster({ nodes: 1 });
    // Namespace labels come from the Kubernetes source's cache, as in the daemon.
    namespaces = createKubeSource({ kubeconfigPath: cluster.kubeconfig, log: silentLogger, kinds: registryKinds().filter((x) => x.kind === 'Namespace') });
    await namespaces.start();
    const labels = (ns: string) => namespaces.snapshot().find((o) => o.kind === 'Namespace' && o.metadata.name === ns)?.metadata.labels;
    webhook = createWebhookServer({
      tls,
      inject: { hub: 'docker.io/istio', tag: '1.24.0', discoveryAddress: 'istiod.istio-system.svc:15012', trustDomain: 'cluster.local' },
      namespaceLabels: labels,
      log: silentLogger,
    });
    await webhook.listen({ host: '127.0.0.1', port: 0 });
    const addr = webhook.server.address();
    assert.ok(addr && typeof addr === 'object');
    await k(['create', 'namespace', 'istio-system']);
    await helm(cluster.kubeconfig, ['install', 'sextant', chartDir, '-n', 'istio-system', '--set', `webhooks.url=https://127.0.0.1:${addr.port}`, '--set', `caBundle=${tls.caBundle}`]);
    await k(['create', 'namespace', 'app']);
    await k(['label', 'namespace', 'app', 'istio-injection=enabled']);
    await k(['create', 'namespace', 'plain']);
    // Wait until the cache has the label, by the source's own events.
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the namespace label never reached the source')), 60_000);
      const check = () => {
        if (labels('app')?.['istio-injection'] === 'enabled') {
          clearTimeout(t);
          off();
          resolve();
        }
      };
      const off = namespaces.onBatch(check);
      check();
    });
  });
  after(async () => {
    await namespaces?.stop();
    await cluster?.stop();
    await webhook?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const podYaml = (ns: string, name: string, labels = '{app: web, version: v1}') => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: ${labels}}
spec:
  containers:
  - {name: web, image: example.invalid/web:1, ports: [{containerPort: 8080}]}
`;

  test('a pod in a namespace labelled istio-injection=enabled comes back with the sidecar', async () => {
    await k(['apply', '-f', '-'], podYaml('app', 'web'));
    const pod = await kubectlJson<PodJson>(cluster.kubeconfig, ['get', 'pod', '-n', 'app', 'web']);
    assert.deepEqual(pod.spec.containers.map((c) => c.name), ['web', 'istio-proxy']);
    const proxy = pod.spec.containers[1]!;
    assert.equal(proxy.image, 'docker.io/istio/proxyv2:1.24.0');
    assert.deepEqual(proxy.args?.slice(0, 2), ['proxy', 'sidecar']);
    assert.deepEqual(pod.spec.initContainers?.map((c) => c.name), ['istio-init']);
    const vols = new Set(pod.spec.volumes?.map((v) => v.name));
    for (const v of ['istio-envoy', 'istio-data', 'istio-podinfo', 'istio-token', 'istiod-ca-cert']) assert.ok(vols.has(v), v);
    assert.equal(pod.metadata.labels?.['security.istio.io/tlsMode'], 'istio');
    assert.equal(pod.metadata.labels?.['service.istio.io/canonical-name'], 'web');
    const status = JSON.parse(pod.metadata.annotations?.['sidecar.istio.io/status'] ?? '{}') as { containers?: string[] };
    assert.deepEqual(status.containers, ['istio-proxy']);
  });

  test('pods opting out, and pods in unlabelled namespaces, are left alone', async () => {
    await k(['apply', '-f', '-'], podYaml('app', 'opt-out', '{app: web, sidecar.istio.io/inject: "false"}'));
    await k(['apply', '-f', '-'], podYaml('plain', 'web'));
    for (const [ns, name] of [['app', 'opt-out'], ['plain', 'web']] as const) {
      const pod = await kubectlJson<PodJson>(cluster.kubeconfig, ['get', 'pod', '-n', ns, name]);
      assert.deepEqual(pod.spec.containers.map((c) => c.name), ['web'], `${ns}/${name}`);
      assert.equal(pod.metadata.annotations?.['sidecar.istio.io/status'], undefined);
    }
  });
});
