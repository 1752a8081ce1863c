/**
 * Small static xDS resources and a server harness for tests and benchmarks of
 * the ADS server itself (Istio translation lives elsewhere).
 */
import * as grpc from '@grpc/grpc-js';
import { silentLogger, type Logger } from '@sextant/api';
import { TypeUrl, encodeResource, type EncodedResource } from '@sextant/envoy';
import { DiscoveryServer, type DiscoveryServerOptions, type ResourceGenerator } from '@sextant/xds';
import { EndpointCache, StaticGenerator } from './xds-generators.js';

export { EndpointCache, StaticGenerator } from './xds-generators.js';

/** An EDS cluster fed over ADS. */
export function edsCluster(name: string, extra: Record<string, unknown> = {}): EncodedResource {
  return encodeResource(TypeUrl.Cluster, name, {
    name,
    type: 'EDS',
    connectTimeout: '1s',
    edsClusterConfig: { edsConfig: { ads: {}, resourceApiVersion: 'V3' } },
    ...extra,
  });
}

/** A ClusterLoadAssignment with the given host:port endpoints. */
export function loadAssignment(cluster: string, endpoints: { address: string; port: number }[]): EncodedResource {
  return encodeResource(TypeUrl.ClusterLoadAssignment, cluster, {
    clusterName: cluster,
    endpoints: [
      {
        lbEndpoints: endpoints.map((e) => ({ endpoint: { address: { socketAddress: { address: e.address, portValue: e.port } } } })),
      },
    ],
  });
}

/** An HTTP listener on address:port whose routes come from RDS over ADS. */
export function httpListener(name: string, address: string, port: number, routeConfigName: string, statPrefix = name): EncodedResource {
  return encodeResource(TypeUrl.Listener, name, {
    name,
    address: { socketAddress: { address, portValue: port } },
    filterChains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typedConfig: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              statPrefix,
              rds: { routeConfigName, configSource: { ads: {}, resourceApiVersion: 'V3' } },
              httpFilters: [{ name: 'envoy.filters.http.router', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  });
}

/** A route configuration sending every path on every domain to one cluster, adding a response header. */
export function routeTo(name: string, cluster: string, header?: { key: string; value: string }): EncodedResource {
  return encodeResource(TypeUrl.RouteConfiguration, name, {
    name,
    virtualHosts: [
      {
        name: 'all',
        domains: ['*'],
        routes: [{ match: { prefix: '/' }, route: { cluster } }],
        ...(header ? { responseHeadersToAdd: [{ header, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }] } : {}),
      },
    ],
  });
}

export function secret(name: string, inlineCert = 'not-a-real-cert'): EncodedResource {
  return encodeResource(TypeUrl.Secret, name, { name, validationContext: { trustedCa: { inlineString: inlineCert } } });
}

export const ExtensionConfigType = 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig';
/** A resource of a type registered beyond the five standard ones. */
export function extensionConfig(name: string): EncodedResource {
  return encodeResource(ExtensionConfigType, name, {
    name,
    typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
  });
}

export interface Harness {
  server: DiscoveryServer;
  grpcServer: grpc.Server;
  address: string;
  port: number;
  clusters: StaticGenerator;
  listeners: StaticGenerator;
  routes: StaticGenerator;
  secrets: StaticGenerator;
  extensions: StaticGenerator;
  endpoints: EndpointCache;
  /** Push version counter: `push()` bumps it and pushes everything. */
  pushAll(reason?: string, affects?: Parameters<DiscoveryServer['push']>[0]['affects']): string;
  ready: { value: boolean };
  stop(): Promise<void>;
}

/** Starts a DiscoveryServer on 127.0.0.1:0 over static generators and an EndpointCache. */
export async function startHarness(
  opts: Partial<Omit<DiscoveryServerOptions, 'generators' | 'isReady'>> & { log?: Logger; ready?: boolean; extraGenerators?: Record<string, ResourceGenerator>; serverOptions?: grpc.ServerOptions } = {},
): Promise<Harness> {
  const clusters = new StaticGenerator();
  const listeners = new StaticGenerator();
  const routes = new StaticGenerator();
  const secrets = new StaticGenerator();
  const extensions = new StaticGenerator();
  const endpoints = new EndpointCache();
  const ready = { value: opts.ready ?? true };
  const { ready: _r, extraGenerators, serverOptions, ...rest } = opts;
  const server = new DiscoveryServer({
    ...rest,
    log: opts.log ?? silentLogger,
    isReady: () => ready.value,
    generators: {
      [TypeUrl.Cluster]: clusters,
      [TypeUrl.ClusterLoadAssignment]: endpoints,
      [TypeUrl.Listener]: listeners,
      [TypeUrl.RouteConfiguration]: routes,
      [TypeUrl.Secret]: secrets,
      [ExtensionConfigType]: extensions,
      ...extraGenerators,
    },
  });
  const grpcServer = new grpc.Server(serverOptions);
  server.addTo(grpcServer);
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  let v = 0;
  return {
    server,
    grpcServer,
    address: `127.0.0.1:${port}`,
    port,
    clusters,
    listeners,
    routes,
    secrets,
    extensions,
    endpoints,
    ready,
    pushAll(reason = 'test', affects) {
      const version = `v${++v}`;
      server.push({ full: true, version, reason: [reason], ...(affects ? { affects } : {}) });
      return version;
    },
    async stop() {
      await server.close(500);
      grpcServer.forceShutdown();
    },
  };
}

/** Waits for a condition, checking on each event-loop turn, with a deadline. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
