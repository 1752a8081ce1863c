/**
 * CDS: the clusters a proxy receives (istiod's pilot/pkg/networking/core/cluster*.go).
 * Sidecars: outbound clusters per visible service port (+ DestinationRule
 * subsets), inbound clusters for the proxy's own service instances,
 * BlackHoleCluster, PassthroughCluster, InboundPassthroughCluster.
 * Gateways: outbound clusters and BlackHoleCluster. Proxyless gRPC: see
 * cluster-grpc.ts; which proxy gets which: generator/.
 */
import { markDerivedFrom, type AddressJson, type ClusterJson, type Cluster_DiscoveryTypeJson, type Cluster_DnsLookupFamilyJson, type JsonObject } from '@sextant/envoy';
import type { TrafficPolicy } from '@sextant/api';
import { isHttp2, type IstioEndpoint, type MergedDestinationRule, type ProxyView, type PushContext, type Service, type ServiceInstance, type ServicePort } from '@sextant/model';
import { applyConnectionPool, applyLoadBalancer, applyOutlierDetection, mergeSubsetPolicy, portLevelPolicy, setH2, setUseDownstream, shouldH2Upgrade, type MutableCluster, type PolicyParts } from './policy.js';
import { applyUpstreamTls } from './tls.js';
import { isAgentless } from '../security/mtls.js';
import {
  destinationRuleConfigPath,
  HTTP_PROTOCOL_OPTIONS_KEY,
  serviceMetadata,
  toProtoDuration,
} from '../common.js';
import { sidecarIngressEndpoint, sidecarIngressPorts } from '../listener/inbound-ports.js';
import { lbEndpointsFor } from '../endpoint.js';
import { buildDnsSrvSubsetKey, buildInboundSubsetKey, buildSubsetKey, SpecialClusters } from '../names.js';
import { anyOf, TYPE } from '../typed.js';

/** DNS clusters: at most this many UDP queries per resolver socket before c-ares opens a new one (istiod's default). */
const DNS_UDP_MAX_QUERIES = 100;
/** DNS clusters: up to this much random delay added to each refresh (istiod's PILOT_DNS_JITTER_DURATION default). */
const DNS_JITTER = '0.100s';

/**
 * istiod's AddALPNOverrideToMetadata: with SIMPLE or MUTUAL TLS towards the
 * destination, `istio.alpn_override: "false"` tells istio-proxy's istio.alpn
 * filter to leave the cluster's own ALPN (the server is not a sidecar).
 */
function applyAlpnOverride(c: ClusterJson, policy: PolicyParts | undefined): void {
  const mode = policy?.tls?.mode;
  if (mode === 'SIMPLE' || mode === 'MUTUAL') istioMeta(c).alpn_override = 'false';
}

/** 292 years: istiod's "never clean up" for inbound ORIGINAL_DST clusters. */
const MAX_CLEANUP = '9223372035s';
const INBOUND_PASSTHROUGH_BIND_V4 = '127.0.0.6';
const INBOUND_PASSTHROUGH_BIND_V6 = '::6';

const DISCOVERY_TYPE: Record<Service['resolution'], Cluster_DiscoveryTypeJson> = {
  ClientSideLB: 'EDS',
  DNSLB: 'STRICT_DNS',
  DNSRoundRobinLB: 'LOGICAL_DNS',
  Passthrough: 'ORIGINAL_DST',
};

/**
 * A service's cluster type (istiod's convertResolution): a gateway cannot use
 * ORIGINAL_DST (the destination it was sent to is the gateway itself), so it
 * gets a Passthrough service (headless Service, ServiceEntry NONE) as EDS.
 */
function discoveryType(proxy: ProxyView, svc: Service): Cluster_DiscoveryTypeJson {
  if (svc.resolution === 'Passthrough' && proxy.type === 'router') return 'EDS';
  return DISCOVERY_TYPE[svc.resolution];
}

function finish(mc: MutableCluster): ClusterJson {
  if (mc.http) {
    if (!mc.http.explicitHttpConfig && !mc.http.useDownstreamProtocolConfig && !mc.http.autoConfig) mc.http.explicitHttpConfig = { httpProtocolOptions: {} };
    mc.cluster.typedExtensionProtocolOptions = { [HTTP_PROTOCOL_OPTIONS_KEY]: anyOf(TYPE.httpProtocolOptions, mc.http) };
  }
  if (mc.cluster.type === 'EDS') {
    mc.cluster.edsClusterConfig = { serviceName: mc.cluster.name, edsConfig: { ads: {}, initialFetchTimeout: '0s', resourceApiVersion: 'V3' } };
  }
  return mc.cluster;
}

/** The cluster's `filterMetadata.istio` struct, created on first use. */
function istioMeta(c: ClusterJson): JsonObject {
  c.metadata ??= { filterMetadata: {} };
  const fm = (c.metadata.filterMetadata ??= {});
  return (fm.istio ??= {});
}

function dnsFamily(proxy: ProxyView): Cluster_DnsLookupFamilyJson {
  const v6 = proxy.ipAddresses.filter((ip) => ip.includes(':')).length;
  if (v6 === 0) return 'V4_ONLY';
  if (v6 === proxy.ipAddresses.length) return 'V6_ONLY';
  return 'V4_ONLY';
}

/** A fresh cluster (istiod's buildCluster): returns undefined for DNS/static clusters without endpoints. */
function newCluster(push: PushContext, proxy: ProxyView, name: string, type: Cluster_DiscoveryTypeJson, endpoints: IstioEndpoint[] | undefined, port: ServicePort, svc: Service | undefined, direction: 'outbound' | 'inbound', inbound: ServiceInstance[] = []): MutableCluster | undefined {
  const c: ClusterJson = { name, type, commonLbConfig: {}, altStatName: `${name};` };
  if (type === 'STRICT_DNS' || type === 'LOGICAL_DNS' || type === 'STATIC') {
    if (type !== 'STATIC') {
      c.dnsLookupFamily = dnsFamily(proxy);
      // istiod's c-ares settings (PILOT_DNS_CARES_UDP_MAX_QUERIES) and jitter (PILOT_DNS_JITTER_DURATION) defaults.
      c.typedDnsResolverConfig = { name: 'envoy.network.dns_resolver.cares', typedConfig: anyOf(TYPE.caresDnsResolver, { udpMaxQueries: DNS_UDP_MAX_QUERIES }) };
      c.dnsJitter = DNS_JITTER;
      c.dnsRefreshRate = toProtoDuration(push.mesh.dnsRefreshRate) ?? '60s';
      c.respectDnsTtl = true;
    }
    const llb = lbEndpointsFor(endpoints ?? [], proxy);
    if (llb.length === 0) return undefined;
    c.loadAssignment = { clusterName: name, endpoints: llb };
  }
  const mc: MutableCluster = { cluster: c };
  if (isHttp2(port.protocol)) setH2(mc);
  else if (proxy.type === 'sidecar' && port.protocol === 'Unsupported') setUseDownstream(mc);
  if (direction === 'outbound' && svc) istioMeta(c).services = [serviceMetadata(svc)];
  if (direction === 'inbound' && inbound.length > 0 && !inbound[0]!.service.meshExternal) {
    const seen = new Set<string>();
    istioMeta(c).services = inbound
      .filter((i) => i.servicePort.port === port.port && !seen.has(i.service.hostname) && seen.add(i.service.hostname))
      .map((i) => serviceMetadata(i.service));
  }
  void push;
  return mc;
}

function mtlsPossible(push: PushContext, svc: Service, port: ServicePort, policy: PolicyParts | undefined): boolean {
  if (svc.meshExternal) return false;
  if (svc.resolution === 'Passthrough' || policy?.loadBalancer?.simple === 'PASSTHROUGH') {
    const eps = push.endpoints(svc, port);
    if (eps.length === 0 || eps.some((e) => e.tlsMode === 'disabled')) return false;
  }
  // Namespace-wide, then mesh-wide PeerAuthentication (selector-less): DISABLE turns auto mTLS off.
  const pa = (ns: string) => push.configs('PeerAuthentication', ns).find((p) => !p.spec.selector?.matchLabels)?.spec.mtls?.mode as string | undefined;
  const mode = pa(svc.namespace) ?? pa(push.mesh.rootNamespace);
  return mode !== 'DISABLE';
}

interface OutboundOpts {
  policy: PolicyParts | undefined;
  sni: string;
}

function applyPolicy(push: PushContext, proxy: ProxyView, mc: MutableCluster, svc: Service | undefined, port: ServicePort, direction: 'outbound' | 'inbound', o: OutboundOpts): void {
  const policy = o.policy;
  applyConnectionPool(mc, policy?.connectionPool ?? {}, push.mesh.connectTimeout);
  if (direction === 'outbound' && svc) {
    if (shouldH2Upgrade(port, policy?.connectionPool)) setH2(mc);
    applyOutlierDetection(mc.cluster, policy?.outlierDetection);
    applyLoadBalancer(mc.cluster, policy?.loadBalancer, push.mesh.localityLbSetting);
    applyUpstreamTls(mc, {
      tls: policy?.tls,
      serviceAccounts: push.serviceAccounts(svc, port),
      sni: o.sni,
      autoMtls: push.mesh.enableAutoMtls,
      meshExternal: svc.meshExternal,
      mtlsPossible: mtlsPossible(push, svc, port, policy),
      external: svc.attributes.serviceRegistry === 'External',
      proxy,
    });
  }
  if (mc.cluster.type === 'ORIGINAL_DST') mc.cluster.lbPolicy = 'CLUSTER_PROVIDED';
  void proxy;
}

/**
 * Outbound clusters of a service port, per context: the same for every proxy
 * that resolves the same DestinationRule and reads the same of the proxy
 * (its type, agentless SDS), so the classes of a mesh (one per namespace
 * without Sidecars) build each once and share the objects (and with them
 * the encoder's bytes). Only EDS clusters that read no endpoints: endpoints
 * change in place within a context (inline DNS/STATIC endpoints, Passthrough
 * auto-mTLS would go stale); identities, which SANs read, change only with a
 * new context (endpoint-index.ts, 'full').
 */
const sharedOutbound = new WeakMap<PushContext, WeakMap<Service, Map<string, Map<MergedDestinationRule | undefined, ClusterJson[]>>>>();

function readsNoEndpoints(svc: Service, type: Cluster_DiscoveryTypeJson, dr: MergedDestinationRule | undefined): boolean {
  if (type !== 'EDS' || svc.resolution === 'Passthrough') return false;
  const tp = dr?.spec.trafficPolicy as TrafficPolicy | undefined;
  const policies = [tp, ...((dr?.spec.subsets ?? []) as Array<{ trafficPolicy?: TrafficPolicy }>).map((s) => s.trafficPolicy)];
  return !policies.some((p) => p?.loadBalancer?.simple === 'PASSTHROUGH' || (p?.portLevelSettings ?? []).some((l) => l.loadBalancer?.simple === 'PASSTHROUGH'));
}

/** Outbound clusters for one service port: the default cluster plus one per DestinationRule subset. */
export function buildOutboundClusters(push: PushContext, proxy: ProxyView, svc: Service, port: ServicePort): ClusterJson[] {
  if (port.protocol === 'UDP') return [];
  const dr = push.destinationRule(proxy, svc.hostname);
  const type = discoveryType(proxy, svc);
  if (!readsNoEndpoints(svc, type, dr)) return outboundClusters(push, proxy, svc, port, dr, type);
  let bySvc = sharedOutbound.get(push);
  if (!bySvc) sharedOutbound.set(push, (bySvc = new WeakMap()));
  let byKey = bySvc.get(svc);
  if (!byKey) bySvc.set(svc, (byKey = new Map()));
  const key = `${port.port}|${port.name}|${port.protocol}|${proxy.type}|${isAgentless(proxy)}`;
  let byRule = byKey.get(key);
  if (!byRule) byKey.set(key, (byRule = new Map()));
  let out = byRule.get(dr);
  if (!out) byRule.set(dr, (out = outboundClusters(push, proxy, svc, port, dr, type)));
  return out;
}

function outboundClusters(push: PushContext, proxy: ProxyView, svc: Service, port: ServicePort, dr: MergedDestinationRule | undefined, type: Cluster_DiscoveryTypeJson): ClusterJson[] {
  const out: ClusterJson[] = [];
  const tp = dr?.spec.trafficPolicy as TrafficPolicy | undefined;
  const policy = portLevelPolicy(tp, port.port);
  const name = buildSubsetKey('outbound', '', svc.hostname, port.port);
  const base = newCluster(push, proxy, name, type, push.endpoints(svc, port), port, svc, 'outbound');
  if (base) {
    applyPolicy(push, proxy, base, svc, port, 'outbound', { policy, sni: buildDnsSrvSubsetKey('outbound', '', svc.hostname, port.port) });
    if (svc.meshExternal) istioMeta(base.cluster).external = true;
    if (dr) {
      istioMeta(base.cluster).config = destinationRuleConfigPath(dr.from[0]!.namespace, dr.from[0]!.name);
      applyAlpnOverride(base.cluster, policy);
    }
    out.push(finish(base));
  }
  for (const subset of (dr?.spec.subsets ?? []) as Array<{ name: string; labels?: Record<string, string>; trafficPolicy?: TrafficPolicy }>) {
    const subsetPolicy = mergeSubsetPolicy(policy, subset.trafficPolicy, port.port);
    const passthrough = subsetPolicy?.loadBalancer?.simple === 'PASSTHROUGH';
    const subsetType = passthrough ? 'ORIGINAL_DST' : type;
    const sname = buildSubsetKey('outbound', subset.name, svc.hostname, port.port);
    const eps = subsetType === 'EDS' || subsetType === 'ORIGINAL_DST' ? undefined : push.endpoints(svc, port, subset.labels ?? {});
    const mc = newCluster(push, proxy, sname, subsetType, eps, port, svc, 'outbound');
    if (!mc) continue;
    applyPolicy(push, proxy, mc, svc, port, 'outbound', { policy: subsetPolicy, sni: buildDnsSrvSubsetKey('outbound', subset.name, svc.hostname, port.port) });
    const meta = istioMeta(mc.cluster);
    // istiod marks only the default cluster of a mesh-external service `external` (applyDestinationRule), not its subsets.
    meta.config = destinationRuleConfigPath(dr!.from[0]!.namespace, dr!.from[0]!.name);
    meta.subset = subset.name;
    applyAlpnOverride(mc.cluster, subsetPolicy);
    out.push(finish(mc));
  }
  return out;
}

/**
 * istiod's buildInboundCluster: `inbound|<port>||` for the instances on one
 * port (Service metadata, DestinationRule and Sidecar connection pool, default
 * circuit breakers); STATIC to `target.address` when given, else ORIGINAL_DST.
 * Sources bind to 127.0.0.6 unless the target is the loopback.
 */
function inboundCluster(push: PushContext, proxy: ProxyView, clusterPort: number, port: ServicePort, insts: ServiceInstance[], target: { bind: string; address?: AddressJson } = { bind: '' }): ClusterJson {
  const svc = insts[0]?.service;
  const name = buildInboundSubsetKey(clusterPort);
  const mc = newCluster(push, proxy, name, 'ORIGINAL_DST', undefined, port, svc, 'inbound', insts)!;
  if (target.address) {
    mc.cluster.type = 'STATIC';
    mc.cluster.loadAssignment = { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: target.address } }] }] };
  } else {
    mc.cluster.cleanupInterval = MAX_CLEANUP;
  }
  // The server's own view of the rule: a client-selecting (workloadSelector) rule never shapes inbound clusters.
  const dr = svc ? push.destinationRule(proxy, svc.hostname, 'inbound') : undefined;
  const tp = dr?.spec.trafficPolicy as TrafficPolicy | undefined;
  const policy = tp ? portLevelPolicy(tp, port.port) : undefined;
  if (dr && tp) istioMeta(mc.cluster).config = destinationRuleConfigPath(dr.from[0]!.namespace, dr.from[0]!.name);
  const sidecarPool = push.sidecarScope(proxy).sidecar?.spec.inboundConnectionPool;
  applyPolicy(push, proxy, mc, svc, port, 'inbound', { policy: sidecarPool ? { ...policy, connectionPool: sidecarPool } : policy, sni: '' });
  if (target.bind !== '127.0.0.1' && target.bind !== '::1') {
    const v4 = proxy.ipAddresses.some((ip) => !ip.includes(':'));
    mc.cluster.upstreamBindConfig = { sourceAddress: { address: v4 ? INBOUND_PASSTHROUGH_BIND_V4 : INBOUND_PASSTHROUGH_BIND_V6, portValue: 0 } };
  }
  return finish(mc);
}

/** `inbound|<port>||` clusters for the proxy's own service instances (ORIGINAL_DST bound to 127.0.0.6). */
export function buildInboundClusters(push: PushContext, proxy: ProxyView): ClusterJson[] {
  const instances = push.serviceInstancesForProxy(proxy);
  const byPort = new Map<number, ServiceInstance[]>();
  for (const i of instances) {
    const l = byPort.get(i.endpoint.endpointPort) ?? [];
    l.push(i);
    byPort.set(i.endpoint.endpointPort, l);
  }
  return [...byPort.entries()].sort((a, b) => a[0] - b[0]).map(([port, insts]) => inboundCluster(push, proxy, port, insts[0]!.servicePort, insts));
}

/**
 * `inbound|<port>||` for each Sidecar ingress listener (istiod's
 * buildInboundClustersFromSidecar), undefined when the Sidecar has none. The
 * Service behind it is the proxy's instance on that target port, if any (its
 * metadata and DestinationRule apply); the port is the listener's.
 */
export function buildSidecarIngressClusters(push: PushContext, proxy: ProxyView): ClusterJson[] | undefined {
  const ports = sidecarIngressPorts(push, proxy);
  if (!ports) return undefined;
  const instances = push.serviceInstancesForProxy(proxy);
  return ports.map((p) => {
    const port: ServicePort = { name: p.portName ?? '', port: p.port, protocol: p.protocol };
    const real = instances.find((i) => i.endpoint.endpointPort === p.port);
    return inboundCluster(push, proxy, p.port, port, real ? [{ ...real, servicePort: port }] : [], sidecarIngressEndpoint(p, proxy));
  });
}

export function blackHoleCluster(push: PushContext): ClusterJson {
  return { name: SpecialClusters.blackHole, type: 'STATIC', connectTimeout: toProtoDuration(push.mesh.connectTimeout), lbPolicy: 'ROUND_ROBIN', altStatName: `${SpecialClusters.blackHole};` };
}

function passthroughBase(push: PushContext, name: string): ClusterJson {
  return {
    name,
    type: 'ORIGINAL_DST',
    connectTimeout: toProtoDuration(push.mesh.connectTimeout),
    lbPolicy: 'CLUSTER_PROVIDED',
    // istiod builds InboundPassthroughCluster from PassthroughCluster and keeps its stat name.
    altStatName: `${SpecialClusters.passthrough};`,
    circuitBreakers: { thresholds: [{ maxConnections: 4294967295, maxPendingRequests: 4294967295, maxRequests: 4294967295, maxRetries: 4294967295, trackRemaining: true }] },
    typedExtensionProtocolOptions: {
      [HTTP_PROTOCOL_OPTIONS_KEY]: anyOf(TYPE.httpProtocolOptions, {
        commonHttpProtocolOptions: { idleTimeout: '300s' },
        useDownstreamProtocolConfig: { httpProtocolOptions: {}, http2ProtocolOptions: {} },
      }),
    },
  };
}

export function passthroughCluster(push: PushContext): ClusterJson {
  return passthroughBase(push, SpecialClusters.passthrough);
}

export function inboundPassthroughCluster(push: PushContext, proxy: ProxyView): ClusterJson {
  const c = passthroughBase(push, SpecialClusters.inboundPassthrough);
  const v4 = proxy.ipAddresses.some((ip) => !ip.includes(':'));
  const v6 = proxy.ipAddresses.some((ip) => ip.includes(':'));
  c.upstreamBindConfig = { sourceAddress: { address: v4 ? INBOUND_PASSTHROUGH_BIND_V4 : INBOUND_PASSTHROUGH_BIND_V6, portValue: 0 } };
  if (v4 && v6) c.upstreamBindConfig.extraSourceAddresses = [{ address: { address: INBOUND_PASSTHROUGH_BIND_V6, portValue: 0 } }];
  return c;
}

/** Outbound clusters per visible service port (sidecars and gateways share them per proxy class). */
export function buildOutboundServiceClusters(push: PushContext, proxy: ProxyView): ClusterJson[] {
  const out: ClusterJson[] = [];
  for (const svc of push.servicesForProxy(proxy)) for (const port of svc.ports) out.push(...buildOutboundClusters(push, proxy, svc, port));
  return out;
}

/**
 * Marks a workload's own cluster (`inbound|<port>||`) as a copy of a template
 * whose holes are the strings of its metadata (the services it serves, the
 * DestinationRule that shaped it): what differs from the same port's cluster
 * of another workload. The encoder renders it from the template's bytes,
 * which those workloads share, instead of encoding each from JSON. Returns
 * the cluster itself (the mark is kept aside).
 */
export function markWorkloadCluster(c: ClusterJson): ClusterJson {
  const values = new Set<string>();
  const collect = (v: unknown): void => {
    if (typeof v === 'string') values.add(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(collect);
  };
  collect(c.metadata);
  markDerivedFrom(c, [...values]);
  return c;
}

/** A sidecar's own clusters: inbound for its service instances (or Sidecar ingress), and the special clusters. */
export function buildSidecarProxyClusters(push: PushContext, proxy: ProxyView): ClusterJson[] {
  return [
    ...(buildSidecarIngressClusters(push, proxy) ?? buildInboundClusters(push, proxy)),
    blackHoleCluster(push),
    passthroughCluster(push),
    inboundPassthroughCluster(push, proxy),
  ];
}
