/**
 * The in-process feature tier (ARCHITECTURE.md "Tests"; Contour's feature
 * tests are the model): the real pipeline (config store, push controller with
 * its debounce, PushContext, class cache, DiscoveryServer on a real gRPC
 * server at 127.0.0.1:0), fed through the ConfigSource interface. A test
 * applies or deletes objects and gets back the version of the push that
 * carries the change; it then reads a proxy's stream until a response of that
 * version arrives. Nothing sleeps: every wait is on an event, with a deadline.
 *
 * The mesh adapter (how a proxy is translated, and what a change touches) is
 * injected, as the daemon injects it.
 */
import * as grpc from '@grpc/grpc-js';
import { keyString, silentLogger, validateObject, type ConfigObject, type Logger, type ObjectKey, type ValidationIssue } from '@sextant/api';
import { TypeUrl, type DiscoveryResponse } from '@sextant/envoy';
import { EndpointIndex, PushContext, isEndpointKind, splitEndpointChanges, type MeshConfig, type PushContext as PushContextView } from '@sextant/model';
import { ConfigStore, type ConfigBatch, type ConfigEvent, type ConfigSource } from '@sextant/sources';
import { ClassGenerators, DiscoveryServer, PushController, type ProxyTranslator, type PushRequest, type PushScope } from '@sextant/xds';
import { DOMAIN_SUFFIX, FixtureError, type RawObject } from './push.js';
import { SotwClient, decodeResources, type DecodedResource, type NodeInit } from './xds-client.js';

export type FeatureContext = PushContextView;

export interface FeatureOptions<View extends object> {
  /** The mesh side of generation (the daemon's MeshTranslator). */
  translator: ProxyTranslator<FeatureContext, View>;
  /** What a change touches (the daemon's meshScope). */
  scope(previous: FeatureContext, next: FeatureContext, changed: readonly ObjectKey[], generators: ClassGenerators<FeatureContext, View>): PushScope;
  /** The endpoint path (the daemon's endpointScopes): endpoint changes applied in place, pushed without a build. */
  endpointScopes?(ctx: FeatureContext, services: ReadonlySet<string>, proxies: ReadonlySet<string>, generators: ClassGenerators<FeatureContext, View>): PushScope[];
  /** Objects present before the first push. */
  objects?: RawObject[];
  meshConfig?: MeshConfig;
  /** The real debounce runs; short by default so tests are quick (the daemon's defaults are flags). */
  debounceAfterMs?: number;
  debounceMaxMs?: number;
  log?: Logger;
}

/**
 * What one apply/delete did: the version of the push context built from it
 * and the push it caused (none when nothing depended on it); for a change to
 * endpoints only, no context is built: the version of the endpoint push.
 */
export interface Change {
  version: string;
  push: PushRequest | undefined;
}

/** A ConfigSource whose objects the test sets: the same events the folder and Kubernetes sources yield. */
export class FeatureSource implements ConfigSource {
  readonly name = 'feature';
  private readonly objects = new Map<string, ConfigObject>();
  private readonly listeners = new Set<(batch: ConfigBatch) => void>();
  private synced = false;

  async start(): Promise<void> {
    this.synced = true;
  }
  hasSynced(): boolean {
    return this.synced;
  }
  onBatch(listener: (batch: ConfigBatch) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  rejected(): ReadonlyArray<ValidationIssue & { key: ObjectKey }> {
    return [];
  }
  async stop(): Promise<void> {}

  /** Adds or replaces objects, in one batch. Throws FixtureError for an object that does not validate. */
  apply(raws: RawObject[]): void {
    const events: ConfigEvent[] = [];
    for (const o of validate(raws)) {
      const key = keyString(keyOf(o));
      const old = this.objects.get(key);
      this.objects.set(key, o);
      events.push(old ? { type: 'update', object: o, old } : { type: 'add', object: o });
    }
    this.emit(events);
  }

  /** Deletes objects (by kind, namespace and name), in one batch. */
  delete(raws: RawObject[]): void {
    const events: ConfigEvent[] = [];
    for (const o of validate(raws)) {
      const key = keyString(keyOf(o));
      const old = this.objects.get(key);
      if (!old) throw new Error(`delete: ${key} was never applied`);
      this.objects.delete(key);
      events.push({ type: 'delete', object: old });
    }
    this.emit(events);
  }

  private emit(events: ConfigEvent[]): void {
    if (events.length === 0) return;
    for (const l of this.listeners) l({ source: this.name, events });
  }
}

function validate(raws: RawObject[]): ConfigObject[] {
  const out: ConfigObject[] = [];
  const issues: ValidationIssue[] = [];
  for (const raw of raws) {
    const res = validateObject(raw, { defaultNamespace: 'default' });
    if (res.ok) out.push(res.object);
    else issues.push(...res.issues);
  }
  if (issues.length) throw new FixtureError(issues);
  return out;
}

const keyOf = (o: ConfigObject): ObjectKey => ({ kind: o.kind, namespace: o.metadata.namespace ?? '', name: o.metadata.name });

export interface Feature<View extends object> {
  /** host:port of the plaintext ADS server. */
  address: string;
  source: FeatureSource;
  store: ConfigStore;
  controller: PushController<FeatureContext>;
  generators: ClassGenerators<FeatureContext, View>;
  server: DiscoveryServer;
  /** Every push sent, in order. */
  pushes: PushRequest[];
  /** The current push version. */
  readonly version: string;
  /** Applies objects through the source; resolves once the push context built from them exists (and its push, if any, is sent). */
  apply(...objects: RawObject[]): Promise<Change>;
  delete(...objects: RawObject[]): Promise<Change>;
  /** A SotW ADS stream for `node` (closed by stop()). */
  connect(node: NodeInit): ProxyStream;
  stop(): Promise<void>;
}

/** Starts the pipeline with `objects` already applied and the first push context built. */
export async function startFeature<View extends object>(opts: FeatureOptions<View>): Promise<Feature<View>> {
  const log = opts.log ?? silentLogger;
  const source = new FeatureSource();
  const store = new ConfigStore({ log });
  const pushes: PushRequest[] = [];
  const built = new Set<(version: string) => void>();
  let controller: PushController<FeatureContext>;
  const generators = new ClassGenerators<FeatureContext, View>(opts.translator, () => controller.context, log);
  const server = new DiscoveryServer({
    generators: generators.generators([TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment]),
    log,
    isReady: () => true,
  });
  controller = new PushController<FeatureContext>({
    build: (version) =>
      PushContext.build(
        store.kinds().filter((k) => !isEndpointKind(k)).flatMap((k) => store.list(k)),
        { domainSuffix: DOMAIN_SUFFIX, trustDomain: DOMAIN_SUFFIX, meshConfig: opts.meshConfig, version, endpointIndex },
      ),
    scope: (previous, next, changed) => opts.scope(previous, next, changed, generators),
    ...(opts.endpointScopes ? { endpointScopes: (ctx: FeatureContext, services: ReadonlySet<string>, proxies: ReadonlySet<string>) => opts.endpointScopes!(ctx, services, proxies, generators) } : {}),
    push: (req) => {
      generators.advance(req);
      pushes.push(req);
      server.push(req);
      // The endpoint path builds nothing: its push is what a change waits for.
      if (req.reason[0] === 'endpoints' || req.reason[0] === 'proxy') for (const w of [...built]) w(req.version);
    },
    // Called synchronously inside the rebuild: a waiter resolved here runs after the push that follows it.
    onBuilt: (ctx) => {
      for (const w of [...built]) w(ctx.version);
    },
    debounceAfterMs: opts.debounceAfterMs ?? 10,
    debounceMaxMs: opts.debounceMaxMs ?? 100,
    log,
  });
  // As the daemon: endpoint objects go to the index, the rest to the controller.
  const endpointIndex = new EndpointIndex({ trustDomain: DOMAIN_SUFFIX });
  source.onBatch((batch) => {
    const change = store.apply(batch);
    if (!change) return;
    const { config, endpoints } = splitEndpointChanges(endpointIndex, change.changed as ObjectKey[], (k) => store.get(k.kind, k.namespace, k.name));
    if (endpoints) controller.endpointsChanged(endpoints.services.keys(), endpoints.proxyAddresses);
    if (config.length > 0) controller.changed(config);
  });
  await source.start();
  if (opts.objects?.length) source.apply(opts.objects);
  controller.initialize();

  const grpcServer = new grpc.Server();
  server.addTo(grpcServer);
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const address = `127.0.0.1:${port}`;
  const streams = new Set<ProxyStream>();

  /** Resolves with the push context built after `act` (the next rebuild), and the push it caused. */
  const change = (act: () => void): Promise<Change> =>
    new Promise<Change>((resolve, reject) => {
      const before = pushes.length;
      const deadline = setTimeout(() => {
        built.delete(waiter);
        reject(new Error('no push context was built within 5 s of the change'));
      }, 5000);
      const waiter = (version: string) => {
        built.delete(waiter);
        clearTimeout(deadline);
        // The push (if any) is sent right after the build, in the same turn: look once that turn is over.
        queueMicrotask(() => resolve({ version, push: pushes.slice(before).find((p) => p.version === version) }));
      };
      built.add(waiter);
      try {
        act();
      } catch (err) {
        built.delete(waiter);
        clearTimeout(deadline);
        reject(err as Error);
      }
    });

  return {
    address,
    source,
    store,
    controller,
    generators,
    server,
    pushes,
    get version() {
      return controller.context?.version ?? '';
    },
    apply: (...objects) => change(() => source.apply(objects)),
    delete: (...objects) => change(() => source.delete(objects)),
    connect(node) {
      const s = new ProxyStream(address, node);
      streams.add(s);
      return s;
    },
    async stop() {
      for (const s of streams) s.close();
      controller.stop();
      await server.close(200);
      grpcServer.forceShutdown();
    },
  };
}

/**
 * A proxy's SotW stream that ACKs every response and keeps the latest
 * resources per type, so a test can ask "what does the proxy have at version v".
 */
export class ProxyStream {
  readonly client: SotwClient;
  /** Latest accepted response per type URL. */
  readonly latest = new Map<string, DiscoveryResponse>();
  /** Every response received, in order (type URL and version). */
  readonly seen: Array<{ typeUrl: string; version: string }> = [];
  private readonly names = new Map<string, string[]>();

  constructor(address: string, node: NodeInit) {
    this.client = new SotwClient(address, { node });
  }

  /** Subscribes to a type (wildcard when `names` is omitted). */
  watch(typeUrl: string, names: string[] = []): void {
    this.names.set(typeUrl, names);
    this.client.request(typeUrl, { resourceNames: names });
  }

  /**
   * Reads responses (ACKing each) until `typeUrl` has one whose version is
   * `version` (or, without a version, the next one); returns its resources.
   * Bounded: at most `max` responses, each within the client's deadline.
   */
  async until(typeUrl: string, version?: string, max = 50): Promise<DecodedResource[]> {
    const have = this.latest.get(typeUrl);
    if (version !== undefined && have?.versionInfo === version) return decodeResources(have);
    for (let i = 0; i < max; i++) {
      const resp = await this.client.next();
      this.client.ack(resp, this.names.get(resp.typeUrl) ?? []);
      this.latest.set(resp.typeUrl, resp);
      this.seen.push({ typeUrl: resp.typeUrl, version: resp.versionInfo });
      if (resp.typeUrl === typeUrl && (version === undefined || resp.versionInfo === version)) return decodeResources(resp);
    }
    throw new Error(`no ${typeUrl} response at version ${version ?? '(any)'} within ${max} responses`);
  }

  close(): void {
    this.client.close();
  }
}
