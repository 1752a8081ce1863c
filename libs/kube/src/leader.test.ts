import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '@sextant/api';
import { KubeClient } from '@sextant/sources';
import { createLeaderElector, microTime } from './leader.js';
import { createRootCertPublisher } from './rootcert.js';
import { TestApiServer } from '@sextant/testing/kube-apiserver';
import { createTokenReviewer } from './tokenreview.js';
import { createSecretCaStore } from './castore.js';

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

describe('leader election, token review, root cert publisher (test API server)', () => {
  let api: TestApiServer;
  let client: KubeClient;
  before(async () => {
    api = new TestApiServer();
    await api.listen();
    client = api.client();
  });
  after(async () => api.close());

  test('microTime has six fractional digits', () => {
    assert.equal(microTime(new Date('2024-05-06T07:08:09.123Z')), '2024-05-06T07:08:09.123000Z');
  });

  test('one of two candidates leads; releasing hands over; transitions are counted', async () => {
    const events: string[] = [];
    const seen: Record<string, (leader: string) => void> = {};
    const mk = (id: string) =>
      createLeaderElector({
        client,
        namespace: 'istio-system',
        name: 'sextant-leader',
        identity: id,
        leaseDurationMs: 3_000,
        renewDeadlineMs: 2_000,
        retryPeriodMs: 100,
        log: silentLogger,
        onStartedLeading: () => events.push(`${id}:start`),
        onStoppedLeading: () => events.push(`${id}:stop`),
        onNewLeader: (l) => seen[id]?.(l),
      });
    const a = mk('a');
    const b = mk('b');
    a.start();
    await withDeadline(a.whenLeading(), 3_000, 'a leads');
    // b sees a fresh lease held by a and must not take it.
    const bSawA = new Promise<void>((r) => (seen.b = (l) => l === 'a' && r()));
    b.start();
    await withDeadline(bSawA, 3_000, 'b observes a');
    assert.equal(b.isLeader(), false);
    const leaseBefore = api.get('/apis/coordination.k8s.io/v1/leases', 'istio-system', 'sextant-leader') as { spec: { holderIdentity: string } };
    assert.equal(leaseBefore.spec.holderIdentity, 'a');
    await a.stop();
    assert.equal(a.isLeader(), false);
    // Released, so b takes over well before the 3 s lease would expire.
    const t0 = Date.now();
    await withDeadline(b.whenLeading(), 2_500, 'b leads after release');
    assert.ok(Date.now() - t0 < 2_500);
    const lease = api.get('/apis/coordination.k8s.io/v1/leases', 'istio-system', 'sextant-leader') as {
      spec: { holderIdentity: string; leaseTransitions: number; renewTime: string };
    };
    assert.equal(lease.spec.holderIdentity, 'b');
    assert.equal(lease.spec.leaseTransitions, 1);
    assert.match(lease.spec.renewTime, /\.\d{6}Z$/);
    await b.stop();
    assert.deepEqual(events, ['a:start', 'a:stop', 'b:start', 'b:stop']);
  });

  test('token review returns namespace and service account, and refuses others', async () => {
    const r = createTokenReviewer(client);
    const ok = await r.review('sa:bookinfo:reviews:istio-ca', ['istio-ca']);
    assert.equal(ok.authenticated, true);
    assert.equal(ok.username, 'system:serviceaccount:bookinfo:reviews');
    assert.equal(ok.namespace, 'bookinfo');
    assert.equal(ok.serviceAccount, 'reviews');
    assert.equal(ok.podName, 'pod-1');
    assert.deepEqual(await r.review('garbage'), { authenticated: false, error: 'invalid bearer token' });
    const wrong = await r.review('sa:ns:sa:other-audience');
    assert.equal(wrong.authenticated, false);
    assert.match(wrong.error ?? '', /audiences \[other-audience\] do not include istio-ca/);
  });

  test('root cert publisher writes every namespace, follows new ones, repairs edits, rotates', async () => {
    const NS = '/api/v1/namespaces';
    const CMS = '/api/v1/configmaps';
    for (const n of ['default', 'app', 'kube-system']) api.upsert(NS, { metadata: { name: n }, status: { phase: 'Active' } });
    let root = 'ROOT-1';
    const pub = createRootCertPublisher({ client, getRootPem: () => root, log: silentLogger, timing: { backoffInitialMs: 20 } });
    const waitCm = (ns: string, value: string) =>
      withDeadline(
        new Promise<void>((resolve) => {
          const ok = () => (api.get(CMS, ns, 'istio-ca-root-cert') as { data?: Record<string, string> } | undefined)?.data?.['root-cert.pem'] === value;
          if (ok()) return resolve();
          const on = () => {
            if (ok()) {
              api.events.off('change', on);
              resolve();
            }
          };
          api.events.on('change', on);
        }),
        5_000,
        `istio-ca-root-cert in ${ns} = ${value}`,
      );
    await pub.start();
    await waitCm('default', 'ROOT-1');
    await waitCm('app', 'ROOT-1');
    await pub.idle();
    assert.equal(api.get(CMS, 'kube-system', 'istio-ca-root-cert'), undefined, 'kube-system is skipped');
    api.upsert(NS, { metadata: { name: 'late' }, status: { phase: 'Active' } });
    await waitCm('late', 'ROOT-1');
    api.upsert(CMS, { metadata: { name: 'istio-ca-root-cert', namespace: 'app' }, data: { 'root-cert.pem': 'tampered' } });
    await waitCm('app', 'ROOT-1');
    root = 'ROOT-2';
    pub.refresh();
    await Promise.all(['default', 'app', 'late'].map((n) => waitCm(n, 'ROOT-2')));
    await pub.stop();
    // Not leader any more: nothing is written.
    api.remove(CMS, 'default', 'istio-ca-root-cert');
    api.upsert(NS, { metadata: { name: 'after-stop' }, status: { phase: 'Active' } });
    assert.equal(api.get(CMS, 'default', 'istio-ca-root-cert'), undefined);
  });

  test('Secret CA store: self-signed round trip, plugged cacerts wins, changes are watched', async () => {
    const store = createSecretCaStore({ client, namespace: 'istio-system', log: silentLogger, timing: { backoffInitialMs: 20 } });
    assert.equal(await store.load(), undefined);
    await store.save({ 'ca-cert.pem': 'CERT', 'ca-key.pem': 'KEY', 'root-cert.pem': 'CERT', 'cert-chain.pem': '' });
    assert.deepEqual(await store.load(), { origin: 'self-signed', files: { 'ca-cert.pem': 'CERT', 'ca-key.pem': 'KEY', 'root-cert.pem': 'CERT', 'cert-chain.pem': '' } });
    await store.save({ 'ca-cert.pem': 'CERT2', 'ca-key.pem': 'KEY2', 'root-cert.pem': 'CERT2', 'cert-chain.pem': '' });
    assert.equal((await store.load())?.files['ca-cert.pem'], 'CERT2');
    const changed = new Promise<void>((resolve) => {
      const stop = store.watch(() => {
        stop();
        resolve();
      });
    });
    // The watch's initial list is not a change; wait for its watch to open before plugging in.
    await new Promise<void>((resolve) => api.events.once('watch', () => resolve()));
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    api.upsert('/api/v1/secrets', { metadata: { name: 'cacerts', namespace: 'istio-system' }, data: { 'ca-cert.pem': b64('PLUG'), 'ca-key.pem': b64('PKEY') } });
    await withDeadline(changed, 5_000, 'the watch reports the plugged-in Secret');
    assert.deepEqual(await store.load(), { origin: 'plugged', files: { 'ca-cert.pem': 'PLUG', 'ca-key.pem': 'PKEY' } });
  });
});
