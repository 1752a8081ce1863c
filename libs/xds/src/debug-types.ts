/**
 * Debug over xDS, as istiod serves it (pilot/pkg/xds/statusgen.go): istioctl
 * opens an ADS stream and asks for `istio.io/debug/syncz` (proxy-status: one
 * envoy.service.status.v3.ClientConfig per connected proxy) or
 * `istio.io/debug/config_dump` with one resource name, the proxy (its
 * envoy.admin.v3 *ConfigDump entries).
 *
 * Authorization follows istiod: the caller must be authenticated (the secure
 * port, a token with audience istio-ca or a workload certificate); callers in
 * the system namespace see every proxy, others only proxies of their own
 * namespace. Sextant also answers a plaintext-port caller on loopback
 * (127.0.0.1 or ::1), as its HTTP debug endpoints do, so `istioctl
 * proxy-status --plaintext` works on the control plane's own host.
 */
import { splitNodeId } from '@sextant/api';
import * as grpc from '@grpc/grpc-js';
import { encodeJson, encodedResource, type EncodedResource } from '@sextant/envoy';
import type { ConnectionStatus, ResourceGenerator, StreamState, WatchedResource, XdsProxy } from './types.js';

export const DebugType = {
  /** istiod's DebugGen: the resource name is a debug path (`syncz`, `config_dump?proxyID=…`, `list`), answered as raw bytes. */
  Debug: 'istio.io/debug',
  Syncz: 'istio.io/debug/syncz',
  ConfigDump: 'istio.io/debug/config_dump',
} as const;
export const DEBUG_TYPE_PREFIX = 'istio.io/debug/';

const CLIENT_CONFIG = 'type.googleapis.com/envoy.service.status.v3.ClientConfig';

/** A generator failure that ends the stream with this gRPC status (istiod returns these as stream errors). */
export class XdsStatusError extends Error {
  constructor(
    readonly grpcCode: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export interface DebugTypeOptions {
  /** Every connected stream (DiscoveryServer.connections). */
  connections(): ConnectionStatus[];
  /** One stream by node ID, connection ID or `<pod>.<namespace>` (DiscoveryServer.streamState). */
  streamState(id: string): StreamState | undefined;
  /** The stream's config as ConfigDump entries (envoy.admin.v3.*ConfigDump), secrets redacted. */
  configDump(state: StreamState): Array<{ typeUrl: string; value: Uint8Array }>;
  /** Callers authenticated in this namespace see every proxy (istiod: the mesh root namespace). */
  systemNamespace(): string;
  /**
   * The HTTP debug endpoints, for `istio.io/debug`: the answer to
   * `/debug/<path>?<query>` as bytes. `namespace` limits proxy lookups (a
   * caller outside the system namespace).
   */
  debugPath?(path: string, query: URLSearchParams, namespace: string | undefined): Uint8Array;
}

/** Paths of `istio.io/debug` a caller outside the system namespace may read (istiod's activeNamespaceDebuggers that Sextant has). */
const NAMESPACE_DEBUG_PATHS = new Set(['config_dump', 'clusters', 'sextant_dump']);

/** The namespace a proxy belongs to: NAMESPACE metadata, else the `<pod>.<ns>` part of its node ID. */
export function proxyNamespace(proxy: Pick<XdsProxy, 'id' | 'metadata'>): string | undefined {
  const meta = proxy.metadata.NAMESPACE ?? proxy.metadata.ISTIO_META_NAMESPACE;
  if (typeof meta === 'string' && meta !== '') return meta;
  return splitNodeId(proxy.id)?.idNamespace;
}

/** The IP of a grpc-js peer string (`127.0.0.1:5555`, `[::1]:5555`, `ipv4:…`). */
export function peerHost(peer: string): string {
  let p = peer.replace(/^ipv[46]:/, '');
  if (p.startsWith('[')) return p.slice(1, p.indexOf(']'));
  const colon = p.lastIndexOf(':');
  if (colon > 0 && p.indexOf(':') === colon) p = p.slice(0, colon);
  return p;
}

const isLoopback = (host: string) => host === '127.0.0.1' || host === '::1' || host === '::ffff:127.0.0.1';

/**
 * Who may read debug types on this stream: undefined when nobody (the stream
 * then ends UNAUTHENTICATED); '' for every proxy; else the one namespace.
 */
export function debugScope(proxy: XdsProxy, systemNamespace: string): string | undefined {
  if (proxy.identity) return proxy.identity.namespace === systemNamespace ? '' : proxy.identity.namespace;
  return isLoopback(peerHost(proxy.peer)) ? '' : undefined;
}

const isDebugOnly = (c: ConnectionStatus) => c.types.length > 0 && c.types.every((t) => t.typeUrl.startsWith(DEBUG_TYPE_PREFIX));

/** istiod's debugSyncStatus, with Sextant's NACK record in place of LastError. */
function configStatus(t: ConnectionStatus['types'][number]): string {
  if (t.lastNack && t.lastNack.nonce === t.nonceSent) return 'ERROR';
  if (!t.nonceSent) return 'NOT_SENT';
  if (t.nonceAcked === t.nonceSent) return 'SYNCED';
  return 'STALE';
}

function clientConfig(c: ConnectionStatus, metadata: Record<string, unknown>): unknown {
  const pick = (k: string) => (typeof metadata[k] === 'string' ? { [k]: metadata[k] } : {});
  const configs = c.types
    .filter((t) => !t.typeUrl.startsWith(DEBUG_TYPE_PREFIX))
    .sort((a, b) => (a.typeUrl < b.typeUrl ? -1 : a.typeUrl > b.typeUrl ? 1 : 0))
    .map((t) => ({
      typeUrl: t.typeUrl,
      configStatus: configStatus(t),
      ...(t.sentAt ? { lastUpdated: t.sentAt } : {}),
      ...(t.lastNack && t.lastNack.nonce === t.nonceSent ? { errorState: { lastUpdateAttempt: t.lastNack.at, details: t.lastNack.message } } : {}),
    }));
  return {
    node: { id: c.proxyId, metadata: { ...pick('CLUSTER_ID'), ...pick('NAMESPACE'), ...pick('ISTIO_VERSION') } },
    genericXdsConfigs: configs,
  };
}

/** Generators for the debug type URLs, to merge into the DiscoveryServer's generators. */
export function debugGenerators(opts: DebugTypeOptions): Record<string, ResourceGenerator> {
  const scopeOf = (proxy: XdsProxy) => {
    const scope = debugScope(proxy, opts.systemNamespace());
    if (scope === undefined) {
      throw new XdsStatusError(grpc.status.UNAUTHENTICATED, 'authentication required: debug types are served on the secure port to callers with a token (audience istio-ca) or a workload certificate');
    }
    return scope;
  };
  const syncz: ResourceGenerator = {
    answersQuery: true,
    generate(proxy) {
      const scope = scopeOf(proxy);
      const out = new Map<string, EncodedResource>();
      for (const c of opts.connections()) {
        if (!c.proxyId || isDebugOnly(c)) continue; // istioctl's own streams are not proxies
        const st = opts.streamState(c.connectionId);
        if (!st) continue;
        if (scope !== '' && proxyNamespace(st.proxy) !== scope) continue;
        const name = out.has(c.proxyId) ? `${c.proxyId}#${c.connectionId}` : c.proxyId;
        out.set(name, encodedResource(CLIENT_CONFIG, name, encodeJson(CLIENT_CONFIG, clientConfig(c, st.proxy.metadata))));
      }
      return out;
    },
  };
  const configDump: ResourceGenerator = {
    answersQuery: true,
    generate(proxy, watch: WatchedResource) {
      const scope = scopeOf(proxy);
      const out = new Map<string, EncodedResource>();
      // istiod answers a malformed request (not exactly one proxy) with no resources.
      if (watch.names.size !== 1) return out;
      const [id] = watch.names;
      const st = opts.streamState(id!);
      if (!st || (scope !== '' && proxyNamespace(st.proxy) !== scope)) return out;
      for (const entry of opts.configDump(st)) out.set(entry.typeUrl, encodedResource(entry.typeUrl, entry.typeUrl, entry.value));
      return out;
    },
  };
  const generators: Record<string, ResourceGenerator> = { [DebugType.Syncz]: syncz, [DebugType.ConfigDump]: configDump };
  const debugPath = opts.debugPath;
  if (debugPath) {
    generators[DebugType.Debug] = {
      answersQuery: true,
      generate(proxy, watch) {
        const scope = scopeOf(proxy);
        if (watch.names.size !== 1) throw new XdsStatusError(grpc.status.INVALID_ARGUMENT, 'exactly one debug request is required');
        const [name] = watch.names as ReadonlySet<string>;
        const q = name!.indexOf('?');
        const path = (q < 0 ? name! : name!.slice(0, q)).replace(/^\/?(debug\/)?/, '');
        if (scope !== '' && !NAMESPACE_DEBUG_PATHS.has(path)) {
          throw new XdsStatusError(grpc.status.PERMISSION_DENIED, `the debug info is not available for current identity: namespace ${scope}`);
        }
        const body = debugPath(path, new URLSearchParams(q < 0 ? '' : name!.slice(q + 1)), scope === '' ? undefined : scope);
        return new Map([[name!, encodedResource(DebugType.Debug, name!, body)]]);
      },
    };
  }
  return generators;
}
