/**
 * Which inbound ports a sidecar serves, and how (istiod's
 * buildInboundChainConfigs): the ports of its service instances, or, when its
 * Sidecar resource has `ingress` listeners, those instead. An ingress listener
 * binds a real socket (`<bind>_<port>`) when its `captureMode` is NONE or the
 * proxy runs without interception (INTERCEPTION_MODE NONE); otherwise its
 * chains join `virtualInbound`. Either way the chains carry the port's
 * PeerAuthentication mode (mtls.ts). Ingress listeners send traffic to
 * `inbound|<port>||`, a STATIC cluster for `defaultEndpoint` (or the original
 * destination when it names no address), built in cluster/cluster.ts. Pure.
 */
import type { SidecarSpecType } from '@sextant/api';
import type { AddressJson } from '@sextant/envoy';
import { isGrpc, isHttp, isSniffed, sidecarIngressProtocol, type Protocol, type ProxyView, type PushContext } from '@sextant/model';
import { isIP } from 'node:net';

export interface InboundPort {
  /** The workload (target) port: chain match, PeerAuthentication port key, cluster `inbound|<port>||`. */
  port: number;
  /** The port's protocol: HTTP family (an HCM chain), sniffed (`Unsupported`: an HTTP and a TCP chain), else TCP. */
  protocol: Protocol;
  http: boolean;
  /**
   * istiod's chain bind: the wildcard for Service ports; for Sidecar ingress
   * its `bind`, else the pod's first global unicast address. Names the chains
   * (`<bind>_<port>`) and is the address a bound listener listens on.
   */
  bind: string;
  /** A real listener `<bind>_<port>` instead of chains on virtualInbound. */
  bindToPort: boolean;
  /** Sidecar ingress only: where the traffic goes (`127.0.0.1:8080`, `unix://...`), '' for the original destination. */
  defaultEndpoint?: string;
  /** Sidecar ingress only: the Sidecar behind it (istiod's chain metadata `istio.config`). */
  sidecar?: { namespace: string; name: string };
  /** Sidecar ingress only: the port's name as written. */
  portName?: string;
  /** The Service behind the port (first service instance): istiod's inbound virtual host `inbound|http|<servicePort>` and trace operation `<host>:<servicePort>/*`. */
  serviceHost?: string;
  servicePort?: number;
  /** gRPC ports get no inbound retry policy (istiod: reset-before-request breaks streaming). */
  grpc?: boolean;
}

/** istiod's wildcard listener addresses for the proxy's IP families (first one used for names and binds). */
export function inboundWildcard(proxy: ProxyView): string {
  return proxy.ipAddresses.some((ip) => isIP(ip) === 4) || proxy.ipAddresses.length === 0 ? '0.0.0.0' : '::';
}

/** Go's net.IP.IsGlobalUnicast: not unspecified, loopback, link-local, multicast or the IPv4 broadcast. */
function isGlobalUnicast(ip: string): boolean {
  const v = isIP(ip);
  if (v === 4) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return !(a === 0 || a === 127 || (a === 169 && b === 254) || a >= 224 || ip === '255.255.255.255');
  }
  if (v === 6) {
    const l = ip.toLowerCase();
    if (l === '::' || l === '::1' || l.startsWith('ff')) return false;
    // fe80::/10
    return !/^fe[89ab]/.test(l);
  }
  return false;
}

/** istiod's getSidecarInboundBindIPs: the pod's first global unicast address, else the wildcard. */
export function sidecarInboundBind(proxy: ProxyView): string {
  return proxy.ipAddresses.find(isGlobalUnicast) ?? inboundWildcard(proxy);
}

/** The Sidecar's ingress listeners for this proxy, or undefined when it has none. */
export function sidecarIngressPorts(push: PushContext, proxy: ProxyView): InboundPort[] | undefined {
  const sidecar = push.sidecarScope(proxy).sidecar;
  const ingress = (sidecar?.spec as SidecarSpecType | undefined)?.ingress ?? [];
  if (!sidecar || !ingress.length) return undefined;
  const out: InboundPort[] = [];
  const seen = new Set<number>();
  for (const i of ingress) {
    const number = Number(i.port?.number);
    if (!Number.isInteger(number) || number < 1 || number > 65535 || seen.has(number)) continue;
    seen.add(number);
    const capture = String(i.captureMode ?? 'DEFAULT').toUpperCase();
    const bindToPort = capture === 'DEFAULT' ? proxy.interceptionMode === 'NONE' : capture === 'NONE';
    const bind = typeof i.bind === 'string' && i.bind ? i.bind : sidecarInboundBind(proxy);
    const protocol = sidecarIngressProtocol(i.port?.protocol);
    out.push({
      port: number,
      protocol,
      http: isHttp(protocol),
      bind,
      bindToPort,
      defaultEndpoint: typeof i.defaultEndpoint === 'string' ? i.defaultEndpoint : '',
      sidecar: { namespace: sidecar.namespace, name: sidecar.name },
      portName: typeof i.port?.name === 'string' ? i.port.name : '',
      grpc: isGrpc(protocol),
    });
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
  const bind = inboundWildcard(proxy);
  for (const si of push.serviceInstancesForProxy(proxy)) {
    const port = si.endpoint.endpointPort;
    if (seen.has(port)) continue;
    seen.add(port);
    const protocol = si.servicePort.protocol;
    out.push({ port, protocol, http: isHttp(protocol), bind, bindToPort: false, serviceHost: si.service.hostname, servicePort: si.servicePort.port, grpc: isGrpc(protocol) });
  }
  return out;
}

/** Whether a port's protocol is detected per connection (an HTTP chain next to the TCP one). */
export const isSniffedPort = (ip: InboundPort): boolean => isSniffed(ip.protocol);

/**
 * Where a Sidecar ingress listener's `inbound|<port>||` cluster sends traffic
 * (istiod's buildInboundClustersFromSidecar): `address` for a STATIC cluster,
 * none for ORIGINAL_DST (no `defaultEndpoint`, or one that cannot be read).
 * `0.0.0.0` means the pod's IPv4 address, `[::]` its IPv6 one, `127.0.0.1` and
 * `[::1]` the loopback of a family the pod has; `unix://` a socket path.
 * `bind` is istiod's cluster bind (what decides the 127.0.0.6 source bind).
 */
export function sidecarIngressEndpoint(ip: InboundPort, proxy: ProxyView): { bind: string; address?: AddressJson } {
  const ep = ip.defaultEndpoint ?? '';
  if (ep.startsWith('unix://')) return { bind: ep, address: { pipe: { path: ep.slice('unix://'.length) } } };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(ep);
  if (!m) return { bind: '' };
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return { bind: '' };
  const v4 = proxy.ipAddresses.some((a) => isIP(a) === 4);
  const v6 = proxy.ipAddresses.some((a) => isIP(a) === 6);
  let bind: string;
  if (host === '0.0.0.0') bind = proxy.ipAddresses.find((a) => isIP(a) === 4) ?? '127.0.0.1';
  else if (host === '::') bind = proxy.ipAddresses.find((a) => isIP(a) === 6) ?? '::1';
  else if (host === '127.0.0.1') bind = v4 || !v6 ? '127.0.0.1' : '::1';
  else if (host === '::1') bind = v6 ? '::1' : '127.0.0.1';
  else if (isIP(host)) bind = host;
  else return { bind: '' };
  return { bind, address: { socketAddress: { address: bind, portValue: port } } };
}
