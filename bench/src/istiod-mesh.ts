/**
 * The mesh of the side-by-side benchmark, as Kubernetes objects applied
 * through the API server: S Services over 50 namespaces, each backed by a
 * Deployment of R kwok replicas (own ServiceAccount), with a few ports each
 * (HTTP, gRPC, TCP; every tenth also an unnamed, sniffed port),
 * DestinationRules with subsets for ~10% and VirtualServices for ~20%.
 * Optionally one Sidecar per namespace that scopes egress to the namespace
 * itself, istio-system and the shared namespace ns-0 — so a change in ns-0
 * still reaches every proxy. Deterministic: the same S and R give the same
 * objects.
 */

export const NAMESPACES = 50;
/** Every proxy imports this namespace, with or without Sidecars: changes are made here. */
export const SHARED_NAMESPACE = 'ns-0';

export interface MeshSize {
  services: number;
  replicas: number;
}

type Obj = Record<string, unknown>;

export interface ServiceRef {
  index: number;
  namespace: string;
  name: string;
  host: string;
}

export function serviceRef(i: number, domainSuffix = 'cluster.local'): ServiceRef {
  const namespace = `ns-${i % NAMESPACES}`;
  const name = `svc-${i}`;
  return { index: i, namespace, name, host: `${name}.${namespace}.svc.${domainSuffix}` };
}

export function svcPorts(i: number): Array<{ name?: string; port: number; targetPort: number; protocol: string }> {
  const ports: Array<{ name?: string; port: number; targetPort: number; protocol: string }> = [
    { name: 'http-web', port: 80, targetPort: 8080, protocol: 'TCP' },
    { name: 'grpc-api', port: 9090, targetPort: 9090, protocol: 'TCP' },
    { name: 'tcp-db', port: 5432 + (i % 7), targetPort: 5432, protocol: 'TCP' },
  ];
  if (i % 10 === 3) ports.push({ name: 'web', port: 8000, targetPort: 8000, protocol: 'TCP' });
  return ports;
}

export const hasDestinationRule = (i: number) => i % 10 === 0;
export const hasVirtualService = (i: number) => i % 10 === 0 || i % 10 === 5;

export function namespaces(): Obj[] {
  const out: Obj[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } }];
  for (let n = 0; n < NAMESPACES; n++) out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${n}` } });
  return out;
}

/** Workloads: ServiceAccount, Deployment and Service per index. */
export function workloads(size: MeshSize): Obj[] {
  const out: Obj[] = [];
  for (let i = 0; i < size.services; i++) {
    const s = serviceRef(i);
    const ports = svcPorts(i);
    const labels = { app: s.name, version: 'v1' };
    out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: s.name, namespace: s.namespace } });
    out.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: s.name, namespace: s.namespace, labels: { app: s.name } },
      spec: {
        replicas: size.replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels: { ...labels, 'security.istio.io/tlsMode': 'istio', 'service.istio.io/canonical-name': s.name, 'service.istio.io/canonical-revision': 'v1' } },
          spec: {
            serviceAccountName: s.name,
            // Only the fake kwok nodes (scripts/cluster.sh labels them type=kwok) run these pods.
            nodeSelector: { type: 'kwok' },
            containers: [{ name: 'app', image: 'bench/app:1', ports: ports.map((p) => ({ name: p.name, containerPort: p.targetPort })) }],
          },
        },
      },
    });
    out.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: s.name, namespace: s.namespace, labels: { app: s.name } },
      spec: { selector: { app: s.name }, ports },
    });
  }
  return out;
}

export function destinationRule(i: number, extraSubset?: string): Obj {
  const s = serviceRef(i);
  const subsets = [
    { name: 'v1', labels: { version: 'v1' } },
    { name: 'v2', labels: { version: 'v2' } },
  ];
  // The DestinationRule edit renames this third subset (a new cluster every proxy must get).
  if (extraSubset) subsets.push({ name: extraSubset, labels: { version: 'v1' } });
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: s.name, namespace: s.namespace },
    spec: {
      host: s.name,
      trafficPolicy: { connectionPool: { http: { http2MaxRequests: 1000 } }, outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s' } },
      subsets,
    },
  };
}

export function virtualService(i: number, apiPrefix = '/api'): Obj {
  const s = serviceRef(i);
  const route =
    i % 10 === 0
      ? [
          { destination: { host: s.host, subset: 'v1', port: { number: 80 } }, weight: 90 },
          { destination: { host: s.host, subset: 'v2', port: { number: 80 } }, weight: 10 },
        ]
      : [{ destination: { host: s.host, port: { number: 80 } } }];
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: s.name, namespace: s.namespace },
    spec: {
      hosts: [s.name],
      http: [
        { name: 'api', match: [{ uri: { prefix: apiPrefix } }], route, timeout: '5s', retries: { attempts: 3, perTryTimeout: '2s' } },
        { name: 'default', route: [{ destination: { host: s.host, port: { number: 80 } } }] },
      ],
    },
  };
}

export function istioConfig(size: MeshSize): Obj[] {
  const out: Obj[] = [];
  for (let i = 0; i < size.services; i++) {
    if (hasDestinationRule(i)) out.push(destinationRule(i, 'g0'));
    if (hasVirtualService(i)) out.push(virtualService(i));
  }
  return out;
}

/** One Sidecar per namespace: egress to the own namespace, istio-system and the shared namespace. */
export function sidecars(): Obj[] {
  const out: Obj[] = [];
  for (let n = 0; n < NAMESPACES; n++) {
    const ns = `ns-${n}`;
    out.push({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name: 'default', namespace: ns },
      spec: { egress: [{ hosts: ['./*', 'istio-system/*', `${SHARED_NAMESPACE}/*`] }] },
    });
  }
  return out;
}

/** A kubectl-readable List. */
export function list(items: Obj[]): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}
