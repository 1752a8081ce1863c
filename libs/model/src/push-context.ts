import type { ObjectKey, ValidationIssue } from '@sextant/api';
import { ConfigIndex, toIstioConfig } from './configs.js';
import { DestinationRuleIndex } from './destination-rules.js';
import { EndpointIndex, isEndpointKind, serviceKeyOf, type EndpointUpdate, type IndexedService } from './endpoint-index.js';
import { podLocality, spiffeId } from './endpoints.js';
import type { ServiceEntrySpec } from './inputs.js';
import { cmp, exportedTo, resolveExportTo, selectorMatches } from './labels.js';
import { serviceFromKube, servicesFromServiceEntry } from './services.js';
import { buildSidecarScope, findSidecar } from './sidecar-scope.js';
import type {
  ConfigObjectLike,
  IstioConfig,
  IstioEndpoint,
  MergedDestinationRule,
  MeshConfig,
  ProxyView,
  PushContext as PushContextShape,
  PushContextOptions,
  Service,
  ServiceInstance,
  ServicePort,
  SidecarScope,
} from './types.js';
import { checkReferences } from './validate-refs.js';

// WorkloadEntries are endpoints (the EndpointIndex holds them), not config here.
const ISTIO_KINDS = ['VirtualService', 'DestinationRule', 'Gateway', 'Sidecar', 'ServiceEntry', 'EnvoyFilter', 'PeerAuthentication', 'AuthorizationPolicy', 'RequestAuthentication', 'Telemetry', 'WorkloadGroup'];

const serviceKey = serviceKeyOf;
const NO_SERVICES: readonly Service[] = [];

class PushContextImpl implements PushContextShape {
  readonly version: string;
  readonly domainSuffix: string;
  readonly trustDomain: string;
  readonly mesh: PushContextShape['mesh'];
  readonly jwks: ReadonlyMap<string, string>;
  readonly issues: ValidationIssue[] = [];

  /** Endpoints, service instances and pods: updated in place by endpoint events, shared by successive contexts. */
  readonly endpointIndex: EndpointIndex;
  /** What this build changed in the index's endpoints (config changes to services and ServiceEntries). */
  readonly endpointUpdate: EndpointUpdate;

  private readonly services: Service[] = [];
  private readonly servicesByHost = new Map<string, Service[]>();
  /** Services by namespace, in `services`' order (filled once it is sorted). */
  private readonly servicesByNamespace = new Map<string, Service[]>();
  /** Services by `namespace/hostname` (unique: a ServiceEntry host that repeats one is ignored when added). */
  private readonly servicesByKey = new Map<string, Service>();
  private readonly configIndex = new Map<string, ConfigIndex>();
  private readonly drs: DestinationRuleIndex;
  private readonly scopeCache = new Map<string, SidecarScope>();
  /** Distinct service lists of this push's scopes, by length (usually one in all). */
  private readonly scopeServiceLists = new Map<number, Service[][]>();

  constructor(objects: Iterable<ConfigObjectLike>, options: PushContextOptions) {
    this.version = options.version;
    this.domainSuffix = options.domainSuffix;
    this.trustDomain = options.trustDomain;
    this.jwks = options.jwks ?? new Map();
    const m: MeshConfig = options.meshConfig ?? {};
    this.mesh = { ...m, rootNamespace: m.rootNamespace ?? 'istio-system', connectTimeout: m.connectTimeout ?? '10s', enableAutoMtls: m.enableAutoMtls ?? true };

    const byKind = new Map<string, ConfigObjectLike[]>();
    for (const o of objects) {
      let l = byKind.get(o.kind);
      if (!l) byKind.set(o.kind, (l = []));
      l.push(o);
    }
    const of = <B>(k: string) => (byKind.get(k) ?? []) as ConfigObjectLike<B>[];

    for (const kind of ISTIO_KINDS) this.configIndex.set(kind, new ConfigIndex(of(kind).map(toIstioConfig)));

    // Workloads: the caller's index (kept up to date by endpoint events), or one made from these objects.
    if (options.endpointIndex) {
      this.endpointIndex = options.endpointIndex;
    } else {
      this.endpointIndex = new EndpointIndex({ trustDomain: this.trustDomain });
      const events = [];
      for (const [kind, list] of byKind) {
        if (!isEndpointKind(kind)) continue;
        for (const o of list) events.push({ key: { kind, namespace: o.metadata.namespace, name: o.metadata.name }, object: o });
      }
      this.endpointIndex.apply(events);
    }

    // Services.
    const svcExport = this.mesh.defaultServiceExportTo ?? ['*'];
    const indexed: IndexedService[] = [];
    const kubeHosts = new Set<string>();
    for (const obj of of('Service')) {
      const svc = serviceFromKube(obj, this.domainSuffix, svcExport);
      this.addService(svc);
      indexed.push({ service: svc, source: { kind: 'kube' } });
      kubeHosts.add(serviceKey(svc));
    }
    const kubeServiceNames = new Set(of('Service').map((s) => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`));
    const reported = new Set<string>();
    for (const s of this.endpointIndex.allSlices()) {
      const svcName = s.metadata.labels?.['kubernetes.io/service-name'];
      if (!svcName) {
        this.issues.push({ kind: 'EndpointSlice', namespace: s.metadata.namespace, name: s.metadata.name, field: 'metadata.labels', reason: 'missing label kubernetes.io/service-name: the slice belongs to no Service and is ignored' });
        continue;
      }
      const k = `${s.metadata.namespace ?? 'default'}/${svcName}`;
      if (!kubeServiceNames.has(k) && !reported.has(k)) {
        reported.add(k);
        this.issues.push({ kind: 'EndpointSlice', namespace: s.metadata.namespace, name: s.metadata.name, field: 'metadata.labels["kubernetes.io/service-name"]', reason: `Service ${k} does not exist; the slice's endpoints are not served` });
      }
    }
    const seHosts = new Map<string, string>(); // ns/host → SE name
    for (const se of this.configs('ServiceEntry').map((c) => c)) {
      const obj = of('ServiceEntry').find((o) => o.metadata.name === se.name && (o.metadata.namespace ?? 'default') === se.namespace)!;
      const spec = se.spec as ServiceEntrySpec;
      for (const svc of servicesFromServiceEntry(obj, svcExport, this.issues)) {
        const key = serviceKey(svc);
        const idx = spec.hosts.indexOf(svc.hostname);
        if (kubeHosts.has(key)) {
          this.issues.push({ kind: 'ServiceEntry', namespace: se.namespace, name: se.name, field: `spec.hosts[${idx}]`, reason: `host ${svc.hostname} is already a Kubernetes Service in namespace ${se.namespace}; the ServiceEntry host is ignored` });
          continue;
        }
        const prev = seHosts.get(key);
        if (prev) {
          this.issues.push({ kind: 'ServiceEntry', namespace: se.namespace, name: se.name, field: `spec.hosts[${idx}]`, reason: `host ${svc.hostname} is already declared by ServiceEntry ${se.namespace}/${prev} (older); this one is ignored` });
          continue;
        }
        seHosts.set(key, se.name);
        this.addService(svc);
        indexed.push({ service: svc, source: { kind: 'serviceEntry', name: se.name, spec } });
      }
    }
    this.services.sort((a, b) => cmp(a.hostname, b.hostname) || cmp(a.namespace, b.namespace));
    for (const svc of this.services) {
      const l = this.servicesByNamespace.get(svc.namespace);
      if (l) l.push(svc);
      else this.servicesByNamespace.set(svc.namespace, [svc]);
    }
    this.endpointUpdate = this.endpointIndex.setServices(indexed);

    this.drs = new DestinationRuleIndex(this.configs('DestinationRule'), this.domainSuffix, this.mesh.defaultDestinationRuleExportTo ?? ['*'], this.issues);
    checkReferences(this, this.drs, this.issues);
  }

  private addService(svc: Service): void {
    this.services.push(svc);
    this.servicesByKey.set(serviceKey(svc), svc);
    let l = this.servicesByHost.get(svc.hostname);
    if (!l) this.servicesByHost.set(svc.hostname, (l = []));
    l.push(svc);
  }

  allServices(): Service[] {
    return this.services;
  }

  serviceByHostname(hostname: string, fromNamespace?: string): Service | undefined {
    const l = this.servicesByHost.get(hostname);
    if (!l || l.length === 0) return undefined;
    if (fromNamespace) {
      const own = l.find((s) => s.namespace === fromNamespace);
      if (own) return own;
      const exported = l.filter((s) => exportedTo(s.exportTo, fromNamespace));
      return exported.sort((a, b) => cmp(a.creationTime, b.creationTime) || cmp(a.namespace, b.namespace))[0];
    }
    return l[0];
  }

  servicesInNamespace(namespace: string): readonly Service[] {
    return this.servicesByNamespace.get(namespace) ?? NO_SERVICES;
  }

  serviceByKey(key: string): Service | undefined {
    return this.servicesByKey.get(key);
  }

  endpoints(service: Service, port: ServicePort, subsetLabels?: Record<string, string>): IstioEndpoint[] {
    return this.endpointIndex.endpoints(service, port, subsetLabels);
  }

  /** SPIFFE identities of a service's workloads (for ISTIO_MUTUAL subjectAltNames), sorted. */
  serviceAccounts(service: Service, port: ServicePort): string[] {
    const set = new Set<string>();
    for (const e of this.endpoints(service, port)) if (e.serviceAccount) set.add(e.serviceAccount);
    if (service.attributes.serviceRegistry === 'External') {
      const se = this.configs('ServiceEntry', service.namespace).find((c) => c.name === service.attributes.origin.name);
      for (const san of (se?.spec.subjectAltNames ?? []) as string[]) set.add(san);
    }
    return [...set].sort(cmp);
  }

  resolveProxy(proxy: ProxyView): ProxyView {
    const pod = proxy.ipAddresses.map((ip) => this.endpointIndex.podByIp(ip)).find((p) => p !== undefined);
    if (!pod) return proxy;
    const labels = Object.keys(proxy.labels).length > 0 ? proxy.labels : { ...(pod.metadata.labels ?? {}) };
    const sa = pod.body?.spec?.serviceAccountName ?? pod.body?.spec?.serviceAccount ?? 'default';
    const loc = podLocality(this.endpointIndex.workloadIndex, pod);
    return {
      ...proxy,
      labels,
      serviceAccount: proxy.serviceAccount || spiffeId(this.trustDomain, pod.metadata.namespace ?? proxy.namespace, sa),
      workloadName: proxy.workloadName || pod.metadata.name,
      locality: proxy.locality ?? (loc.region || loc.zone || loc.subzone ? loc : undefined),
    };
  }

  sidecarScope(proxy: ProxyView): SidecarScope {
    const sidecar = proxy.type === 'sidecar' ? findSidecar(this.configs('Sidecar'), proxy, this.mesh.rootNamespace) : undefined;
    const key = `${proxy.type}|${proxy.namespace}|${sidecar ? `${sidecar.namespace}/${sidecar.name}` : ''}`;
    let scope = this.scopeCache.get(key);
    if (!scope) {
      scope = buildSidecarScope(
        proxy,
        sidecar,
        this.services,
        this.configs('VirtualService'),
        this.mesh.defaultVirtualServiceExportTo ?? ['*'],
        this.mesh.outboundTrafficPolicy?.mode ?? 'ALLOW_ANY',
        this.domainSuffix,
      );
      // Scopes that see the same services (every namespace, without Sidecars) share one list, so that what
      // translation keeps per list (its per-port views) is built once per push, not once per namespace.
      // (At most a few lists of each length are compared, so that many distinct Sidecars cost no quadratic walk.)
      let lists = this.scopeServiceLists.get(scope.services.length);
      if (!lists) this.scopeServiceLists.set(scope.services.length, (lists = []));
      const same = lists.find((l) => sameItems(l, scope!.services));
      if (same) scope.services = same;
      else if (lists.length < 4) lists.push(scope.services);
      this.scopeCache.set(key, scope);
    }
    return scope;
  }

  servicesForProxy(proxy: ProxyView): Service[] {
    return this.sidecarScope(proxy).services;
  }

  destinationRule(proxy: ProxyView, hostname: string, direction: 'outbound' | 'inbound' = 'outbound'): MergedDestinationRule | undefined {
    const svcNs = this.serviceByHostname(hostname, proxy.namespace)?.namespace;
    // istiod honours workloadSelector rules for outbound config only (SidecarScope.DestinationRule).
    return this.drs.lookup(proxy.namespace, direction === 'outbound' ? proxy.labels : undefined, hostname, svcNs, this.mesh.rootNamespace);
  }

  destinationRuleSubsets(hostname: string): ReadonlySet<string> {
    return this.drs.subsetNames(hostname);
  }

  /** The merged rule for a host as seen from a namespace (no proxy labels): used for reference checks. */
  destinationRuleForNamespace(namespace: string, hostname: string): MergedDestinationRule | undefined {
    const svcNs = this.serviceByHostname(hostname, namespace)?.namespace;
    return this.drs.lookup(namespace, {}, hostname, svcNs, this.mesh.rootNamespace);
  }

  virtualServices(proxy: ProxyView, gateways?: string[]): IstioConfig[] {
    const wanted = gateways ?? ['mesh'];
    const pool =
      proxy.type === 'sidecar'
        ? this.sidecarScope(proxy).virtualServices
        : this.configs('VirtualService').filter((vs) => exportedTo(resolveExportTo(vs.spec.exportTo, vs.namespace, this.mesh.defaultVirtualServiceExportTo ?? ['*']), proxy.namespace));
    return pool.filter((vs) => {
      const gws = ((vs.spec.gateways as string[] | undefined) ?? ['mesh']).map((g) => (g === 'mesh' || g.includes('/') ? g : `${vs.namespace}/${g}`));
      return gws.some((g) => wanted.includes(g));
    });
  }

  gatewaysForProxy(proxy: ProxyView): IstioConfig[] {
    if (proxy.type !== 'router') return [];
    return this.configs('Gateway').filter((g) => {
      const sel = g.spec.selector as Record<string, string> | undefined;
      return sel !== undefined && Object.keys(sel).length > 0 ? selectorMatches(sel, proxy.labels) : true;
    });
  }

  serviceInstancesForProxy(proxy: ProxyView): ServiceInstance[] {
    const out: ServiceInstance[] = [];
    for (const ip of proxy.ipAddresses) out.push(...this.endpointIndex.instancesAt(ip));
    return out.sort((a, b) => a.endpoint.endpointPort - b.endpoint.endpointPort || cmp(a.service.hostname, b.service.hostname) || a.servicePort.port - b.servicePort.port);
  }

  configs(kind: string, namespace?: string): IstioConfig[] {
    const idx = this.configIndex.get(kind);
    if (!idx) return [];
    return namespace === undefined ? idx.all : idx.inNamespace(namespace);
  }
}

export type PushContext = PushContextShape;

export interface PushContextStatic {
  /** Builds the immutable PushContext from every valid config object. Never throws for bad config: problems land in `issues`. */
  build(objects: Iterable<ConfigObjectLike>, options: PushContextOptions): PushContextShape & PushContextExtras;
}

/** Extra lookups the implementation offers beyond the PushContext interface. */
export interface PushContextExtras {
  serviceAccounts(service: Service, port: ServicePort): string[];
  /** The endpoint index this context reads (the caller's, or its own), with its writes. */
  readonly endpointIndex: EndpointIndex;
  /** Which services' endpoints this build changed, compared with the index's previous services. */
  readonly endpointUpdate: EndpointUpdate;
  destinationRuleForNamespace(namespace: string, hostname: string): MergedDestinationRule | undefined;
}

export const PushContext: PushContextStatic = {
  build: (objects, options) => new PushContextImpl(objects, options),
};

/** The same items in the same order (by identity): how lists rebuilt per push are recognised as unchanged. */
export function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
