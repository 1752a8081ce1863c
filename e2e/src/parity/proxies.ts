/**
 * The proxies of the parity matrix, with the node each sends. The node is
 * not written by hand: Istio's own pilot-agent is run with the environment
 * its injection template gives the pod (injectedAgentEnv) and with a
 * stand-in for Envoy that only copies the bootstrap pilot-agent renders; the
 * node in that bootstrap (or, for proxyless gRPC, in the gRPC bootstrap the
 * agent writes) is exactly what the proxy would send.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { injectedAgentEnv, podProxyConfigDefaults, type NodeJson, type PodLike, type ProxyKind } from '@sextant/xds/compare';
import { startAgent } from '../fixtures/agent.js';

export interface MatrixProxy {
  /** Label in reports and in expected-differences.yaml `proxies:` globs. */
  label: string;
  kind: ProxyKind;
  namespace: string;
  /** Label selector of the pod (the first matching pod is used). */
  selector: string;
  /** Proxyless gRPC: the listeners (xds:/// targets) it asks for. */
  listeners?: string[];
}

export const matrix: MatrixProxy[] = [
  { label: 'sidecar-shop-frontend', kind: 'sidecar', namespace: 'shop', selector: 'app=frontend' },
  { label: 'sidecar-shop-reviews', kind: 'sidecar', namespace: 'shop', selector: 'app=reviews,version=v1' },
  { label: 'sidecar-data-mongo', kind: 'sidecar', namespace: 'data', selector: 'app=mongo' },
  { label: 'sidecar-legacy-billing', kind: 'sidecar', namespace: 'legacy', selector: 'app=billing' },
  { label: 'gateway-ingress', kind: 'router', namespace: 'istio-system', selector: 'istio=ingressgateway' },
  {
    label: 'grpc-client',
    kind: 'grpc',
    namespace: 'grpc',
    selector: 'app=grpc-client',
    listeners: ['echo.grpc.svc.cluster.local:7070', 'reviews.shop.svc.cluster.local:9082'],
  },
];

/** Runs pilot-agent for the pod just long enough to read the node it renders. */
export async function captureAgentNode(pod: PodLike, kind: ProxyKind, rootPem: string, proxyConfig: Record<string, unknown> = {}): Promise<NodeJson> {
  const scratch = mkdtempSync(join(tmpdir(), 'sextant-node-'));
  const captured = join(scratch, 'bootstrap.json');
  const fakeEnvoy = join(scratch, 'envoy');
  // Stands in for Envoy: keeps a copy of the bootstrap (pilot-agent removes its own on exit) and idles.
  writeFileSync(fakeEnvoy, `#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ "$1" = "-c" ]; then cp "$2" "${captured}.tmp" && mv "${captured}.tmp" "${captured}"; fi; shift; done\nexec sleep 120\n`);
  chmodSync(fakeEnvoy, 0o755);
  const env = injectedAgentEnv(pod, { kind });
  const agent = await startAgent({
    discoveryAddress: 'localhost:15012',
    rootPem,
    token: 'unused',
    podName: pod.metadata.name,
    namespace: pod.metadata.namespace ?? 'default',
    serviceAccount: env.SERVICE_ACCOUNT!,
    ip: env.INSTANCE_IP!,
    labels: pod.metadata.labels ?? {},
    annotations: pod.metadata.annotations ?? {},
    proxyType: kind === 'router' ? 'router' : 'sidecar',
    envoyPath: fakeEnvoy,
    proxyConfig,
    env,
  });
  try {
    const file = kind === 'grpc' ? join(agent.cwd, 'etc/istio/proxy/grpc-bootstrap.json') : captured;
    const deadline = Date.now() + 20_000;
    while (!existsSync(file)) {
      if (Date.now() > deadline) throw new Error(`pilot-agent wrote no bootstrap for ${pod.metadata.namespace}/${pod.metadata.name} within 20 s:\n${agent.output().slice(-4000)}`);
      await Promise.race([new Promise((r) => setTimeout(r, 100)), agent.exited]);
    }
    // Written by rename (ours) or in one write (the agent's); parse once complete.
    let node: NodeJson | undefined;
    for (let i = 0; i < 50 && !node; i++) {
      try {
        node = (JSON.parse(readFileSync(file, 'utf8')) as { node: NodeJson }).node;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!node) throw new Error(`unreadable bootstrap ${file}`);
    return asInPod(node, pod);
  } finally {
    await agent.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * What the agent could only learn from this host, put back to what it sees in
 * a pod: the interface addresses (here the host's; in a pod only the pod's
 * IPs), the status and Prometheus ports and the ProxyConfig fields the
 * fixture points at scratch paths and free ports (in a pod, Istio's defaults).
 */
function asInPod(node: NodeJson, pod: PodLike): NodeJson {
  const meta = { ...(node.metadata ?? {}) };
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip);
  meta['INSTANCE_IPS'] = (ips.length ? ips : [pod.status?.podIP ?? '']).join(',');
  if ('ENVOY_STATUS_PORT' in meta) meta['ENVOY_STATUS_PORT'] = 15021;
  if ('ENVOY_PROMETHEUS_PORT' in meta) meta['ENVOY_PROMETHEUS_PORT'] = 15090;
  const pc = meta['PROXY_CONFIG'] as Record<string, unknown> | undefined;
  if (pc) {
    const fixed = Object.fromEntries(['binaryPath', 'configPath', 'proxyAdminPort', 'statusPort', 'concurrency', 'drainDuration', 'terminationDrainDuration'].map((k) => [k, podProxyConfigDefaults[k]]));
    meta['PROXY_CONFIG'] = { ...pc, ...fixed };
  }
  return { ...node, metadata: meta };
}
