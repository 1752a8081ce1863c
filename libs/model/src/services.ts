import type { ValidationIssue } from '@sextant/api';
import type { KubeServiceBody, ServiceEntrySpec } from './inputs.js';
import { ANNOTATION_EXPORT_TO, resolveExportTo } from './labels.js';
import { parseProtocol, protocolForKubePort } from './protocol.js';
import type { ConfigObjectLike, Resolution, Service, ServicePort } from './types.js';

/**
 * One Service per stored object and conversion options, the same across push
 * contexts while the object is unchanged: translation memoizes by it (a
 * service's virtual host domains and a route configuration's default virtual
 * hosts, route/sidecar.ts). Never mutated.
 */
const kubeServices = new WeakMap<ConfigObjectLike, { options: string; service: Service }>();

/** Converts a Kubernetes Service into the model's Service (istiod's kube.ConvertService); once per stored object. */
export function serviceFromKube(obj: ConfigObjectLike, domainSuffix: string, defaultExportTo: readonly string[]): Service {
  const options = `${domainSuffix}\u0000${defaultExportTo.join(',')}`;
  const hit = kubeServices.get(obj);
  if (hit?.options === options) return hit.service;
  const service = convertKubeService(obj, domainSuffix, defaultExportTo);
  kubeServices.set(obj, { options, service });
  return service;
}

function convertKubeService(obj: ConfigObjectLike, domainSuffix: string, defaultExportTo: readonly string[]): Service {
  const body = (obj.body ?? {}) as KubeServiceBody;
  const spec = body.spec ?? {};
  const ns = obj.metadata.namespace ?? 'default';
  const name = obj.metadata.name;
  const ips = (spec.clusterIPs && spec.clusterIPs.length > 0 ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : []).filter((ip) => ip !== 'None' && ip !== '');
  const headless = spec.clusterIP === 'None';
  const externalName = spec.type === 'ExternalName';
  let resolution: Resolution = 'ClientSideLB';
  if (externalName) resolution = 'DNSLB';
  else if (headless) resolution = 'Passthrough';
  const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({
    name: p.name ?? '',
    port: p.port,
    protocol: protocolForKubePort(p.name, p.appProtocol, p.protocol),
    targetPort: p.targetPort ?? p.port,
    appProtocol: p.appProtocol,
  }));
  const exportAnno = obj.metadata.annotations?.[ANNOTATION_EXPORT_TO];
  const exportTo = resolveExportTo(exportAnno ? exportAnno.split(',').map((s) => s.trim()) : undefined, ns, defaultExportTo);
  return {
    hostname: `${name}.${ns}.svc.${domainSuffix}`,
    namespace: ns,
    name,
    clusterVIP: ips[0] ?? '0.0.0.0',
    addresses: ips,
    ports,
    labels: { ...(obj.metadata.labels ?? {}) },
    exportTo,
    meshExternal: externalName,
    resolution,
    headless,
    creationTime: obj.metadata.creationTimestamp ?? '',
    attributes: {
      serviceRegistry: 'Kubernetes',
      name,
      namespace: ns,
      labels: { ...(obj.metadata.labels ?? {}) },
      selector: spec.selector ?? undefined,
      serviceType: spec.type ?? 'ClusterIP',
      externalName: spec.externalName,
      origin: { kind: 'Service', namespace: ns, name },
    },
  };
}

const SE_RESOLUTION: Record<string, Resolution> = {
  NONE: 'Passthrough',
  STATIC: 'ClientSideLB',
  DNS: 'DNSLB',
  DNS_ROUND_ROBIN: 'DNSRoundRobinLB',
};

/** Converts a ServiceEntry into one Service per host (istiod's serviceentry convertServices). */
export function servicesFromServiceEntry(obj: ConfigObjectLike, defaultExportTo: readonly string[], issues: ValidationIssue[]): Service[] {
  const spec = ((obj.body as { spec?: ServiceEntrySpec }).spec ?? { hosts: [] }) as ServiceEntrySpec;
  const ns = obj.metadata.namespace ?? 'default';
  const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({
    name: p.name,
    port: p.number,
    protocol: parseProtocol(p.protocol),
    targetPort: p.targetPort,
  }));
  const addresses = [...(spec.addresses ?? [])];
  const exportTo = resolveExportTo(spec.exportTo, ns, defaultExportTo);
  const resolution = SE_RESOLUTION[spec.resolution ?? 'NONE'] ?? 'Passthrough';
  if (resolution !== 'Passthrough' && resolution !== 'ClientSideLB' && addresses.some((a) => a.includes('/'))) {
    issues.push({
      kind: 'ServiceEntry',
      namespace: ns,
      name: obj.metadata.name,
      field: 'spec.addresses',
      reason: 'CIDR addresses are allowed only for NONE/STATIC resolution types',
    });
  }
  return spec.hosts.map((host) => ({
    hostname: host,
    namespace: ns,
    name: host,
    clusterVIP: addresses[0] ?? '0.0.0.0',
    addresses,
    ports,
    labels: { ...(obj.metadata.labels ?? {}) },
    exportTo,
    meshExternal: (spec.location ?? 'MESH_EXTERNAL') === 'MESH_EXTERNAL',
    resolution,
    headless: false,
    creationTime: obj.metadata.creationTimestamp ?? '',
    attributes: {
      serviceRegistry: 'External',
      name: host,
      namespace: ns,
      labels: { ...(obj.metadata.labels ?? {}) },
      selector: spec.workloadSelector?.labels,
      origin: { kind: 'ServiceEntry', namespace: ns, name: obj.metadata.name },
    },
  }));
}
