/**
 * The endpoint index (istiod's EndpointIndex / EndpointShards): the endpoints
 * of every service, kept up to date in place by EndpointSlice, Pod, Node and
 * WorkloadEntry events. An event recomputes only the services that read the
 * changed object and answers which of them changed, and whether an EDS push
 * suffices (istiod's IncrementalPush), the listeners, clusters and name
 * tables of the proxies that see a headless service need pushing too
 * (`headless`), or the change needs the config path (FullPush: new services,
 * new workload identities, endpoints of a DNS service, which live in CDS).
 *
 * The PushContext reads endpoints, service instances and pods through this
 * index, so an endpoint event never rebuilds it. Pure: no I/O, timers or clocks.
 */
import type { ObjectKey } from '@sextant/api';
import { kubeEndpoints, podIps, serviceEntryEndpoints, type WorkloadIndex } from './endpoints.js';
import type { EndpointSliceBody, PodBody, ServiceEntrySpec, WorkloadEntrySpec } from './inputs.js';
import { cmp, selectorMatches } from './labels.js';
import type { ConfigObjectLike, IstioEndpoint, Service, ServiceInstance, ServicePort } from './types.js';

/** The kinds whose events the index takes (and which therefore never rebuild the PushContext). */
export const ENDPOINT_KINDS: ReadonlySet<string> = new Set(['EndpointSlice', 'Pod', 'Node', 'WorkloadEntry']);

export function isEndpointKind(kind: string): boolean {
  return ENDPOINT_KINDS.has(kind);
}

/** What translation reads from the index (the EDS builder's input). */
export interface EndpointReader {
  /** Endpoints of one service port, optionally only those whose labels match a subset's. */
  endpoints(service: Service, port: ServicePort, subsetLabels?: Record<string, string>): IstioEndpoint[];
}

/**
 * istiod's PushType for an endpoint change: `incremental` (EDS only), `full`
 * (the config path: new services, new identities, DNS endpoints in CDS), or
 * `headless`: the endpoints of a Passthrough service (headless Service,
 * ServiceEntry NONE), which sidecars read as per-pod listeners, auto-mTLS and
 * name-table entries; pushed from the endpoint path as listeners, clusters
 * and name tables to the proxies that see the service (istiod's
 * HeadlessEndpointUpdate), no context built.
 */
export type EndpointPushType = 'incremental' | 'headless' | 'full';

const PUSH_RANK: Record<EndpointPushType, number> = { incremental: 0, headless: 1, full: 2 };

export interface EndpointUpdate {
  /** Services (`namespace/hostname`) whose endpoints changed, with the push each needs. */
  services: Map<string, EndpointPushType>;
  /**
   * Addresses of workloads whose own view changed (a Pod's labels, identity,
   * node or addresses, or the services it serves): proxies at these addresses
   * need their own configuration (inbound, labels) pushed again.
   */
  proxyAddresses: Set<string>;
}

/** How a service's endpoints are found. */
export type ServiceSource = { kind: 'kube' } | { kind: 'serviceEntry'; name: string; spec: ServiceEntrySpec };

export interface IndexedService {
  service: Service;
  source: ServiceSource;
}

export interface EndpointIndexOptions {
  trustDomain: string;
  /** istiod's cluster ID for endpoints read from this cluster (default `Kubernetes`). */
  clusterId?: string;
}

type Shard = Map<string, IstioEndpoint[]>; // service port name → endpoints

export function serviceKeyOf(s: { namespace: string; hostname: string }): string {
  return `${s.namespace}/${s.hostname}`;
}

const objKey = (o: { metadata: { namespace?: string | undefined; name: string } }) => `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
const keyOf = (k: ObjectKey) => `${k.namespace ?? 'default'}/${k.name}`;

function sameLabels(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ak = Object.keys(a ?? {});
  if (ak.length !== Object.keys(b ?? {}).length) return false;
  for (const k of ak) if (a![k] !== b?.[k]) return false;
  return true;
}

function sameEndpoint(a: IstioEndpoint, b: IstioEndpoint): boolean {
  return (
    a.address === b.address &&
    a.endpointPort === b.endpointPort &&
    a.servicePortName === b.servicePortName &&
    a.serviceAccount === b.serviceAccount &&
    a.tlsMode === b.tlsMode &&
    a.network === b.network &&
    a.clusterId === b.clusterId &&
    a.healthStatus === b.healthStatus &&
    a.weight === b.weight &&
    a.workloadName === b.workloadName &&
    a.namespace === b.namespace &&
    (a.isHostname ?? false) === (b.isHostname ?? false) &&
    (a.noHealthStatus ?? false) === (b.noHealthStatus ?? false) &&
    a.locality.region === b.locality.region &&
    a.locality.zone === b.locality.zone &&
    a.locality.subzone === b.locality.subzone &&
    sameLabels(a.labels, b.labels)
  );
}

function sameShard(a: Shard | undefined, b: Shard): boolean {
  if (!a || a.size !== b.size) return false;
  for (const [port, eps] of b) {
    const before = a.get(port);
    if (!before || before.length !== eps.length) return false;
    for (let i = 0; i < eps.length; i++) if (!sameEndpoint(before[i]!, eps[i]!)) return false;
  }
  return true;
}

function identities(shard: Shard | undefined): string {
  const set = new Set<string>();
  for (const eps of shard?.values() ?? []) for (const e of eps) if (e.serviceAccount) set.add(e.serviceAccount);
  return [...set].sort(cmp).join(',');
}

/** What a Pod contributes to its proxy's view (resolveProxy) and to endpoints besides its IPs. */
function podShape(p: ConfigObjectLike<PodBody> | undefined): string {
  if (!p) return '';
  const s = p.body?.spec;
  return JSON.stringify([p.metadata.labels ?? {}, s?.serviceAccountName ?? s?.serviceAccount ?? '', s?.nodeName ?? '', podIps(p), p.metadata.ownerReferences ?? []]);
}

export class EndpointIndex implements EndpointReader {
  private readonly services = new Map<string, IndexedService>();
  /** Kubernetes Service `ns/name` → its service key. */
  private readonly kubeByName = new Map<string, string>();
  private readonly shards = new Map<string, Shard>();
  private readonly instancesByIp = new Map<string, ServiceInstance[]>();
  /** The Service object each service's instances were made with. */
  private readonly instanceService = new Map<string, Service>();

  private readonly slices = new Map<string, ConfigObjectLike<EndpointSliceBody>>();
  /** `ns/serviceName` → slice keys. */
  private readonly slicesByService = new Map<string, Set<string>>();
  private readonly podsByName = new Map<string, ConfigObjectLike<PodBody>>();
  /** IP → pod keys in arrival order; the first is the pod the IP resolves to. */
  private readonly podKeysByIp = new Map<string, string[]>();
  private readonly podsByIp = new Map<string, ConfigObjectLike<PodBody>>();
  private readonly nodes = new Map<string, Record<string, string>>();
  private readonly workloadEntries = new Map<string, ConfigObjectLike<{ spec?: WorkloadEntrySpec }>>();
  private readonly workloads: WorkloadIndex;

  /**
   * Reverse index: what each service's endpoints read (`pod:ns/name`,
   * `ip:addr`, `node:name`, `pods:ns` and `workloadentries:ns` for selectors)
   * → the services that read it. Rebuilt per service on recompute.
   */
  private readonly readers = new Map<string, Set<string>>();
  private readonly readsOf = new Map<string, string[]>();

  /** Counts in-place updates that changed some service's endpoints (for versions and tests). */
  private epochCount = 0;

  constructor(opts: EndpointIndexOptions) {
    const entries = this.workloadEntries;
    this.workloads = {
      trustDomain: opts.trustDomain,
      clusterId: opts.clusterId ?? 'Kubernetes',
      podsByName: this.podsByName,
      podsByIp: this.podsByIp,
      nodes: this.nodes,
      get workloadEntries() {
        return [...entries.values()];
      },
    };
  }

  /** Bumped by every apply() or setServices() that changed a service's endpoints. */
  get epoch(): number {
    return this.epochCount;
  }

  // -------------------------------------------------------------------------
  // Reads

  endpoints(service: Service, port: ServicePort, subsetLabels?: Record<string, string>): IstioEndpoint[] {
    const eps = this.shards.get(serviceKeyOf(service))?.get(port.name) ?? [];
    if (!subsetLabels || Object.keys(subsetLabels).length === 0) return eps;
    return eps.filter((e) => selectorMatches(subsetLabels, e.labels));
  }

  /** The service instances (service, port, endpoint) at an address, unsorted. */
  instancesAt(ip: string): readonly ServiceInstance[] {
    return this.instancesByIp.get(ip) ?? [];
  }

  /** The Pod an address belongs to (the first seen, when several share it). */
  podByIp(ip: string): ConfigObjectLike<PodBody> | undefined {
    return this.podsByIp.get(ip);
  }

  /** Node labels by node name (locality). */
  nodeLabels(name: string): Record<string, string> | undefined {
    return this.nodes.get(name);
  }

  /** The lookups the endpoint builders read (pods, nodes, WorkloadEntries). */
  get workloadIndex(): WorkloadIndex {
    return this.workloads;
  }

  /** Every EndpointSlice held, for the PushContext's reference checks. */
  allSlices(): Iterable<ConfigObjectLike<EndpointSliceBody>> {
    return this.slices.values();
  }

  /** The known services by key. */
  service(key: string): Service | undefined {
    return this.services.get(key)?.service;
  }

  // -------------------------------------------------------------------------
  // Writes

  /**
   * Applies object events of the endpoint kinds: an object given is added or
   * replaced, `undefined` deletes the key. Other kinds are ignored. Returns
   * exactly the services whose endpoints changed.
   */
  apply(events: Iterable<{ key: ObjectKey; object: ConfigObjectLike | undefined }>): EndpointUpdate {
    const touched = new Set<string>();
    const proxyAddresses = new Set<string>();
    for (const { key, object } of events) {
      switch (key.kind) {
        case 'EndpointSlice':
          this.applySlice(keyOf(key), object as ConfigObjectLike<EndpointSliceBody> | undefined, touched);
          break;
        case 'Pod':
          this.applyPod(keyOf(key), object as ConfigObjectLike<PodBody> | undefined, touched, proxyAddresses);
          break;
        case 'Node': {
          const name = key.name;
          const before = this.nodes.get(name);
          const after = object ? (object.metadata.labels ?? {}) : undefined;
          if (before === undefined ? after === undefined : after !== undefined && sameLabels(before, after)) break;
          if (after) this.nodes.set(name, { ...after });
          else this.nodes.delete(name);
          this.readersOf(`node:${name}`, touched);
          // Proxies on this node take their locality from it.
          for (const p of this.podsByName.values()) if (p.body?.spec?.nodeName === name) for (const ip of podIps(p)) proxyAddresses.add(ip);
          break;
        }
        case 'WorkloadEntry': {
          const k = keyOf(key);
          if (object) this.workloadEntries.set(k, object as ConfigObjectLike<{ spec?: WorkloadEntrySpec }>);
          else this.workloadEntries.delete(k);
          this.readersOf(`workloadentries:${key.namespace ?? 'default'}`, touched);
          break;
        }
        default:
          break;
      }
    }
    const update: EndpointUpdate = { services: new Map(), proxyAddresses };
    for (const svcKey of touched) this.recompute(svcKey, update);
    if (update.services.size > 0) this.epochCount++;
    return update;
  }

  /**
   * Replaces the set of services (from a new PushContext) and recomputes every
   * service's endpoints: a config change can change ports, selectors and
   * ServiceEntry endpoints. Returns the services whose endpoints changed;
   * services that appeared or disappeared count as full.
   */
  setServices(entries: Iterable<IndexedService>): EndpointUpdate {
    const update: EndpointUpdate = { services: new Map(), proxyAddresses: new Set() };
    const next = new Map<string, IndexedService>();
    for (const e of entries) next.set(serviceKeyOf(e.service), e);
    for (const key of [...this.services.keys()]) {
      if (next.has(key)) continue;
      this.drop(key, update);
      update.services.set(key, 'full');
    }
    this.services.clear();
    this.kubeByName.clear();
    for (const [key, e] of next) {
      this.services.set(key, e);
      if (e.source.kind === 'kube') this.kubeByName.set(`${e.service.namespace}/${e.service.name}`, key);
    }
    for (const key of next.keys()) this.recompute(key, update);
    if (update.services.size > 0) this.epochCount++;
    return update;
  }

  // -------------------------------------------------------------------------

  private applySlice(k: string, slice: ConfigObjectLike<EndpointSliceBody> | undefined, touched: Set<string>): void {
    const before = this.slices.get(k);
    const ns = k.slice(0, k.indexOf('/'));
    const owner = (s: ConfigObjectLike<EndpointSliceBody> | undefined) => s?.metadata.labels?.['kubernetes.io/service-name'];
    const oldOwner = owner(before);
    const newOwner = owner(slice);
    if (oldOwner !== undefined && oldOwner !== newOwner) {
      const set = this.slicesByService.get(`${ns}/${oldOwner}`);
      set?.delete(k);
      if (set?.size === 0) this.slicesByService.delete(`${ns}/${oldOwner}`);
    }
    if (slice) {
      this.slices.set(k, slice);
      if (newOwner !== undefined) {
        let set = this.slicesByService.get(`${ns}/${newOwner}`);
        if (!set) this.slicesByService.set(`${ns}/${newOwner}`, (set = new Set()));
        set.add(k);
      }
    } else {
      this.slices.delete(k);
      const set = newOwner === undefined ? undefined : this.slicesByService.get(`${ns}/${newOwner}`);
      set?.delete(k);
    }
    for (const o of [oldOwner, newOwner]) {
      const svc = o === undefined ? undefined : this.kubeByName.get(`${ns}/${o}`);
      if (svc) touched.add(svc);
    }
  }

  private applyPod(k: string, pod: ConfigObjectLike<PodBody> | undefined, touched: Set<string>, proxyAddresses: Set<string>): void {
    const before = this.podsByName.get(k);
    if (podShape(before) === podShape(pod)) {
      // Same shape (a status-only update): nothing the index reads changed.
      if (pod && before) {
        this.podsByName.set(k, pod);
        for (const ip of podIps(pod)) if (this.podsByIp.get(ip) === before) this.podsByIp.set(ip, pod);
      }
      return;
    }
    const oldIps = before ? podIps(before) : [];
    const newIps = pod ? podIps(pod) : [];
    for (const ip of oldIps) {
      if (newIps.includes(ip)) continue;
      const l = (this.podKeysByIp.get(ip) ?? []).filter((x) => x !== k);
      if (l.length === 0) this.podKeysByIp.delete(ip);
      else this.podKeysByIp.set(ip, l);
    }
    if (pod) this.podsByName.set(k, pod);
    else this.podsByName.delete(k);
    for (const ip of newIps) {
      const l = this.podKeysByIp.get(ip);
      if (!l) this.podKeysByIp.set(ip, [k]);
      else if (!l.includes(k)) l.push(k);
    }
    for (const ip of new Set([...oldIps, ...newIps])) {
      const first = this.podKeysByIp.get(ip)?.[0];
      const p = first === undefined ? undefined : this.podsByName.get(first);
      if (p) this.podsByIp.set(ip, p);
      else this.podsByIp.delete(ip);
      proxyAddresses.add(ip);
      this.readersOf(`ip:${ip}`, touched);
    }
    this.readersOf(`pod:${k}`, touched);
    this.readersOf(`pods:${k.slice(0, k.indexOf('/'))}`, touched);
  }

  private readersOf(ref: string, into: Set<string>): void {
    for (const s of this.readers.get(ref) ?? []) into.add(s);
  }

  private setReads(svcKey: string, reads: string[]): void {
    for (const r of this.readsOf.get(svcKey) ?? []) {
      const set = this.readers.get(r);
      set?.delete(svcKey);
      if (set?.size === 0) this.readers.delete(r);
    }
    if (reads.length === 0) {
      this.readsOf.delete(svcKey);
      return;
    }
    this.readsOf.set(svcKey, reads);
    for (const r of reads) {
      let set = this.readers.get(r);
      if (!set) this.readers.set(r, (set = new Set()));
      set.add(svcKey);
    }
  }

  /** What a service's endpoints read, so a later event on any of them recomputes it. */
  private readsFor(e: IndexedService, shard: Shard): string[] {
    const out = new Set<string>();
    const svc = e.service;
    if (e.source.kind === 'kube') {
      for (const k of this.slicesByService.get(`${svc.namespace}/${svc.name}`) ?? []) {
        for (const ep of this.slices.get(k)?.body.endpoints ?? []) {
          if (ep.targetRef?.kind === 'Pod' && ep.targetRef.name) out.add(`pod:${ep.targetRef.namespace ?? svc.namespace}/${ep.targetRef.name}`);
          if (ep.nodeName) out.add(`node:${ep.nodeName}`);
          for (const a of ep.addresses) out.add(`ip:${a}`);
        }
      }
      if (svc.attributes.selector && Object.keys(svc.attributes.selector).length > 0) out.add(`workloadentries:${svc.namespace}`);
    } else if (!e.source.spec.endpoints?.length && e.source.spec.workloadSelector?.labels) {
      out.add(`pods:${svc.namespace}`);
      out.add(`workloadentries:${svc.namespace}`);
    }
    // Locality comes from the pod's node.
    for (const eps of shard.values()) {
      for (const ep of eps) {
        const node = this.podsByIp.get(ep.address)?.body?.spec?.nodeName;
        if (node) out.add(`node:${node}`);
      }
    }
    return [...out];
  }

  private recompute(svcKey: string, update: EndpointUpdate): void {
    const e = this.services.get(svcKey);
    if (!e) return;
    const svc = e.service;
    const shard =
      e.source.kind === 'kube'
        ? kubeEndpoints(this.workloads, svc, [...(this.slicesByService.get(`${svc.namespace}/${svc.name}`) ?? [])].map((k) => this.slices.get(k)!))
        : serviceEntryEndpoints(this.workloads, svc, e.source.spec, e.source.name);
    this.setReads(svcKey, this.readsFor(e, shard));
    const before = this.shards.get(svcKey);
    if (sameShard(before, shard)) {
      // Same endpoints, but a new Service object (config rebuilt): instances must name the new one.
      if (this.instanceService.get(svcKey) !== svc) this.setInstances(svc, before, before!, new Set());
      return;
    }
    // Identities show in CDS (subjectAltNames); DNS services carry their endpoints in CDS.
    const full = before === undefined || (svc.resolution !== 'ClientSideLB' && svc.resolution !== 'Passthrough') || identities(before) !== identities(shard);
    const type: EndpointPushType = full ? 'full' : svc.resolution === 'Passthrough' ? 'headless' : 'incremental';
    const prev = update.services.get(svcKey);
    update.services.set(svcKey, prev !== undefined && PUSH_RANK[prev] > PUSH_RANK[type] ? prev : type);
    this.setInstances(svc, before, shard, update.proxyAddresses);
    this.shards.set(svcKey, shard);
  }

  private drop(svcKey: string, update: EndpointUpdate): void {
    const e = this.services.get(svcKey);
    const before = this.shards.get(svcKey);
    if (e && before) this.setInstances(e.service, before, new Map(), update.proxyAddresses);
    this.shards.delete(svcKey);
    this.instanceService.delete(svcKey);
    this.setReads(svcKey, []);
  }

  /** Moves a service's instances (inbound) from its old endpoints to its new ones. */
  private setInstances(svc: Service, before: Shard | undefined, after: Shard, changed: Set<string>): void {
    const key = serviceKeyOf(svc);
    this.instanceService.set(key, svc);
    const oldSig = new Map<string, string>();
    for (const eps of before?.values() ?? []) {
      for (const ep of eps) {
        if (ep.isHostname) continue;
        oldSig.set(ep.address, (oldSig.get(ep.address) ?? '') + `${ep.servicePortName}:${ep.endpointPort};`);
        const list = this.instancesByIp.get(ep.address);
        if (!list) continue;
        const kept = list.filter((i) => serviceKeyOf(i.service) !== key);
        if (kept.length === 0) this.instancesByIp.delete(ep.address);
        else this.instancesByIp.set(ep.address, kept);
      }
    }
    const newSig = new Map<string, string>();
    for (const port of svc.ports) {
      for (const ep of after.get(port.name) ?? []) {
        if (ep.isHostname) continue;
        newSig.set(ep.address, (newSig.get(ep.address) ?? '') + `${ep.servicePortName}:${ep.endpointPort};`);
        let list = this.instancesByIp.get(ep.address);
        if (!list) this.instancesByIp.set(ep.address, (list = []));
        list.push({ service: svc, servicePort: port, endpoint: ep });
      }
    }
    for (const ip of new Set([...oldSig.keys(), ...newSig.keys()])) if (oldSig.get(ip) !== newSig.get(ip)) changed.add(ip);
  }
}

/** The keys of an update's services (optionally of one push type), sorted. */
export function updatedServiceKeys(update: EndpointUpdate, type?: EndpointPushType): string[] {
  return [...update.services].filter(([, t]) => type === undefined || t === type).map(([k]) => k).sort(cmp);
}

/**
 * Splits a store change the way the daemon handles it: objects of the
 * endpoint kinds are applied to `index` now (`get` reads each from the store,
 * undefined when deleted); the rest are config. An endpoint change that needs
 * a full push (istiod's FullPush) joins the config keys; the incremental one
 * is returned for the endpoint path.
 */
export function splitEndpointChanges(
  index: EndpointIndex,
  changed: readonly ObjectKey[],
  get: (key: ObjectKey) => ConfigObjectLike | undefined,
): { config: ObjectKey[]; endpoints: EndpointUpdate | undefined } {
  const config: ObjectKey[] = [];
  const events: Array<{ key: ObjectKey; object: ConfigObjectLike | undefined }> = [];
  for (const k of changed) {
    if (isEndpointKind(k.kind)) events.push({ key: k, object: get(k) });
    else config.push(k);
  }
  if (events.length === 0) return { config, endpoints: undefined };
  const update = index.apply(events);
  if ([...update.services.values()].includes('full')) return { config: [...config, ...events.map((e) => e.key)], endpoints: undefined };
  return { config, endpoints: update };
}
