import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Kube, KubeError, retryTimedOut } from './istiod-kube.js';

test('a request the apiserver never answers fails, naming it, after the timeout; a list is tried three times', { timeout: 20_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-kube-'));
  // Accepts and never answers (not even the TLS handshake).
  const sockets: net.Socket[] = [];
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.push(s);
  });
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=test', '-days', '1', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
    const b64 = (f: string) => readFileSync(join(dir, f)).toString('base64');
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        clusters: [{ cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': b64('c') } }],
        users: [{ user: { 'client-certificate-data': b64('c'), 'client-key-data': b64('k') } }],
      }),
    );
    const kube = new Kube(kubeconfig, 200);
    const t0 = Date.now();
    await assert.rejects(kube.request('GET', '/api/v1/pods'), (err: Error) => err instanceof KubeError && err.status === 0 && /GET \/api\/v1\/pods: no response within 0.2 s/.test(err.message));
    assert.ok(Date.now() - t0 < 5000);
    const before = accepted;
    await assert.rejects(kube.list('/api/v1/pods'), /no response/);
    assert.equal(accepted - before, 3, 'three attempts, each on its own connection');
    kube.close();
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('retryTimedOut retries only a missing response', async () => {
  let n = 0;
  assert.equal(await retryTimedOut(async () => (++n < 3 ? Promise.reject(new KubeError(0, 'no response')) : 'ok')), 'ok');
  assert.equal(n, 3);
  n = 0;
  await assert.rejects(retryTimedOut(async () => (n++, Promise.reject(new KubeError(409, 'exists')))), /exists/);
  assert.equal(n, 1, 'a refusal is not retried');
});
