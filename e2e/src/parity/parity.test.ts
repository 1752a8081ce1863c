import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import {
  classify,
  compareProxy,
  formatReport,
  loadDescriptorSet,
  loadExpectedDifferences,
  podNode,
  type NodeJson,
  type PodLike,
  type ProxyComparison,
  type XdsDecoder,
  type XdsSnapshot,
} from '@sextant/xds/compare';
import { type Cluster, kubectl, kubectlJson, startCluster, waitFor, waitForCrdsEstablished } from '../cluster.js';
import { istiodShareFile, startIstiod, type RunningIstiod } from '../istiod.js';
import { sextantBin, startSextant, type RunningSextant } from '../sextant.js';
import { skipUnless } from '../tools.js';
import { captureAgentNode, matrix } from './proxies.js';

/**
 * The parity suite: istiod (Istio's own pilot-discovery) and Sextant watch one
 * local cluster holding one corpus (corpus/*.yaml) and one MeshConfig; each
 * proxy of the matrix, with the node pilot-agent renders for its pod, fetches
 * LDS/RDS/CDS/EDS from both; the two are decoded with istiod's own descriptors,
 * normalised and diffed. Every difference must be listed in
 * e2e/parity/expected-differences.yaml, and every entry there must still
 * occur. docs/parity.md says how to read and extend it.
 */
const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'pilot-discovery', 'pilot-agent');
const corpusDir = fileURLToPath(new URL('../../src/parity/corpus/', import.meta.url));
const expectedFile = fileURLToPath(new URL('../../parity/expected-differences.yaml', import.meta.url));

type Json = Record<string, unknown>;

/** Rounds of comparing again a proxy whose differences the list does not explain, and the pause before each. */
const PARITY_RETRIES = 2;
const PARITY_RETRY_PAUSE_MS = 5_000;

/** The `mesh` text of the corpus' `istio` ConfigMap: istiod reads it from the cluster, Sextant from --mesh-config. */
function corpusMeshConfig(): string {
  for (const f of readdirSync(corpusDir).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(corpusDir, f), 'utf8'))) {
      const o = doc.toJS() as Json | null;
      const meta = o?.['metadata'] as Json | undefined;
      if (o?.['kind'] === 'ConfigMap' && meta?.['name'] === 'istio' && meta['namespace'] === 'istio-system') return String((o['data'] as Json)['mesh']);
    }
  }
  throw new Error(`no istio-system/istio ConfigMap in ${corpusDir}`);
}

describe('parity with istiod', { skip, timeout: 400_000 }, () => {
  let cluster: Cluster;
  let istiod: RunningIstiod;
  let sextant: RunningSextant;
  let decoder: XdsDecoder;
  let scratch: string;
  let meshText: string;
  let defaultConfig: Json = {};
  const nodes = new Map<string, { node: NodeJson; pod: PodLike }>();
  const results: ProxyComparison[] = [];

  before(async () => {
    decoder = loadDescriptorSet(istiodShareFile('xds-descriptors.binpb'));
    scratch = mkdtempSync(join(tmpdir(), 'sextant-parity-'));
    meshText = corpusMeshConfig();
    const meshFile = join(scratch, 'mesh.yaml');
    writeFileSync(meshFile, meshText);
    cluster = await startCluster();
    const kc = cluster.kubeconfig;
    await kubectl(kc, ['apply', '--server-side', '-f', istiodShareFile('istio-crds.yaml')], undefined, 120_000);
    await waitForCrdsEstablished(kc);
    await kubectl(kc, ['apply', '-f', corpusDir], undefined, 120_000);

    // Every Deployment's pods Running with IPs, every selected Service with ready endpoints,
    // before either control plane starts: both then begin from the same, settled cluster.
    type Deploy = { metadata: { name: string; namespace: string }; spec: { replicas: number }; status?: { readyReplicas?: number } };
    await waitFor('Deployments ready', async () => {
      const { items } = await kubectlJson<{ items: Deploy[] }>(kc, ['get', 'deployments', '-A']);
      return items.length > 0 && items.every((d) => (d.status?.readyReplicas ?? 0) === d.spec.replicas);
    }, 120_000);
    type Svc = { metadata: { name: string; namespace: string }; spec: { selector?: Json } };
    type Slice = { metadata: { labels?: Record<string, string>; namespace: string }; endpoints?: Array<{ conditions?: { ready?: boolean } }> };
    await waitFor('EndpointSlices with ready endpoints', async () => {
      const [{ items: svcs }, { items: slices }] = await Promise.all([
        kubectlJson<{ items: Svc[] }>(kc, ['get', 'services', '-A']),
        kubectlJson<{ items: Slice[] }>(kc, ['get', 'endpointslices', '-A']),
      ]);
      return svcs
        .filter((s) => s.spec.selector)
        .every((s) =>
          slices.some((sl) => sl.metadata.namespace === s.metadata.namespace && sl.metadata.labels?.['kubernetes.io/service-name'] === s.metadata.name && (sl.endpoints ?? []).some((e) => e.conditions?.ready)),
        );
    }, 120_000);

    // istiod first: it creates the self-signed CA Secret (istio-ca-secret) that Sextant then shares,
    // so both publish the same root and neither rewrites the other's istio-ca-root-cert ConfigMaps.
    istiod = await startIstiod({ kubeconfig: kc });
    sextant = await startSextant({ kubeconfig: kc, args: ['--mesh-config', meshFile, '--namespace', 'istio-system'], readyTimeoutMs: 60_000 });

    const rootPem = readFileSync(cluster.caCertPath, 'utf8');
    defaultConfig = ((parseYaml(meshText) as Json)['defaultConfig'] ?? {}) as Json;
    await Promise.all(
      matrix.map(async (p) => {
        const { items } = await kubectlJson<{ items: PodLike[] }>(kc, ['get', 'pods', '-n', p.namespace, '-l', p.selector]);
        const pod = items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))[0];
        assert.ok(pod, `no pod for ${p.label} (${p.namespace} ${p.selector})`);
        nodes.set(p.label, { node: await captureAgentNode(pod, p.kind, rootPem, defaultConfig), pod });
      }),
    );
  });

  after(async () => {
    await sextant?.stop();
    await istiod?.stop();
    await cluster?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  test('pilot-agent sends the node the pod implies (what `sextant compare --pod` derives)', () => {
    // The metadata istiod reads to build a proxy's config; podNode must agree with the real agent on each.
    const keys = ['NAMESPACE', 'LABELS', 'SERVICE_ACCOUNT', 'WORKLOAD_NAME', 'OWNER', 'CLUSTER_ID', 'MESH_ID', 'INTERCEPTION_MODE', 'INSTANCE_IPS', 'ISTIO_VERSION', 'APP_CONTAINERS', 'NODE_NAME', 'GENERATOR', 'NAME', 'PROXY_CONFIG', 'PILOT_SAN', 'METADATA_DISCOVERY'];
    for (const p of matrix) {
      const { node, pod } = nodes.get(p.label)!;
      const derived = podNode(pod, { kind: p.kind, proxyConfig: defaultConfig });
      assert.equal(derived.id, node.id, `${p.label}: node ID`);
      for (const k of keys) assert.deepEqual(derived.metadata?.[k], node.metadata?.[k], `${p.label}: metadata ${k}`);
      assert.deepEqual(JSON.parse(String(derived.metadata?.['POD_PORTS'])), JSON.parse(String(node.metadata?.['POD_PORTS'] ?? '[]')), `${p.label}: metadata POD_PORTS`);
    }
  });

  test('every difference from istiod is listed in expected-differences.yaml, and every listed one still occurs', async (t) => {
    const expected = loadExpectedDifferences(expectedFile);
    const compareOne = async (p: (typeof matrix)[number]) => {
      const { node } = nodes.get(p.label)!;
      return compareProxy({
        proxy: p.label,
        node,
        client: p.kind === 'grpc' ? 'grpc' : 'envoy',
        ...(p.listeners ? { listeners: p.listeners } : {}),
        istiod: { address: istiod.grpcAddress },
        sextant: { address: sextant.xdsAddress },
        decoder,
        settleFetches: 4,
      });
    };
    for (const p of matrix) results.push(await compareOne(p));
    // A control plane still catching up with the cluster can give two equal, incomplete answers in a row (istiod
    // once served the first proxies without their inbound clusters on a loaded machine). A proxy with differences
    // the list does not explain is compared again after a pause, twice at most; one that still differs fails below.
    let report = classify(results, expected);
    for (let round = 1; round <= PARITY_RETRIES; round++) {
      // classify keeps the order of results, which is the matrix's.
      const unexplained = report.proxies.flatMap((r, i) => (r.unexpected.size > 0 ? [i] : []));
      if (unexplained.length === 0) break;
      t.diagnostic(`compared again after ${PARITY_RETRY_PAUSE_MS} ms (round ${round}), with differences the list does not explain: ${unexplained.map((i) => matrix[i]!.label).join(', ')}`);
      await new Promise((r) => setTimeout(r, PARITY_RETRY_PAUSE_MS));
      for (const i of unexplained) results[i] = await compareOne(matrix[i]!);
      report = classify(results, expected);
    }
    // Both control planes must actually serve the matrix: an empty answer on both sides would compare equal.
    for (const r of results as Array<ProxyComparison & { istiod: XdsSnapshot }>) {
      assert.ok(r.istiod.lds.size > 0 && r.istiod.cds.size > 0, `${r.proxy}: istiod served no listeners or clusters`);
    }
    const text = formatReport(report);
    if (process.env.SEXTANT_PARITY_REPORT) writeFileSync(process.env.SEXTANT_PARITY_REPORT, text + '\n');
    // Everything both served, per proxy, for working on a difference (docs/parity.md).
    const dumpDir = process.env.SEXTANT_PARITY_DUMP;
    if (dumpDir) {
      mkdirSync(dumpDir, { recursive: true });
      for (const r of results as Array<ProxyComparison & { istiod: XdsSnapshot; sextant: XdsSnapshot }>) {
        const plain = (s: XdsSnapshot) => Object.fromEntries(Object.entries(s).map(([t, m]) => [t, Object.fromEntries(m)]));
        writeFileSync(join(dumpDir, `${r.proxy}.json`), JSON.stringify({ node: nodes.get(r.proxy)!.node, istiod: plain(r.istiod), sextant: plain(r.sextant), differences: r.differences }, null, 1));
      }
    }
    assert.equal(report.unexpectedCount + report.stale.length, 0, `parity report (see docs/parity.md):\n${text}`);
    t.diagnostic(`${report.expectedCount} differences over ${results.length} proxies, all explained by ${report.entries.length} entries`);
  });

  test('`sextant compare --pod` against the live istiod reports what the suite reports for that proxy', async () => {
    const p = matrix.find((m) => m.label === 'sidecar-shop-frontend')!;
    const { pod } = nodes.get(p.label)!;
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [
          sextantBin,
          'compare',
          '--istiod', istiod.grpcAddress,
          '--sextant', sextant.xdsAddress,
          '--pod', `${pod.metadata.namespace}/${pod.metadata.name}`,
          '--kubeconfig', cluster.kubeconfig,
          '--descriptors', istiodShareFile('xds-descriptors.binpb'),
          '--expected', expectedFile,
          '--label', p.label,
          '-o', 'json',
        ],
        { timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(out.code, 0, `sextant compare exited ${out.code}:\n${out.stderr}\n${out.stdout.slice(0, 4000)}`);
    const json = JSON.parse(out.stdout) as { nodeId: string; expected: Record<string, number>; unexpectedCount: number };
    assert.equal(json.nodeId, nodes.get(p.label)!.node.id);
    assert.equal(json.unexpectedCount, 0);
    const suite = classify(results.filter((r) => r.proxy === p.label), loadExpectedDifferences(expectedFile)).proxies[0]!;
    assert.deepEqual(Object.keys(json.expected).sort(), [...suite.expected.keys()].sort(), 'same feature groups as the suite');
  });
});
