import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type Cluster, clusterPids, kubectl, kubectlJson, startCluster, waitFor } from './cluster.js';
import { skipUnless } from './tools.js';

const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok');

interface Pod {
  metadata: { name: string };
  status: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}
interface EndpointSlice {
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
  ports?: { port?: number }[];
}

/** The process exists and is not a zombie waiting to be reaped. */
function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

const manifests = `
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: example.invalid/web:1
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sidecar, namespace: demo}
`;

describe('local cluster (etcd, kube-apiserver, kcm, scheduler, kwok)', { skip, timeout: 600_000 }, () => {
  let cluster: Cluster;
  let kc: string;

  before(async () => {
    cluster = await startCluster();
    kc = cluster.kubeconfig;
  });

  after(async () => {
    await cluster?.stop();
  });

  test('serves the API with the default namespace, ServiceAccount and a Ready fake node', async () => {
    assert.match(cluster.apiServerUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const sa = await kubectlJson<{ metadata: { name: string } }>(kc, ['get', 'serviceaccount', 'default', '-n', 'default']);
    assert.equal(sa.metadata.name, 'default');
    const node = await kubectlJson<{ status: { conditions: { type: string; status: string }[] } }>(kc, ['get', 'node', 'kwok-node-0']);
    assert.equal(node.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
  });

  test('a Deployment gets Running pods with IPs and its Service an EndpointSlice with 2 ready endpoints', async () => {
    await kubectl(kc, ['apply', '-f', '-'], manifests);
    await kubectl(kc, ['rollout', 'status', 'deployment/web', '-n', 'demo', '--timeout=120s'], undefined, 130_000);

    const pods = await waitFor('2 Running pods with IPs', async () => {
      const list = await kubectlJson<{ items: Pod[] }>(kc, ['get', 'pods', '-n', 'demo', '-l', 'app=web']);
      const running = list.items.filter((p) => p.status.phase === 'Running' && p.status.podIP);
      return running.length === 2 ? running : undefined;
    });
    const ips = pods.map((p) => p.status.podIP ?? '').sort();
    assert.notEqual(ips[0], ips[1], 'pods got distinct IPs');
    for (const ip of ips) assert.match(ip, /^198\.1[89]\.\d+\.\d+$/, 'pod IPs come from the pod CIDR 198.18.0.0/15');

    const slice = await waitFor('an EndpointSlice for demo/web with 2 ready endpoints', async () => {
      const list = await kubectlJson<{ items: EndpointSlice[] }>(kc, [
        'get', 'endpointslices', '-n', 'demo', '-l', 'kubernetes.io/service-name=web',
      ]);
      const s = list.items.find((x) => (x.endpoints ?? []).filter((e) => e.conditions?.ready === true).length === 2);
      return s;
    });
    assert.deepEqual((slice.endpoints ?? []).flatMap((e) => e.addresses).sort(), ips);
    assert.equal(slice.ports?.[0]?.port, 8080);
  });

  test('TokenReview authenticates a ServiceAccount token for audience istio-ca, and only for it', async () => {
    const token = (await kubectl(kc, ['create', 'token', 'sidecar', '-n', 'demo', '--audience', 'istio-ca', '--duration', '1h'])).trim();
    assert.ok(token.split('.').length === 3, 'a JWT');
    const review = (audiences: string[]) =>
      kubectlJson<{ status: { authenticated?: boolean; audiences?: string[]; user?: { username?: string }; error?: string } }>(
        kc,
        ['create', '-f', '-'],
        JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } }),
      );
    const ok = await review(['istio-ca']);
    assert.equal(ok.status.authenticated, true, `not authenticated: ${ok.status.error ?? ''}`);
    assert.equal(ok.status.user?.username, 'system:serviceaccount:demo:sidecar');
    assert.deepEqual(ok.status.audiences, ['istio-ca']);
    const wrong = await review(['some-other-audience']);
    assert.notEqual(wrong.status.authenticated, true, 'a token for istio-ca must not pass for another audience');
  });

  test('restarting kube-apiserver keeps state and serves again', async () => {
    const before = clusterPids(cluster.dir)['kube-apiserver'];
    assert.ok(before && isAlive(before));
    await cluster.restartApiServer();
    const afterPid = clusterPids(cluster.dir)['kube-apiserver'];
    assert.ok(afterPid && afterPid !== before && isAlive(afterPid), 'a new kube-apiserver process');
    assert.equal(isAlive(before), false, 'the old kube-apiserver is gone');
    const d = await kubectlJson<{ spec: { replicas: number } }>(kc, ['get', 'deployment', 'web', '-n', 'demo']);
    assert.equal(d.spec.replicas, 2);
    // Controllers keep working through the restart: scale up and see a third pod run.
    await kubectl(kc, ['scale', 'deployment/web', '-n', 'demo', '--replicas=3']);
    await kubectl(kc, ['rollout', 'status', 'deployment/web', '-n', 'demo', '--timeout=120s'], undefined, 130_000);
  });

  test('stop() leaves no process and no data behind', async () => {
    const recorded = clusterPids(cluster.dir);
    assert.deepEqual(
      Object.keys(recorded).sort(),
      ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'watchdog'],
    );
    const pids = Object.values(recorded);
    for (const pid of pids) assert.ok(isAlive(pid));
    const dir = cluster.dir;
    await cluster.stop();
    for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} still alive after stop()`);
    assert.equal(existsSync(dir), false, 'the temp state dir is removed');
  });
});

describe('cluster watchdog', { skip, timeout: 300_000 }, () => {
  test('a cluster whose owner process dies is torn down without stop()', async () => {
    const owner = spawn('sleep', ['600'], { stdio: 'ignore' });
    const ownerPid = owner.pid;
    assert.ok(ownerPid);
    let cluster: Cluster | undefined;
    try {
      cluster = await startCluster({ ownerPid });
      const pids = Object.values(clusterPids(cluster.dir));
      assert.equal(pids.length, 6);
      for (const pid of pids) assert.ok(isAlive(pid));
      const exited = new Promise((r) => owner.once('exit', r));
      owner.kill('SIGKILL');
      await exited;
      await waitFor('every cluster process to exit after its owner died', async () => pids.every((p) => !isAlive(p)), 60_000);
    } finally {
      owner.kill('SIGKILL');
      await cluster?.stop();
    }
  });
});
