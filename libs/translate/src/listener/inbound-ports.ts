/**
 * Which inbound ports a sidecar serves, and how (istiod's
 * buildInboundChainConfigs): the ports of its service instances, or, when its
 * Sidecar resource has `ingress` listeners, those instead. An ingress listener
 * binds a real socket (`<bind>_<port>`) when its `captureMode` is NONE or the
 * proxy runs without interception (INTERCEPTION_MODE NONE); otherwise its
 * chains join `virtualInbound`. Either way the chains carry the port's
 * PeerAuthentication mode (mtls.ts). Ingress listeners send traffic to
 * `inbound|<port>||`, a STATIC cluster for `defaultEndpoint` (or the original
 * destination when it names no address). Pure.
 */
import type { SidecarSpecType } from '@sextant/api';
import type { AddressJson, ClusterJson } from '@sextant/envoy';
import { isGrpc, isHttp, sidecarIngressProtocol, type ProxyView, type PushContext } from '@sextant/model';
import { toProtoDuration } from '../common.js';
import { buildInboundSubsetKey } from '../names.js';


export interface InboundPort {
  /** The workload (target) port: chain match, PeerAuthentication port key, cluster `inbound|<port>||`. */
  port: number;
  http: boolean;
  /** Listener bind address for bound listeners (`0.0.0.0` when unset). */
  bind: string;
  /** A real listener `<bind>_<port>` instead of chains on virtualInbound. */
  bindToPort: boolean;
  /** Sidecar ingress only: where the traffic goes (`127.0.0.1:8080`, `unix://...`), '' for the original destination. */
  defaultEndpoint?: string;
  /** The Service behind the port (first service instance): istiod's inbound virtual host `inbound|http|<servicePort>` and trace operation `<host>:<servicePort>/*`. */
  serviceHost?: string;
  servicePort?: number;
  /** gRPC ports get no inbound retry policy (istiod: reset-before-request breaks streaming). */
  grpc?: boolean;
}

/** The Sidecar's ingress listeners for this proxy, or undefined when it has none. */
export function sidecarIngressPorts(push: PushContext, proxy: ProxyView): InboundPort[] | undefined {
  const ingress = (push.sidecarScope(proxy).sidecar?.spec as SidecarSpecType | undefined)?.ingress ?? [];
  if (!ingress.length) return undefined;
  const out: InboundPort[] = [];
  const seen = new Set<number>();
  for (const i of ingress) {
    const number = Number(i.port?.number);
    if (!Number.isInteger(number) || number < 1 || number > 65535 || seen.has(number)) continue;
    seen.add(number);
    const capture = String(i.captureMode ?? 'DEFAULT').toUpperCase();
    const bindToPort = capture === 'DEFAULT' ? proxy.interceptionMode === 'NONE' : capture === 'NONE';
    const bind = typeof i.bind === 'string' && i.bind ? i.bind : proxy.ipAddresses.some((ip) => !ip.includes(':')) ? '0.0.0.0' : '::';
    const protocol = sidecarIngressProtocol(i.port?.protocol);
    out.push({ port: number, http: isHttp(protocol), bind, bindToPort, defaultEndpoint: typeof i.defaultEndpoint === 'string' ? i.defaultEndpoint : '', grpc: isGrpc(protocol) });
  }
  return out.sort((a, b) => a.port - b.port);
}

/** Inbound ports of the proxy: Sidecar ingress when present, else one per service instance target port. */
export function inboundPorts(push: PushContext, proxy: ProxyView): InboundPort[] {
  const ingress = sidecarIngressPorts(push, proxy);
  if (ingress) return ingress;
  // Without interception and without Sidecar ingress, istiod builds no inbound listeners (the app owns those ports).
  if (proxy.interceptionMode === 'NONE') return [];
  const out: InboundPort[] = [];
  const seen = new Set<number>();
  for (const si of push.serviceInstancesForProxy(proxy)) {
    const port = si.endpoint.endpointPort;
    if (seen.has(port)) continue;
    seen.add(port);
    const protocol = si.servicePort.protocol;
    out.push({ port, http: isHttp(protocol), bind: '0.0.0.0', bindToPort: false, serviceHost: si.service.hostname, servicePort: si.servicePort.port, grpc: isGrpc(protocol) });
  }
  return out;
}

function parseEndpoint(ep: string): { address: AddressJson } | undefined {
  if (ep.startsWith('unix://')) return { address: { pipe: { path: ep.slice('unix://'.length) } } };
  const m = /^\[?([0-9a-fA-F.:]+)\]?:([0-9]{1,5})$/.exec(ep);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] === '0.0.0.0' || m[1] === '::') return undefined;
  return { address: { socketAddress: { address: m[1], portValue: port } } };
}

/**
 * `inbound|<port>||` clusters for Sidecar ingress listeners: STATIC to the
 * `defaultEndpoint`, or ORIGINAL_DST (bound to 127.0.0.6) when it names no
 * address. Undefined when the proxy's Sidecar has no ingress listeners.
 */
export function buildSidecarIngressClusters(push: PushContext, proxy: ProxyView): ClusterJson[] | undefined {
  const ports = sidecarIngressPorts(push, proxy);
  if (!ports) return undefined;
  const connectTimeout = toProtoDuration(push.mesh.connectTimeout);
  return ports.map((p) => {
    const name = buildInboundSubsetKey(p.port);
    const target = p.defaultEndpoint ? parseEndpoint(p.defaultEndpoint) : undefined;
    const c: ClusterJson = { name, connectTimeout, commonLbConfig: {}, altStatName: `${name};` };
    if (target) {
      c.type = 'STATIC';
      c.lbPolicy = 'ROUND_ROBIN';
      c.loadAssignment = { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: target }] }] };
    } else {
      c.type = 'ORIGINAL_DST';
      c.lbPolicy = 'CLUSTER_PROVIDED';
      c.cleanupInterval = '9223372035s';
      c.upstreamBindConfig = { sourceAddress: { address: proxy.ipAddresses.some((ip) => !ip.includes(':')) ? '127.0.0.6' : '::6', portValue: 0 } };
    }
    return c;
  });
}
