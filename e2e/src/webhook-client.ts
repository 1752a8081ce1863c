import { request } from 'node:https';

/** The audit's hostile review: a VirtualService whose spec has 100,000 unknown fields, about 1.48 MB. */
export function hostileReview(fields = 100_000): string {
  const spec: Record<string, unknown> = { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] };
  for (let i = 0; i < fields; i++) spec[`x${String(i).padStart(6, '0')}_yz`] = 1;
  const object = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'hostile', namespace: 'default' }, spec };
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'hostile-1', kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }, operation: 'CREATE', namespace: 'default', name: 'hostile', object },
  });
}

/** POSTs a body to the daemon's webhook port over TLS, verified against Sextant's root; `sent` fires once the body is handed to the socket. */
export function postWebhook(webhookUrl: string, path: string, root: string, body: string, sent?: () => void): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${webhookUrl}${path}`);
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', ca: root, servername: 'localhost', headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    if (sent) req.on('finish', sent);
    req.end(body);
  });
}
