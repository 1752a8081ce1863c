import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { TypeUrl, type DiscoveryResponse } from '@sextant/envoy';
import { SotwClient, decodeResources } from '@sextant/testing/xds-client';
import { type Cluster, helm, kubectl, kubectlJson, startCluster, waitFor, waitForCrdsEstablished } from './cluster.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { debugJson, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

/**
 * The `sextant discovery` daemon against a real API server (etcd,
 * kube-apiserver, controller-manager, kwok): CRDs applied with kubectl, the
 * chart installed with helm (webhooks reached by URL, since the daemon runs on
 * the host with --kubeconfig), workloads and Istio config created with
 * kubectl, and xDS read from the daemon by a raw ADS client.
 */
const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'helm');
const chartDir = fileURLToPath(new URL('../../charts/sextant', import.meta.url));
const crdsDir = fileURLToPath(new URL('../../crds/', import.meta.url));

const ns = 'shop';
const fqdn = `reviews.${ns}.svc.cluster.local`;
const node = `sidecar~10.250.0.9~client-7d4b9c-x2x2x.${ns}~${ns}.svc.cluster.local`;
const validator = 'istio-validator-istio-system';
const injector = 'istio-sidecar-injector';

type Json = Record<string, unknown>;

function deployment(replicas: number): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: ${ns}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec:
      containers: [{name: reviews, image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.2, ports: [{containerPort: 9080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: ${ns}, labels: {app: reviews}}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9080}]
`;
}

function virtualService(subset: string, uri = 'prefix: /reviews'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: ${ns}}
spec:
  hosts: [reviews]
  http:
  - name: by-path
    match: [{uri: {${uri}}}]
    route: [{destination: {host: reviews, subset: ${subset}}}]
  - name: default
    route: [{destination: {host: reviews, subset: v1}}]
`;
}

const destinationRule = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: ${ns}}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;

/** Keeps one ADS stream open, ACKs everything and lets a test wait for a condition on the latest resources of a type. */
class Subscription {
  readonly client: SotwClient;
  private readonly latest = new Map<string, Map<string, Json>>();
  private readonly waiters = new Set<() => void>();
  readonly nacks: string[] = [];

  constructor(address: string, subscriptions: Array<{ typeUrl: string; names?: string[] }>) {
    const client = new SotwClient(address, { node: { id: node } });
    this.client = client;
    for (const s of subscriptions) client.request(s.typeUrl, { resourceNames: s.names ?? [] });
    const names = new Map(subscriptions.map((s) => [s.typeUrl, s.names]));
    void (async () => {
      for (;;) {
        let r: DiscoveryResponse;
        try {
          r = await client.next(3_600_000);
        } catch {
          return;
        }
        client.ack(r, names.get(r.typeUrl));
        // As Envoy holds them: a SotW LDS/CDS response is the whole set, while an EDS or RDS
        // response may carry only what changed (Sextant and istiod send incremental EDS that way).
        const decoded = decodeResources(r).map((d): [string, Json] => [d.name, d.json as Json]);
        const whole = r.typeUrl === TypeUrl.Listener || r.typeUrl === TypeUrl.Cluster;
        this.latest.set(r.typeUrl, whole ? new Map(decoded) : new Map([...(this.latest.get(r.typeUrl) ?? []), ...decoded]));
        for (const w of [...this.waiters]) w();
      }
    })();
  }

  resources(typeUrl: string): Map<string, Json> {
    return this.latest.get(typeUrl) ?? new Map();
  }

  /** Resolves with PRED's value once it is truthy for the latest resources of TYPEURL; fails after the deadline, showing the last state. */
  until<T>(typeUrl: string, what: string, pred: (rs: Map<string, Json>) => T | undefined | false, timeoutMs = 30_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        let v: T | undefined | false;
        try {
          v = pred(this.resources(typeUrl));
        } catch {
          v = undefined;
        }
        if (v !== undefined && v !== false) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${typeUrl.split('.').pop()}: ${JSON.stringify([...this.resources(typeUrl).values()]).slice(0, 1500)}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.client.close();
  }
}

/** The IPs of a ClusterLoadAssignment's endpoints, sorted. */
function endpointIps(cla: Json | undefined): string[] {
  const out: string[] = [];
  for (const group of (cla?.['endpoints'] as Json[] | undefined) ?? []) {
    for (const lb of (group['lbEndpoints'] as Json[] | undefined) ?? []) {
      const addr = ((lb['endpoint'] as Json | undefined)?.['address'] as Json | undefined)?.['socketAddress'] as Json | undefined;
      if (addr?.['address']) out.push(String(addr['address']));
    }
  }
  return out.sort();
}

function collectStrings(v: unknown, key: string, out: Set<string>): Set<string> {
  if (Array.isArray(v)) for (const x of v) collectStrings(x, key, out);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === key && typeof x === 'string') out.add(x);
      else collectStrings(x, key, out);
    }
  }
  return out;
}

/** Everything one proxy gets from a server on a fresh stream: CDS, then EDS for its EDS clusters, LDS, then RDS for the route names the listeners use. */
async function xdsSnapshot(address: string): Promise<Record<string, Record<string, Json>>> {
  const c = new SotwClient(address, { node: { id: node }, timeoutMs: 15_000 });
  const fetchType = async (typeUrl: string, names: string[] = []) => {
    c.request(typeUrl, { resourceNames: names });
    for (;;) {
      const r = await c.next();
      c.ack(r);
      if (r.typeUrl === typeUrl) return Object.fromEntries(decodeResources(r).map((d) => [d.name, d.json as Json]));
    }
  };
  try {
    const cds = await fetchType(TypeUrl.Cluster);
    const edsNames = Object.values(cds)
      .filter((cl) => cl['type'] === 'EDS')
      .map((cl) => String((cl['edsClusterConfig'] as Json | undefined)?.['serviceName'] ?? cl['name']))
      .sort();
    const eds = await fetchType(TypeUrl.ClusterLoadAssignment, edsNames);
    const lds = await fetchType(TypeUrl.Listener);
    const routes = [...collectStrings(lds, 'routeConfigName', new Set())].sort();
    const rds = await fetchType(TypeUrl.RouteConfiguration, routes);
    return { cds, eds, lds, rds };
  } finally {
    c.close();
  }
}

/** Lists what differs between two snapshots (type/name), for the failure message. */
function snapshotDiff(a: Record<string, Record<string, Json>>, b: Record<string, Record<string, Json>>): string[] {
  const out: string[] = [];
  for (const t of Object.keys(a)) {
    const x = a[t] ?? {};
    const y = b[t] ?? {};
    for (const n of new Set([...Object.keys(x), ...Object.keys(y)])) {
      if (!(n in x)) out.push(`${t} ${n}: only in the fresh Sextant`);
      else if (!(n in y)) out.push(`${t} ${n}: only in the long-running Sextant`);
      else if (JSON.stringify(x[n]) !== JSON.stringify(y[n])) {
        // Both contents, shortened, so that a failure in CI says what differs.
        const show = (v: Json | undefined) => JSON.stringify(v).slice(0, 800);
        out.push(`${t} ${n}: content differs\n  long-running: ${show(x[n])}\n  fresh:        ${show(y[n])}`);
      }
    }
  }
  return out;
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('sextant discovery against a real Kubernetes API server', { skip, timeout: 300_000 }, () => {
  let cluster: Cluster;
  let sextant: RunningSextant;
  const extra: RunningSextant[] = [];
  const subs: Subscription[] = [];
  let root = '';
  let envoy: RunningEnvoy | undefined;
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);
  const podIps = async () =>
    (await kubectlJson<{ items: Array<{ status?: { podIP?: string; phase?: string } }> }>(cluster.kubeconfig, ['get', 'pods', '-n', ns, '-l', 'app=reviews']))
      .items.filter((p) => p.status?.phase === 'Running' && p.status.podIP)
      .map((p) => p.status!.podIP!)
      .sort();

  const endpointSliceSummary = async () =>
    (await kubectlJson<{ items: Array<{ metadata: { name: string; resourceVersion?: string }; endpoints?: Array<{ addresses: string[]; conditions?: Record<string, boolean> }> }> }>(cluster.kubeconfig, ['get', 'endpointslices', '-n', ns]))
      .items.map((s) => `${s.metadata.name}@${s.metadata.resourceVersion}[${(s.endpoints ?? []).map((e) => `${e.addresses.join('/')}${JSON.stringify(e.conditions ?? {})}`).join(' ')}]`)
      .join(' ');

  before(async () => {
    cluster = await startCluster({ nodes: 1 });
    await k(['create', 'namespace', 'istio-system']);
    await k(['apply', '--server-side', '-f', crdsDir]);
    await waitForCrdsEstablished(cluster.kubeconfig);
    sextant = await startSextant({ kubeconfig: cluster.kubeconfig, args: ['--namespace', 'istio-system', '--pod-name', 'sextant-a'], readyTimeoutMs: 60_000 });
    // The leader publishes its root in every namespace; istio-system's copy is the reference.
    root = await waitFor('istio-ca-root-cert in istio-system', async () =>
      (await kubectlJson<{ data?: Record<string, string> }>(cluster.kubeconfig, ['get', 'configmap', '-n', 'istio-system', 'istio-ca-root-cert']).catch(() => undefined))?.data?.['root-cert.pem'],
    );
    // No caBundle given: keeping it current is Sextant's job (checked below).
    await helm(cluster.kubeconfig, ['install', 'sextant', chartDir, '-n', 'istio-system', '--set', `webhooks.url=${sextant.webhookUrl}`, '--set', 'crds.enabled=false']);
  });

  after(async () => {
    await envoy?.stop().catch(() => undefined);
    for (const s of subs) s.close();
    for (const s of extra) await s.stop().catch(() => undefined);
    await sextant?.stop().catch(() => undefined);
    await cluster?.stop();
  });

  test('the leader puts its CA root into the chart webhook configurations, and the webhook denies a bad VirtualService by field', async () => {
    const want = Buffer.from(root).toString('base64');
    for (const [kind, name] of [
      ['validatingwebhookconfiguration', validator],
      ['mutatingwebhookconfiguration', injector],
    ] as const) {
      await waitFor(`${kind} ${name} caBundle = Sextant's root`, async () => {
        const c = await kubectlJson<{ webhooks: Array<{ clientConfig: { caBundle?: string } }> }>(cluster.kubeconfig, ['get', kind, name]);
        return c.webhooks.length > 0 && c.webhooks.every((w) => w.clientConfig.caBundle === want);
      });
    }
    await k(['create', 'namespace', ns]);
    await k(['label', 'namespace', ns, 'istio-injection=enabled']);
    await assert.rejects(k(['apply', '-f', '-'], virtualService('v2', 'regex: "("')), (err: Error) => {
      assert.match(err.message, /admission webhook "validation\.istio\.io" denied the request/);
      assert.match(err.message, /VirtualService shop\/reviews: spec\.http\[0\]\.match\[0\]\.uri\.regex: "\(" is not a valid RE2 regex: missing \)/);
      return true;
    });
    await assert.rejects(k(['get', 'virtualservice', '-n', ns, 'reviews']), /NotFound|not found/);
  });

  test('kubectl config reaches a sidecar: subsets in CDS, pod IPs in EDS, VirtualService routes in RDS; root cert in the namespace', async () => {
    await k(['apply', '-f', '-'], deployment(2));
    await k(['apply', '-f', '-'], virtualService('v2'));
    await k(['apply', '-f', '-'], destinationRule);
    const ips = await waitFor('2 running reviews pods with IPs', async () => {
      const ips = await podIps();
      return ips.length === 2 ? ips : undefined;
    });
    // The injector ran (namespace istio-injection=enabled): the pods carry the sidecar.
    const pods = await kubectlJson<{ items: Array<{ spec: { containers: Array<{ name: string }> } }> }>(cluster.kubeconfig, ['get', 'pods', '-n', ns, '-l', 'app=reviews']);
    assert.ok(pods.items.every((p) => p.spec.containers.some((c) => c.name === 'istio-proxy')), 'pods were injected by Sextant');

    const sub = new Subscription(sextant.xdsAddress, [
      { typeUrl: TypeUrl.Cluster },
      { typeUrl: TypeUrl.ClusterLoadAssignment, names: [`outbound|9080||${fqdn}`, `outbound|9080|v1|${fqdn}`, `outbound|9080|v2|${fqdn}`] },
      { typeUrl: TypeUrl.RouteConfiguration, names: ['9080'] },
    ]);
    subs.push(sub);
    await sub.until(TypeUrl.Cluster, 'CDS with the subsets', (rs) => ['', 'v1', 'v2'].every((s) => rs.has(`outbound|9080|${s}|${fqdn}`)));
    await sub.until(TypeUrl.ClusterLoadAssignment, `EDS with the pod IPs ${ips.join(',')}`, (rs) =>
      JSON.stringify(endpointIps(rs.get(`outbound|9080||${fqdn}`))) === JSON.stringify(ips) && JSON.stringify(endpointIps(rs.get(`outbound|9080|v1|${fqdn}`))) === JSON.stringify(ips),
    );
    assert.deepEqual(endpointIps(sub.resources(TypeUrl.ClusterLoadAssignment).get(`outbound|9080|v2|${fqdn}`)), [], 'no pod has version v2');
    const vhost = await sub.until(TypeUrl.RouteConfiguration, 'RDS 9080 with the VirtualService routes', (rs) =>
      ((rs.get('9080')?.['virtualHosts'] as Json[] | undefined) ?? []).find((v) => ((v['domains'] as string[] | undefined) ?? []).includes(fqdn) && (v['routes'] as Json[] | undefined)?.length === 2),
    );
    const routes = vhost['routes'] as Json[];
    assert.equal(routes[0]?.['name'], 'by-path');
    assert.deepEqual((routes[0]?.['match'] as Json)['prefix'], '/reviews');
    assert.equal(((routes[0]?.['route'] as Json)['cluster'] as string), `outbound|9080|v2|${fqdn}`);
    assert.equal(((routes[1]?.['route'] as Json)['cluster'] as string), `outbound|9080|v1|${fqdn}`);

    // The leader publishes the root into the new namespace.
    await waitFor('istio-ca-root-cert in the new namespace', async () =>
      (await kubectlJson<{ data?: Record<string, string> }>(cluster.kubeconfig, ['get', 'configmap', '-n', ns, 'istio-ca-root-cert']).catch(() => undefined))?.data?.['root-cert.pem'] === root,
    );
  });

  test('kubectl scale changes EDS', async () => {
    const sub = subs[0]!;
    await k(['scale', '-n', ns, 'deployment/reviews-v1', '--replicas=3']);
    const ips = await waitFor('3 running reviews pods', async () => {
      const ips = await podIps();
      return ips.length === 3 ? ips : undefined;
    });
    await sub.until(TypeUrl.ClusterLoadAssignment, `EDS with 3 endpoints ${ips.join(',')}`, (rs) => JSON.stringify(endpointIps(rs.get(`outbound|9080|v1|${fqdn}`))) === JSON.stringify(ips));
  });

  test('an invalid VirtualService that bypassed the webhook is logged, counted, given an IST0106 status and skipped; the valid version keeps serving', async () => {
    const sub = subs[0]!;
    // The webhook is down (nothing listens at its URL); Istio's failurePolicy Ignore admits the object.
    const down = `https://127.0.0.1:${await closedPort()}/validate`;
    await k(['patch', 'validatingwebhookconfiguration', validator, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/webhooks/0/clientConfig/url', value: down }])]);
    await k(['apply', '-f', '-'], virtualService('v1', 'regex: "("'));
    const logged = await sextant.waitForLog((l) => l.msg === 'object rejected by validation; skipped' && l.kind === 'VirtualService' && l.namespace === ns && l.name === 'reviews');
    assert.equal(logged.field, 'spec.http[0].match[0].uri.regex');
    assert.equal(logged.servingPrevious, true);

    const status = await waitFor('IST0106 status on the VirtualService', async () => {
      const vs = await kubectlJson<{ status?: { validationMessages?: Array<{ type?: { code?: string }; level?: string }>; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> } }>(
        cluster.kubeconfig,
        ['get', 'virtualservice', '-n', ns, 'reviews'],
      );
      return vs.status?.validationMessages?.some((m) => m.type?.code === 'IST0106') ? vs.status : undefined;
    });
    assert.equal(status.validationMessages?.find((m) => m.type?.code === 'IST0106')?.level, 'ERROR');
    const cond = status.conditions?.find((c) => c.reason === 'SchemaValidationError');
    assert.equal(cond?.status, 'False');
    assert.match(cond?.message ?? '', /spec\.http\[0\]\.match\[0\]\.uri\.regex: "\(" is not a valid RE2 regex: missing \)/);

    await waitFor('sextant_config_rejected{kind="VirtualService"} 1', async () => /sextant_config_rejected\{kind="VirtualService"\} 1\b/.test(await (await fetch(`${sextant.monitoringUrl}/metrics`)).text()), 20_000);
    // The last valid version still routes /reviews to v2.
    const routes = ((sub.resources(TypeUrl.RouteConfiguration).get('9080')?.['virtualHosts'] as Json[]).find((v) => (v['domains'] as string[]).includes(fqdn))?.['routes'] as Json[]);
    assert.equal((routes[0]?.['route'] as Json)['cluster'], `outbound|9080|v2|${fqdn}`);
    assert.equal((routes[0]?.['match'] as Json)['prefix'], '/reviews');

    // Fixed (webhook back up): the status is cleared and the new routes arrive.
    await k(['patch', 'validatingwebhookconfiguration', validator, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/webhooks/0/clientConfig/url', value: `${sextant.webhookUrl}/validate` }])]);
    await k(['apply', '-f', '-'], virtualService('v1'));
    await sub.until(TypeUrl.RouteConfiguration, 'the fixed VirtualService', (rs) =>
      ((rs.get('9080')?.['virtualHosts'] as Json[] | undefined) ?? []).some((v) => ((v['routes'] as Json[] | undefined)?.[0]?.['route'] as Json | undefined)?.['cluster'] === `outbound|9080|v1|${fqdn}`),
    );
    await waitFor('the IST0106 status is cleared', async () => {
      const vs = await kubectlJson<{ status?: { validationMessages?: unknown[]; conditions?: Array<{ reason?: string }> } }>(cluster.kubeconfig, ['get', 'virtualservice', '-n', ns, 'reviews']);
      return !(vs.status?.validationMessages ?? []).length && !(vs.status?.conditions ?? []).some((c) => c.reason === 'SchemaValidationError');
    });
  });

  test('an API server restart during churn: watches resume, later changes arrive, and xDS equals a fresh Sextant', async () => {
    const sub = subs[0]!;
    const restartsBefore = sextant.logs.length;
    let churning = true;
    let writes = 0;
    const churn = (async () => {
      for (let i = 0; churning && i < 200; i++) {
        try {
          if (i % 3 === 0) await k(['scale', '-n', ns, 'deployment/reviews-v1', `--replicas=${(i % 4) + 1}`]);
          else if (i % 3 === 1) await k(['apply', '-f', '-'], virtualService(i % 2 ? 'v1' : 'v2', `prefix: /r${i}`));
          else await k(['label', 'service', '-n', ns, 'reviews', `churn=${i}`, '--overwrite']);
          writes++;
        } catch {
          // Writes fail while the API server is down; that is the point.
        }
      }
    })();
    try {
      await cluster.restartApiServer();
    } finally {
      churning = false;
      await churn;
    }
    assert.ok(writes > 0, 'churn wrote something');
    // The restart broke Sextant's watches; its supervisor resumed them (no process restart).
    assert.ok(
      sextant.logs.slice(restartsBefore).some((l) => l.msg === 'informer failed; restarting' && String(l.informer).startsWith('EndpointSlice')),
      'the supervisor restarted the broken EndpointSlice watch',
    );
    assert.equal(sextant.process.exitCode, null, 'sextant kept running');

    // A change after the restart arrives.
    await k(['scale', '-n', ns, 'deployment/reviews-v1', '--replicas=2']);
    await k(['apply', '-f', '-'], virtualService('v2', 'prefix: /after-restart'));
    const ips = await waitFor('2 running reviews pods after the restart', async () => {
      const ips = await podIps();
      return ips.length === 2 ? ips : undefined;
    }, 60_000);
    await sub
      .until(TypeUrl.ClusterLoadAssignment, `EDS after the restart with ${ips.join(',')}`, (rs) => JSON.stringify(endpointIps(rs.get(`outbound|9080|v1|${fqdn}`))) === JSON.stringify(ips), 60_000)
      .catch(async (err: Error) => {
        // Say which side is stale: the pods, the API server's EndpointSlices, or Sextant's EDS.
        const eds = [...sub.resources(TypeUrl.ClusterLoadAssignment)].map(([name, cla]) => `${name}=${endpointIps(cla).join(',')}`);
        throw new Error(`${err.message}\nEDS by cluster: ${eds.join(' ')}\npods now: ${(await podIps()).join(',')}\nEndpointSlices now: ${await endpointSliceSummary()}\nsextant logs since the restart: ${sextant.logs.slice(restartsBefore).filter((l) => /informer|push|endpoint/i.test(String(l.msg))).slice(-40).map((l) => JSON.stringify(l)).join('\n')}`);
      });
    await sub.until(TypeUrl.RouteConfiguration, 'RDS after the restart', (rs) => JSON.stringify(rs.get('9080') ?? {}).includes('/after-restart'), 60_000);

    // A second Sextant, started now, lists everything afresh; both must serve the same config to the same proxy.
    const fresh = await startSextant({ kubeconfig: cluster.kubeconfig, args: ['--namespace', 'istio-system', '--pod-name', 'sextant-b'], readyTimeoutMs: 60_000 });
    extra.push(fresh);
    let last: string[] = [];
    await waitFor(
      'the long-running Sextant to serve what a fresh one serves',
      async () => {
        const [a, b] = await Promise.all([xdsSnapshot(sextant.xdsAddress), xdsSnapshot(fresh.xdsAddress)]);
        last = snapshotDiff(a, b);
        // What the stream open since before the restart holds (pushes merged as Envoy merges them) must equal it too.
        const held = sub.resources(TypeUrl.ClusterLoadAssignment);
        for (const name of [`outbound|9080||${fqdn}`, `outbound|9080|v1|${fqdn}`, `outbound|9080|v2|${fqdn}`]) {
          if (JSON.stringify(held.get(name)) !== JSON.stringify(b['eds']?.[name])) last.push(`eds ${name}: the long-lived stream holds ${JSON.stringify(held.get(name)).slice(0, 800)}\n  fresh: ${JSON.stringify(b['eds']?.[name]).slice(0, 800)}`);
        }
        if (last.length) return false;
        // Not vacuous: the snapshot holds this namespace's config.
        assert.ok(a['cds']?.[`outbound|9080|v1|${fqdn}`] && a['eds']?.[`outbound|9080|v1|${fqdn}`] && a['rds']?.['9080'] && Object.keys(a['lds'] ?? {}).length > 0);
        return true;
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${last.join('\n')}`);
    });
  });

  test('a real Envoy in the namespace ACKs the config built from the cluster (CDS, EDS, LDS, RDS; no NACK)', async () => {
    // Without traffic capture and with one egress listener (for reviews only) on a free loopback port, so concurrent tests never collide on 15001/15006.
    const port = await closedPort();
    const envoyNode = `sidecar~127.0.0.1~envoy-client-0.${ns}~${ns}.svc.cluster.local`;
    await k(['apply', '-f', '-'], `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: envoy-client, namespace: ${ns}}
spec:
  workloadSelector: {labels: {app: envoy-client}}
  egress:
  - port: {number: ${port}, protocol: HTTP, name: http}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./reviews.${ns}.svc.cluster.local"]
`);
    // No istio-agent here to serve SDS: plaintext to reviews, so no cluster waits for a certificate.
    const drUpdates = async () => Number(/pilot_k8s_cfg_events\{type="DestinationRule",event="update"\} (\d+)/.exec(await (await fetch(`${sextant.monitoringUrl}/metrics`)).text())?.[1] ?? 0);
    const drUpdatesBefore = await drUpdates();
    await k(['apply', '-f', '-'], destinationRule.replace('  subsets:', '  trafficPolicy: {tls: {mode: DISABLE}}\n  subsets:'));
    // Both edits must have reached Sextant before Envoy connects: clusters still using mTLS would
    // wait for SDS secrets no agent serves here, and hold back Envoy's listeners.
    await waitFor('the Sidecar and the DestinationRule edit reached Sextant', async () => {
      const metrics = await (await fetch(`${sextant.monitoringUrl}/metrics`)).text();
      return metrics.includes('pilot_k8s_cfg_events{type="Sidecar",event="add"} 1') && (await drUpdates()) > drUpdatesBefore;
    });
    envoy = await startEnvoy({ adsAddress: sextant.xdsAddress, nodeId: envoyNode, metadata: { NAMESPACE: ns, INTERCEPTION_MODE: 'NONE', LABELS: { app: 'envoy-client' } } });
    await envoy.waitForListener(`127.0.0.1_${port}`, 30_000);
    await waitFor('Envoy ACKed CDS, EDS, LDS and RDS with no NACK', async () => {
      const conns = (await debugJson(sextant.httpUrl, '/debug/syncz')) as Array<{ proxyId: string; types: Array<{ typeUrl: string; nonceSent?: string; nonceAcked?: string; nacks?: number }> }>;
      const mine = conns.find((c) => c.proxyId === envoyNode);
      if (!mine) return false;
      const types = new Map(mine.types.map((t) => [t.typeUrl, t]));
      return [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration].every((t) => {
        const st = types.get(t);
        return st !== undefined && st.nonceSent !== undefined && st.nonceAcked === st.nonceSent && !st.nacks;
      });
    });
    const stats = await envoy.stats();
    for (const s of ['cluster_manager.cds.update_rejected', 'listener_manager.lds.update_rejected']) assert.equal(Number(stats[s] ?? 0), 0, s);
    // The pods kwok runs are Envoy's endpoints of the subset cluster.
    const ips = await podIps();
    const clusters = await envoy.admin('/clusters');
    for (const ip of ips) assert.ok(clusters.includes(`outbound|9080|v1|${fqdn}::${ip}:9080`), `Envoy has endpoint ${ip} in the v1 subset`);
  });
});
