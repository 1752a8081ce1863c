/**
 * Fetches what a control plane serves one proxy over SotW ADS, the way the
 * proxy itself asks: Envoy subscribes to every cluster and listener (wildcard)
 * and then to the endpoints and routes they name; proxyless gRPC subscribes to
 * named listeners and follows listener → route → cluster → endpoints. Every
 * response is ACKed. Resources come back as bytes (the Any values), so the
 * caller decodes them with the descriptors of its choice.
 */
import * as grpc from '@grpc/grpc-js';
import {
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  NodeSchema,
  TypeUrl,
  create,
  fromBinary,
  fromJson,
  toBinary,
  type DiscoveryResponse,
  type JsonValue,
} from '@sextant/envoy';
import { ADS_SERVICE } from '../service.js';
import type { XdsDecoder } from './decode.js';

export type XdsType = 'lds' | 'rds' | 'cds' | 'eds';
export const xdsTypes: readonly XdsType[] = ['cds', 'eds', 'lds', 'rds'];
export const typeUrlOf: Record<XdsType, string> = {
  lds: TypeUrl.Listener,
  rds: TypeUrl.RouteConfiguration,
  cds: TypeUrl.Cluster,
  eds: TypeUrl.ClusterLoadAssignment,
};

/** The Envoy node a proxy sends (Envoy's JSON form of envoy.config.core.v3.Node: id, cluster, metadata, locality, ...). */
export type NodeJson = { id: string; metadata?: Record<string, unknown> } & Record<string, unknown>;

export interface FetchOptions {
  /** host:port of the control plane's ADS server. */
  address: string;
  node: NodeJson;
  /** How the proxy subscribes; default envoy. */
  client?: 'envoy' | 'grpc';
  /** For gRPC: the listener names it asks for (the xds:/// targets, host:port). Default: wildcard. */
  listeners?: string[];
  credentials?: grpc.ChannelCredentials;
  /** Deadline for the whole fetch, ms (default 20 s). */
  timeoutMs?: number;
  decoder: XdsDecoder;
}

/** Decoded resources by type and name. */
export type XdsSnapshot = Record<XdsType, Map<string, JsonValue>>;

export class FetchError extends Error {}

type Json = Record<string, unknown>;

/** Route configuration names the listeners refer to (HCM `rds.routeConfigName`, including gRPC's API listeners). */
export function routeNamesOf(listeners: Iterable<JsonValue>): string[] {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) for (const e of v) walk(e);
    else if (v && typeof v === 'object') {
      const o = v as Json;
      const rds = o['rds'] as Json | undefined;
      if (rds && typeof rds['routeConfigName'] === 'string') out.add(rds['routeConfigName']);
      for (const x of Object.values(o)) walk(x);
    }
  };
  for (const l of listeners) walk(l);
  return [...out].sort();
}

/** Cluster names routes send to (route.cluster and weighted clusters). */
export function clusterNamesOf(routes: Iterable<JsonValue>): string[] {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) for (const e of v) walk(e);
    else if (v && typeof v === 'object') {
      const o = v as Json;
      const route = o['route'] as Json | undefined;
      if (route && typeof route === 'object') {
        if (typeof route['cluster'] === 'string') out.add(route['cluster']);
        const wc = route['weightedClusters'] as { clusters?: Json[] } | undefined;
        for (const c of wc?.clusters ?? []) if (typeof c['name'] === 'string') out.add(c['name']);
      }
      for (const x of Object.values(o)) walk(x);
    }
  };
  for (const r of routes) walk(r);
  return [...out].sort();
}

/** EDS service names of the clusters that take their endpoints from EDS. */
export function edsNamesOf(clusters: Iterable<JsonValue>): string[] {
  const out = new Set<string>();
  for (const c of clusters) {
    const o = c as Json;
    if (o['type'] !== 'EDS') continue;
    const svc = (o['edsClusterConfig'] as Json | undefined)?.['serviceName'];
    out.add(typeof svc === 'string' && svc !== '' ? svc : String(o['name']));
  }
  return [...out].sort();
}

function resourceName(type: XdsType, json: JsonValue): string {
  const o = json as Json;
  return String(type === 'eds' ? o['clusterName'] : o['name']);
}

/** Opens one ADS stream, subscribes like the proxy would, and resolves once every subscription is answered. */
export function fetchXds(opts: FetchOptions): Promise<XdsSnapshot> {
  const client = new grpc.Client(opts.address, opts.credentials ?? grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 256 * 1024 * 1024,
  });
  const call = client.makeBidiStreamRequest(
    `/${ADS_SERVICE}/StreamAggregatedResources`,
    (r: unknown) => Buffer.from(toBinary(DiscoveryRequestSchema, r as never)),
    (b: Buffer) => fromBinary(DiscoveryResponseSchema, b),
  );
  const grpcMode = opts.client === 'grpc';
  const snapshot: XdsSnapshot = { lds: new Map(), rds: new Map(), cds: new Map(), eds: new Map() };
  /** Names subscribed per type (undefined: not subscribed; [] with wildcard: everything). */
  const subscribed = new Map<XdsType, string[]>();
  const answered = new Set<XdsType>();
  let nodeSent = false;
  const send = (type: XdsType, names: string[], ack?: DiscoveryResponse) => {
    const req = create(DiscoveryRequestSchema, {
      typeUrl: typeUrlOf[type],
      resourceNames: names,
      versionInfo: ack?.versionInfo ?? '',
      responseNonce: ack?.nonce ?? '',
    });
    if (!nodeSent) {
      req.node = fromJson(NodeSchema, opts.node as never, { ignoreUnknownFields: true });
      nodeSent = true;
    }
    call.write(req);
  };
  const subscribe = (type: XdsType, names: string[], isWildcard = false) => {
    const prev = subscribed.get(type);
    if (prev && prev.join('\n') === names.join('\n')) return;
    subscribed.set(type, names);
    // Nothing to ask for: the answer is empty, as Envoy treats it.
    if (names.length === 0 && !isWildcard) {
      snapshot[type].clear();
      answered.add(type);
      return;
    }
    answered.delete(type);
    send(type, names);
  };

  return new Promise<XdsSnapshot>((resolve, reject) => {
    let finished = false;
    const finish = (err?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      try {
        call.end();
        call.cancel();
      } catch {
        /* closed */
      }
      client.close();
      if (err) reject(err);
      else resolve(snapshot);
    };
    const timeoutMs = opts.timeoutMs ?? 20_000;
    const timer = setTimeout(() => {
      const waiting = [...subscribed.keys()].filter((t) => !answered.has(t));
      finish(new FetchError(`${opts.address}: no answer within ${timeoutMs} ms for ${waiting.join(', ') || '?'} (node ${opts.node.id})`));
    }, timeoutMs);
    const checkDone = () => {
      if ([...subscribed.keys()].every((t) => answered.has(t))) finish();
    };

    call.on('data', (resp: DiscoveryResponse) => {
      const type = xdsTypes.find((t) => typeUrlOf[t] === resp.typeUrl);
      if (!type) return;
      const names = subscribed.get(type) ?? [];
      send(type, names, resp);
      const got = new Map<string, JsonValue>();
      try {
        for (const any of resp.resources) {
          const json = opts.decoder.decode(any.typeUrl, any.value);
          got.set(resourceName(type, json), json);
        }
      } catch (err) {
        finish(new FetchError(`${opts.address}: cannot decode ${type} for ${opts.node.id}: ${(err as Error).message}`));
        return;
      }
      snapshot[type] = got;
      answered.add(type);
      // Follow references, as the proxy does.
      if (type === 'cds') subscribe('eds', edsNamesOf(got.values()));
      if (type === 'lds') {
        subscribe('rds', routeNamesOf(got.values()));
      }
      if (type === 'rds' && grpcMode) subscribe('cds', clusterNamesOf(got.values()));
      checkDone();
    });
    call.on('error', (e: grpc.ServiceError) => finish(new FetchError(`${opts.address}: ADS stream failed for ${opts.node.id}: ${e.details || e.message}`)));
    call.on('end', () => finish(new FetchError(`${opts.address}: ADS stream closed by the server for ${opts.node.id}`)));

    if (grpcMode) {
      subscribe('lds', [...(opts.listeners ?? [])].sort(), !opts.listeners?.length);
    } else {
      subscribe('cds', [], true);
      subscribe('lds', [], true);
    }
  });
}
