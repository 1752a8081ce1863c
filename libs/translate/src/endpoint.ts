/**
 * EDS: ClusterLoadAssignments for the clusters a proxy asks for (istiod's
 * pilot/pkg/xds/endpoints). Endpoints are grouped by locality and carry
 * istiod's metadata: the `tlsMode` transport socket match when mTLS to them is
 * possible (istiod's mtlsChecker) and the compressed istio workload label;
 * unhealthy and draining endpoints are left out.
 */
import type { ClusterLoadAssignmentJson, JsonObject, LbEndpointJson, LocalityJson, LocalityLbEndpointsJson } from '@sextant/envoy';
import { localityLabel, type EndpointReader, type IstioEndpoint, type Locality, type ProxyView, type PushContext } from '@sextant/model';
import { parseSubsetKey } from './names.js';
import { composePeerAuthentication } from './security/peer-auth.js';

function canonicalName(labels: Record<string, string>, workload: string): string {
  return labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels.app ?? workload;
}
function canonicalRevision(labels: Record<string, string>): string {
  return labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels.version ?? 'latest';
}

/**
 * istiod's compressed telemetry label (util.AppendLbEndpointMetadata):
 * `workload;namespace;canonical-name;canonical-revision;cluster`, the revision
 * empty when it is the default `latest`. istio.stats reads it for the
 * destination labels of requests that never reach the peer.
 */
export function workloadLabel(e: IstioEndpoint): string {
  const rev = canonicalRevision(e.labels);
  return [e.workloadName, e.namespace, canonicalName(e.labels, e.workloadName), rev === 'latest' ? '' : rev, e.clusterId].join(';');
}

/** Whether mTLS to an endpoint is possible; by default its `tlsMode` label (see mtlsChecker for EDS). */
export type MtlsEnabled = (e: IstioEndpoint) => boolean;
const byTlsMode: MtlsEnabled = (e) => e.tlsMode === 'istio';

export function lbEndpoint(e: IstioEndpoint, mtls: MtlsEnabled = byTlsMode): LbEndpointJson {
  const ep: LbEndpointJson = { endpoint: { address: { socketAddress: { address: e.address, portValue: e.endpointPort } } } };
  // WorkloadEntry and ServiceEntry endpoints carry no status in istiod (UNKNOWN, routed like HEALTHY).
  if (!e.noHealthStatus) ep.healthStatus = e.healthStatus;
  ep.loadBalancingWeight = e.weight > 0 ? e.weight : 1;
  const fm: { [key: string]: JsonObject } = {};
  if (e.tlsMode === 'istio' && mtls(e)) fm['envoy.transport_socket_match'] = { tlsMode: 'istio' };
  fm.istio = { workload: workloadLabel(e) };
  ep.metadata = { filterMetadata: fm };
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
export function lbEndpointsFor(endpoints: IstioEndpoint[], _proxy: ProxyView, mtls: MtlsEnabled = byTlsMode): LocalityLbEndpointsJson[] {
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
      .map((e) => lbEndpoint(e, mtls));
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

interface TlsSettingsLike {
  mode?: string | null;
}
interface TrafficPolicyLike {
  tls?: TlsSettingsLike | null;
  portLevelSettings?: Array<{ port?: { number?: number | null } | null; tls?: TlsSettingsLike | null }> | null;
}

/** A traffic policy's TLS mode for a service port (its port-level entry first), undefined when it sets none. */
function tlsModeForPort(tp: TrafficPolicyLike | null | undefined, port: number): string | undefined {
  if (!tp) return undefined;
  const pl = (tp.portLevelSettings ?? []).find((p) => p.port?.number === port && p.tls);
  return (pl?.tls ?? tp.tls)?.mode ?? (pl?.tls || tp.tls ? 'DISABLE' : undefined);
}

/**
 * istiod's mtlsChecker: the DestinationRule's TLS mode for the cluster (a
 * subset's own traffic policy only, not the top-level one) decides when set
 * (ISTIO_MUTUAL: yes); otherwise an endpoint with a sidecar takes mTLS unless
 * its PeerAuthentication disables it on its port.
 */
function mtlsChecker(push: PushContext, dr: { spec: { trafficPolicy?: unknown; subsets?: unknown } } | undefined, subset: string, port: number): MtlsEnabled {
  let drMode: string | undefined;
  if (dr) {
    const tp = subset ? ((dr.spec.subsets ?? []) as Array<{ name: string; trafficPolicy?: TrafficPolicyLike }>).find((s) => s.name === subset)?.trafficPolicy : (dr.spec.trafficPolicy as TrafficPolicyLike | undefined);
    drMode = tlsModeForPort(tp, port);
  }
  if (drMode !== undefined) {
    const on = drMode === 'ISTIO_MUTUAL';
    return () => on;
  }
  // Per workload (namespace and labels object), computed once per assignment.
  const seen = new Map<string, Map<Record<string, string>, ReturnType<typeof composePeerAuthentication>>>();
  return (e) => {
    if (e.tlsMode !== 'istio') return false;
    let byLabels = seen.get(e.namespace);
    if (!byLabels) seen.set(e.namespace, (byLabels = new Map()));
    let pa = byLabels.get(e.labels);
    if (!pa) byLabels.set(e.labels, (pa = composePeerAuthentication(push, e.namespace, e.labels)));
    return (pa.perPort.get(e.endpointPort) ?? pa.mode) !== 'DISABLE';
  };
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
    const llb = lbEndpointsFor(endpoints.endpoints(svc, port, labels), proxy, mtlsChecker(push, dr, key.subset ?? '', port.port));
    const tp = dr?.spec.trafficPolicy as { outlierDetection?: unknown; loadBalancer?: { localityLbSetting?: { enabled?: boolean | null } } } | undefined;
    const localityEnabled = tp?.loadBalancer?.localityLbSetting?.enabled !== false;
    if (tp?.outlierDetection && localityEnabled && proxy.locality && llb.length > 1) applyFailover(llb, proxy.locality);
    out.push({ clusterName: name, endpoints: llb });
  }
  return out;
}
