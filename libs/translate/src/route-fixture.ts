/**
 * A small, plain PushContext for translation unit tests: services, configs
 * and proxies given directly, with Istio's visibility rules reduced to
 * "everything visible" plus Sidecar egress hosts. The real one is
 * `@sextant/model`'s; this exists so that route and listener tests do not
 * depend on the model's build order.
 */
import type { EgressListener, IstioConfig, IstioEndpoint, ProxyView, PushContext, Service, ServiceInstance, SidecarScope } from '@sextant/model';

type Json = Record<string, any>;

export function svc(name: string, ns: string, vip: string, ports: Array<[string, number, Service['ports'][number]['protocol']]>): Service {
  return {
    hostname: `${name}.${ns}.svc.cluster.local`,
    namespace: ns,
    name,
    clusterVIP: vip,
    addresses: vip === '0.0.0.0' ? [] : [vip],
    ports: ports.map(([n, port, protocol]) => ({ name: n, port, protocol })),
    labels: {},
    exportTo: ['*'],
    meshExternal: false,
    resolution: 'ClientSideLB',
    headless: false,
    creationTime: '',
    attributes: { serviceRegistry: 'Kubernetes', name, namespace: ns, labels: {}, origin: { kind: 'Service', namespace: ns, name } },
  };
}

export function config(kind: string, ns: string, name: string, spec: Json, created = ''): IstioConfig {
  return { kind, namespace: ns, name, metadata: { name, namespace: ns, creationTimestamp: created }, spec };
}

export function proxy(over: Partial<ProxyView> & { namespace?: string } = {}): ProxyView {
  const ns = over.namespace ?? 'default';
  return {
    nodeId: `sidecar~10.0.0.9~app.${ns}~${ns}.svc.cluster.local`,
    type: 'sidecar',
    ipAddresses: ['10.0.0.9'],
    id: `app.${ns}`,
    dnsDomain: `${ns}.svc.cluster.local`,
    namespace: ns,
    labels: {},
    metadata: { raw: {} },
    generator: '',
    interceptionMode: 'REDIRECT',
    istioVersion: '',
    serviceAccount: '',
    workloadName: 'app',
    clusterId: 'Kubernetes',
    network: '',
    ...over,
  };
}

function parseEgress(sidecar: IstioConfig | undefined): EgressListener[] {
  if (!sidecar) return [];
  return ((sidecar.spec.egress ?? []) as Json[]).map((e) => ({
    port: e.port,
    bind: e.bind,
    hosts: ((e.hosts ?? []) as string[]).map((h) => {
      const [n, host] = h.split('/') as [string, string];
      return { namespace: n === '.' ? sidecar.namespace : n, host };
    }),
  }));
}

function selects(sel: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return Object.entries(sel ?? {}).every(([k, v]) => labels[k] === v);
}

export interface FixtureInput {
  services: Service[];
  configs?: IstioConfig[];
  endpoints?: Array<{ host: string; port: number; address: string; labels?: Record<string, string> }>;
  outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

export function fixturePush(input: FixtureInput): PushContext {
  const configs = [...(input.configs ?? [])].sort((a, b) => String(a.metadata.creationTimestamp ?? '').localeCompare(String(b.metadata.creationTimestamp ?? '')) || a.name.localeCompare(b.name));
  const services = [...input.services].sort((a, b) => a.hostname.localeCompare(b.hostname));
  const byKind = (k: string, ns?: string) => configs.filter((c) => c.kind === k && (ns === undefined || c.namespace === ns));
  const endpointOf = (e: NonNullable<FixtureInput['endpoints']>[number], s: Service): IstioEndpoint => ({
    address: e.address,
    endpointPort: e.port,
    servicePortName: s.ports[0]?.name ?? '',
    labels: e.labels ?? {},
    locality: { region: '', zone: '', subzone: '' },
    serviceAccount: '',
    tlsMode: 'disabled',
    network: '',
    clusterId: 'Kubernetes',
    healthStatus: 'HEALTHY',
    weight: 1,
    workloadName: '',
    namespace: s.namespace,
  });
  const push: PushContext = {
    version: 'v1',
    domainSuffix: 'cluster.local',
    trustDomain: 'cluster.local',
    mesh: { rootNamespace: 'istio-system', connectTimeout: '10s', enableAutoMtls: true },
    issues: [],
    allServices: () => services,
    serviceByHostname: (h) => services.find((s) => s.hostname === h),
    servicesInNamespace: (ns) => services.filter((s) => s.namespace === ns),
    endpoints: (s, port, subset) =>
      (input.endpoints ?? []).filter((e) => e.host === s.hostname && selects(subset, e.labels ?? {})).map((e) => endpointOf(e, s)).filter(() => !!port),
    serviceAccounts: () => [],
    endpointIndex: { endpoints: (s, port, subset) => push.endpoints(s, port, subset) },
    resolveProxy: (p) => p,
    sidecarScope: (p): SidecarScope => {
      const sidecar = byKind('Sidecar', p.namespace)[0];
      const egress = parseEgress(sidecar);
      const visible = egress.length
        ? services.filter((s) => egress.some((e) => e.hosts.some((h) => (h.namespace === '*' || h.namespace === s.namespace) && (h.host === '*' || h.host === s.hostname))))
        : services;
      return {
        namespace: p.namespace,
        sidecar,
        egress,
        services: visible,
        virtualServices: byKind('VirtualService'),
        hasService: (h) => visible.some((s) => s.hostname === h),
        outboundTrafficPolicy: input.outboundTrafficPolicy ?? 'ALLOW_ANY',
      };
    },
    servicesForProxy: (p) => push.sidecarScope(p).services,
    destinationRule: () => undefined,
    virtualServices: (_p, gateways) => {
      const want = gateways ?? ['mesh'];
      return byKind('VirtualService').filter((vs) => {
        const g = ((vs.spec.gateways ?? []) as string[]).map((x) => (x === 'mesh' || x.includes('/') ? x : `${vs.namespace}/${x}`));
        if (((vs.spec.hosts ?? []) as string[]).length === 0) return true; // delegates are handed over too
        return (g.length ? g : ['mesh']).some((x) => want.includes(x));
      });
    },
    gatewaysForProxy: (p) => byKind('Gateway').filter((g) => selects(g.spec.selector, p.labels)),
    serviceInstancesForProxy: (p): ServiceInstance[] => {
      const out: ServiceInstance[] = [];
      for (const e of input.endpoints ?? []) {
        if (!p.ipAddresses.includes(e.address)) continue;
        const s = services.find((x) => x.hostname === e.host);
        if (s) out.push({ service: s, servicePort: s.ports[0]!, endpoint: endpointOf(e, s) });
      }
      return out;
    },
    configs: (k, ns) => byKind(k, ns),
    envoyFilters: () => [],
  };
  return push;
}
