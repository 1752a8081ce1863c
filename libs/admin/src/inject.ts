/**
 * Sidecar injection: the decision (namespace labels, revision, the pod's
 * `sidecar.istio.io/inject`) and the JSONPatch that adds an istio-proxy
 * sidecar compatible with Istio's proxyv2 image and pilot-agent (same
 * container, volume, env, annotation and label names as Istio's injection
 * template, so stock tooling recognises an injected pod).
 */

export interface InjectOptions {
  /** Image registry, e.g. `docker.io/istio`. */
  hub: string;
  /** Image tag, e.g. `1.24.0`. */
  tag: string;
  /** Proxy image name or full reference (default `proxyv2`). */
  proxyImage?: string;
  /** Where pilot-agent fetches config and certificates, host:port (Sextant's secure port, 15012). */
  discoveryAddress: string;
  /** CA address if it differs from the discovery address. */
  caAddress?: string;
  /** This control plane's revision; '' or 'default' is the default revision. */
  revision?: string;
  trustDomain?: string;
  /** DNS suffix of the cluster (`cluster.local`). */
  clusterDomain?: string;
  meshId?: string;
  clusterId?: string;
  network?: string;
  /** With the Istio CNI plugin no privileged init container is added (istio-validation instead). */
  cni?: boolean;
  /** meshConfig.defaultConfig (ProxyConfig), passed to pilot-agent as PROXY_CONFIG. */
  proxyConfig?: Record<string, unknown>;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Audience of the projected token the proxy presents to the CA (default `istio-ca`). */
  tokenAudience?: string;
  logLevel?: string;
}

export interface PodLike {
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{ apiVersion?: string; kind?: string; name?: string; controller?: boolean }>;
  };
  spec?: {
    containers?: Array<{ name: string; ports?: Array<Record<string, unknown>> }>;
    initContainers?: unknown[];
    volumes?: unknown[];
    hostNetwork?: boolean;
    serviceAccountName?: string;
  };
}

export type JsonPatchOp = { op: 'add' | 'replace' | 'remove'; path: string; value?: unknown };

export const injectedStatusAnnotation = 'sidecar.istio.io/status';
const ignoredNamespaces = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage']);

function isDefaultRevision(r: string | undefined): boolean {
  return !r || r === 'default';
}

/**
 * Whether this control plane injects the pod, Istio's way: `istio-injection=disabled`
 * or `sidecar.istio.io/inject: "false"` never; an already injected pod or a
 * hostNetwork pod never; `istio-injection=enabled` (default revision) or
 * `istio.io/rev=<revision>` on the namespace or the pod selects it;
 * `sidecar.istio.io/inject: "true"` on the pod selects it for the default revision.
 */
export function injectionDecision(pod: PodLike, namespace: string, nsLabels: Record<string, string> | undefined, opts: Pick<InjectOptions, 'revision'>): { inject: boolean; reason: string } {
  const labels = pod.metadata?.labels ?? {};
  const ann = pod.metadata?.annotations ?? {};
  const ours = (rev: string | undefined) => (isDefaultRevision(opts.revision) ? isDefaultRevision(rev) : rev === opts.revision);
  if (ignoredNamespaces.has(namespace)) return { inject: false, reason: `namespace ${namespace} is never injected` };
  if (pod.spec?.hostNetwork) return { inject: false, reason: 'hostNetwork pod' };
  if (ann[injectedStatusAnnotation]) return { inject: false, reason: 'already injected' };
  const podFlag = labels['sidecar.istio.io/inject'] ?? ann['sidecar.istio.io/inject'];
  if (podFlag === 'false') return { inject: false, reason: 'sidecar.istio.io/inject=false on the pod' };
  const nsl = nsLabels ?? {};
  if (nsl['istio-injection'] === 'disabled') return { inject: false, reason: 'istio-injection=disabled on the namespace' };
  const podRev = labels['istio.io/rev'];
  if (podRev !== undefined) return ours(podRev) ? { inject: true, reason: `istio.io/rev=${podRev} on the pod` } : { inject: false, reason: `pod selects revision ${podRev}` };
  if (nsl['istio-injection'] === 'enabled') {
    return isDefaultRevision(opts.revision) ? { inject: true, reason: 'istio-injection=enabled on the namespace' } : { inject: false, reason: 'namespace selects the default revision' };
  }
  const nsRev = nsl['istio.io/rev'];
  if (nsRev !== undefined) return ours(nsRev) ? { inject: true, reason: `istio.io/rev=${nsRev} on the namespace` } : { inject: false, reason: `namespace selects revision ${nsRev}` };
  if (podFlag === 'true') return ours(undefined) ? { inject: true, reason: 'sidecar.istio.io/inject=true on the pod' } : { inject: false, reason: 'pod selects the default revision' };
  return { inject: false, reason: 'namespace not labelled for injection' };
}

/** `/` and `~` escaped for a JSON Pointer segment. */
export function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The workload name Istio derives from a pod: its controller's name, with a ReplicaSet's hash stripped. */
export function workloadName(pod: PodLike): string {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller) ?? pod.metadata?.ownerReferences?.[0];
  if (owner?.name) {
    if (owner.kind === 'ReplicaSet') return owner.name.replace(/-[a-z0-9]{5,10}$/, '');
    if (owner.kind === 'Job') return owner.name;
    return owner.name;
  }
  return pod.metadata?.name ?? (pod.metadata?.generateName ?? 'pod').replace(/-$/, '');
}

function image(opts: InjectOptions, name: string): string {
  return name.includes('/') ? name : `${opts.hub}/${name}:${opts.tag}`;
}

/** The containers, volumes, annotations and labels the sidecar adds; exported for tests and /debug. */
export function sidecarParts(pod: PodLike, namespace: string, opts: InjectOptions) {
  const ann = pod.metadata?.annotations ?? {};
  const labels = pod.metadata?.labels ?? {};
  const clusterDomain = opts.clusterDomain ?? 'cluster.local';
  const pullPolicy = opts.imagePullPolicy ?? 'IfNotPresent';
  const audience = opts.tokenAudience ?? 'istio-ca';
  const workload = workloadName(pod);
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller);
  const containers = pod.spec?.containers ?? [];
  const podPorts = containers.flatMap((c) => c.ports ?? []);
  const interception = ann['sidecar.istio.io/interceptionMode'] ?? 'REDIRECT';
  const proxyImage = ann['sidecar.istio.io/proxyImage'] ?? opts.proxyImage ?? 'proxyv2';
  const env: Array<Record<string, unknown>> = [
    { name: 'PILOT_CERT_PROVIDER', value: 'istiod' },
    { name: 'CA_ADDR', value: opts.caAddress ?? opts.discoveryAddress },
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'INSTANCE_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'SERVICE_ACCOUNT', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
    { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
    { name: 'ISTIO_CPU_LIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu', divisor: '0' } } },
    { name: 'PROXY_CONFIG', value: JSON.stringify({ ...(opts.proxyConfig ?? {}), discoveryAddress: opts.discoveryAddress }) },
    { name: 'ISTIO_META_POD_PORTS', value: JSON.stringify(podPorts) },
    { name: 'ISTIO_META_APP_CONTAINERS', value: containers.map((c) => c.name).join(',') },
    { name: 'ISTIO_META_CLUSTER_ID', value: opts.clusterId ?? 'Kubernetes' },
    { name: 'ISTIO_META_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    { name: 'ISTIO_META_INTERCEPTION_MODE', value: interception },
    { name: 'ISTIO_META_WORKLOAD_NAME', value: workload },
    { name: 'ISTIO_META_MESH_ID', value: opts.meshId ?? opts.trustDomain ?? 'cluster.local' },
    { name: 'TRUST_DOMAIN', value: opts.trustDomain ?? 'cluster.local' },
  ];
  if (owner?.apiVersion && owner.kind && owner.name) {
    // Istio names the owning Deployment, not the ReplicaSet.
    const kind = owner.kind === 'ReplicaSet' ? 'deployments' : `${owner.kind.toLowerCase()}s`;
    const apiVersion = owner.kind === 'ReplicaSet' ? 'apps/v1' : owner.apiVersion;
    env.push({ name: 'ISTIO_META_OWNER', value: `kubernetes://apis/${apiVersion}/namespaces/${namespace}/${kind}/${workload}` });
  }
  if (opts.network) env.push({ name: 'ISTIO_META_NETWORK', value: opts.network });
  if (Object.keys(ann).length) env.push({ name: 'ISTIO_METAJSON_ANNOTATIONS', value: JSON.stringify(ann) });
  for (const [k, v] of Object.entries((opts.proxyConfig?.proxyMetadata as Record<string, string> | undefined) ?? {})) env.push({ name: k, value: String(v) });

  const proxy = {
    name: 'istio-proxy',
    image: image(opts, proxyImage),
    imagePullPolicy: pullPolicy,
    args: [
      'proxy',
      'sidecar',
      '--domain',
      `$(POD_NAMESPACE).svc.${clusterDomain}`,
      `--proxyLogLevel=${ann['sidecar.istio.io/logLevel'] ?? opts.logLevel ?? 'warning'}`,
      `--proxyComponentLogLevel=${ann['sidecar.istio.io/componentLogLevel'] ?? 'misc:error'}`,
      '--log_output_level=default:info',
    ],
    env,
    ports: [{ containerPort: 15090, protocol: 'TCP', name: 'http-envoy-prom' }],
    readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 }, initialDelaySeconds: 0, periodSeconds: 15, timeoutSeconds: 3, failureThreshold: 4 },
    resources: { requests: { cpu: ann['sidecar.istio.io/proxyCPU'] ?? '100m', memory: ann['sidecar.istio.io/proxyMemory'] ?? '128Mi' } },
    securityContext: {
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsGroup: 1337,
      runAsNonRoot: true,
      runAsUser: 1337,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: 'workload-socket', mountPath: '/var/run/secrets/workload-spiffe-uds' },
      { name: 'credential-socket', mountPath: '/var/run/secrets/credential-uds' },
      { name: 'workload-certs', mountPath: '/var/run/secrets/workload-spiffe-credentials' },
      { name: 'istiod-ca-cert', mountPath: '/var/run/secrets/istio' },
      { name: 'istio-data', mountPath: '/var/lib/istio/data' },
      { name: 'istio-envoy', mountPath: '/etc/istio/proxy' },
      { name: 'istio-token', mountPath: '/var/run/secrets/tokens' },
      { name: 'istio-podinfo', mountPath: '/etc/istio/pod' },
    ],
  };

  const initContainers: Array<Record<string, unknown>> = [];
  if (interception !== 'NONE') {
    const excludeInbound = ['15090', '15021', '15020', ann['traffic.sidecar.istio.io/excludeInboundPorts']].filter(Boolean).join(',');
    initContainers.push({
      name: opts.cni ? 'istio-validation' : 'istio-init',
      image: image(opts, proxyImage),
      imagePullPolicy: pullPolicy,
      args: [
        'istio-iptables',
        '-p',
        '15001',
        '-z',
        '15006',
        '-u',
        '1337',
        '-m',
        interception,
        '-i',
        ann['traffic.sidecar.istio.io/includeOutboundIPRanges'] ?? '*',
        '-x',
        ann['traffic.sidecar.istio.io/excludeOutboundIPRanges'] ?? '',
        '-b',
        ann['traffic.sidecar.istio.io/includeInboundPorts'] ?? '*',
        '-d',
        excludeInbound,
        ...(ann['traffic.sidecar.istio.io/excludeOutboundPorts'] ? ['-o', ann['traffic.sidecar.istio.io/excludeOutboundPorts']] : []),
        '--log_output_level=default:info',
        ...(opts.cni ? ['--run-validation', '--skip-rule-apply'] : []),
      ],
      resources: { requests: { cpu: '10m', memory: '40Mi' } },
      securityContext: opts.cni
        ? { allowPrivilegeEscalation: false, privileged: false, readOnlyRootFilesystem: true, runAsGroup: 1337, runAsUser: 1337, runAsNonRoot: true, capabilities: { drop: ['ALL'] } }
        : {
            allowPrivilegeEscalation: false,
            privileged: false,
            readOnlyRootFilesystem: false,
            runAsGroup: 0,
            runAsNonRoot: false,
            runAsUser: 0,
            capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
          },
    });
  }

  const volumes = [
    { name: 'workload-socket', emptyDir: {} },
    { name: 'credential-socket', emptyDir: {} },
    { name: 'workload-certs', emptyDir: {} },
    { name: 'istio-envoy', emptyDir: { medium: 'Memory' } },
    { name: 'istio-data', emptyDir: {} },
    {
      name: 'istio-podinfo',
      downwardAPI: {
        items: [
          { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
          { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
        ],
      },
    },
    { name: 'istio-token', projected: { sources: [{ serviceAccountToken: { audience, expirationSeconds: 43200, path: 'istio-token' } }] } },
    { name: 'istiod-ca-cert', configMap: { name: 'istio-ca-root-cert' } },
  ];

  const revision = isDefaultRevision(opts.revision) ? 'default' : opts.revision!;
  const status = {
    initContainers: initContainers.map((c) => c.name),
    containers: ['istio-proxy'],
    volumes: volumes.map((v) => v.name),
    imagePullSecrets: null,
    revision,
  };
  const annotations: Record<string, string> = {
    [injectedStatusAnnotation]: JSON.stringify(status),
    'istio.io/rev': revision,
  };
  if (containers[0] && !ann['kubectl.kubernetes.io/default-container']) annotations['kubectl.kubernetes.io/default-container'] = containers[0].name;
  const canonicalName = labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels['app'] ?? workload;
  const canonicalRevision = labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels['version'] ?? 'latest';
  const newLabels: Record<string, string> = {
    'security.istio.io/tlsMode': 'istio',
    'service.istio.io/canonical-name': canonicalName,
    'service.istio.io/canonical-revision': canonicalRevision,
  };
  return { proxy, initContainers, volumes, annotations, labels: newLabels };
}

/** The JSONPatch (RFC 6902) that injects the sidecar into POD. */
export function injectionPatch(pod: PodLike, namespace: string, opts: InjectOptions): JsonPatchOp[] {
  const parts = sidecarParts(pod, namespace, opts);
  const ops: JsonPatchOp[] = [];
  const addAll = (path: string, existing: unknown[] | undefined, items: unknown[], prepend = false) => {
    if (!items.length) return;
    if (!existing) ops.push({ op: 'add', path, value: items });
    // Init containers go first so that iptables is set up before any other init container runs.
    else if (prepend) items.forEach((it, i) => ops.push({ op: 'add', path: `${path}/${i}`, value: it }));
    else for (const it of items) ops.push({ op: 'add', path: `${path}/-`, value: it });
  };
  const existingVolumes = new Set((pod.spec?.volumes as Array<{ name?: string }> | undefined)?.map((v) => v.name) ?? []);
  addAll('/spec/initContainers', pod.spec?.initContainers, parts.initContainers, true);
  addAll('/spec/containers', pod.spec?.containers, [parts.proxy]);
  addAll('/spec/volumes', pod.spec?.volumes, parts.volumes.filter((v) => !existingVolumes.has(v.name)));
  const addMap = (path: string, existing: Record<string, string> | undefined, values: Record<string, string>) => {
    if (!existing) ops.push({ op: 'add', path, value: values });
    else for (const [k, v] of Object.entries(values)) ops.push({ op: k in existing ? 'replace' : 'add', path: `${path}/${escapePointer(k)}`, value: v });
  };
  addMap('/metadata/annotations', pod.metadata?.annotations, parts.annotations);
  addMap('/metadata/labels', pod.metadata?.labels, parts.labels);
  return ops;
}
