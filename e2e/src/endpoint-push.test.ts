/**
 * The endpoint path of the daemon: an EndpointSlice or Pod change updates the
 * endpoint index in place, builds no PushContext, and reaches, as EDS only,
 * the streams that watch the changed clusters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient, decodeResources } from '@sextant/testing/xds-client';
import type { DiscoveryResponse } from '@sextant/envoy';
import { startSextant } from './sextant.js';

const services = `
apiVersion: v1
kind: Service
metadata: { name: r, namespace: default }
spec: { clusterIP: 10.96.0.1, selector: { app: r }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: s, namespace: default }
spec: { clusterIP: 10.96.0.2, selector: { app: s }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
`;
const pod = (name: string, ip: string, app: string, version = 'v1') => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: default, labels: { app: ${app}, version: ${version} } }
spec: { serviceAccountName: ${app}, containers: [{ name: app, image: app }] }
status: { phase: Running, podIP: ${ip} }
`;
const slice = (svc: string, eps: Array<[string, string]>) => `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${svc}-1, namespace: default, labels: { kubernetes.io/service-name: ${svc} } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints:
${eps.map(([ip, p]) => `  - { addresses: [${ip}], conditions: { ready: true }, targetRef: { kind: Pod, name: ${p} } }`).join('\n')}
`;
const R = 'outbound|80||r.default.svc.cluster.local';
const S = 'outbound|80||s.default.svc.cluster.local';

function addresses(resp: DiscoveryResponse): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const r of decodeResources(resp)) {
    const cla = r.json as { clusterName: string; endpoints?: Array<{ lbEndpoints?: Array<{ endpoint: { address: { socketAddress: { address: string } } } }> }> };
    out[cla.clusterName] = (cla.endpoints ?? []).flatMap((l) => l.lbEndpoints ?? []).map((e) => e.endpoint.address.socketAddress.address).sort();
  }
  return out;
}

test('an EndpointSlice change is an EDS push to the watchers of its cluster only, with no PushContext build', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-endpoints-'));
  writeFileSync(join(dir, 'services.yaml'), services);
  writeFileSync(join(dir, 'pods.yaml'), [pod('r1', '10.0.0.1', 'r'), pod('r2', '10.0.0.2', 'r'), pod('s1', '10.0.1.1', 's'), pod('s2', '10.0.1.2', 's')].join('---'));
  writeFileSync(join(dir, 'slice-r.yaml'), slice('r', [['10.0.0.1', 'r1']]));
  writeFileSync(join(dir, 'slice-s.yaml'), slice('s', [['10.0.1.1', 's1']]));
  const sextant = await startSextant({ configDir: dir, args: ['--debounce-after', '10ms', '--debounce-max', '1s'] });
  const watchR = new SotwClient(sextant.xdsAddress, { node: { id: 'sidecar~10.0.9.1~a.default~default.svc.cluster.local' } });
  const watchS = new SotwClient(sextant.xdsAddress, { node: { id: 'sidecar~10.0.9.2~b.default~default.svc.cluster.local' } });
  const builds = () => sextant.logs.filter((l) => l.msg === 'push context built').length;
  try {
    watchR.request(TypeUrl.ClusterLoadAssignment, { resourceNames: [R] });
    const r0 = await watchR.next();
    assert.deepEqual(addresses(r0), { [R]: ['10.0.0.1'] });
    watchR.ack(r0, [R]);
    watchS.request(TypeUrl.ClusterLoadAssignment, { resourceNames: [S] });
    const s0 = await watchS.next();
    assert.deepEqual(addresses(s0), { [S]: ['10.0.1.1'] });
    watchS.ack(s0, [S]);
    const before = builds();
    assert.ok(before >= 1);

    // Scale r up: same identity, so EDS only.
    writeFileSync(join(dir, 'slice-r.yaml'), slice('r', [['10.0.0.1', 'r1'], ['10.0.0.2', 'r2']]));
    const r1 = await watchR.next(10_000);
    assert.deepEqual(addresses(r1), { [R]: ['10.0.0.1', '10.0.0.2'] });
    watchR.ack(r1, [R]);
    assert.equal(builds(), before, 'an endpoint event builds no PushContext');
    assert.ok(r1.versionInfo.startsWith(r0.versionInfo), `EDS at the same context version (${r0.versionInfo} → ${r1.versionInfo})`);

    // Then s: its watcher's next response is this one (r's push never reached it).
    writeFileSync(join(dir, 'slice-s.yaml'), slice('s', [['10.0.1.1', 's1'], ['10.0.1.2', 's2']]));
    const s1 = await watchS.next(10_000);
    assert.deepEqual(addresses(s1), { [S]: ['10.0.1.1', '10.0.1.2'] });
    watchS.ack(s1, [S]);
    assert.equal(watchS.received.length, 2, 'the watcher of s got no push for r');

    // A pod relabel reaches the endpoint metadata (subsets select on it), still without a build.
    writeFileSync(join(dir, 'pods.yaml'), [pod('r1', '10.0.0.1', 'r'), pod('r2', '10.0.0.2', 'r', 'v2'), pod('s1', '10.0.1.1', 's'), pod('s2', '10.0.1.2', 's')].join('---'));
    const r2 = await watchR.next(10_000);
    const eps = (decodeResources(r2)[0]!.json as { endpoints: Array<{ lbEndpoints: Array<{ metadata?: { filterMetadata?: { istio?: { workload?: string } } } }> }> }).endpoints.flatMap((l) => l.lbEndpoints);
    assert.ok(eps.some((e) => String(e.metadata?.filterMetadata?.istio?.workload ?? '').includes(';v2;')), 'r2 now carries version v2');
    assert.equal(builds(), before, 'a pod event builds no PushContext');
    assert.equal(watchR.received.length, 3);
    assert.equal(watchS.received.length, 2);

    // A config change still builds one.
    writeFileSync(join(dir, 'services.yaml'), services.replace('10.96.0.2', '10.96.0.3'));
    await sextant.waitForLog(() => builds() > before, 10_000);
  } finally {
    watchR.close();
    watchS.close();
    await sextant.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
