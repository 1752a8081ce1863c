/**
 * Synthetic Kubernetes meshes for the control-plane scale benchmark: N
 * Services over 50 namespaces, a few ports each (HTTP, gRPC, TCP; every
 * tenth also an unnamed, sniffed port), 3 Pods per Service with one
 * EndpointSlice, DestinationRules with subsets for ~10% and VirtualServices
 * for ~10%. Deterministic: the same N gives the same objects.
 */
import type { ConfigObjectLike } from '@sextant/model';

export const NAMESPACES = 50;
export const PODS_PER_SERVICE = 3;

export interface SyntheticMesh {
  objects: ConfigObjectLike[];
  services: number;
  pods: number;
  destinationRules: number;
  virtualServices: number;
  /** Per service index: namespace, name and pod IPs (for proxies and changes). */
  svc(i: number): { namespace: string; name: string; podIps: string[]; podNames: string[] };
}

const TS = '2024-01-01T00:00:00Z';

function ip(base: number, n: number): string {
  return `${base}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

function obj(kind: string, group: string, version: string, namespace: string, name: string, body: unknown, labels?: Record<string, string>): ConfigObjectLike {
  return { kind, group, version, metadata: { name, namespace, labels, creationTimestamp: TS, uid: `${kind}-${namespace}-${name}` }, body };
}

function svcPorts(i: number) {
  const ports: Array<{ name?: string; port: number; targetPort: number; protocol: string }> = [
    { name: 'http-web', port: 80, targetPort: 8080, protocol: 'TCP' },
    { name: 'grpc-api', port: 9090, targetPort: 9090, protocol: 'TCP' },
    { name: 'tcp-db', port: 5432 + (i % 7), targetPort: 5432, protocol: 'TCP' },
  ];
  if (i % 10 === 3) ports.push({ name: 'web', port: 8000, targetPort: 8000, protocol: 'TCP' });
  return ports;
}

export function endpointSlice(mesh: { svc: SyntheticMesh['svc'] }, i: number, opts: { notReady?: number } = {}): ConfigObjectLike {
  const s = mesh.svc(i);
  const ports = svcPorts(i);
  return obj(
    'EndpointSlice',
    'discovery.k8s.io',
    'v1',
    s.namespace,
    `${s.name}-abcde`,
    {
      addressType: 'IPv4',
      endpoints: s.podIps.map((addr, j) => ({
        addresses: [addr],
        conditions: { ready: opts.notReady !== j },
        targetRef: { kind: 'Pod', name: s.podNames[j], namespace: s.namespace },
        nodeName: `node-${j}`,
      })),
      ports: ports.map((p) => ({ name: p.name ?? '', port: p.targetPort, protocol: 'TCP' })),
    },
    { 'kubernetes.io/service-name': s.name },
  );
}

export function syntheticMesh(n: number): SyntheticMesh {
  const svc = (i: number) => {
    const namespace = `ns-${i % NAMESPACES}`;
    const name = `svc-${i}`;
    const podIps: string[] = [];
    const podNames: string[] = [];
    for (let j = 0; j < PODS_PER_SERVICE; j++) {
      podIps.push(ip(10, 1 + i * PODS_PER_SERVICE + j));
      podNames.push(`${name}-v${j + 1}-7d9f8b-${j}`);
    }
    return { namespace, name, podIps, podNames };
  };
  const objects: ConfigObjectLike[] = [];
  for (let j = 0; j < PODS_PER_SERVICE; j++) {
    objects.push({ kind: 'Node', group: '', version: 'v1', metadata: { name: `node-${j}`, labels: { 'topology.kubernetes.io/region': 'r1', 'topology.kubernetes.io/zone': `z${j}` } }, body: {} });
  }
  let drs = 0;
  let vss = 0;
  for (let i = 0; i < n; i++) {
    const s = svc(i);
    const ports = svcPorts(i);
    objects.push(
      obj('Service', '', 'v1', s.namespace, s.name, { spec: { type: 'ClusterIP', clusterIP: ip(172, 1 + i), clusterIPs: [ip(172, 1 + i)], selector: { app: s.name }, ports } }, { app: s.name }),
    );
    for (let j = 0; j < PODS_PER_SERVICE; j++) {
      const labels = { app: s.name, version: `v${j + 1}`, 'security.istio.io/tlsMode': 'istio', 'pod-template-hash': '7d9f8b' };
      objects.push({
        kind: 'Pod',
        group: '',
        version: 'v1',
        metadata: {
          name: s.podNames[j]!,
          namespace: s.namespace,
          labels,
          creationTimestamp: TS,
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${s.name}-v${j + 1}-7d9f8b`, controller: true }],
        },
        body: {
          spec: { nodeName: `node-${j}`, serviceAccountName: s.name, containers: [{ name: 'app', ports: ports.map((p) => ({ name: p.name, containerPort: p.targetPort })) }] },
          status: { phase: 'Running', podIP: s.podIps[j], podIPs: [{ ip: s.podIps[j]! }] },
        },
      });
    }
    objects.push(endpointSlice({ svc }, i));
    if (i % 10 === 0) {
      drs++;
      objects.push(
        obj('DestinationRule', 'networking.istio.io', 'v1', s.namespace, s.name, {
          spec: {
            host: s.name,
            trafficPolicy: { connectionPool: { http: { http2MaxRequests: 1000 } }, outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s' } },
            subsets: [1, 2, 3].map((v) => ({ name: `v${v}`, labels: { version: `v${v}` } })),
          },
        }),
      );
    }
    if (i % 10 === 0 || i % 10 === 5) {
      vss++;
      const host = `${s.name}.${s.namespace}.svc.cluster.local`;
      const route =
        i % 10 === 0
          ? [
              { destination: { host, subset: 'v1', port: { number: 80 } }, weight: 90 },
              { destination: { host, subset: 'v2', port: { number: 80 } }, weight: 10 },
            ]
          : [{ destination: { host, port: { number: 80 } } }];
      objects.push(
        obj('VirtualService', 'networking.istio.io', 'v1', s.namespace, s.name, {
          spec: {
            hosts: [s.name],
            http: [
              { name: 'api', match: [{ uri: { prefix: '/api' } }], route, timeout: '5s', retries: { attempts: 3, perTryTimeout: '2s' } },
              { name: 'default', route: [{ destination: { host, port: { number: 80 } } }] },
            ],
          },
        }),
      );
    }
  }
  return { objects, services: n, pods: n * PODS_PER_SERVICE, destinationRules: drs, virtualServices: vss, svc };
}
