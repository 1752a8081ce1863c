import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { recordingLogger, silentLogger, type LogEntry } from '@sextant/api';
import { createLeaderElector, createRootCertPublisher, createTokenReviewer } from '@sextant/kube';
import { createKubeSource, KubeClient, type ConfigEvent, type ConfigObject, type KubeSource } from '@sextant/sources';
import { type Cluster, kubectl, kubectlJson, startCluster, waitFor, waitForCrdsEstablished } from './cluster.js';
import { skipUnless } from './tools.js';

const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok');
const crdsDir = fileURLToPath(new URL('../../crds/', import.meta.url));

/** Collects a source's events; `until` resolves when the predicate holds over all events seen (checked per batch). */
function collect(src: KubeSource) {
  const events: ConfigEvent[] = [];
  const checks = new Set<() => void>();
  src.onBatch((b) => {
    events.push(...b.events);
    for (const c of [...checks]) c();
  });
  return {
    events,
    until(what: string, pred: () => boolean, ms = 60_000): Promise<void> {
      if (pred()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          checks.delete(check);
          reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
        const check = () => {
          if (pred()) {
            clearTimeout(t);
            checks.delete(check);
            resolve();
          }
        };
        checks.add(check);
      });
    },
  };
}

const ev = (events: ConfigEvent[], type: string, kind: string, name: string, ns?: string) =>
  events.find((e) => e.type === type && e.object.kind === kind && e.object.metadata.name === name && (ns === undefined || e.object.metadata.namespace === ns));

/** kind/ns/name@resourceVersion for every object, sorted: two sources agree when these agree. */
function fingerprint(objs: ConfigObject[], kinds: Set<string>, ns?: string): string[] {
  return objs
    .filter((o) => kinds.has(o.kind) && (ns === undefined || o.metadata.namespace === ns))
    .map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}@${o.metadata.resourceVersion}`)
    .sort();
}

describe('Kubernetes source against a real API server', { skip, timeout: 600_000 }, () => {
  let cluster: Cluster;
  let src: KubeSource;
  let c: ReturnType<typeof collect>;
  const entries: LogEntry[] = [];
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);

  before(async () => {
    cluster = await startCluster({ nodes: 1 });
    src = createKubeSource({ kubeconfigPath: cluster.kubeconfig, log: recordingLogger(entries), timing: { backoffInitialMs: 100, backoffMaxMs: 2_000, stallTimeoutMs: 60_000 } });
    c = collect(src);
  });
  after(async () => {
    await src?.stop();
    await cluster?.stop();
  });

  test('syncs every core informer; Istio kinds wait for their CRDs', async () => {
    await src.start();
    assert.equal(src.hasSynced(), true);
    const names = src.informers().map((i) => i.name);
    for (const n of ['Service/v1', 'Pod/v1', 'Namespace/v1', 'Node/v1', 'Secret/v1', 'ConfigMap/v1', 'EndpointSlice.discovery.k8s.io/v1', 'CustomResourceDefinition.apiextensions.k8s.io/v1']) {
      assert.ok(names.includes(n), `informer ${n} in ${names.join(', ')}`);
    }
    assert.ok(!names.some((n) => n.startsWith('VirtualService')), 'no VirtualService informer before its CRD exists');
    assert.ok(ev(c.events, 'add', 'Namespace', 'default'), 'the initial state includes namespace default');
    assert.ok(ev(c.events, 'add', 'Service', 'kubernetes', 'default'), 'and the kubernetes Service');
  });

  test('CRDs installed after start: their informers start and objects flow', async () => {
    await k(['apply', '--server-side', '-f', crdsDir]);
    await waitForCrdsEstablished(cluster.kubeconfig);
    await k(['create', 'namespace', 'shop']);
    await k(
      ['apply', '-f', '-'],
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route:
    - destination: {host: cart, subset: v1}
`,
    );
    await c.until('VirtualService shop/cart', () => Boolean(ev(c.events, 'add', 'VirtualService', 'cart', 'shop')));
    const vs = ev(c.events, 'add', 'VirtualService', 'cart', 'shop')!.object;
    assert.equal(vs.group, 'networking.istio.io');
    assert.equal(vs.version, 'v1');
    assert.ok(src.informers().some((i) => i.name === 'VirtualService.networking.istio.io/v1' && i.synced));
  });

  test('kubectl changes become events: Deployment, Service, EndpointSlice, scaling', async () => {
    await k(
      ['apply', '-f', '-'],
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers:
      - {name: cart, image: example.invalid/cart:1, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{name: http, port: 80, targetPort: 8080}]
`,
    );
    const ready = (n: number) => () => {
      const slices = src.snapshot().filter((o) => o.kind === 'EndpointSlice' && o.metadata.namespace === 'shop' && o.metadata.labels?.['kubernetes.io/service-name'] === 'cart');
      const addrs = slices.flatMap((s) => ((s.body as { endpoints?: Array<{ addresses: string[]; conditions?: { ready?: boolean } }> }).endpoints ?? []).filter((e) => e.conditions?.ready));
      return addrs.length === n;
    };
    await c.until('Service shop/cart', () => Boolean(ev(c.events, 'add', 'Service', 'cart', 'shop')));
    await c.until('one ready endpoint for cart', ready(1), 120_000);
    await k(['scale', '-n', 'shop', 'deployment/cart', '--replicas=3']);
    await c.until('three ready endpoints for cart', ready(3), 120_000);
    await k(['scale', '-n', 'shop', 'deployment/cart', '--replicas=2']);
    await c.until('two ready endpoints for cart', ready(2), 120_000);
  });

  test('an invalid object that bypassed admission is reported and skipped; the rest keeps flowing', async () => {
    // No webhook runs in this cluster and the CRD schema cannot express "one of", so the API server stores it.
    await k(
      ['apply', '-f', '-'],
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad, namespace: shop}
spec:
  host: cart
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, consistentHash: {httpHeaderName: x-user}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: good, namespace: shop}
spec:
  host: cart
`,
    );
    await c.until('DestinationRule shop/good', () => Boolean(ev(c.events, 'add', 'DestinationRule', 'good', 'shop')));
    await waitFor('DestinationRule shop/bad rejected', async () => src.rejected().some((r) => r.kind === 'DestinationRule' && r.name === 'bad'), 30_000);
    assert.equal(ev(c.events, 'add', 'DestinationRule', 'bad', 'shop'), undefined, 'never served');
    const issue = src.rejected().find((r) => r.name === 'bad')!;
    assert.equal(issue.namespace, 'shop');
    assert.equal(issue.field, 'spec.trafficPolicy.loadBalancer');
    assert.ok(entries.some((e) => e.level === 'warn' && e.kind === 'DestinationRule' && e.name === 'bad' && typeof e.field === 'string'));
  });

  test('dropped watch connections are recovered by the supervisor', async () => {
    const restartsBefore = src.stats().restartsTotal;
    const seenBefore = c.events.length;
    src.dropConnections();
    await k(['create', 'configmap', '-n', 'shop', 'after-drop', '--from-literal=k=v']);
    await c.until('ConfigMap written after the drop', () => Boolean(ev(c.events, 'add', 'ConfigMap', 'after-drop', 'shop')));
    assert.ok(src.stats().restartsTotal > restartsBefore, 'the supervisor restarted the informers');
    const deletes = c.events.slice(seenBefore).filter((e) => e.type === 'delete');
    assert.deepEqual(deletes.map((e) => `${e.object.kind}/${e.object.metadata.namespace}/${e.object.metadata.name}`), [], 'no spurious deletes');
  });

  test('an API server restart during churn ends with the same state as a fresh list', async () => {
    const deletesBefore = c.events.filter((e) => e.type === 'delete').length;
    const restartsBefore = src.stats().restartsTotal;
    let churning = true;
    let writes = 0;
    const churn = (async () => {
      for (let i = 0; churning && i < 400; i++) {
        try {
          await k(['create', 'configmap', '-n', 'shop', `churn-${i}`, `--from-literal=i=${i}`]);
          if (i % 3 === 0) await k(['delete', 'configmap', '-n', 'shop', `churn-${i}`]);
          writes++;
        } catch {
          // Writes fail while the API server is down; that is the point.
        }
      }
    })();
    await cluster.restartApiServer();
    await k(['create', 'configmap', '-n', 'shop', 'after-restart', '--from-literal=k=v']);
    churning = false;
    await churn;
    assert.ok(writes > 0, 'churn wrote something');
    assert.ok(src.stats().restartsTotal > restartsBefore, 'the restart broke the watches and the supervisor resumed them');
    await k(['create', 'configmap', '-n', 'shop', 'churn-end', '--from-literal=k=v']);
    await c.until('the last write after the restart', () => Boolean(ev(c.events, 'add', 'ConfigMap', 'churn-end', 'shop')), 120_000);
    const fresh = createKubeSource({ kubeconfigPath: cluster.kubeconfig, log: silentLogger });
    await fresh.start();
    try {
      const kinds = new Set(['ConfigMap', 'VirtualService', 'DestinationRule', 'Service', 'EndpointSlice', 'Namespace', 'Pod']);
      const want = fingerprint(fresh.snapshot(), kinds, 'shop');
      assert.deepEqual(fingerprint(src.snapshot(), kinds, 'shop'), want);
      // Deletes seen are only the churn's real ones (every third ConfigMap).
      const deletes = c.events.slice().filter((e) => e.type === 'delete').length - deletesBefore;
      const churnDeletes = c.events.filter((e) => e.type === 'delete' && e.object.kind === 'ConfigMap' && e.object.metadata.name.startsWith('churn-')).length;
      assert.equal(deletes, churnDeletes, 'no delete other than the churn deletes');
    } finally {
      await fresh.stop();
    }
  });

  test('leader election on a real Lease: one leader, handover on release', async () => {
    const client = new KubeClient({ kubeconfigPath: cluster.kubeconfig });
    await k(['create', 'namespace', 'istio-system']).catch(() => undefined);
    const mk = (id: string) =>
      createLeaderElector({ client, namespace: 'istio-system', name: 'sextant-e2e', identity: id, leaseDurationMs: 6_000, renewDeadlineMs: 4_000, retryPeriodMs: 500, log: silentLogger });
    const a = mk('replica-a');
    const b = mk('replica-b');
    a.start();
    await a.whenLeading();
    b.start();
    const lease = await kubectlJson<{ spec: { holderIdentity: string; renewTime: string } }>(cluster.kubeconfig, ['get', 'lease', '-n', 'istio-system', 'sextant-e2e']);
    assert.equal(lease.spec.holderIdentity, 'replica-a');
    assert.equal(b.isLeader(), false);
    await a.stop();
    await b.whenLeading();
    const after = await kubectlJson<{ spec: { holderIdentity: string; leaseTransitions: number } }>(cluster.kubeconfig, ['get', 'lease', '-n', 'istio-system', 'sextant-e2e']);
    assert.equal(after.spec.holderIdentity, 'replica-b');
    assert.equal(after.spec.leaseTransitions, 1);
    await b.stop();
  });

  test('TokenReview authenticates a service account token for audience istio-ca', async () => {
    const client = new KubeClient({ kubeconfigPath: cluster.kubeconfig });
    await k(['create', 'serviceaccount', '-n', 'shop', 'cart']);
    const token = (await k(['create', 'token', '-n', 'shop', 'cart', '--audience', 'istio-ca'])).trim();
    const r = await createTokenReviewer(client).review(token, ['istio-ca']);
    assert.equal(r.authenticated, true);
    assert.equal(r.namespace, 'shop');
    assert.equal(r.serviceAccount, 'cart');
    const other = (await k(['create', 'token', '-n', 'shop', 'cart', '--audience', 'something-else'])).trim();
    const bad = await createTokenReviewer(client).review(other, ['istio-ca']);
    assert.equal(bad.authenticated, false);
  });

  test('istio-ca-root-cert is published into every namespace, including new ones', async () => {
    const client = new KubeClient({ kubeconfigPath: cluster.kubeconfig });
    const root = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';
    const pub = createRootCertPublisher({ client, getRootPem: () => root, log: silentLogger });
    await pub.start();
    try {
      const get = async (ns: string) =>
        (await kubectlJson<{ data: Record<string, string> }>(cluster.kubeconfig, ['get', 'configmap', '-n', ns, 'istio-ca-root-cert']).catch(() => undefined))?.data?.['root-cert.pem'];
      await waitFor('root cert in shop', async () => (await get('shop')) === root, 60_000);
      assert.equal(await get('default'), root);
      assert.equal(await get('kube-system'), undefined, 'kube-system is skipped');
      await k(['create', 'namespace', 'late']);
      await waitFor('root cert in a new namespace', async () => (await get('late')) === root, 60_000);
    } finally {
      await pub.stop();
    }
  });
});
