import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { KINDS } from '@sextant/api';
import { createCsr } from '@sextant/ca';
import { caClient } from '@sextant/testing/ca';
import { type Cluster, helm, kubectl, kubectlJson, startCluster, waitFor, waitForCrdsEstablished } from './cluster.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

/**
 * The chart's RBAC, proven against a real API server: `sextant discovery`
 * runs with a token of the chart's own ServiceAccount (not the admin
 * credential the other Kubernetes tests use) and must do every job it does in
 * a cluster: list/watch every kind it reads, win its Lease, create the CA
 * Secret, publish the root into namespaces, patch its webhooks' caBundle,
 * write Istio object status and review workload tokens. Nothing it does may
 * be forbidden, and `kubectl auth can-i` with the same token shows the grants
 * stop there.
 */
const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'helm');
const chartDir = fileURLToPath(new URL('../../charts/sextant', import.meta.url));
const crdsDir = fileURLToPath(new URL('../../crds/', import.meta.url));

const cp = 'istio-system';
const sa = 'sextant';
const app = 'rbac-app';
const podName = 'sextant-rbac-0';
const validator = `istio-validator-${cp}`;
const injector = 'istio-sidecar-injector';

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `kubectl auth can-i` with KUBECONFIG: true for "yes", false for "no" (exit 1); anything else fails. */
function canI(kubeconfig: string, args: string[]): Promise<boolean> {
  return new Promise((resolve, reject) => {
    execFile(process.env['KUBECTL'] ?? 'kubectl', ['--kubeconfig', kubeconfig, 'auth', 'can-i', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const out = String(stdout).trim();
      if (out === 'yes' && !err) resolve(true);
      else if (out.startsWith('no')) resolve(false);
      else reject(new Error(`kubectl auth can-i ${args.join(' ')}: ${err?.message ?? ''} ${String(stderr).trim()} ${out}`));
    });
  });
}

function invalidVirtualService(name: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${app}}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {regex: "("}}]
    route: [{destination: {host: reviews}}]
`;
}

describe('the chart RBAC is enough for sextant discovery, and no more', { skip, timeout: 170_000 }, () => {
  let cluster: Cluster;
  let dir: string;
  let saKubeconfig: string;
  let sextant: RunningSextant | undefined;
  let root = '';
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-rbac-'));
    cluster = await startCluster({ nodes: 1 });
    await k(['create', 'namespace', cp]);
    await k(['apply', '--server-side', '-f', crdsDir]);
    await waitForCrdsEstablished(cluster.kubeconfig);
    // The webhooks point at a closed port: validation (failurePolicy Ignore) is down, so invalid objects reach the cluster.
    const down = `https://127.0.0.1:${await closedPort()}`;
    await helm(cluster.kubeconfig, ['install', 'sextant', chartDir, '-n', cp, '--set', `webhooks.url=${down}`, '--set', 'crds.enabled=false']);
    const token = (await k(['create', 'token', sa, '-n', cp, '--duration=1h'])).trim();
    assert.ok(token.split('.').length === 3, 'kubectl create token printed a JWT');
    saKubeconfig = join(dir, 'sextant-sa.kubeconfig');
    // Same server and CA as the admin kubeconfig; the user is the ServiceAccount.
    writeFileSync(
      saKubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'local', cluster: { server: cluster.apiServerUrl, 'certificate-authority': cluster.caCertPath } }],
        users: [{ name: `${cp}:${sa}`, user: { token } }],
        contexts: [{ name: 'sextant', context: { cluster: 'local', user: `${cp}:${sa}`, namespace: cp } }],
        'current-context': 'sextant',
      }),
      { mode: 0o600 },
    );
    assert.equal((await kubectl(saKubeconfig, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])).trim(), `system:serviceaccount:${cp}:${sa}`);
    sextant = await startSextant({ kubeconfig: saKubeconfig, args: ['--namespace', cp, '--pod-name', podName], readyTimeoutMs: 60_000 });
  });

  after(async () => {
    await sextant?.stop().catch(() => undefined);
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('ready: every informer (core kinds, CRDs and every Istio kind) listed and watched with the ServiceAccount token', async () => {
    const synced = await sextant!.waitForLog((l) => l.msg === 'kubernetes source synced');
    // The CRD informer plus one informer per kind Sextant reads (all Istio CRDs are installed).
    assert.equal(synced.informers, KINDS.length, `informers synced: ${String(synced.informers)} of ${KINDS.length} kinds`);
    const res = await fetch(`${sextant!.httpUrl}/ready`);
    assert.equal(res.status, 200);
  });

  test('it wins its Lease and creates the self-signed CA Secret istio-ca-secret', async () => {
    type Lease = { spec?: { holderIdentity?: string; renewTime?: string } };
    const held = await waitFor('Lease sextant-leader held by this Sextant', async () => {
      const lease = await kubectlJson<Lease>(cluster.kubeconfig, ['get', 'lease', '-n', cp, 'sextant-leader']).catch(() => undefined);
      return lease?.spec?.holderIdentity === podName ? lease.spec : undefined;
    }, 30_000);
    // Renewals are updates of the Lease (every 2 s).
    await waitFor('the Lease renewed', async () => {
      const lease = await kubectlJson<Lease>(cluster.kubeconfig, ['get', 'lease', '-n', cp, 'sextant-leader']);
      return lease.spec?.holderIdentity === podName && lease.spec.renewTime !== held.renewTime;
    }, 15_000);
    const secret = await waitFor('Secret istio-ca-secret', async () =>
      kubectlJson<{ type?: string; data?: Record<string, string> }>(cluster.kubeconfig, ['get', 'secret', '-n', cp, 'istio-ca-secret']).catch(() => undefined),
    30_000);
    assert.equal(secret.type, 'istio.io/ca-root');
    const caCert = Buffer.from(secret.data?.['ca-cert.pem'] ?? '', 'base64').toString('utf8');
    assert.ok(secret.data?.['ca-key.pem'], 'the Secret holds the CA key');
    const x = new X509Certificate(caCert);
    assert.ok(x.ca, 'ca-cert.pem is a CA certificate');
    assert.equal(x.issuer, x.subject, 'self-signed');
    root = caCert;
  });

  test('it publishes istio-ca-root-cert into a namespace created later', async () => {
    assert.ok(root, 'the CA Secret was read');
    await k(['create', 'namespace', app]);
    const pem = await waitFor(`istio-ca-root-cert in ${app}`, async () =>
      (await kubectlJson<{ data?: Record<string, string> }>(cluster.kubeconfig, ['get', 'configmap', '-n', app, 'istio-ca-root-cert']).catch(() => undefined))?.data?.['root-cert.pem'],
    30_000);
    assert.equal(new X509Certificate(pem).fingerprint256, new X509Certificate(root).fingerprint256, 'the published root is the one in istio-ca-secret');
    // An edited copy is repaired: an update of the existing ConfigMap.
    await k(['patch', 'configmap', '-n', app, 'istio-ca-root-cert', '--type=merge', '-p', JSON.stringify({ data: { 'root-cert.pem': 'tampered' } })]);
    await waitFor(`istio-ca-root-cert in ${app} repaired`, async () =>
      (await kubectlJson<{ data?: Record<string, string> }>(cluster.kubeconfig, ['get', 'configmap', '-n', app, 'istio-ca-root-cert']))?.data?.['root-cert.pem'] === pem,
    30_000);
    await sextant!.waitForLog((l) => l.msg === 'updated istio-ca-root-cert' && l.namespace === app, 5_000);
  });

  test("it sets its webhook configurations' caBundle to the CA root", async () => {
    const want = new X509Certificate(root).fingerprint256;
    const fingerprint = (b64?: string) => (b64 ? new X509Certificate(Buffer.from(b64, 'base64')).fingerprint256 : '');
    for (const [kind, name] of [
      ['validatingwebhookconfiguration', validator],
      ['mutatingwebhookconfiguration', injector],
    ] as const) {
      await waitFor(`${kind} ${name} caBundle = the root`, async () => {
        const c = await kubectlJson<{ webhooks: Array<{ clientConfig: { caBundle?: string } }> }>(cluster.kubeconfig, ['get', kind, name]);
        return c.webhooks.length > 0 && c.webhooks.every((w) => fingerprint(w.clientConfig.caBundle) === want);
      }, 30_000);
    }
  });

  test('it writes IST0106 status on an invalid VirtualService admitted while the webhook was down', async () => {
    await k(['apply', '-f', '-'], invalidVirtualService('broken'));
    const status = await waitFor('IST0106 status on VirtualService broken', async () => {
      const vs = await kubectlJson<{ status?: { validationMessages?: Array<{ type?: { code?: string }; level?: string }>; conditions?: Array<{ reason?: string; status?: string; message?: string }> } }>(
        cluster.kubeconfig,
        ['get', 'virtualservice', '-n', app, 'broken'],
      );
      return vs.status?.validationMessages?.some((m) => m.type?.code === 'IST0106') ? vs.status : undefined;
    }, 30_000);
    const cond = status.conditions?.find((c) => c.reason === 'SchemaValidationError');
    assert.equal(cond?.status, 'False');
    assert.match(cond?.message ?? '', /spec\.http\[0\]\.match\[0\]\.uri\.regex/);
  });

  test('TokenReview: a workload token (audience istio-ca) gets a certificate for its identity over the TLS port; a token for another audience does not', async () => {
    await k(['create', 'serviceaccount', '-n', app, 'reviews']);
    const spiffe = `spiffe://cluster.local/ns/${app}/sa/reviews`;
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const csr = createCsr(key, { uris: [spiffe] });
    const client = caClient(sextant!.secureAddress, root);
    try {
      const good = (await k(['create', 'token', 'reviews', '-n', app, '--audience', 'istio-ca', '--duration=10m'])).trim();
      const chain = await client.createCertificate(csr, { token: good });
      assert.ok(chain.length >= 1);
      const leaf = new X509Certificate(chain[0]!);
      assert.match(leaf.subjectAltName ?? '', new RegExp(`URI:${spiffe.replace(/[/.]/g, '\\$&')}`));
      assert.ok(leaf.checkIssued(new X509Certificate(root)) || chain.length > 1, 'issued under the root');
      // The API server's own audience is not istio-ca: TokenReview answers, and Sextant refuses.
      const other = (await k(['create', 'token', 'reviews', '-n', app, '--duration=10m'])).trim();
      await assert.rejects(client.createCertificate(csr, { token: other }), /UNAUTHENTICATED|authenticat/i);
    } finally {
      client.close();
    }
  });

  test('kubectl auth can-i with the same token: what Sextant uses is allowed, the rest is not', async () => {
    const yes: string[][] = [
      ...KINDS.map((kd) => ['watch', kd.group ? `${kd.plural}.${kd.group}` : kd.plural, '--all-namespaces']),
      ['list', 'customresourcedefinitions.apiextensions.k8s.io'],
      ['create', 'tokenreviews.authentication.k8s.io'],
      ['create', 'configmaps', '-n', app],
      ['update', 'configmaps/istio-ca-root-cert', '-n', app],
      ['patch', 'virtualservices.networking.istio.io/broken', '--subresource=status', '-n', app],
      ['create', 'secrets', '-n', cp],
      ['update', 'secrets/istio-ca-secret', '-n', cp],
      ['create', 'leases.coordination.k8s.io', '-n', cp],
      ['update', 'leases.coordination.k8s.io/sextant-leader', '-n', cp],
      ['update', `validatingwebhookconfigurations.admissionregistration.k8s.io/${validator}`],
      ['update', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${injector}`],
      // The caBundle patcher watches its two configurations by metadata.name, which RBAC checks as their resourceName.
      ['watch', `validatingwebhookconfigurations.admissionregistration.k8s.io/${validator}`],
      ['watch', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${injector}`],
    ];
    const no: string[][] = [
      ['delete', 'pods', '--all-namespaces'],
      ['create', 'pods', '-n', app],
      ['update', 'services', '-n', app],
      ['update', 'secrets/cacerts', '-n', cp],
      ['update', 'secrets/some-other', '-n', cp],
      ['patch', 'secrets/istio-ca-secret', '-n', cp],
      ['delete', 'secrets/istio-ca-secret', '-n', cp],
      ['create', 'secrets', '-n', app],
      ['update', 'secrets/istio-ca-secret', '-n', app],
      ['update', 'leases.coordination.k8s.io/kube-controller-manager', '-n', 'kube-system'],
      ['update', 'leases.coordination.k8s.io/some-other', '-n', cp],
      ['create', 'leases.coordination.k8s.io', '-n', app],
      ['delete', 'leases.coordination.k8s.io/sextant-leader', '-n', cp],
      ['get', 'leases.coordination.k8s.io/some-other', '-n', cp],
      ['list', 'leases.coordination.k8s.io', '-n', cp],
      ['update', 'configmaps/some-other', '-n', app],
      ['delete', 'configmaps/istio-ca-root-cert', '-n', app],
      ['update', 'virtualservices.networking.istio.io/broken', '-n', app],
      ['create', 'virtualservices.networking.istio.io', '-n', app],
      ['delete', 'virtualservices.networking.istio.io/broken', '-n', app],
      ['update', 'virtualservices.networking.istio.io/broken', '--subresource=status', '-n', app],
      ['update', 'customresourcedefinitions.apiextensions.k8s.io/virtualservices.networking.istio.io'],
      ['update', 'validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses'],
      ['update', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses'],
      ['patch', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${injector}`],
      ['delete', `validatingwebhookconfigurations.admissionregistration.k8s.io/${validator}`],
      ['get', 'validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses'],
      ['list', 'mutatingwebhookconfigurations.admissionregistration.k8s.io'],
      ['create', 'serviceaccounts/token', '-n', app],
      ['create', 'certificatesigningrequests.certificates.k8s.io'],
      ['update', 'namespaces', '--all-namespaces'],
      ['update', 'nodes'],
      ['impersonate', 'serviceaccounts', '-n', app],
      ['bind', 'clusterroles.rbac.authorization.k8s.io'],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
    ];
    const asks = [...yes.map((args) => ({ args, want: true })), ...no.map((args) => ({ args, want: false }))];
    const wrong: string[] = [];
    // A few kubectl processes at a time (two cores, possibly shared with another test file).
    for (let i = 0; i < asks.length; i += 6) {
      await Promise.all(
        asks.slice(i, i + 6).map(async ({ args, want }) => {
          const got = await canI(saKubeconfig, args);
          if (got !== want) wrong.push(`can-i ${args.join(' ')}: got ${got ? 'yes' : 'no'}, want ${want ? 'yes' : 'no'}`);
        }),
      );
    }
    assert.deepEqual(wrong.sort(), []);
  });

  test('Sextant logged nothing forbidden (no 403 from the API server) while doing all of the above', async () => {
    // The work above ran to completion; the lease has been renewed since (retry period 2 s), so its writes were seen too.
    const lines = sextant!.logs.filter((l) => /forbidden|: 403\b/i.test(JSON.stringify(l)));
    assert.deepEqual(lines, []);
    assert.ok(sextant!.logs.some((l) => l.msg === 'became leader'), 'it led');
    assert.equal(sextant!.process.exitCode, null, 'still running');
  });
});
