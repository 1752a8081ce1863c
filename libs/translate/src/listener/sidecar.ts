/**
 * LDS: sidecar listeners (`virtualOutbound` 15001, `virtualInbound` 15006,
 * per-port outbound `0.0.0.0_<port>` / `<VIP>_<port>`, Sidecar egress
 * listeners with `captureMode: NONE` bound to `<bind>:<port>`), and the
 * dispatch to gateway and proxyless gRPC listeners. Pure.
 */
import type { RouteDestination, SidecarSpecType, VirtualServiceSpecType } from '@sextant/api';
import type { FilterChainJson, FilterChainMatchJson, ListenerJson, RouteConfigurationJson, TransportSocketJson } from '@sextant/envoy';
import type { EgressListener, IstioConfig, Protocol, ProxyView, PushContext, Service } from '@sextant/model';
import { hcmRds, listenerFilter, socketAddress, tcpProxy } from './filters.js';
import { mtlsInbound } from '../security/mtls.js';
import { inboundPorts, type InboundPort } from './inbound-ports.js';
import { egressAdmits, isHTTPProtocol, isSniffed, preparedVirtualServices } from '../route/sidecar.js';
import { destinationCluster } from '../route/translate.js';
import type { ListenerOptions } from '../generator/types.js';
import { serviceAddressForProxy } from '../nds.js';
import { securityHttpFilters, securityNetworkFilters } from '../security/filters.js';
import { passthroughChains } from '../security/passthrough.js';
import { isMosnProxy } from '../mosn/index.js';
import { BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, outboundClusterName, PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND, VIRTUAL_OUTBOUND } from '../names.js';
import { anyOf, TYPE } from '../typed.js';

/** A VirtualService's spec, as validated by @sextant/api. */
const vsSpec = (vs: IstioConfig): VirtualServiceSpecType => vs.spec as VirtualServiceSpecType;

/**
 * The hook for inbound security: given the proxy, one inbound port and whether
 * its chains are HTTP or TCP, the transport socket and extra filter chain match
 * for each of its chain(s). The default for sidecars is `mtlsInbound`
 * (PeerAuthentication: several entries for PERMISSIVE, a TLS chain and
 * plaintext ones); `plaintextInbound` turns inbound TLS off.
 */
export type InboundTlsHook = (push: PushContext, proxy: ProxyView, port: number, protocol?: 'http' | 'tcp') => Array<{ transportSocket?: TransportSocketJson; filterChainMatch?: FilterChainMatchJson; nameSuffix?: string }>;
export const plaintextInbound: InboundTlsHook = () => [{}];

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
class MeshVirtualServices {
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

/** The tcp_proxy target for a TCP service port: a VirtualService tcp rule if one applies, else the service's cluster. */
function tcpTargetForService(push: PushContext, proxy: ProxyView, svc: Service, port: number, vss: MeshVirtualServices): string | Array<{ name: string; weight: number }> {
  for (const vs of vss.forHost(svc.hostname)) {
    for (const rule of vsSpec(vs).tcp ?? []) {
      const applies =
        !rule.match?.length ||
        rule.match.some((m) => (!m.port || m.port === port) && Object.entries(m.sourceLabels ?? {}).every(([k, v]) => proxy.labels[k] === v));
      if (!applies || !rule.route?.length) continue;
      const dests = rule.route;
      const cl = (d: RouteDestination) => destinationCluster(d.destination, push.serviceByHostname(d.destination.host, vs.namespace), port);
      if (dests.length === 1) return cl(dests[0]!);
      return dests.filter((d) => d.weight).map((d) => ({ name: cl(d), weight: d.weight ?? 0 }));
    }
  }
  return outboundClusterName(svc.hostname, port);
}

/** Per-port outbound listeners in iptables mode (bind_to_port false; virtualOutbound hands connections over). */
function outboundPortListeners(push: PushContext, proxy: ProxyView, services: Service[], vss: MeshVirtualServices, bind?: { address: string; port: number }): ListenerJson[] {
  const listeners = new Map<string, ListenerJson>();
  for (const svc of services) {
    for (const p of svc.ports) {
      if (bind && p.port !== bind.port && services.length > 0) {
        // A bound egress listener serves its own port only.
        continue;
      }
      const listenPort = bind?.port ?? p.port;
      // The VIP, or for a proxy with DNS auto-allocation a ServiceEntry's allocated address (istiod's GetAddressForProxy).
      const vip = serviceAddressForProxy(push, proxy, svc);
      if (isHTTPProtocol(p.protocol)) {
        const address = bind?.address ?? '0.0.0.0';
        const name = `${address}_${listenPort}`;
        if (listeners.has(name)) continue;
        listeners.set(name, {
          name,
          address: socketAddress(address, listenPort),
          filterChains: [{ filters: [hcmRds(`outbound_${address}_${listenPort}`, String(listenPort), { http2: p.protocol === 'GRPC' || p.protocol === 'HTTP2' })] }],
          trafficDirection: 'OUTBOUND',
          ...(bind ? {} : { bindToPort: false }),
        });
      } else {
        const address = bind?.address ?? vip;
        const name = `${address}_${listenPort}`;
        const existing = listeners.get(name);
        const tcpChain = { name: outboundClusterName(svc.hostname, p.port), filters: [tcpProxy(outboundClusterName(svc.hostname, p.port), tcpTargetForService(push, proxy, svc, p.port, vss))] };
        if (existing) continue; // first service wins the address:port, as istiod's conflict rule
        const l: ListenerJson = {
          name,
          address: socketAddress(address, listenPort),
          filterChains: [tcpChain],
          trafficDirection: 'OUTBOUND',
          ...(bind ? {} : { bindToPort: false }),
        };
        if (isSniffed(p.protocol)) {
          // Protocol sniffing: HTTP goes through RDS `<fqdn>:<port>`, the rest through tcp_proxy.
          l.listenerFilters = [listenerFilter.tlsInspector(), listenerFilter.httpInspector()];
          l.filterChains = [
            {
              name: `${svc.hostname}:${p.port}-http`,
              filterChainMatch: { applicationProtocols: ['http/1.1', 'h2c'] },
              filters: [hcmRds(`outbound_${address}_${listenPort}`, `${svc.hostname}:${p.port}`)],
            },
            tcpChain,
          ];
          l.listenerFiltersTimeout = '0.100s';
          l.continueOnListenerFiltersTimeout = true;
        }
        listeners.set(name, l);
      }
    }
  }
  return [...listeners.values()];
}

function virtualOutbound(push: PushContext, proxy: ProxyView): ListenerJson {
  const cluster = outboundPolicyCluster(push, proxy);
  return {
    name: VIRTUAL_OUTBOUND,
    address: socketAddress('0.0.0.0', 15001),
    filterChains: [
      {
        name: cluster === PASSTHROUGH_CLUSTER ? 'PassthroughFilterChain' : 'BlackHoleFilterChain',
        filters: [tcpProxy(cluster, cluster)],
      },
    ],
    useOriginalDst: true,
    trafficDirection: 'OUTBOUND',
  };
}

/** The inline route configuration of one inbound HTTP chain. */
function inboundRouteConfig(port: number): RouteConfigurationJson {
  const cluster = `inbound|${port}||`;
  return {
    name: cluster,
    validateClusters: false,
    virtualHosts: [
      {
        name: 'inbound|http|' + port,
        domains: ['*'],
        routes: [
          {
            name: 'default',
            match: { prefix: '/' },
            decorator: { operation: `:${port}/*` },
            route: { cluster, timeout: '0s', maxStreamDuration: { maxStreamDuration: '0s', grpcTimeoutHeaderMax: '0s' } },
          },
        ],
      },
    ],
  };
}

function inboundChains(push: PushContext, proxy: ProxyView, ports: InboundPort[], hook: InboundTlsHook): FilterChainJson[] {
  const chains: FilterChainJson[] = [];
  for (const ip of ports) {
    const port = ip.port;
    for (const sec of hook(push, proxy, port, ip.http ? 'http' : 'tcp')) {
      const fcm = { destinationPort: port, ...(sec.filterChainMatch ?? {}) };
      const base = { name: `${ip.bindToPort ? ip.bind : '0.0.0.0'}_${port}${sec.nameSuffix ?? ''}`, filterChainMatch: fcm, ...(sec.transportSocket ? { transportSocket: sec.transportSocket } : {}) };
      if (ip.http) {
        chains.push({
          ...base,
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typedConfig: anyOf(TYPE.hcm, {
                statPrefix: `inbound_0.0.0.0_${port}`,
                routeConfig: inboundRouteConfig(port),
                httpFilters: [...securityHttpFilters(push, proxy), { name: 'envoy.filters.http.router', typedConfig: anyOf(TYPE.router) }],
                useRemoteAddress: false,
                forwardClientCertDetails: 'APPEND_FORWARD',
                setCurrentClientCertDetails: { subject: true, dns: true, uri: true },
                normalizePath: true,
              }),
            },
          ],
        });
      } else {
        chains.push({ ...base, filters: [...securityNetworkFilters(push, proxy), tcpProxy(`inbound|${port}||`, `inbound|${port}||`)] });
      }
    }
  }
  return chains;
}

function virtualInbound(push: PushContext, proxy: ProxyView, hook: InboundTlsHook, ports: InboundPort[]): ListenerJson {
  return {
    name: VIRTUAL_INBOUND,
    address: socketAddress('0.0.0.0', 15006),
    listenerFilters: [listenerFilter.originalDst(), listenerFilter.tlsInspector(), listenerFilter.httpInspector()],
    listenerFiltersTimeout: '0s',
    continueOnListenerFiltersTimeout: true,
    filterChains: [
      // Traffic addressed to 15006 itself would loop: drop it.
      { name: 'virtualInbound-blackhole', filterChainMatch: { destinationPort: 15006 }, filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)] },
      ...inboundChains(push, proxy, ports, hook),
      // Ports no Service declares: PeerAuthentication's mode (and port-level modes), as istiod's passthrough chains.
      ...passthroughChains(
        push,
        proxy,
        new Set(ports.map((p) => p.port)),
        {
          http: () => [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typedConfig: anyOf(TYPE.hcm, {
              statPrefix: INBOUND_PASSTHROUGH_CLUSTER,
              routeConfig: {
                name: INBOUND_PASSTHROUGH_CLUSTER,
                validateClusters: false,
                virtualHosts: [
                  {
                    name: `inbound|http|0`,
                    domains: ['*'],
                    routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: INBOUND_PASSTHROUGH_CLUSTER, timeout: '0s' } }],
                  },
                ],
              },
              httpFilters: [...securityHttpFilters(push, proxy), { name: 'envoy.filters.http.router', typedConfig: anyOf(TYPE.router) }],
              // As on the port chains: the peer's identity reaches the application.
              forwardClientCertDetails: 'APPEND_FORWARD',
              setCurrentClientCertDetails: { subject: true, dns: true, uri: true },
            }),
          },
          ],
          tcp: () => [...securityNetworkFilters(push, proxy), tcpProxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER)],
        },
        // MOSN's listener conversion has no TLS-matched passthrough chains.
        hook === mtlsInbound && !isMosnProxy(proxy),
      ),
    ],
    useOriginalDst: true,
    trafficDirection: 'INBOUND',
  };
}

/** A real inbound listener `<bind>_<port>` for a bound Sidecar ingress listener, with the port's mTLS chains. */
function boundInboundListener(push: PushContext, proxy: ProxyView, hook: InboundTlsHook, ip: InboundPort): ListenerJson {
  const chains = inboundChains(push, proxy, [ip], hook);
  const l: ListenerJson = {
    name: `${ip.bind}_${ip.port}`,
    address: socketAddress(ip.bind, ip.port),
    filterChains: chains,
    trafficDirection: 'INBOUND',
    continueOnListenerFiltersTimeout: true,
  };
  if (chains.some((c) => c.filterChainMatch?.transportProtocol === 'tls')) l.listenerFilters = [listenerFilter.tlsInspector()];
  return l;
}

/** Sidecar LDS. With interception mode NONE, only bound egress and Sidecar ingress listeners (and no 15001/15006) are built. */
export function buildSidecarListeners(push: PushContext, proxy: ProxyView, opts: ListenerOptions = {}): ListenerJson[] {
  const scope = push.sidecarScope(proxy);
  const egress = egressListeners(push, proxy);
  const out: ListenerJson[] = [];
  const noIptables = proxy.interceptionMode === 'NONE';
  const catchAllEgress = egress.find((e) => !e.port);
  const vss = new MeshVirtualServices(push, proxy);
  // Sidecar egress listeners with a port: bound listeners when captureMode NONE (or no iptables at all).
  for (const e of egress) {
    if (!e.port) continue;
    const bound = e.captureMode === 'NONE' || noIptables;
    const svcs = scope.services.filter((s) => egressAdmits(e, s));
    // A Sidecar egress port may omit its protocol (sniffing); the service port's protocol applies then.
    const proto = (e.port.protocol ?? '').toUpperCase();
    const fakeSvcs = svcs
      .map((s) => ({ ...s, ports: s.ports.filter((p) => p.port === e.port!.number || svcs.length === 1).map((p) => ({ ...p, protocol: protocolOf(proto, p.protocol) })) }))
      .filter((s) => s.ports.length);
    if (bound) {
      const address = e.bind || '127.0.0.1';
      if (isHTTPProtocol(protocolOf(proto, 'TCP'))) {
        out.push({
          name: `${address}_${e.port.number}`,
          address: socketAddress(address, e.port.number),
          filterChains: [{ filters: [hcmRds(`outbound_${address}_${e.port.number}`, String(e.port.number))] }],
          trafficDirection: 'OUTBOUND',
        });
      } else if (fakeSvcs.length) {
        out.push(...outboundPortListeners(push, proxy, fakeSvcs.slice(0, 1), vss, { address, port: e.port.number }));
      }
    } else {
      out.push(...outboundPortListeners(push, proxy, fakeSvcs, vss));
    }
  }
  const hook = opts.inboundTls ?? mtlsInbound;
  const inbound = inboundPorts(push, proxy);
  // Sidecar ingress listeners that bind a socket (captureMode NONE, or no interception).
  for (const ip of inbound) if (ip.bindToPort) out.push(boundInboundListener(push, proxy, hook, ip));
  if (!noIptables) {
    const explicitPorts = new Set(egress.filter((e) => e.port).map((e) => e.port!.number));
    const rest = catchAllEgress || egress.length === 0 ? (catchAllEgress ? scope.services.filter((s) => egressAdmits(catchAllEgress, s)) : scope.services) : [];
    const restPorts = rest.map((s) => ({ ...s, ports: s.ports.filter((p) => !explicitPorts.has(p.port)) })).filter((s) => s.ports.length);
    const names = new Set(out.map((l) => l.name));
    for (const l of outboundPortListeners(push, proxy, restPorts, vss)) if (!names.has(l.name)) out.push(l);
    out.push(virtualOutbound(push, proxy));
    out.push(virtualInbound(push, proxy, hook, inbound.filter((ip) => !ip.bindToPort)));
  }
  out.sort((a, b) => ((a.name ?? '') < (b.name ?? '') ? -1 : (a.name ?? '') > (b.name ?? '') ? 1 : 0));
  return out;
}

/** An egress listener's declared protocol wins over the service port's when it names one. */
function protocolOf(egressProto: string, servicePortProto: Protocol): Protocol {
  switch (egressProto) {
    case 'HTTP':
    case 'HTTP2':
    case 'GRPC':
    case 'TCP':
    case 'TLS':
    case 'HTTPS':
      return egressProto;
    case 'GRPC-WEB':
      return 'GRPC-Web';
    default:
      return servicePortProto;
  }
}
