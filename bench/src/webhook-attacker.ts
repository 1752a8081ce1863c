/**
 * The attacker of the webhook benchmark, in its own process so that its TLS
 * and JSON work does not delay the probes it is measured against:
 * `node webhook-attacker.js URL ROOT_PEM_FILE SECONDS CONCURRENCY FIELDS`
 * POSTs the hostile review back to back and prints one JSON line of results.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

export function hostileReview(fields: number): string {
  const spec: Record<string, unknown> = { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] };
  for (let i = 0; i < fields; i++) spec[`x${String(i).padStart(6, '0')}_yz`] = 1;
  const object = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'hostile', namespace: 'default' }, spec };
  return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'hostile', operation: 'CREATE', namespace: 'default', name: 'hostile', object } });
}

export function postReview(webhookUrl: string, root: string, body: string): Promise<{ status: number; ms: number }> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const url = new URL(`${webhookUrl}/validate`);
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', ca: root, servername: 'localhost', headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [url, rootFile, seconds, concurrency, fields] = process.argv.slice(2);
  const root = readFileSync(rootFile!, 'utf8');
  const body = hostileReview(Number(fields));
  // Start together when the parent says so (after its own warm-up), on stdin.
  process.stdin.once('data', async () => {
    const until = performance.now() + Number(seconds) * 1000;
    const reviews: Array<{ status: number; ms: number }> = [];
    await Promise.all(
      Array.from({ length: Number(concurrency) }, async () => {
        while (performance.now() < until) reviews.push(await postReview(url!, root, body));
      }),
    );
    process.stdout.write(JSON.stringify({ bytes: body.length, reviews }) + '\n');
    process.exit(0);
  });
  process.stdout.write('ready\n');
}
