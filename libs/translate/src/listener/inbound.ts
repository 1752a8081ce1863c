/**
 * LDS, inbound side of a sidecar: `virtualInbound` 15006 (declared ports and
 * the passthrough chains for the rest) and Sidecar ingress listeners that bind
 * their own port. Pure.
 */
import type { FilterChainJson, FilterChainMatchJson, ListenerJson, RouteConfigurationJson, RouteJson, TransportSocketJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { hcmRds, httpFilters, INBOUND_RETRY_POLICY, inboundHcmDefaults, listenerFilter, socketAddress, tcpProxy } from './filters.js';
import type { InboundPort } from './inbound-ports.js';
import { securityHttpFilters, securityNetworkFilters } from '../security/filters.js';
import { passthroughChains } from '../security/passthrough.js';
import { isMosnProxy } from '../mosn/index.js';
import { BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND } from '../names.js';
import { mtlsInbound } from '../security/mtls.js';
import { anyOf, TYPE } from '../typed.js';

/**
 * The hook for inbound security: given the proxy, one inbound port and whether
 * its chains are HTTP or TCP, the transport socket and extra filter chain match
 * for each of its chain(s). The default for sidecars is `mtlsInbound`
 * (PeerAuthentication: several entries for PERMISSIVE, a TLS chain and
 * plaintext ones); `plaintextInbound` turns inbound TLS off.
 */
export type InboundTlsHook = (push: PushContext, proxy: ProxyView, port: number, protocol?: 'http' | 'tcp') => Array<{ transportSocket?: TransportSocketJson; filterChainMatch?: FilterChainMatchJson; nameSuffix?: string }>;
export const plaintextInbound: InboundTlsHook = () => [{}];

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
                routeConfig: inboundRouteConfig(ip),
                httpFilters: [...securityHttpFilters(push, proxy), ...httpFilters()],
                ...inboundHcmDefaults(push.mesh),
                forwardClientCertDetails: 'APPEND_FORWARD',
                setCurrentClientCertDetails: { subject: true, dns: true, uri: true },
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

export function virtualInbound(push: PushContext, proxy: ProxyView, hook: InboundTlsHook, ports: InboundPort[]): ListenerJson {
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
    ],
    useOriginalDst: true,
    trafficDirection: 'INBOUND',
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
  };
  if (chains.some((c) => c.filterChainMatch?.transportProtocol === 'tls')) l.listenerFilters = [listenerFilter.tlsInspector()];
  return l;
}
