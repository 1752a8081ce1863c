/**
 * LDS, inbound side of a sidecar: `virtualInbound` 15006 (declared ports and
 * the passthrough chains for the rest) and Sidecar ingress listeners that bind
 * their own port. Pure.
 */
import type { FilterChainJson, ListenerFilterJson, ListenerJson, NetworkFilterJson, RouteConfigurationJson, RouteJson } from '@sextant/envoy';
import { isHttp2, isSniffed, type ProxyView, type PushContext } from '@sextant/model';
import { httpFilters, INBOUND_RETRY_POLICY, inboundHcmDefaults, listenerFilter, mongoProxy, socketAddress, tcpProxy } from './filters.js';
import type { InboundPort } from './inbound-ports.js';
import { securityHttpFilters, securityNetworkFilters } from '../security/filters.js';
import { passthroughChains } from '../security/passthrough.js';
import { isMosnProxy } from '../mosn/index.js';
import { BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND } from '../names.js';
import { mtlsInbound, type InboundChainProtocol, type InboundChainSecurity } from '../security/mtls.js';
import { anyOf, TYPE } from '../typed.js';

/**
 * The hook for inbound security: given the proxy, one inbound port and whether
 * its chains are HTTP, TCP or detected per connection (`auto`), the transport
 * socket and extra filter chain match for each of its chain(s), and for `auto`
 * each chain's protocol. The default for sidecars is `mtlsInbound`
 * (PeerAuthentication: several entries for PERMISSIVE, a TLS chain and
 * plaintext ones); `plaintextInbound` turns inbound TLS off.
 */
export type InboundTlsHook = (push: PushContext, proxy: ProxyView, port: number, protocol?: InboundChainProtocol) => InboundChainSecurity[];
export const plaintextInbound: InboundTlsHook = (_push, _proxy, _port, protocol) =>
  // A sniffed port without TLS: plaintext HTTP by the HTTP inspector's ALPN, the rest as TCP.
  protocol === 'auto' ? [{ protocol: 'http', filterChainMatch: { applicationProtocols: ['http/1.1', 'h2c'] } }, { protocol: 'tcp' }] : [{}];

/**
 * istiod's default inbound route (BuildDefaultHTTPInboundRoute): no timeout,
 * no max stream duration, the trace operation as decorator and, except for
 * gRPC, a retry of requests reset before reaching the application.
 */
function inboundRoute(cluster: string, operation: string, grpc: boolean): RouteJson {
  return {
    name: 'default',
    match: { prefix: '/' },
    decorator: { operation },
    route: {
      cluster,
      timeout: '0s',
      maxStreamDuration: { maxStreamDuration: '0s', grpcTimeoutHeaderMax: '0s' },
      ...(grpc ? {} : { retryPolicy: { ...INBOUND_RETRY_POLICY } }),
    },
  };
}

/** The inline route configuration of one inbound HTTP chain (istiod's buildSidecarInboundHTTPRouteConfig). */
function inboundRouteConfig(ip: InboundPort): RouteConfigurationJson {
  const cluster = `inbound|${ip.port}||`;
  const servicePort = ip.servicePort ?? ip.port;
  return {
    name: cluster,
    validateClusters: false,
    virtualHosts: [{ name: `inbound|http|${servicePort}`, domains: ['*'], routes: [inboundRoute(cluster, `${ip.serviceHost ?? ''}:${servicePort}/*`, ip.grpc ?? false)] }],
  };
}

/**
 * The network filters of an inbound TCP chain (istiod's
 * buildInboundNetworkFilters): security, then Envoy's Mongo proxy on MONGO
 * ports (protocol stats; the bytes pass unchanged), then tcp_proxy.
 */
function inboundTcpFilters(push: PushContext, proxy: ProxyView, ip: InboundPort): NetworkFilterJson[] {
  const cluster = `inbound|${ip.port}||`;
  return [...securityNetworkFilters(push, proxy), ...(ip.protocol === 'Mongo' ? [mongoProxy(cluster)] : []), tcpProxy(cluster, cluster)];
}

/** The HCM of an inbound HTTP chain (istiod's buildSidecarInboundHTTPOpts). */
function inboundHcm(push: PushContext, proxy: ProxyView, ip: InboundPort, name: string): NetworkFilterJson {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typedConfig: anyOf(TYPE.hcm, {
      statPrefix: `inbound_${name}`,
      routeConfig: inboundRouteConfig(ip),
      httpFilters: [...securityHttpFilters(push, proxy), ...httpFilters()],
      ...inboundHcmDefaults(push.mesh),
      forwardClientCertDetails: 'APPEND_FORWARD',
      setCurrentClientCertDetails: { subject: true, dns: true, uri: true },
      // HTTP/2 and gRPC ports: HTTP/2 options as istiod sets them (empty: Envoy's defaults).
      ...(isHttp2(ip.protocol) ? { http2ProtocolOptions: {} } : {}),
    }),
  };
}

/**
 * The chains of the inbound ports (istiod's inboundChainForOpts): one per
 * PeerAuthentication option, named `<bind>_<port>` (the wildcard for Service
 * ports, the pod address or `bind` for Sidecar ingress). A sniffed port gets
 * HTTP chains (matched on ALPN) next to its TCP ones (not for MOSN); security
 * policy is on both, HTTP rules in the HCM and the rest in the network RBAC filter.
 */
function inboundChains(push: PushContext, proxy: ProxyView, ports: InboundPort[], hook: InboundTlsHook): FilterChainJson[] {
  const chains: FilterChainJson[] = [];
  for (const ip of ports) {
    const port = ip.port;
    const name = `${ip.bind}_${port}`;
    // MOSN's listener conversion serves one chain per port: a sniffed port stays TCP there, as before.
    const declared: InboundChainProtocol = isSniffed(ip.protocol) && !isMosnProxy(proxy) ? 'auto' : ip.http ? 'http' : 'tcp';
    for (const sec of hook(push, proxy, port, declared)) {
      const protocol = sec.protocol ?? (declared === 'http' ? 'http' : 'tcp');
      const chain: FilterChainJson = {
        name,
        filterChainMatch: { destinationPort: port, ...(sec.filterChainMatch ?? {}) },
        ...(sec.transportSocket ? { transportSocket: sec.transportSocket } : {}),
        filters: protocol === 'http' ? [inboundHcm(push, proxy, ip, name)] : inboundTcpFilters(push, proxy, ip),
      };
      // Sidecar ingress chains name their Sidecar, as istiod's config metadata.
      if (ip.sidecar) chain.metadata = { filterMetadata: { istio: { config: `/apis/networking.istio.io/v1/namespaces/${ip.sidecar.namespace}/sidecar/${ip.sidecar.name}` } } };
      chains.push(chain);
    }
  }
  return chains;
}

type ListenerFilterChainMatchPredicateJson = NonNullable<ListenerFilterJson['filterDisabled']>;

/** A listener filter predicate matching destination ports (istiod's listenerPredicateExcludePorts). */
function portsPredicate(ports: number[]): ListenerFilterChainMatchPredicateJson {
  const rules = ports.map((p): ListenerFilterChainMatchPredicateJson => ({ destinationPortRange: { start: p, end: p + 1 } }));
  return rules.length === 1 ? rules[0]! : { orMatch: { rules } };
}

/**
 * The listener filters of an inbound listener as istiod derives them from its
 * chains (populateListenerFilters): original_dst unless bound to a port (it
 * restores the redirected destination the chains match on), the TLS inspector
 * where a chain matches `transportProtocol: tls`, the HTTP inspector where one
 * matches the plaintext HTTP ALPNs; each turned off (filter_disabled) on the
 * ports whose chains do not need it.
 */
export function inboundListenerFilters(chains: FilterChainJson[], bindToPort: boolean): ListenerFilterJson[] {
  const out: ListenerFilterJson[] = bindToPort ? [] : [listenerFilter.originalDst()];
  const inspectors = new Map<number, { tls: boolean; http: boolean }>();
  for (const c of chains) {
    const m = c.filterChainMatch ?? {};
    const port = m.destinationPort ?? 0;
    const cur = inspectors.get(port) ?? { tls: false, http: false };
    cur.tls ||= m.transportProtocol === 'tls';
    cur.http ||= (m.applicationProtocols ?? []).some((a) => a === 'http/1.1' || a === 'h2c');
    inspectors.set(port, cur);
  }
  const all = [...inspectors.entries()].sort((a, b) => a[0] - b[0]);
  if (all.some(([, i]) => i.tls)) {
    const f = listenerFilter.tlsInspector();
    if (inspectors.get(0)?.tls) {
      // On for every port but those that never see TLS.
      const off = all.filter(([p, i]) => p !== 0 && !i.tls).map(([p]) => p);
      if (off.length) f.filterDisabled = portsPredicate(off);
    } else {
      // Off for every port but those with a TLS chain.
      const on = all.filter(([p, i]) => p !== 0 && i.tls).map(([p]) => p);
      if (on.length) f.filterDisabled = { notMatch: portsPredicate(on) };
    }
    out.push(f);
  }
  // After the TLS inspector: a connection it marks as TLS is not inspected for HTTP.
  if (all.some(([, i]) => i.http)) {
    const f = listenerFilter.httpInspector();
    const off = all.filter(([, i]) => !i.http).map(([p]) => p);
    if (off.length) f.filterDisabled = portsPredicate(off);
    out.push(f);
  }
  return out;
}

export function virtualInbound(push: PushContext, proxy: ProxyView, hook: InboundTlsHook, ports: InboundPort[]): ListenerJson {
  const filterChains: FilterChainJson[] = [
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
                  routes: [inboundRoute(INBOUND_PASSTHROUGH_CLUSTER, ':0/*', false)],
                },
              ],
            },
            httpFilters: [...securityHttpFilters(push, proxy), ...httpFilters()],
            ...inboundHcmDefaults(push.mesh),
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
  ];
  // No use_original_dst (as istiod): the original_dst listener filter restores the destination the chains match on.
  return {
    name: VIRTUAL_INBOUND,
    address: socketAddress('0.0.0.0', 15006),
    listenerFilters: inboundListenerFilters(filterChains, false),
    listenerFiltersTimeout: push.mesh.protocolDetectionTimeout ?? '0s',
    continueOnListenerFiltersTimeout: true,
    filterChains,
    trafficDirection: 'INBOUND',
    // istiod's MAX_CONNECTIONS_PER_SOCKET_EVENT_LOOP default on every inbound listener: spreads accepts over the workers.
    maxConnectionsToAcceptPerSocketEvent: 1,
  };
}

/** A real inbound listener `<bind>_<port>` for a bound Sidecar ingress listener, with the port's mTLS chains. */
export function boundInboundListener(push: PushContext, proxy: ProxyView, hook: InboundTlsHook, ip: InboundPort): ListenerJson {
  const chains = inboundChains(push, proxy, [ip], hook);
  const l: ListenerJson = {
    name: `${ip.bind}_${ip.port}`,
    address: socketAddress(ip.bind, ip.port),
    filterChains: chains,
    trafficDirection: 'INBOUND',
    continueOnListenerFiltersTimeout: true,
    maxConnectionsToAcceptPerSocketEvent: 1,
  };
  const lf = inboundListenerFilters(chains, true);
  if (lf.length) l.listenerFilters = lf;
  l.listenerFiltersTimeout = push.mesh.protocolDetectionTimeout ?? '0s';
  return l;
}
