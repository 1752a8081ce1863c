/**
 * LDS, outbound side of a sidecar: `virtualOutbound` 15001 and the per-port
 * outbound listeners (`0.0.0.0_<port>` for HTTP, `<VIP>_<port>` for TCP, and
 * Sidecar egress listeners bound to `<bind>:<port>`). Pure.
 */
import type { RouteDestination, SidecarSpecType, VirtualServiceSpecType } from '@sextant/api';
import type { ListenerJson } from '@sextant/envoy';
import { isHttp, isSniffed, type EgressListener, type IstioConfig, type ProxyView, type PushContext, type Service } from '@sextant/model';
import { hcmRds, listenerFilter, socketAddress, tcpProxy } from './filters.js';
import { preparedVirtualServices } from '../route/sidecar.js';
import { destinationCluster } from '../route/translate.js';
import { serviceAddressForProxy } from '../nds.js';
import { BLACKHOLE_CLUSTER, outboundClusterName, PASSTHROUGH_CLUSTER, VIRTUAL_OUTBOUND } from '../names.js';

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
export function outboundPortListeners(push: PushContext, proxy: ProxyView, services: Service[], vss: MeshVirtualServices, bind?: { address: string; port: number }): ListenerJson[] {
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
      if (isHttp(p.protocol)) {
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

export function virtualOutbound(push: PushContext, proxy: ProxyView): ListenerJson {
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
