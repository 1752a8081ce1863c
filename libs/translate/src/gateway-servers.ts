/**
 * The Gateway servers a router proxy serves (istiod's MergedGateway): which
 * servers select it, the port each listens on, the hosts each admits, the
 * VirtualServices bound to it, and the route name of each. Shared by the
 * gateway listeners (listener/gateway.ts) and routes (route/gateway.ts). Pure.
 */
import type { GatewaySpecType, Server, VirtualServiceSpecType } from '@sextant/api';
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';
import { mergeDelegates, resolveVirtualService, vsGateways } from './route/virtual-service.js';
import { gatewayHttpRouteName, gatewayHttpsRouteName } from './names.js';

/** A Gateway's spec, as validated by @sextant/api. */
const gatewaySpec = (gw: IstioConfig): GatewaySpecType => gw.spec as GatewaySpecType;
/** A VirtualService's spec, as validated by @sextant/api. */
export const vsSpec = (vs: IstioConfig): VirtualServiceSpecType => vs.spec as VirtualServiceSpecType;

export const HTTP_LIKE = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

export interface GatewayServer {
  gateway: IstioConfig;
  /** `namespace/name`, as VirtualServices name gateways. */
  gatewayName: string;
  server: Server;
  index: number;
  /** The listener port: the server port translated through the gateway Service's targetPort. */
  port: number;
  protocol: string;
  bind: string;
}

/** Services with this label keep Gateway server ports untranslated (istiod's DisableGatewayPortTranslationLabel). */
export const DISABLE_GATEWAY_PORT_TRANSLATION = 'networking.istio.io/disable-gateway-port-translation';

/**
 * The ports a server listens on (istiod's resolvePorts): a Gateway server port
 * is the port of the gateway's Service, so the listener binds the target port
 * of every Service port with that number that selects this proxy's pod
 * (istio-ingressgateway maps 80 → 8080); without one, the number itself.
 */
export function resolveGatewayPorts(push: PushContext, proxy: ProxyView, number: number): number[] {
  const ports = new Set<number>();
  for (const si of push.serviceInstancesForProxy(proxy)) {
    if (si.service.attributes.labels?.[DISABLE_GATEWAY_PORT_TRANSLATION] !== undefined) continue;
    if (si.servicePort.port === number && si.endpoint.endpointPort) ports.add(si.endpoint.endpointPort);
  }
  return ports.size ? [...ports].sort((a, b) => a - b) : [number];
}

/** Servers of every Gateway that selects this proxy, one per listener port they resolve to. */
export function gatewayServers(push: PushContext, proxy: ProxyView): GatewayServer[] {
  const out: GatewayServer[] = [];
  for (const gw of push.gatewaysForProxy(proxy)) {
    (gatewaySpec(gw).servers ?? []).forEach((server, index) => {
      const number = Number(server.port?.number);
      for (const port of Number.isInteger(number) && number > 0 ? resolveGatewayPorts(push, proxy, number) : [number]) {
        out.push({
          gateway: gw,
          gatewayName: `${gw.namespace}/${gw.name}`,
          server,
          index,
          port,
          protocol: String(server.port?.protocol ?? '').toUpperCase(),
          bind: server.bind || '0.0.0.0',
        });
      }
    });
  }
  return out;
}

export function isPassthrough(s: Server): boolean {
  return s.tls?.mode === 'PASSTHROUGH' || s.tls?.mode === 'AUTO_PASSTHROUGH';
}

/** The RDS name istiod gives a server (GatewayRDSRouteName); '' for servers without HTTP routing. */
export function gatewayRouteName(gs: GatewayServer): string {
  const bind: string | undefined = gs.server.bind || undefined;
  if (HTTP_LIKE.has(gs.protocol)) return gatewayHttpRouteName(gs.port, bind);
  if (gs.protocol === 'HTTPS' && !isPassthrough(gs.server)) return gatewayHttpsRouteName(gs.server.port.number, gs.server.port.name ?? '', gs.gateway.name, gs.gateway.namespace, bind);
  return '';
}

/** Server hosts split into namespace and DNS name (`ns/host`; no namespace = any). */
export function serverHosts(gs: GatewayServer): Array<{ ns: string; host: string }> {
  return (gs.server.hosts ?? []).map((h) => {
    const i = h.indexOf('/');
    if (i < 0) return { ns: '*', host: h.toLowerCase() };
    const ns = h.slice(0, i);
    return { ns: ns === '.' ? gs.gateway.namespace : ns, host: h.slice(i + 1).toLowerCase() };
  });
}

function wildcardMatch(pattern: string, host: string): boolean {
  if (pattern === '*' || pattern === host) return true;
  return pattern.startsWith('*.') && host.endsWith(pattern.slice(1));
}

/** The more specific of two intersecting host names, or undefined. */
function intersect(a: string, b: string): string | undefined {
  if (wildcardMatch(a, b)) return b;
  if (wildcardMatch(b, a)) return a;
  return undefined;
}

export function gatewayVirtualServices(push: PushContext, proxy: ProxyView, gatewayName: string): IstioConfig[] {
  const all = push.virtualServices(proxy, [gatewayName]).map((v) => resolveVirtualService(v, push.domainSuffix));
  const delegates = push.configs('VirtualService').filter((v) => !(vsSpec(v).hosts ?? []).length).map((v) => resolveVirtualService(v, push.domainSuffix));
  const seen = new Set(all.map((v) => `${v.namespace}/${v.name}`));
  const merged = mergeDelegates([...all, ...delegates.filter((d) => !seen.has(`${d.namespace}/${d.name}`))], push.mesh.defaultVirtualServiceExportTo).virtualServices;
  return merged.filter((vs) => vsGateways(vs).includes(gatewayName));
}

/** Hosts of a VS that a server admits (namespace and host patterns), most specific form. */
export function admittedHosts(gs: GatewayServer, vs: IstioConfig): string[] {
  const out: string[] = [];
  for (const vh of vsSpec(vs).hosts ?? []) {
    for (const sh of serverHosts(gs)) {
      if (sh.ns !== '*' && sh.ns !== vs.namespace) continue;
      const i = intersect(sh.host, vh.toLowerCase());
      if (i && !out.includes(i)) out.push(i);
    }
  }
  return out;
}

