import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { KubeClient } from '@sextant/sources';
import {
  builtinDecoder,
  classify,
  compareProxy,
  formatReport,
  loadDescriptorSet,
  loadExpectedDifferences,
  podNode,
  type NodeJson,
  type PodLike,
  type ProxyKind,
  type XdsDecoder,
} from '@sextant/xds/compare';
import { FlagError, parseDuration } from './flags.js';

export const compareFlags = {
  istiod: { type: 'string' },
  sextant: { type: 'string' },
  node: { type: 'string' },
  metadata: { type: 'string' },
  pod: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  kubeconfig: { type: 'string' },
  'istio-namespace': { type: 'string', default: 'istio-system' },
  'proxy-type': { type: 'string' },
  listeners: { type: 'string' },
  descriptors: { type: 'string' },
  expected: { type: 'string' },
  label: { type: 'string' },
  'istio-version': { type: 'string' },
  timeout: { type: 'string', default: '20s' },
  o: { type: 'string', short: 'o', default: 'text' },
  output: { type: 'string' },
} as const;

type Json = Record<string, unknown>;

/** The Envoy node for --pod: read the pod (and the mesh's defaultConfig) and derive it as the injector and pilot-agent would. */
async function nodeForPod(kubeconfig: string, ref: string, namespace: string | undefined, istioNs: string, kind: ProxyKind, istioVersion: string | undefined): Promise<NodeJson> {
  const [ns, name] = ref.includes('/') ? (ref.split('/', 2) as [string, string]) : [namespace ?? 'default', ref];
  const kube = new KubeClient({ kubeconfigPath: kubeconfig });
  let pod: PodLike;
  try {
    pod = await kube.request('GET', `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}`);
  } catch (err) {
    throw new FlagError(`compare: --pod ${ns}/${name}: ${(err as Error).message}`);
  }
  let proxyConfig: Json = {};
  try {
    const cm = await kube.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${encodeURIComponent(istioNs)}/configmaps/istio`);
    const mesh = (parseYaml(cm.data?.['mesh'] ?? '') ?? {}) as Json;
    proxyConfig = (mesh['defaultConfig'] as Json | undefined) ?? {};
  } catch {
    // No MeshConfig ConfigMap: the proxy runs with ProxyConfig defaults.
  }
  const annotated = pod.metadata.annotations?.['proxy.istio.io/config'];
  if (annotated) proxyConfig = { ...proxyConfig, ...((parseYaml(annotated) ?? {}) as Json) };
  // The proxy's version is its image tag (docker.io/istio/proxyv2:1.28.0), unless given.
  const image = pod.spec?.containers?.find((c) => c.name === 'istio-proxy')?.image;
  const tag = image && /:([^:/@]+)$/.exec(image)?.[1];
  return podNode(pod, { kind, proxyConfig, ...(istioVersion ?? tag ? { istioVersion: istioVersion ?? tag! } : {}) });
}

function parseMetadata(text: string): Json {
  const raw = text.startsWith('@') ? readFileSync(text.slice(1), 'utf8') : text;
  try {
    const v = JSON.parse(raw) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Json;
  } catch (err) {
    throw new FlagError(`compare: --metadata: ${(err as Error).message}`);
  }
}

/**
 * `sextant compare`: what istiod serves a proxy against what Sextant serves
 * the same proxy, both fetched over ADS with the same node, decoded with the
 * same descriptors and printed as the parity suite prints them. Exit 0 when
 * nothing unexplained differs, 1 otherwise.
 */
export async function runCompare(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({ args: argv, options: compareFlags, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new FlagError((err as Error).message);
  }
  if (!values.istiod) throw new FlagError("compare: --istiod HOST:PORT is required (istiod's plaintext xDS port, 15010)");
  if (!values.sextant) throw new FlagError("compare: --sextant HOST:PORT is required (Sextant's plaintext xDS port, --xds-port)");
  if (!values.node === !values.pod) throw new FlagError('compare: give either --node NODE_ID [--metadata JSON] or --pod [NAMESPACE/]NAME --kubeconfig FILE');
  const format = values.output ?? values.o ?? 'text';
  if (format !== 'text' && format !== 'json') throw new FlagError(`compare: -o ${format}: expected text or json`);
  const kindFlag = values['proxy-type'];
  if (kindFlag !== undefined && !['sidecar', 'router', 'grpc'].includes(kindFlag)) throw new FlagError(`compare: --proxy-type ${kindFlag}: expected sidecar, router or grpc`);
  const timeoutMs = parseDuration('timeout', values.timeout ?? '20s');

  let node: NodeJson;
  if (values.pod) {
    if (!values.kubeconfig) throw new FlagError('compare: --pod needs --kubeconfig FILE');
    node = await nodeForPod(values.kubeconfig, values.pod, values.namespace, values['istio-namespace'] ?? 'istio-system', (kindFlag ?? 'sidecar') as ProxyKind, values['istio-version']);
  } else {
    node = { id: values.node!, metadata: values.metadata ? parseMetadata(values.metadata) : {} };
  }
  const client = kindFlag === 'grpc' || node.metadata?.['GENERATOR'] === 'grpc' ? 'grpc' : 'envoy';

  let decoder: XdsDecoder;
  const descriptors = values.descriptors ?? process.env.SEXTANT_XDS_DESCRIPTORS;
  if (descriptors) {
    try {
      decoder = loadDescriptorSet(descriptors);
    } catch (err) {
      throw new FlagError(`compare: --descriptors: ${(err as Error).message}`);
    }
  } else {
    decoder = builtinDecoder();
    process.stderr.write("sextant compare: no --descriptors; Istio's extension configs compare as opaque bytes\n");
  }
  let expected;
  if (values.expected) {
    try {
      expected = loadExpectedDifferences(values.expected);
    } catch (err) {
      throw new FlagError(`compare: --expected: ${(err as Error).message}`);
    }
  }

  // The name `proxies:` globs in the expected file are matched against.
  const label = values.label ?? values.pod ?? node.id;
  const result = await compareProxy({
    proxy: label,
    node,
    client,
    ...(values.listeners ? { listeners: values.listeners.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
    istiod: { address: values.istiod },
    sextant: { address: values.sextant },
    decoder,
    timeoutMs,
  });
  const report = classify([result], expected);
  if (format === 'json') {
    const p = report.proxies[0]!;
    process.stdout.write(
      JSON.stringify(
        {
          proxy: p.proxy,
          nodeId: p.nodeId,
          node,
          expected: Object.fromEntries([...p.expected].map(([id, ds]) => [id, ds.length])),
          unexpected: Object.fromEntries(p.unexpected),
          expectedCount: report.expectedCount,
          unexpectedCount: report.unexpectedCount,
        },
        null,
        2,
      ) + '\n',
    );
  } else {
    // A single proxy: entries it does not hit are not stale, just not about it.
    process.stdout.write(formatReport({ ...report, stale: [] }) + '\n');
  }
  return report.unexpectedCount === 0 ? 0 : 1;
}
