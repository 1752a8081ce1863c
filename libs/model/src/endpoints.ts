import type { EndpointSliceBody, PodBody, ServiceEntrySpec, WorkloadEntrySpec } from './inputs.js';
import { LABEL_NETWORK, LABEL_REGION, LABEL_SUBZONE, LABEL_TLS_MODE, LABEL_ZONE, parseLocality, selectorMatches } from './labels.js';
import type { ConfigObjectLike, HealthStatus, IstioEndpoint, Locality, Service } from './types.js';

/** Everything endpoint building looks up, indexed once per PushContext. */
export interface WorkloadIndex {
  trustDomain: string;
  clusterId: string;
  podsByName: Map<string, ConfigObjectLike<PodBody>>; // ns/name
  podsByIp: Map<string, ConfigObjectLike<PodBody>>;
  nodes: Map<string, Record<string, string>>; // node name → labels
  workloadEntries: ConfigObjectLike<{ spec?: WorkloadEntrySpec }>[];
}

export function podIps(pod: ConfigObjectLike<PodBody>): string[] {
  const st = pod.body?.status;
  const ips = (st?.podIPs ?? []).map((p) => p.ip);
  if (st?.podIP && !ips.includes(st.podIP)) ips.unshift(st.podIP);
  return ips;
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

export function podLocality(idx: WorkloadIndex, pod: ConfigObjectLike<PodBody> | undefined, nodeName?: string | null, zone?: string | null): Locality {
  const node = nodeName ?? pod?.body?.spec?.nodeName;
  const nl = node ? idx.nodes.get(node) : undefined;
  const pl = pod?.metadata.labels ?? {};
  const fromLabel = pl['istio-locality'] ? parseLocality(pl['istio-locality'].replace(/\./g, '/')) : undefined;
  if (fromLabel) return fromLabel;
  return {
    region: nl?.[LABEL_REGION] ?? '',
    zone: nl?.[LABEL_ZONE] ?? zone ?? '',
    subzone: nl?.[LABEL_SUBZONE] ?? '',
  };
}

function podServiceAccount(idx: WorkloadIndex, pod: ConfigObjectLike<PodBody> | undefined): string {
  if (!pod) return '';
  const sa = pod.body?.spec?.serviceAccountName ?? pod.body?.spec?.serviceAccount ?? 'default';
  return spiffeId(idx.trustDomain, pod.metadata.namespace ?? 'default', sa);
}

/** The workload name istiod reports: the owning Deployment-ish name, else the pod name. */
function workloadName(pod: ConfigObjectLike<PodBody>): string {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller) ?? pod.metadata.ownerReferences?.[0];
  if (!owner) return pod.metadata.name;
  if (owner.kind === 'ReplicaSet') {
    const hash = pod.metadata.labels?.['pod-template-hash'];
    if (hash && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -hash.length - 1);
  }
  return owner.name;
}

function tlsModeOf(labels: Record<string, string> | undefined): 'istio' | 'disabled' {
  return labels?.[LABEL_TLS_MODE] === 'istio' ? 'istio' : 'disabled';
}

function resolveTargetPort(pod: ConfigObjectLike<PodBody> | undefined, target: number | string | undefined, fallback: number): number {
  if (typeof target === 'number') return target;
  if (typeof target === 'string' && /^[0-9]+$/.test(target)) return Number(target);
  if (typeof target === 'string' && pod) {
    for (const c of pod.body?.spec?.containers ?? []) for (const p of c.ports ?? []) if (p.name === target) return p.containerPort;
  }
  return fallback;
}

function health(cond: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null } | undefined): HealthStatus {
  if (cond?.terminating) return cond.serving ? 'DRAINING' : 'UNHEALTHY';
  return cond?.ready === false ? 'UNHEALTHY' : 'HEALTHY';
}

/** Endpoints of a Kubernetes Service from its EndpointSlices, per service port name. */
export function kubeEndpoints(idx: WorkloadIndex, svc: Service, slices: ConfigObjectLike<EndpointSliceBody>[]): Map<string, IstioEndpoint[]> {
  const out = new Map<string, IstioEndpoint[]>();
  for (const p of svc.ports) out.set(p.name, []);
  if (svc.attributes.serviceType === 'ExternalName' && svc.attributes.externalName) {
    // Envoy resolves the external name itself (STRICT_DNS), as istiod does.
    for (const p of svc.ports) {
      out.get(p.name)!.push({ ...workloadEntryEndpoint(idx, { address: svc.attributes.externalName }, svc.namespace, '', p.name, p.port), isHostname: true, noHealthStatus: false });
    }
    return out;
  }
  for (const slice of slices) {
    const body = slice.body;
    if (body.addressType === 'FQDN') continue;
    for (const sp of body.ports ?? []) {
      const svcPort = svc.ports.find((p) => p.name === (sp.name ?? '')) ?? (svc.ports.length === 1 && !sp.name ? svc.ports[0] : undefined);
      if (!svcPort || sp.port === undefined || sp.port === null) continue;
      for (const ep of body.endpoints ?? []) {
        for (const address of ep.addresses) {
          const pod =
            (ep.targetRef?.kind === 'Pod' && ep.targetRef.name ? idx.podsByName.get(`${ep.targetRef.namespace ?? svc.namespace}/${ep.targetRef.name}`) : undefined) ??
            idx.podsByIp.get(address);
          const labels = { ...(pod?.metadata.labels ?? {}) };
          out.get(svcPort.name)!.push({
            address,
            endpointPort: sp.port,
            servicePortName: svcPort.name,
            labels,
            locality: podLocality(idx, pod, ep.nodeName, ep.zone),
            serviceAccount: podServiceAccount(idx, pod),
            tlsMode: tlsModeOf(labels),
            network: labels[LABEL_NETWORK] ?? '',
            clusterId: idx.clusterId,
            healthStatus: health(ep.conditions),
            weight: 1,
            workloadName: pod ? workloadName(pod) : '',
            namespace: pod?.metadata.namespace ?? svc.namespace,
          });
        }
      }
    }
  }
  // WorkloadEntries selected by the Service's selector (mesh expansion).
  const selector = svc.attributes.selector;
  if (selector && Object.keys(selector).length > 0) {
    for (const we of idx.workloadEntries) {
      if ((we.metadata.namespace ?? 'default') !== svc.namespace) continue;
      const spec = we.body.spec ?? {};
      if (!spec.address || !selectorMatches(selector, spec.labels)) continue;
      for (const p of svc.ports) {
        const port = spec.ports?.[p.name] ?? resolveTargetPort(undefined, p.targetPort, p.port);
        out.get(p.name)!.push(workloadEntryEndpoint(idx, spec, we.metadata.namespace ?? 'default', workloadEntryName(we), p.name, port));
      }
    }
  }
  return out;
}

/**
 * A WorkloadEntry's (or inline ServiceEntry endpoint's) TLS mode, as istiod's
 * getTLSModeFromWorkloadEntry: the `security.istio.io/tlsMode` label, else
 * `istio` when it names a service account (a VM running the Istio proxy).
 */
function workloadEntryTlsMode(we: WorkloadEntrySpec): 'istio' | 'disabled' {
  const label = we.labels?.[LABEL_TLS_MODE];
  if (label !== undefined) return label === 'istio' ? 'istio' : 'disabled';
  return we.serviceAccount ? 'istio' : 'disabled';
}

/** A WorkloadEntry's workload name as istiod's WorkloadNameFromWorkloadEntry: its auto-registration group, its workload-name label, its name. */
function workloadEntryName(we: { metadata: { name: string; annotations?: Record<string, string> | null; labels?: Record<string, string> | null } }): string {
  return we.metadata.annotations?.['istio.io/autoRegistrationGroup'] ?? we.metadata.labels?.['service.istio.io/workload-name'] ?? we.metadata.name;
}

function workloadEntryEndpoint(idx: WorkloadIndex, we: WorkloadEntrySpec, ns: string, name: string, portName: string, port: number): IstioEndpoint {
  const labels = { ...(we.labels ?? {}) };
  return {
    address: we.address ?? '',
    endpointPort: port,
    servicePortName: portName,
    labels,
    locality: parseLocality(we.locality),
    serviceAccount: we.serviceAccount ? spiffeId(idx.trustDomain, ns, we.serviceAccount) : '',
    tlsMode: workloadEntryTlsMode(we),
    network: we.network ?? '',
    clusterId: idx.clusterId,
    healthStatus: 'HEALTHY',
    noHealthStatus: true,
    weight: we.weight && we.weight > 0 ? we.weight : 1,
    workloadName: name,
    namespace: ns,
  };
}

/** Endpoints of a ServiceEntry host: inline endpoints, selected Pods/WorkloadEntries, or the host itself for DNS. */
export function serviceEntryEndpoints(idx: WorkloadIndex, svc: Service, spec: ServiceEntrySpec, seName: string): Map<string, IstioEndpoint[]> {
  const out = new Map<string, IstioEndpoint[]>();
  for (const p of svc.ports) out.set(p.name, []);
  const ns = svc.namespace;
  const isDns = svc.resolution === 'DNSLB' || svc.resolution === 'DNSRoundRobinLB';
  const inline = spec.endpoints ?? [];
  for (const p of svc.ports) {
    const list = out.get(p.name)!;
    const dflt = p.targetPort !== undefined ? Number(p.targetPort) : p.port;
    if (inline.length > 0) {
      inline.forEach((we, i) => {
        // istiod names an inline endpoint `<entry>-<index>` (unless labelled with a workload name).
        const ep = workloadEntryEndpoint(idx, we, ns, we.labels?.['service.istio.io/workload-name'] ?? `${seName}-${i}`, p.name, we.ports?.[p.name] ?? dflt);
        if (!we.address) return;
        ep.isHostname = isDns && !/^[0-9.:]+$/.test(we.address);
        list.push(ep);
      });
    } else if (spec.workloadSelector?.labels) {
      const sel = spec.workloadSelector.labels;
      for (const pod of idx.podsByName.values()) {
        if ((pod.metadata.namespace ?? 'default') !== ns || !selectorMatches(sel, pod.metadata.labels)) continue;
        const labels = { ...(pod.metadata.labels ?? {}) };
        for (const ip of podIps(pod).slice(0, 1)) {
          list.push({
            address: ip,
            endpointPort: dflt,
            servicePortName: p.name,
            labels,
            locality: podLocality(idx, pod),
            serviceAccount: podServiceAccount(idx, pod),
            tlsMode: tlsModeOf(labels),
            network: labels[LABEL_NETWORK] ?? '',
            clusterId: idx.clusterId,
            healthStatus: 'HEALTHY',
            weight: 1,
            workloadName: workloadName(pod),
            namespace: ns,
          });
        }
      }
      for (const we of idx.workloadEntries) {
        const weSpec = we.body.spec ?? {};
        if ((we.metadata.namespace ?? 'default') !== ns || !weSpec.address || !selectorMatches(sel, weSpec.labels)) continue;
        list.push(workloadEntryEndpoint(idx, weSpec, ns, workloadEntryName(we), p.name, weSpec.ports?.[p.name] ?? dflt));
      }
    } else if (isDns && !svc.hostname.startsWith('*')) {
      // No endpoints: Envoy resolves the host itself.
      // The workload is the ServiceEntry itself (istiod's hostnameToServiceInstance).
      list.push({ ...workloadEntryEndpoint(idx, { address: svc.hostname }, ns, seName, p.name, dflt), isHostname: true });
    }
  }
  return out;
}
