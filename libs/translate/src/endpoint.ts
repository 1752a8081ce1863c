/**
 * EDS: ClusterLoadAssignments for the clusters a proxy asks for (istiod's
 * pilot/pkg/xds/endpoints). Endpoints are grouped by locality, carry the
 * `tlsMode` transport socket match and istio workload metadata, and only
 * healthy endpoints are sent.
 */
import type { ClusterLoadAssignmentJson, JsonObject, LbEndpointJson, LocalityJson, LocalityLbEndpointsJson } from '@sextant/envoy';
import { localityLabel, type EndpointReader, type IstioEndpoint, type Locality, type ProxyView, type PushContext } from '@sextant/model';
import { parseSubsetKey } from './names.js';

function canonicalName(labels: Record<string, string>, workload: string): string {
  return labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels.app ?? workload;
}
function canonicalRevision(labels: Record<string, string>): string {
  return labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels.version ?? 'latest';
}

export function lbEndpoint(e: IstioEndpoint): LbEndpointJson {
  const ep: LbEndpointJson = {
    endpoint: { address: { socketAddress: { address: e.address, portValue: e.endpointPort } } },
    loadBalancingWeight: e.weight > 0 ? e.weight : 1,
  };
  // WorkloadEntry and ServiceEntry endpoints carry no status in istiod (UNKNOWN, routed like HEALTHY).
  if (!e.noHealthStatus) ep.healthStatus = e.healthStatus;
  const fm: { [key: string]: JsonObject } = {};
  if (e.tlsMode === 'istio') fm['envoy.transport_socket_match'] = { tlsMode: 'istio' };
  if (e.workloadName) {
    // istiod leaves the default revision out of the compressed label ("latest" → "").
    const rev = canonicalRevision(e.labels);
    fm.istio = { workload: [e.workloadName, e.namespace, canonicalName(e.labels, e.workloadName), rev === 'latest' ? '' : rev, e.clusterId].join(';') };
  }
  if (Object.keys(fm).length > 0) ep.metadata = { filterMetadata: fm };
  return ep;
}

function localityJson(l: Locality): LocalityJson | undefined {
  const j: LocalityJson = {};
  if (l.region) j.region = l.region;
  if (l.zone) j.zone = l.zone;
  if (l.subzone) j.subZone = l.subzone;
  return Object.keys(j).length > 0 ? j : undefined;
}

/** Healthy endpoints grouped by locality (sorted), each group weighted by the sum of its endpoints. */
export function lbEndpointsFor(endpoints: IstioEndpoint[], _proxy: ProxyView): LocalityLbEndpointsJson[] {
  const groups = new Map<string, { locality: Locality; eps: IstioEndpoint[] }>();
  for (const e of endpoints) {
    if (e.healthStatus !== 'HEALTHY') continue;
    const k = localityLabel(e.locality);
    const g = groups.get(k) ?? { locality: e.locality, eps: [] };
    g.eps.push(e);
    groups.set(k, g);
  }
  return [...groups.keys()].sort().map((k) => {
    const g = groups.get(k)!;
    const lbEndpoints = g.eps
      .slice()
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.endpointPort - b.endpointPort))
      .map(lbEndpoint);
    const out: LocalityLbEndpointsJson = { lbEndpoints, loadBalancingWeight: lbEndpoints.reduce((s, e) => s + (e.loadBalancingWeight ?? 0), 0) };
    // Always present, empty when unknown (istiod's ConvertLocality): proxyless gRPC rejects a
    // LocalityLbEndpoints without a locality ("endpoints[0].locality unset").
    out.locality = localityJson(g.locality) ?? {};
    return out;
  });
}

/** Locality failover priorities (istiod's loadbalancer.applyLocalityFailover, default failover). */
function applyFailover(llb: LocalityLbEndpointsJson[], proxyLocality: Locality): void {
  const level = (l: LocalityJson | undefined): number => {
    const r = l?.region ?? '';
    const z = l?.zone ?? '';
    const s = l?.subZone ?? '';
    if (r !== proxyLocality.region) return 3;
    if (z !== proxyLocality.zone) return 2;
    if (s !== proxyLocality.subzone) return 1;
    return 0;
  };
  const levels = [...new Set(llb.map((g) => level(g.locality)))].sort();
  for (const g of llb) {
    const p = levels.indexOf(level(g.locality));
    if (p > 0) g.priority = p;
  }
}

/**
 * ClusterLoadAssignments for `clusterNames` (the names the proxy watches).
 * Unknown names and non-EDS clusters get an empty assignment so Envoy does
 * not wait for them. Endpoints come from the endpoint index (updated in place
 * by endpoint events); services and rules from the context.
 */
export function buildClusterLoadAssignments(push: PushContext, proxy: ProxyView, clusterNames: string[]): ClusterLoadAssignmentJson[] {
  const endpoints: EndpointReader = push.endpointIndex;
  const out: ClusterLoadAssignmentJson[] = [];
  for (const name of [...new Set(clusterNames)]) {
    const key = parseSubsetKey(name);
    const empty: ClusterLoadAssignmentJson = { clusterName: name, endpoints: [] };
    if (!key || key.direction !== 'outbound') {
      out.push(empty);
      continue;
    }
    const svc = push.serviceByHostname(key.hostname, proxy.namespace);
    const port = svc?.ports.find((p) => p.port === key.port);
    // Passthrough services too: gateways get them as EDS clusters (sidecars, ORIGINAL_DST, never ask).
    if (!svc || !port || (svc.resolution !== 'ClientSideLB' && svc.resolution !== 'Passthrough') || (proxy.type === 'sidecar' && !push.sidecarScope(proxy).hasService(svc.hostname) && proxy.generator !== 'grpc')) {
      out.push(empty);
      continue;
    }
    const dr = push.destinationRule(proxy, svc.hostname);
    let labels: Record<string, string> | undefined;
    if (key.subset) {
      const subset = ((dr?.spec.subsets ?? []) as Array<{ name: string; labels?: Record<string, string> }>).find((s) => s.name === key.subset);
      if (!subset) {
        out.push(empty);
        continue;
      }
      labels = subset.labels ?? {};
    }
    const llb = lbEndpointsFor(endpoints.endpoints(svc, port, labels), proxy);
    const tp = dr?.spec.trafficPolicy as { outlierDetection?: unknown; loadBalancer?: { localityLbSetting?: { enabled?: boolean | null } } } | undefined;
    const localityEnabled = tp?.loadBalancer?.localityLbSetting?.enabled !== false;
    if (tp?.outlierDetection && localityEnabled && proxy.locality && llb.length > 1) applyFailover(llb, proxy.locality);
    out.push({ clusterName: name, endpoints: llb });
  }
  return out;
}
