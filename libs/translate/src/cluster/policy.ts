/**
 * DestinationRule traffic policy → Envoy cluster fields, as istiod applies
 * them (pilot/pkg/networking/core/cluster_traffic_policy.go).
 */
import type { ClientTLSSettings, ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection, TrafficPolicy } from '@sextant/api';
import { isHttp, type ServicePort } from '@sextant/model';
import type { CircuitBreakers_ThresholdsJson, ClusterJson, OutlierDetectionJson, UpstreamsHttpProtocolOptionsJson } from '@sextant/envoy';
import { MAX_UINT32, toProtoDuration } from '../common.js';

/** TcpKeepalive in proto3 JSON (core.v3.TcpKeepalive: three UInt32Value fields). */
interface TcpKeepaliveJson {
  keepaliveProbes?: number;
  keepaliveTime?: number;
  keepaliveInterval?: number;
}

/** A cluster under construction plus its HttpProtocolOptions (packed at the end, as istiod's clusterWrapper does). */
export interface MutableCluster {
  cluster: ClusterJson;
  http?: UpstreamsHttpProtocolOptionsJson | undefined;
}

export interface PolicyParts {
  connectionPool?: ConnectionPoolSettings | undefined;
  outlierDetection?: OutlierDetection | undefined;
  loadBalancer?: LoadBalancerSettings | undefined;
  tls?: ClientTLSSettings | undefined;
}

/**
 * The policy for one port (istiod's GetPortLevelTrafficPolicy): a
 * portLevelSettings entry for the port REPLACES the destination-level policy,
 * and fields it leaves out take their defaults, not the destination-level
 * values. `portLevel` says whether such an entry was found.
 */
export function portLevelPolicyOf(policy: TrafficPolicy | undefined, port: number): { parts: PolicyParts | undefined; portLevel: boolean } {
  if (!policy) return { parts: undefined, portLevel: false };
  const pl = policy.portLevelSettings?.find((p) => p.port?.number === port);
  if (!pl) return { parts: { connectionPool: policy.connectionPool, outlierDetection: policy.outlierDetection, loadBalancer: policy.loadBalancer, tls: policy.tls }, portLevel: false };
  return { parts: { connectionPool: pl.connectionPool, outlierDetection: pl.outlierDetection, loadBalancer: pl.loadBalancer, tls: pl.tls }, portLevel: true };
}

export function portLevelPolicy(policy: TrafficPolicy | undefined, port: number): PolicyParts | undefined {
  return portLevelPolicyOf(policy, port).parts;
}

/**
 * A subset's policy on top of the rule's, both for one port (istiod's
 * MergeSubsetTrafficPolicy): the subset's fields win; a subset port-level
 * entry replaces every field, unset ones included.
 */
export function mergeSubsetPolicy(original: PolicyParts | undefined, subset: TrafficPolicy | undefined, port: number): PolicyParts | undefined {
  const { parts: sub, portLevel } = portLevelPolicyOf(subset, port);
  if (!sub) return original;
  if (!original) return sub;
  const pick = <K extends keyof PolicyParts>(k: K): PolicyParts[K] => (sub[k] !== undefined || portLevel ? sub[k] : original[k]);
  return { connectionPool: pick('connectionPool'), outlierDetection: pick('outlierDetection'), loadBalancer: pick('loadBalancer'), tls: pick('tls') };
}

export function defaultThresholds(): CircuitBreakers_ThresholdsJson {
  return { maxConnections: MAX_UINT32, maxPendingRequests: MAX_UINT32, maxRequests: MAX_UINT32, maxRetries: MAX_UINT32, trackRemaining: true };
}

export function setH2(mc: MutableCluster): void {
  mc.http ??= {};
  mc.http.explicitHttpConfig = { http2ProtocolOptions: {} };
  delete mc.http.useDownstreamProtocolConfig;
}

export function setUseDownstream(mc: MutableCluster): void {
  mc.http ??= {};
  mc.http.useDownstreamProtocolConfig = { httpProtocolOptions: {}, http2ProtocolOptions: {} };
  delete mc.http.explicitHttpConfig;
}

export function isH2Cluster(mc: MutableCluster): boolean {
  return mc.http?.explicitHttpConfig?.http2ProtocolOptions !== undefined;
}

export function applyConnectionPool(mc: MutableCluster, settings: ConnectionPoolSettings, connectTimeout: string): void {
  const t = defaultThresholds();
  let idleTimeout: string | undefined;
  let maxRequestsPerConnection = 0;
  let maxConcurrentStreams = 0;
  let maxConnectionDuration: string | undefined;
  const h = settings.http;
  if (h) {
    if ((h.http2MaxRequests ?? 0) > 0) t.maxRequests = h.http2MaxRequests;
    if ((h.http1MaxPendingRequests ?? 0) > 0) t.maxPendingRequests = h.http1MaxPendingRequests;
    if ((h.maxRetries ?? 0) > 0) t.maxRetries = h.maxRetries;
    idleTimeout = toProtoDuration(h.idleTimeout);
    maxRequestsPerConnection = h.maxRequestsPerConnection ?? 0;
    maxConcurrentStreams = h.maxConcurrentStreams ?? 0;
  }
  mc.cluster.connectTimeout = toProtoDuration(connectTimeout) ?? '10s';
  const tcp = settings.tcp;
  if (tcp) {
    if (tcp.connectTimeout) mc.cluster.connectTimeout = toProtoDuration(tcp.connectTimeout);
    if ((tcp.maxConnections ?? 0) > 0) t.maxConnections = tcp.maxConnections;
    if (tcp.maxConnectionDuration) maxConnectionDuration = toProtoDuration(tcp.maxConnectionDuration);
    idleTimeout ??= toProtoDuration(tcp.idleTimeout);
    if (tcp.tcpKeepalive) {
      const ka: TcpKeepaliveJson = {};
      if (tcp.tcpKeepalive.probes) ka.keepaliveProbes = tcp.tcpKeepalive.probes;
      const time = toProtoDuration(tcp.tcpKeepalive.time);
      if (time) ka.keepaliveTime = Math.floor(parseFloat(time));
      const interval = toProtoDuration(tcp.tcpKeepalive.interval);
      if (interval) ka.keepaliveInterval = Math.floor(parseFloat(interval));
      mc.cluster.upstreamConnectionOptions = { tcpKeepalive: ka };
    }
  }
  mc.cluster.circuitBreakers = { thresholds: [t] };
  if (maxConnectionDuration || idleTimeout || maxRequestsPerConnection > 0 || maxConcurrentStreams > 0) {
    mc.http ??= {};
    const common = (mc.http.commonHttpProtocolOptions ??= {});
    if (idleTimeout) common.idleTimeout = idleTimeout;
    if (maxRequestsPerConnection > 0) common.maxRequestsPerConnection = maxRequestsPerConnection;
    if (maxConnectionDuration) common.maxConnectionDuration = maxConnectionDuration;
    const h2 = mc.http.explicitHttpConfig?.http2ProtocolOptions;
    if (h2 && maxConcurrentStreams > 0) h2.maxConcurrentStreams = maxConcurrentStreams;
  }
  if (h?.useClientProtocol) setUseDownstream(mc);
}

/** DestinationRule h2UpgradePolicy (the mesh default is DO_NOT_UPGRADE). */
export function shouldH2Upgrade(port: ServicePort, pool: ConnectionPoolSettings | undefined): boolean {
  const p = pool?.http?.h2UpgradePolicy;
  if (p === 'UPGRADE') return true;
  if (p === 'DO_NOT_UPGRADE') return false;
  // MeshConfig h2UpgradePolicy defaults to DO_NOT_UPGRADE; Sextant does not read it yet.
  void isHttp(port.protocol);
  return false;
}

export function applyOutlierDetection(c: ClusterJson, o: OutlierDetection | undefined): void {
  if (!o) return;
  const out: OutlierDetectionJson = { enforcingSuccessRate: 0 };
  if (o.consecutive5xxErrors !== undefined && o.consecutive5xxErrors !== null) {
    out.consecutive5xx = o.consecutive5xxErrors;
    out.enforcingConsecutive5xx = o.consecutive5xxErrors > 0 ? 100 : 0;
  }
  if (o.consecutiveGatewayErrors !== undefined && o.consecutiveGatewayErrors !== null) {
    out.consecutiveGatewayFailure = o.consecutiveGatewayErrors;
    out.enforcingConsecutiveGatewayFailure = o.consecutiveGatewayErrors > 0 ? 100 : 0;
  }
  if (o.interval) out.interval = toProtoDuration(o.interval);
  if (o.baseEjectionTime) out.baseEjectionTime = toProtoDuration(o.baseEjectionTime);
  if ((o.maxEjectionPercent ?? 0) > 0) out.maxEjectionPercent = o.maxEjectionPercent;
  if (o.splitExternalLocalOriginErrors) {
    out.splitExternalLocalOriginErrors = true;
    const localOrigin = o.consecutiveLocalOriginFailures ?? 0;
    if (localOrigin > 0) {
      out.consecutiveLocalOriginFailure = localOrigin;
      out.enforcingConsecutiveLocalOriginFailure = 100;
    }
    out.enforcingLocalOriginSuccessRate = 0;
  }
  c.outlierDetection = out;
  c.commonLbConfig ??= {};
  c.commonLbConfig.healthyPanicThreshold = { value: o.minHealthPercent ?? 0 };
}

export function applyLoadBalancer(c: ClusterJson, lb: LoadBalancerSettings | undefined, meshLocality: Record<string, unknown> | undefined): void {
  // The mesh-wide setting has the same shape (MeshConfig.localityLbSetting).
  const locality = (lb?.localityLbSetting ?? meshLocality) as LoadBalancerSettings['localityLbSetting'];
  const failover = c.outlierDetection !== undefined;
  if ((failover && ((locality?.failover?.length ?? 0) > 0 || (locality?.failoverPriority?.length ?? 0) > 0)) || (locality?.distribute?.length ?? 0) > 0) {
    c.commonLbConfig ??= {};
    c.commonLbConfig.localityWeightedLbConfig = {};
  }
  if (c.type === 'ORIGINAL_DST') {
    c.lbPolicy = 'CLUSTER_PROVIDED';
    return;
  }
  const slowStart = lb?.warmupDurationSecs ? { slowStartConfig: { slowStartWindow: toProtoDuration(lb.warmupDurationSecs) } } : undefined;
  switch (lb?.simple) {
    case 'LEAST_CONN':
    case 'LEAST_REQUEST':
      c.lbPolicy = 'LEAST_REQUEST';
      if (slowStart) c.leastRequestLbConfig = slowStart;
      break;
    case 'RANDOM':
      c.lbPolicy = 'RANDOM';
      break;
    case 'ROUND_ROBIN':
      c.lbPolicy = 'ROUND_ROBIN';
      if (slowStart) c.roundRobinLbConfig = slowStart;
      break;
    case 'PASSTHROUGH':
      c.lbPolicy = 'CLUSTER_PROVIDED';
      c.type = 'ORIGINAL_DST';
      delete c.loadAssignment;
      break;
    default:
      c.lbPolicy = 'LEAST_REQUEST';
      if (slowStart) c.leastRequestLbConfig = slowStart;
  }
  const ch = lb?.consistentHash;
  if (!ch) return;
  delete c.leastRequestLbConfig;
  delete c.roundRobinLbConfig;
  if (ch.maglev) {
    c.lbPolicy = 'MAGLEV';
    if (ch.maglev.tableSize !== undefined && Number(ch.maglev.tableSize) !== 0) c.maglevLbConfig = { tableSize: String(ch.maglev.tableSize) };
  } else if (ch.ringHash) {
    c.lbPolicy = 'RING_HASH';
    if (ch.ringHash.minimumRingSize !== undefined && Number(ch.ringHash.minimumRingSize) !== 0) c.ringHashLbConfig = { minimumRingSize: String(ch.ringHash.minimumRingSize) };
  } else {
    c.lbPolicy = 'RING_HASH';
    const min = ch.minimumRingSize !== undefined && Number(ch.minimumRingSize) !== 0 ? String(ch.minimumRingSize) : '1024';
    c.ringHashLbConfig = { minimumRingSize: min };
  }
}
