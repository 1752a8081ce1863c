/**
 * What a pod's proxy tells the control plane about itself, derived from the
 * pod as Istio's injector and pilot-agent would: the environment the
 * injection templates give the istio-proxy container (sidecar, gateway, or
 * the proxyless grpc-agent), and the Envoy node pilot-agent builds from it
 * (`sidecar~<podIP>~<pod>.<ns>~<ns>.svc.cluster.local` with the ISTIO_META_*
 * metadata). Pure: the caller reads the pod.
 */
import type { NodeJson } from './fetch.js';

/** The parts of a core/v1 Pod this reads. */
export interface PodLike {
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; controller?: boolean }>;
  };
  spec?: {
    nodeName?: string;
    serviceAccountName?: string;
    containers?: Array<{ name: string; image?: string; ports?: Array<{ containerPort: number; name?: string; protocol?: string }> }>;
  };
  status?: { podIP?: string; podIPs?: Array<{ ip: string }> };
}

export type ProxyKind = 'sidecar' | 'router' | 'grpc';

export interface PodProxyOptions {
  kind?: ProxyKind;
  clusterId?: string;
  trustDomain?: string;
  meshId?: string;
  /** ISTIO_VERSION pilot-agent reports (its build version). */
  istioVersion?: string;
  /** meshConfig.defaultConfig (ProxyConfig, camelCase JSON), as the injector renders PROXY_CONFIG. */
  proxyConfig?: Record<string, unknown>;
}

/**
 * ProxyConfig as the injector renders it into PROXY_CONFIG when the mesh's
 * defaultConfig sets nothing else (Istio's defaults for a pod's proxy).
 */
export const podProxyConfigDefaults: Readonly<Record<string, unknown>> = {
  binaryPath: '/usr/local/bin/envoy',
  configPath: './etc/istio/proxy',
  concurrency: 2,
  controlPlaneAuthPolicy: 'MUTUAL_TLS',
  discoveryAddress: 'istiod.istio-system.svc:15012',
  drainDuration: '45s',
  proxyAdminPort: 15000,
  serviceCluster: 'istio-proxy',
  statNameLength: 189,
  statusPort: 15020,
  terminationDrainDuration: '5s',
};

/** The workload (Deployment, or the bare owner) the injector names the pod after. */
export function podWorkload(pod: PodLike): { name: string; kind: string; apiVersion: string } {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller) ?? pod.metadata.ownerReferences?.[0];
  if (!owner) return { name: pod.metadata.name, kind: 'Pod', apiVersion: 'v1' };
  const hash = pod.metadata.labels?.['pod-template-hash'];
  // A ReplicaSet named <deployment>-<pod-template-hash> stands for its Deployment.
  if (owner.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`)) {
    return { name: owner.name.slice(0, -hash.length - 1), kind: 'Deployment', apiVersion: 'apps/v1' };
  }
  return { name: owner.name, kind: owner.kind, apiVersion: owner.apiVersion };
}

function podIps(pod: PodLike): string[] {
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip);
  if (ips.length === 0 && pod.status?.podIP) ips.push(pod.status.podIP);
  return ips;
}

/** The environment the injection template gives the proxy container (downward-API values resolved). */
export function injectedAgentEnv(pod: PodLike, opts: PodProxyOptions = {}): Record<string, string> {
  const ns = pod.metadata.namespace ?? 'default';
  const td = opts.trustDomain ?? 'cluster.local';
  const w = podWorkload(pod);
  const apps = (pod.spec?.containers ?? []).filter((c) => c.name !== 'istio-proxy');
  const ports = apps.flatMap((c) => (c.ports ?? []).map((p) => ({ ...p, protocol: p.protocol ?? 'TCP' })));
  const env: Record<string, string> = {
    POD_NAME: pod.metadata.name,
    POD_NAMESPACE: ns,
    INSTANCE_IP: podIps(pod)[0] ?? '',
    SERVICE_ACCOUNT: pod.spec?.serviceAccountName ?? 'default',
    ISTIO_META_POD_PORTS: JSON.stringify(ports),
    ISTIO_META_APP_CONTAINERS: apps.map((c) => c.name).join(','),
    ISTIO_META_CLUSTER_ID: opts.clusterId ?? 'Kubernetes',
    ISTIO_META_NODE_NAME: pod.spec?.nodeName ?? '',
    ISTIO_META_INTERCEPTION_MODE: pod.metadata.annotations?.['sidecar.istio.io/interceptionMode'] ?? 'REDIRECT',
    ISTIO_META_WORKLOAD_NAME: pod.metadata.labels?.['service.istio.io/workload-name'] ?? w.name,
    ISTIO_META_MESH_ID: opts.meshId ?? td,
    TRUST_DOMAIN: td,
  };
  if (w.kind !== 'Pod') env.ISTIO_META_OWNER = `kubernetes://apis/${w.apiVersion}/namespaces/${ns}/${w.kind.toLowerCase()}s/${w.name}`;
  if (opts.kind === 'grpc') {
    env.ISTIO_META_GENERATOR = 'grpc';
    env.ISTIO_META_DNS_CAPTURE = 'false';
    env.DISABLE_ENVOY = 'true';
  }
  return env;
}

/** The Envoy node ID pilot-agent uses for the pod. */
export function podNodeId(pod: PodLike, kind: ProxyKind = 'sidecar'): string {
  const ns = pod.metadata.namespace ?? 'default';
  const ip = podIps(pod)[0];
  if (!ip) throw new Error(`pod ${ns}/${pod.metadata.name} has no IP yet`);
  return `${kind === 'router' ? 'router' : 'sidecar'}~${ip}~${pod.metadata.name}.${ns}~${ns}.svc.cluster.local`;
}

/**
 * The node pilot-agent would send for the pod: the injected ISTIO_META_*
 * values (prefix stripped) plus what the agent adds itself (namespace,
 * service account, instance IPs, labels without pod-template-hash,
 * annotations, its version, ProxyConfig and status ports).
 */
export function podNode(pod: PodLike, opts: PodProxyOptions = {}): NodeJson {
  const env = injectedAgentEnv(pod, opts);
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('ISTIO_META_')) meta[k.slice('ISTIO_META_'.length)] = v;
  const labels = { ...(pod.metadata.labels ?? {}) };
  delete labels['pod-template-hash'];
  Object.assign(meta, {
    NAME: pod.metadata.name,
    NAMESPACE: env.POD_NAMESPACE,
    SERVICE_ACCOUNT: env.SERVICE_ACCOUNT,
    INSTANCE_IPS: podIps(pod).join(','),
    LABELS: labels,
    ANNOTATIONS: { ...(pod.metadata.annotations ?? {}) },
    ISTIO_VERSION: opts.istioVersion ?? '1.31-dev',
    PROXY_CONFIG: { ...podProxyConfigDefaults, ...(opts.proxyConfig ?? {}) },
    ENVOY_STATUS_PORT: 15021,
    ENVOY_PROMETHEUS_PORT: 15090,
    PILOT_SAN: ['istiod.istio-system.svc'],
    METADATA_DISCOVERY: 'false',
    ENVOY_SKIP_DEPRECATED_LOGS: 'true',
    WORKLOAD_IDENTITY_SOCKET_FILE: 'socket',
  });
  return {
    id: podNodeId(pod, opts.kind),
    cluster: `${env.ISTIO_META_WORKLOAD_NAME}.${env.POD_NAMESPACE}`,
    metadata: meta,
  };
}
