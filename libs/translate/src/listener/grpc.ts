/**
 * Proxyless gRPC (node metadata `GENERATOR: grpc`), as istiod's grpcgen:
 * listeners named `<host>:<port>` (the name the client asked for) holding an
 * API listener whose HCM reads RDS `outbound|<port>||<fqdn>`. Pure.
 */
import type { ListenerJson } from '@sextant/envoy';
import type { ProxyView, PushContext, Service } from '@sextant/model';
import { outboundClusterName } from '../names.js';
import { anyOf, TYPE } from '../typed.js';


/** The FQDN a requested name may stand for (istiod's tryFindFQDN). */
export function grpcFqdn(name: string, proxy: ProxyView): string | undefined {
  if (!name.includes('.')) return `${name}.${proxy.dnsDomain}`;
  for (const suffix of [proxy.namespace, `${proxy.namespace}.svc`]) {
    if (name.endsWith(`.${suffix}`) && proxy.dnsDomain.startsWith(suffix)) return `${name.slice(0, -suffix.length - 1)}.${proxy.dnsDomain}`;
  }
  return undefined;
}

function splitHostPort(name: string): { host: string; port?: string } {
  const m = /^(.*):([0-9]+)$/.exec(name);
  if (m && !m[1]!.endsWith(']')) return { host: m[1]!, port: m[2]! };
  if (m) return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2]! };
  return { host: name };
}

/** An API listener for one requested name and service port. */
function apiListener(name: string, svc: Service, port: number): ListenerJson {
  return {
    name,
    address: { socketAddress: { address: svc.clusterVIP || '0.0.0.0', portValue: port } },
    apiListener: {
      apiListener: anyOf(TYPE.hcm, {
        httpFilters: [
          { name: 'envoy.filters.http.fault', typedConfig: anyOf(TYPE.fault) },
          { name: 'envoy.filters.http.router', typedConfig: anyOf(TYPE.router) },
        ],
        // istiod's grpcgen: an ADS config source without resource_api_version.
        rds: { configSource: { ads: {} }, routeConfigName: outboundClusterName(svc.hostname, port) },
      }),
    },
  };
}

/**
 * gRPC client listeners. `names` are the resources the client asked for
 * (`host:port` or `host`); empty = every visible service and port.
 */
export function buildGrpcListeners(push: PushContext, proxy: ProxyView, names: string[] = []): ListenerJson[] {
  const services = push.sidecarScope(proxy).services;
  const out: ListenerJson[] = [];
  if (names.length === 0) {
    for (const svc of services) for (const p of svc.ports) out.push(apiListener(`${svc.hostname}:${p.port}`, svc, p.port));
    return out;
  }
  for (const name of [...new Set(names)].sort()) {
    if (name.startsWith('xds.istio.io/grpc/lds/inbound/')) continue; // server-side listeners: not built here yet
    const { host, port } = splitHostPort(name);
    const candidates = [host, grpcFqdn(host, proxy)].filter((h): h is string => !!h);
    const svc = services.find((s) => candidates.includes(s.hostname));
    if (!svc) continue;
    for (const p of svc.ports) {
      if (port !== undefined && String(p.port) !== port) continue;
      out.push(apiListener(port !== undefined ? name : `${host}:${p.port}`, svc, p.port));
    }
  }
  return out;
}
