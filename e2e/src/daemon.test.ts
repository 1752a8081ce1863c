import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient, decodeResources, resourceNames } from '@sextant/testing/xds-client';
import { debugJson, sextantBin, startSextant } from './sextant.js';

const run = promisify(execFile);
const repo = join(sextantBin, '..', '..', '..', '..');
const bookinfo = join(repo, 'examples', 'bookinfo');
const productpage = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';

function tempCopyOfBookinfo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-daemon-'));
  cpSync(bookinfo, dir, { recursive: true });
  return dir;
}

async function translateCli(args: string[]): Promise<unknown> {
  const { stdout } = await run(process.execPath, [sextantBin, 'translate', ...args], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout);
}

test('discovery serves Bookinfo: ready, metrics, and the same clusters and listeners as `sextant translate`', async () => {
  const sextant = await startSextant({ configDir: bookinfo });
  const client = new SotwClient(sextant.xdsAddress, { node: { id: productpage } });
  try {
    const metrics = await (await fetch(`${sextant.monitoringUrl}/metrics`)).text();
    assert.match(metrics, /pilot_services 5/);

    client.request(TypeUrl.Cluster);
    const cds = await client.next();
    client.ack(cds);
    const offline = (await translateCli(['-f', bookinfo, '--proxy', productpage, '--type', 'cds'])) as Array<{ name: string }>;
    assert.deepEqual(resourceNames(cds).sort(), offline.map((c) => c.name).sort());
    assert.ok(resourceNames(cds).includes('outbound|9080|v2|reviews.default.svc.cluster.local'));
    // Byte-for-byte the same content: the server's JSON form equals the CLI's.
    const served = new Map(decodeResources(cds).map((r) => [r.name, r.json]));
    for (const c of offline) assert.deepEqual(served.get(c.name), c, `cluster ${c.name}`);

    client.request(TypeUrl.Listener);
    const lds = await client.next();
    client.ack(lds);
    assert.ok(resourceNames(lds).includes('0.0.0.0_9080'));
    assert.ok(resourceNames(lds).includes('virtualOutbound'));
    assert.ok(resourceNames(lds).includes('virtualInbound'));

    const syncz = (await debugJson(sextant.httpUrl, '/debug/syncz')) as Array<{ proxyId: string; types: Array<{ typeUrl: string; versionAcked?: string }> }>;
    const mine = syncz.find((c) => c.proxyId === productpage);
    assert.ok(mine, 'the proxy shows in /debug/syncz');
    assert.ok(mine.types.find((t) => t.typeUrl === TypeUrl.Cluster)?.versionAcked, 'CDS ack recorded');
    const dump = (await debugJson(sextant.httpUrl, `/debug/sextant_dump?proxyID=${encodeURIComponent(productpage)}`)) as { types: Record<string, unknown> };
    assert.ok(dump.types[TypeUrl.Cluster]);
  } finally {
    client.close();
    const code = await sextant.stop();
    assert.equal(code, 0, 'SIGTERM drains and exits 0');
  }
});

test('a bad edit is reported with kind/namespace/name, field and reason, and the valid config keeps serving', async () => {
  const dir = tempCopyOfBookinfo();
  const sextant = await startSextant({ configDir: dir });
  const client = new SotwClient(sextant.xdsAddress, { node: { id: productpage } });
  try {
    client.request(TypeUrl.Cluster);
    const first = await client.next();
    client.ack(first);
    const before = resourceNames(first).sort();

    writeFileSync(
      join(dir, 'broken.yaml'),
      ['apiVersion: networking.istio.io/v1', 'kind: DestinationRule', 'metadata: {name: broken, namespace: default}', 'spec:', '  host: details', '  trafficPolicy: {loadBalancer: {simple: FASTEST}}', ''].join('\n'),
    );
    const warned = await sextant.waitForLog((l) => l.kind === 'DestinationRule' && l.namespace === 'default' && l.name === 'broken');
    assert.equal(warned.field, 'spec.trafficPolicy.loadBalancer.simple');
    assert.match(String(warned.reason), /FASTEST/);
    const issues = (await debugJson(sextant.httpUrl, '/debug/config_issues')) as { rejected: Array<{ message: string }> };
    assert.ok(issues.rejected.some((r) => r.message.startsWith('DestinationRule/default/broken: spec.trafficPolicy.loadBalancer.simple')), JSON.stringify(issues));

    // A valid edit still goes through: a new subset appears as a new cluster.
    const drPath = join(dir, 'istio.yaml');
    writeFileSync(drPath, readFileSync(drPath, 'utf8').replace(/(name: v3\n\s+labels:\n\s+version: v3)/, '$1\n    - name: v4\n      labels:\n        version: v4'));
    let names = before;
    for (let i = 0; i < 10 && !names.includes('outbound|9080|v4|reviews.default.svc.cluster.local'); i++) {
      const next = await client.next(10_000);
      client.ack(next);
      names = resourceNames(next).sort();
    }
    assert.ok(names.includes('outbound|9080|v4|reviews.default.svc.cluster.local'), `v4 subset cluster pushed; got ${names.join(', ')}`);
    for (const n of before) assert.ok(names.includes(n), `still serving ${n}`);
  } finally {
    client.close();
    await sextant.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad invocations fail with a clear message and exit code 2', async () => {
  await assert.rejects(run(process.execPath, [sextantBin, 'discovery', '--xds-port', 'seventy']), (err: { code: number; stderr: string }) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, /--xds-port: "seventy" is not a port/);
    return true;
  });
  await assert.rejects(run(process.execPath, [sextantBin, 'translate', '-f', bookinfo, '--proxy', 'nonsense']), (err: { code: number; stderr: string }) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, /node\.id: expected 4 parts/);
    return true;
  });
});

test('the webhook port serves /validate over TLS with a certificate from Sextant\'s CA, and CSR metrics are exported', async () => {
  const caDir = mkdtempSync(join(tmpdir(), 'sextant-ca-'));
  const sextant = await startSextant({ configDir: bookinfo, args: ['--ca-dir', caDir] });
  try {
    const root = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const { request } = await import('node:https');
    const review = (object: unknown) =>
      new Promise<{ response: { allowed: boolean; status?: { message: string } } }>((resolve, reject) => {
        const url = new URL(`${sextant.webhookUrl}/validate`);
        const req = request(
          { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', ca: root, servername: 'localhost', headers: { 'content-type': 'application/json' } },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve(JSON.parse(body)));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1', kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }, operation: 'CREATE', namespace: 'default', name: 'bad', object } }));
      });
    const bad = await review({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'bad', namespace: 'default' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' }, weight: 'fifty' }] }] },
    });
    assert.equal(bad.response.allowed, false);
    assert.match(bad.response.status!.message, /spec\.http\[0\]\.route\[0\]\.weight/);
    const good = await review({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'ok', namespace: 'default' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] } });
    assert.equal(good.response.allowed, true);
    const metrics = await (await fetch(`${sextant.monitoringUrl}/metrics`)).text();
    assert.match(metrics, /citadel_server_root_cert_expiry_timestamp \d+/);
    assert.match(metrics, /sextant_webhook_results\{hook="validate",outcome="denied"\} 1/);
  } finally {
    await sextant.stop();
    rmSync(caDir, { recursive: true, force: true });
  }
});
