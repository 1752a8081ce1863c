import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { kubectl, startCluster, waitFor, waitForCrdsEstablished, type Cluster } from './cluster.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { runIstioctl } from './fixtures/istioctl.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const NS = 'shop';

/**
 * The token path, as istioctl is used against istiod: a real API server (the
 * local cluster), Sextant in cluster mode (--kubeconfig, tokens checked with
 * TokenReview), and istioctl creating its own token for istio-system/default
 * (audience istio-ca) and calling the secure port with `--insecure`.
 */
describe('istioctl against Sextant in cluster mode: service-account token on the secure port', { skip: skipUnless('envoy', 'istioctl', 'etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok') }, () => {
  const crdsDir = fileURLToPath(new URL('../../crds/', import.meta.url));
  const NODE = `sidecar~10.250.0.9~client-1.${NS}~${NS}.svc.cluster.local`;
  let cluster: Cluster | undefined;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  const k = (args: string[], input?: string) => kubectl(cluster!.kubeconfig, args, input);

  before(async () => {
    cluster = await startCluster({ nodes: 1 });
    await k(['apply', '--server-side', '-f', crdsDir]);
    await waitForCrdsEstablished(cluster.kubeconfig);
    await k(['create', 'namespace', 'istio-system']);
    await k(['create', 'namespace', NS]);
    // Plaintext mesh: the bare Envoy has no SDS server for auto-mTLS secrets.
    await k(['apply', '-f', '-'], 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: DISABLE}}\n');
    sextant = await startSextant({ kubeconfig: cluster.kubeconfig, args: ['--namespace', 'istio-system', '--pod-name', 'sextant-kube-0'], readyTimeoutMs: 90_000 });
    envoy = await startEnvoy({ adsAddress: sextant.xdsAddress, nodeId: NODE, metadata: { NAMESPACE: NS, CLUSTER_ID: 'Kubernetes' } });
    await envoy.waitForListener('virtualOutbound', 60_000);
    // istioctl asks the API server for a token of istio-system/default; the controller-manager creates that account.
    await waitFor('ServiceAccount istio-system/default', async () => (await k(['get', 'serviceaccount', 'default', '-n', 'istio-system', '-o', 'name'])).includes('default'), 60_000);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await cluster?.stop();
  });

  test('proxy-status --xds-address <secure> --insecure: istioctl\'s own token passes TokenReview and the proxy is listed SYNCED', async () => {
    const out = await runIstioctl(cluster!.kubeconfig, ['proxy-status', '-v', '1', '--xds-address', sextant!.secureAddress, '--insecure']);
    const row = out.split('\n').find((l) => l.startsWith(NODE));
    assert.ok(row, out);
    assert.ok((row.match(/SYNCED/g)?.length ?? 0) >= 2, row);
    assert.match(out, /sextant-kube-0/);
  });

  test('HTTP /debug/* from a non-loopback address: a TokenReview-checked token of the system namespace reads it, another namespace does not', async () => {
    const admin = (await k(['create', 'token', 'default', '-n', 'istio-system', '--audience', 'istio-ca', '--duration=10m'])).trim();
    const app = (await k(['create', 'token', 'default', '-n', NS, '--audience', 'istio-ca', '--duration=10m'])).trim();
    const url = new URL(`${sextant!.httpUrl}/debug/syncz`);
    const get = (token?: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: Number(url.port), path: url.pathname, localAddress: '127.0.0.3', agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await get(), 401);
    assert.equal(await get(admin), 200);
    assert.equal(await get(app), 403);
  });
});
