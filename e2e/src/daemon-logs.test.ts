import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TypeUrl } from '@sextant/envoy';
import { duplicateJsonKeys } from '@sextant/testing/json-keys';
import { SotwClient } from '@sextant/testing/xds-client';
import { sextantBin, startSextant } from './sextant.js';
import { postWebhook } from './webhook-client.js';

const bookinfo = join(sextantBin, '..', '..', '..', '..', 'examples', 'bookinfo');
const productpage = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';

test('every line the daemon logs is JSON with each key once (CA, folder source, xDS, webhooks, shutdown)', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-logs-'));
  const configDir = join(dir, 'config');
  const caDir = join(dir, 'ca');
  cpSync(bookinfo, configDir, { recursive: true });
  writeFileSync(join(configDir, 'broken.yaml'), 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: broken, namespace: default}\nspec: {host: details, trafficPolicy: {loadBalancer: {simple: FASTEST}}}\n');
  const sextant = await startSextant({ configDir, args: ['--ca-dir', caDir, '--log-level', 'debug'] });
  let stopped = false;
  try {
    await sextant.waitForLog((l) => l.name === 'broken' && l.source === 'folder');
    const client = new SotwClient(sextant.xdsAddress, { node: { id: productpage } });
    try {
      client.request(TypeUrl.Cluster);
      client.ack(await client.next());
    } finally {
      client.close();
    }
    const root = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'u1', operation: 'CREATE', namespace: 'default', name: 'bad', object: { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'bad', namespace: 'default' }, spec: { hots: 'x' } } },
    };
    assert.equal((await postWebhook(sextant.webhookUrl, '/validate', root, JSON.stringify(review))).status, 200);
    await sextant.waitForLog((l) => l.msg === 'admission denied');
    assert.equal(await sextant.stop(), 0);
    stopped = true;
    await sextant.waitForLog((l) => l.msg === 'stopped');

    const dups = sextant.lines.map((line) => ({ line, keys: duplicateJsonKeys(line) })).filter((d) => d.keys.length > 0);
    assert.deepEqual(dups, [], `lines with a key twice:\n${dups.map((d) => `${d.keys.join(',')}: ${d.line}`).join('\n')}`);
    // The paths the audit saw repeat a key were all taken.
    for (const [key, value] of [['component', 'ca'], ['source', 'folder'], ['component', 'webhooks'], ['component', 'xds']] as const)
      assert.ok(sextant.logs.some((l) => l[key] === value), `a line with ${key}=${value}`);
    assert.ok(sextant.lines.length > 10);
  } finally {
    if (!stopped) await sextant.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
