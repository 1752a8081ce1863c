/**
 * Every Istio resource name Sextant gives out, in one place, spelled as
 * istiod spells them (pilot/pkg/model BuildSubsetKey, pilot/pkg/util,
 * networking/core): they must match byte for byte, since Envoy stats,
 * istioctl and the parity suite read them.
 */

/** Clusters istiod adds to every sidecar (gateways: BlackHoleCluster only). */
export const SpecialClusters = {
  blackHole: 'BlackHoleCluster',
  passthrough: 'PassthroughCluster',
  inboundPassthrough: 'InboundPassthroughCluster',
} as const;

/** Cluster names: `outbound|9080|v1|reviews.default.svc.cluster.local` */
export function buildSubsetKey(direction: 'outbound' | 'inbound', subset: string, hostname: string, port: number): string {
  return `${direction}|${port}|${subset}|${hostname}`;
}

/** `inbound|9080||` */
export function buildInboundSubsetKey(port: number): string {
  return `inbound|${port}||`;
}

/** The SNI istiod uses for ISTIO_MUTUAL: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`. */
export function buildDnsSrvSubsetKey(direction: 'outbound' | 'inbound', subset: string, hostname: string, port: number): string {
  return `${direction}_.${port}_.${subset}_.${hostname}`;
}

export interface SubsetKey {
  direction: 'outbound' | 'inbound';
  port: number;
  subset: string;
  hostname: string;
}

/** Parses `direction|port|subset|host`; undefined for other names. */
export function parseSubsetKey(name: string): SubsetKey | undefined {
  const parts = name.split('|');
  if (parts.length !== 4) return undefined;
  const [direction, port, subset, hostname] = parts as [string, string, string, string];
  if ((direction !== 'outbound' && direction !== 'inbound') || !/^[0-9]+$/.test(port)) return undefined;
  return { direction, port: Number(port), subset, hostname };
}

export const PASSTHROUGH_CLUSTER = SpecialClusters.passthrough;
export const BLACKHOLE_CLUSTER = SpecialClusters.blackHole;
export const INBOUND_PASSTHROUGH_CLUSTER = SpecialClusters.inboundPassthrough;
/** The default chain of outbound listeners: traffic no chain matched, to the outbound traffic policy's cluster. */
export const PASSTHROUGH_FILTER_CHAIN = 'PassthroughFilterChain';

/** `outbound|<port>|<subset>|<host>` — istiod's BuildSubsetKey for outbound clusters. */
export function outboundClusterName(host: string, port: number, subset = ''): string {
  return `outbound|${port}|${subset}|${host}`;
}

/** Parses `outbound|port|subset|host`; undefined when the name is not one. */
export function parseClusterName(name: string): { direction: string; port: number; subset: string; host: string } | undefined {
  const parts = name.split('|');
  if (parts.length !== 4) return undefined;
  const port = Number(parts[1]);
  if (!Number.isInteger(port)) return undefined;
  return { direction: parts[0]!, port, subset: parts[2]!, host: parts[3]! };
}

/** Sidecar listener names: 15001 and 15006 (per-port listeners are `<address>_<port>`). */
export const VIRTUAL_OUTBOUND = 'virtualOutbound';
export const VIRTUAL_INBOUND = 'virtualInbound';

/** A gateway's plaintext HTTP route configuration (istiod's GatewayRDSRouteName): `http.<port>[.<bind>]`. */
export function gatewayHttpRouteName(port: number, bind?: string): string {
  return `http.${port}${bind ? `.${bind}` : ''}`;
}

/** A gateway's terminated HTTPS route configuration: `https.<port>.<portName>.<gateway>.<namespace>[.<bind>]`. */
export function gatewayHttpsRouteName(port: number, portName: string, gateway: string, namespace: string, bind?: string): string {
  return `https.${port}.${portName}.${gateway}.${namespace}${bind ? `.${bind}` : ''}`;
}

/** SDS secrets: the workload certificate and the mesh roots (served by pilot-agent, or over ADS to agentless proxies). */
export const WORKLOAD_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';

/** A gateway credential's SDS secret: `kubernetes://<credentialName>`. */
export function credentialSecretName(credentialName: string): string {
  return `kubernetes://${credentialName}`;
}
