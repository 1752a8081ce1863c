/**
 * LDS, outbound side of a sidecar: `virtualOutbound` 15001 and the per-port
 * outbound listeners (`0.0.0.0_<port>` for HTTP, `<VIP>_<port>` for TCP, and
 * Sidecar egress listeners bound to `<bind>:<port>`). Pure.
 */
import { isIP } from 'node:net';
import type { RouteDestination, SidecarSpecType, VirtualServiceSpecType } from '@sextant/api';
import type { CidrRangeJson, FilterChainJson, ListenerJson, NetworkFilterJson } from '@sextant/envoy';
import { isHttp, isSniffed, isTcp, type EgressListener, type IstioConfig, type ProxyView, type PushContext, type Service } from '@sextant/model';
import { hcmRds, listenerFilter, mongoProxy, socketAddress, tcpProxy } from './filters.js';
import { preparedVirtualServices } from '../route/sidecar.js';
import { destinationCluster } from '../route/translate.js';
import { serviceAddressForProxy } from '../nds.js';
import { virtualServiceConfigPath } from '../common.js';
import { BLACKHOLE_CLUSTER, outboundClusterName, PASSTHROUGH_CLUSTER, PASSTHROUGH_FILTER_CHAIN, VIRTUAL_OUTBOUND } from '../names.js';

/** A VirtualService's spec, as validated by @sextant/api. */
const vsSpec = (vs: IstioConfig): VirtualServiceSpecType => vs.spec as VirtualServiceSpecType;

interface CaptureModeEgress extends EgressListener {
  captureMode?: string | undefined;
}

/** Egress listeners of the proxy's Sidecar, with `captureMode` read from the Sidecar spec. */
export function egressListeners(push: PushContext, proxy: ProxyView): CaptureModeEgress[] {
  const scope = push.sidecarScope(proxy);
  const specEgress = (scope.sidecar?.spec as SidecarSpecType | undefined)?.egress ?? [];
  return scope.egress.map((e, i) => ({ ...e, captureMode: specEgress[i]?.captureMode }));
}

function outboundPolicyCluster(push: PushContext, proxy: ProxyView): string {
  return push.sidecarScope(proxy).outboundTrafficPolicy === 'REGISTRY_ONLY' ? BLACKHOLE_CLUSTER : PASSTHROUGH_CLUSTER;
}

/**
 * The proxy's prepared mesh VirtualServices, built once per LDS generation
 * (not once per TCP port), indexed by exact host in precedence order.
 */
export class MeshVirtualServices {
  private byHost: Map<string, IstioConfig[]> | undefined;
  constructor(
    private readonly push: PushContext,
    private readonly proxy: ProxyView,
  ) {}
  forHost(host: string): IstioConfig[] {
    if (!this.byHost) {
      this.byHost = new Map();
      for (const vs of preparedVirtualServices(this.push, this.proxy, ['mesh'])) {
        for (const h of new Set(vsSpec(vs).hosts ?? [])) {
          let l = this.byHost.get(h);
          if (!l) this.byHost.set(h, (l = []));
          l.push(vs);
        }
      }
    }
    return this.byHost.get(host) ?? [];
  }
}

/**
 * The tcp_proxy target for a TCP service port: a VirtualService tcp rule if
 * one applies (with that VirtualService, which istiod names in the chain's
 * metadata), else the service's cluster.
 */
function tcpTargetForService(push: PushContext, proxy: ProxyView, svc: Service, port: number, vss: MeshVirtualServices): { target: string | Array<{ name: string; weight: number }>; vs?: IstioConfig } {
  for (const vs of vss.forHost(svc.hostname)) {
    for (const rule of vsSpec(vs).tcp ?? []) {
      const applies =
        !rule.match?.length ||
        rule.match.some((m) => (!m.port || m.port === port) && Object.entries(m.sourceLabels ?? {}).every(([k, v]) => proxy.labels[k] === v));
      if (!applies || !rule.route?.length) continue;
      const dests = rule.route;
      const cl = (d: RouteDestination) => destinationCluster(d.destination, push.serviceByHostname(d.destination.host, vs.namespace), port);
      if (dests.length === 1) return { target: cl(dests[0]!), vs };
      return { target: dests.filter((d) => d.weight).map((d) => ({ name: cl(d), weight: d.weight ?? 0 })), vs };
    }
  }
  return { target: outboundClusterName(svc.hostname, port) };
}

/** The ALPNs Envoy's HTTP inspector reports for plaintext HTTP: an outbound HTTP chain matches only these. */
const PLAINTEXT_HTTP_ALPNS = ['http/1.1', 'h2c'];
/** istiod bounds the transport socket handshake of every outbound chain (slow TLS handshakes). */
const TRANSPORT_SOCKET_CONNECT_TIMEOUT = '15s';

/** One listener being assembled (istiod's outboundListenerEntry): its chains, each with or without a match. */
interface ListenerEntry {
  name: string;
  address: string;
  port: number;
  bound: boolean;
  chains: FilterChainJson[];
}

const matchAll = (c: FilterChainJson): boolean => !c.filterChainMatch || Object.keys(c.filterChainMatch).length === 0;
const sameMatch = (a: FilterChainJson, b: FilterChainJson): boolean => JSON.stringify(a.filterChainMatch ?? {}) === JSON.stringify(b.filterChainMatch ?? {});

const isWildcard = (address: string): boolean => address === '0.0.0.0' || address === '::';

/** A CIDR (or bare IP) as a filter chain prefix range. */
function prefixRange(cidr: string): CidrRangeJson {
  const [addressPrefix, len] = cidr.split('/');
  return { addressPrefix: addressPrefix!, prefixLen: len !== undefined ? Number(len) : addressPrefix!.includes(':') ? 128 : 32 };
}

/**
 * Per-port outbound listeners in iptables mode (bind_to_port false;
 * virtualOutbound hands connections over), laid out as istiod's
 * buildSidecarOutboundListener:
 * - HTTP ports share `0.0.0.0_<port>`: the HTTP manager's chain matches
 *   plaintext HTTP only (HTTP inspector), anything else takes the default
 *   passthrough chain (PassthroughCluster, or BlackHoleCluster under
 *   REGISTRY_ONLY), so non-HTTP traffic to an unknown destination on an HTTP
 *   port is passed through, not answered by the HTTP manager;
 * - TCP ports listen on the service address `<VIP>_<port>`; a CIDR address
 *   listens on `0.0.0.0_<port>` with a chain matching the prefix range (a
 *   listener address cannot be a CIDR: Envoy would reject the whole LDS);
 * - sniffed ports (no declared protocol): an HTTP chain as above and the TCP
 *   chain as the listener's default;
 * - with `headlessPods` (the catch-all egress listener), the TCP and sniffed
 *   ports of a headless Service get one listener per pod, `<podIP>_<port>`
 *   (same ORIGINAL_DST cluster), not a wildcard listener that would take any
 *   address on the port: traffic to other addresses on that port follows the
 *   outbound traffic policy.
 */
export function outboundPortListeners(
  push: PushContext,
  proxy: ProxyView,
  services: Service[],
  vss: MeshVirtualServices,
  bind?: { address: string; port: number },
  opts: { headlessPods?: boolean } = {},
): ListenerJson[] {
  const entries = new Map<string, ListenerEntry>();
  const entryFor = (address: string, port: number): ListenerEntry => {
    const name = `${address}_${port}`;
    let e = entries.get(name);
    if (!e) entries.set(name, (e = { name, address, port, bound: !!bind, chains: [] }));
    return e;
  };
  // Adds a chain unless the listener already has one with the same match (the first service wins, as istiod's conflict rule).
  const addChain = (e: ListenerEntry, chain: FilterChainJson): void => {
    if (e.chains.some((c) => sameMatch(c, chain))) return;
    e.chains.push(chain);
  };
  for (const svc of services) {
    for (const p of svc.ports) {
      if (bind && p.port !== bind.port && services.length > 0) {
        // A bound egress listener serves its own port only.
        continue;
      }
      const listenPort = bind?.port ?? p.port;
      // The VIP, or for a proxy with DNS auto-allocation a ServiceEntry's allocated address (istiod's GetAddressForProxy).
      const vip = serviceAddressForProxy(push, proxy, svc);
      const cluster = outboundClusterName(svc.hostname, p.port);
      if (isHttp(p.protocol)) {
        const address = bind?.address ?? '0.0.0.0';
        const e = entryFor(address, listenPort);
        // Codec AUTO (istiod): HTTP/1.1 and h2c prior knowledge alike.
        const hcm = hcmRds(`outbound_${address}_${listenPort}`, String(listenPort), { mesh: push.mesh });
        // On the shared wildcard listener the HTTP chain takes plaintext HTTP only; a bound listener is HTTP-only.
        const chain: FilterChainJson = bind ? { filters: [hcm] } : { filterChainMatch: { transportProtocol: 'raw_buffer', applicationProtocols: PLAINTEXT_HTTP_ALPNS }, filters: [hcm] };
        if (!e.chains.some((c) => c.filterChainMatch?.applicationProtocols || (bind && matchAll(c)))) e.chains.push({ ...chain, transportSocketConnectTimeout: TRANSPORT_SOCKET_CONNECT_TIMEOUT });
        continue;
      }
      if (!isTcp(p.protocol) && !isSniffed(p.protocol)) continue; // UDP: no listener, as istiod
      const pods = opts.headlessPods && !bind ? headlessPodAddresses(push, proxy, svc, p, vip) : undefined;
      for (const address of pods ?? [undefined]) addTcpChains(svc, p, listenPort, vip, cluster, address);
    }
  }
  return [...entries.values()].map((e) => finishListener(push, proxy, e));

  /** The TCP (and for sniffed ports HTTP) chains of a service port, on `podAddress` when given (a headless Service's pod). */
  function addTcpChains(svc: Service, p: Service['ports'][number], listenPort: number, vip: string, cluster: string, podAddress: string | undefined): void {
    // A CIDR address: listen on the wildcard and match the range (istiod's opts.cidr).
    const cidr = !bind && !podAddress && vip.includes('/') ? svc.addresses : undefined;
    const address = bind?.address ?? podAddress ?? (cidr ? '0.0.0.0' : vip);
    const e = entryFor(address, listenPort);
    const { target, vs } = tcpTargetForService(push, proxy, svc, p.port, vss);
    // istiod's stat prefix: the destination's cluster, `<vs name>.<vs namespace>` for a weighted route.
    const statPrefix = typeof target === 'string' ? target : vs ? `${vs.name}.${vs.namespace}` : cluster;
    // A TLS port on the wildcard (no address, or a CIDR) is told apart from the other services there by SNI
    // (istiod's buildSidecarOutboundTLSFilterChainOpts); a host `*` matches any name.
    const sni = (p.protocol === 'TLS' || p.protocol === 'HTTPS') && (!!cidr || (!podAddress && isWildcard(vip) && isWildcard(address))) && svc.hostname !== '*';
    const match = { ...(sni ? { serverNames: [svc.hostname] } : {}), ...(cidr ? { prefixRanges: cidr.map(prefixRange) } : {}) };
    const tcpChain: FilterChainJson = {
      ...(Object.keys(match).length ? { filterChainMatch: match } : {}),
      filters: [...(p.protocol === 'Mongo' ? [mongoProxy(statPrefix)] : []), tcpProxy(statPrefix, target)],
      // istiod's BuildConfigInfoMetadata: the VirtualService whose tcp rule the chain carries.
      ...(vs ? { metadata: { filterMetadata: { istio: { config: virtualServiceConfigPath(vs.namespace, vs.name) } } } } : {}),
      transportSocketConnectTimeout: TRANSPORT_SOCKET_CONNECT_TIMEOUT,
    };
    if (isSniffed(p.protocol)) {
      // Protocol sniffing: HTTP goes through RDS, the rest through tcp_proxy. The route is the service's own
      // (`<fqdn>:<port>`) on its VIP, the port's shared one on the wildcard.
      if (e.chains.some((c) => c.filterChainMatch?.applicationProtocols)) return;
      const route = address === '0.0.0.0' || address === '::' ? String(listenPort) : `${svc.hostname}:${p.port}`;
      const httpMatch = { ...(tcpChain.filterChainMatch ?? {}), transportProtocol: 'raw_buffer', applicationProtocols: PLAINTEXT_HTTP_ALPNS };
      addChain(e, tcpChain);
      addChain(e, { filterChainMatch: httpMatch, filters: [hcmRds(`outbound_${address}_${listenPort}`, route, { mesh: push.mesh })], transportSocketConnectTimeout: TRANSPORT_SOCKET_CONNECT_TIMEOUT });
    } else {
      addChain(e, tcpChain);
    }
  }
}

/**
 * The pods a headless Service's TCP or sniffed port gets its own outbound
 * listener on (`<podIP>_<port>`), as istiod's buildSidecarOutboundListeners
 * does for a Passthrough service without an address: one per endpoint with
 * an IP address, ready or not, except the proxy's own first address (its app
 * reaches itself without this listener, and it would collide with inbound).
 * Undefined: the usual listener (the service has an address, or is a
 * ServiceEntry with neither endpoints nor a workload selector: the wildcard).
 */
function headlessPodAddresses(push: PushContext, proxy: ProxyView, svc: Service, port: Service['ports'][number], vip: string): string[] | undefined {
  if (svc.resolution !== 'Passthrough' || vip !== '0.0.0.0') return undefined;
  const endpoints = push.endpoints(svc, port);
  if (svc.attributes.serviceRegistry !== 'Kubernetes' && endpoints.length === 0 && !svc.attributes.selector) return undefined;
  const self = proxy.ipAddresses[0];
  const out = new Set<string>();
  for (const e of endpoints) if (!e.isHostname && isIP(e.address) !== 0 && e.address !== self) out.add(e.address);
  return [...out];
}

/**
 * A listener from its chains (istiod's buildListenerFromEntry): a lone
 * match-all chain stays the only chain; otherwise the match-all chain becomes
 * the default chain, or the passthrough chain does when there is none. The
 * HTTP inspector runs only when a chain matches on ALPN, for at most meshConfig
 * protocolDetectionTimeout (istiod's default 0s: no timeout), and a timeout
 * never drops the connection.
 */
function finishListener(push: PushContext, proxy: ProxyView, e: ListenerEntry): ListenerJson {
  const l: ListenerJson = {
    name: e.name,
    address: socketAddress(e.address, e.port),
    filterChains: [],
    trafficDirection: 'OUTBOUND',
    continueOnListenerFiltersTimeout: true,
    ...(e.bound ? {} : { bindToPort: false }),
  };
  const all = e.chains.find(matchAll);
  const matched = e.chains.filter((c) => !matchAll(c));
  if (matched.length === 0 && all) l.filterChains = [all];
  else {
    l.filterChains = matched;
    l.defaultFilterChain = all ?? { filterChainMatch: {}, name: PASSTHROUGH_FILTER_CHAIN, filters: catchAllFilters(push, proxy) };
  }
  const sniffs = e.chains.some((c) => c.filterChainMatch?.applicationProtocols?.length);
  // istiod: the TLS inspector when a chain matches by SNI, then the HTTP inspector when one matches by ALPN.
  const tls = e.chains.some((c) => c.filterChainMatch?.serverNames?.length);
  const filters = [...(tls ? [listenerFilter.tlsInspector()] : []), ...(sniffs ? [listenerFilter.httpInspector()] : [])];
  if (filters.length) l.listenerFilters = filters;
  l.listenerFiltersTimeout = sniffs ? (push.mesh.protocolDetectionTimeout ?? '0s') : '0s';
  return l;
}

/** The network filters of the passthrough chains: tcp_proxy to the outbound traffic policy's cluster. */
function catchAllFilters(push: PushContext, proxy: ProxyView): NetworkFilterJson[] {
  const cluster = outboundPolicyCluster(push, proxy);
  return [tcpProxy(cluster, cluster)];
}

/**
 * `virtualOutbound` on 15001 (istiod's buildVirtualOutboundListener): traffic
 * sent to 15001 itself would loop through the proxy, so a chain matching
 * that port drops it; everything else the per-port listeners did not take
 * goes to the outbound traffic policy's cluster.
 */
export function virtualOutbound(push: PushContext, proxy: ProxyView): ListenerJson {
  return {
    name: VIRTUAL_OUTBOUND,
    address: socketAddress('0.0.0.0', 15001),
    filterChains: [
      { name: 'virtualOutbound-blackhole', filterChainMatch: { destinationPort: 15001 }, filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)] },
      { name: 'virtualOutbound-catchall-tcp', filters: catchAllFilters(push, proxy) },
    ],
    useOriginalDst: true,
    trafficDirection: 'OUTBOUND',
    // istiod accepts one connection per socket event on the listeners that bind, spreading them over workers.
    maxConnectionsToAcceptPerSocketEvent: 1,
  };
}
