import * as grpc from '@grpc/grpc-js';
import type { AddressInfo } from 'node:net';
import { formatIssue, setRegexProgramSizeLimit, type Logger, type ObjectKey, type ValidationIssue } from '@sextant/api';
import {
  buildConfigDump,
  createAdminServer,
  createMetrics,
  createMonitoringServer,
  debugHandler,
  debugOutputSafe,
  encodeConfigDump,
  pushTriggerReason,
  registryEventType,
  type DebugSources,
  type Metrics,
  type ProxyState,
} from '@sextant/admin';
import { authenticate } from '@sextant/ca';
import { EndpointIndex, PushContext, isEndpointKind, jwksKey, splitEndpointChanges, type MeshConfig, type ProxyView } from '@sextant/model';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigStore, JwksResolver, createFolderSource, type ConfigSource, type StoreView } from '@sextant/sources';
import { NodeSchema, TypeUrl, decodeToJson, shortTypeName, toJson } from '@sextant/envoy';
import { envoyFilterApplyIssues, envoyFilterIssues, jwksToFetch, resourceProvenance, securityPolicyIssues } from '@sextant/translate';
import {
  ClassGenerators,
  DiscoveryServer,
  MemoryReclaimer,
  PushController,
  RejectionTracker,
  XdsStatusError,
  debugGenerators,
  proxyNamespace,
  type DiscoveryHooks,
  type ResourceGenerator,
  type StreamState,
  type XdsProxy,
} from '@sextant/xds';
import { parseDiscoveryFlags, type DiscoveryConfig } from './flags.js';
import { createLogger } from './log.js';
import { MeshTranslator, ProxyAddresses, endpointScopes, extensionConfigGenerator, meshScope, nameTableGenerator } from './mesh.js';
import { EnvoyFilterStatus } from './envoyfilter-status.js';
import { startSecureServices, type SecureExtras, type SecureServices } from './secure.js';
import type { KubeMode } from './kube.js';
import { version } from './version.js';

type Ctx = ReturnType<typeof PushContext.build>;

/** What a PushContext is built from: everything but the endpoint kinds, which the endpoint index holds. */
function configObjects(view: StoreView) {
  return view.kinds().filter((k) => !isEndpointKind(k)).flatMap((k) => view.list(k));
}

/** MeshConfig from YAML (the `mesh` key of Istio's `istio` ConfigMap, mounted as a file). */
function loadMeshConfig(file: string): MeshConfig {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`--mesh-config ${file}: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`--mesh-config ${file}: expected a YAML mapping (MeshConfig)`);
  return parsed as MeshConfig;
}

/** Shutdown budget (SIGTERM → exit within 10 s): ADS streams flush for up to 2 s, CSRs finish within 6 s. */
const ADS_FLUSH_MS = 2000;
const DRAIN_DEADLINE_MS = 6000;
/** How long a keepalive ping may wait for its answer before grpc-js drops the connection (its default: 20 s). */
const XDS_KEEPALIVE_TIMEOUT_MS = 60_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

const hostPort = (address: string, port: number) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/**
 * `sextant discovery`: sources → config store → PushContext → xDS, plus the
 * CA on the secure port, admin/debug, metrics and webhooks. Wiring only.
 */
export async function runDiscovery(argv: string[]): Promise<number> {
  const cfg = parseDiscoveryFlags(argv);
  const log = createLogger(cfg.logLevel);
  log.info({ version, config: { ...cfg } }, 'starting sextant discovery');
  const daemon = await startDaemon(cfg, log);
  const code = await new Promise<number>((resolve) => {
    const onSignal = (sig: string) => {
      log.info({ signal: sig }, 'shutting down: draining streams');
      resolve(0);
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  // Last resort: whatever still hangs, the process is gone within 10 s of the signal.
  const forced = setTimeout(() => {
    log.error({}, 'shutdown took longer than 9.5 s; exiting');
    process.exit(code);
  }, 9500);
  forced.unref();
  await daemon.stop();
  log.info({}, 'stopped');
  return code;
}

export interface Daemon {
  store: ConfigStore;
  xds: DiscoveryServer;
  stop(): Promise<void>;
}

export async function startDaemon(cfg: DiscoveryConfig, log: Logger): Promise<Daemon> {
  if (!cfg.configDir && !cfg.kubeconfig && !cfg.inCluster) {
    throw new Error('no config source: give --config-dir DIR and/or --kubeconfig FILE (or run in a pod)');
  }
  setRegexProgramSizeLimit(cfg.regexMaxProgramSize);
  const metrics = createMetrics();
  const meshConfig = cfg.meshConfigFile ? loadMeshConfig(cfg.meshConfigFile) : undefined;
  const store = new ConfigStore({ log: log.child({ component: 'store' }) });
  const sources: ConfigSource[] = [];
  const folder = cfg.configDir ? createFolderSource({ dir: cfg.configDir, log: log.child({ source: 'folder' }), maxFileBytes: cfg.configMaxFileBytes }) : undefined;
  if (folder) sources.push(folder);
  let kubeExtras: SecureExtras = {};
  let kube: KubeMode | undefined;
  if (cfg.kubeconfig || cfg.inCluster) {
    const { startKubeMode } = await import('./kube.js');
    kube = await startKubeMode(cfg, log);
    sources.push(kube.source);
    kubeExtras = kube.secureExtras;
  }

  let ready = false;
  metrics.build.set({ component: 'pilot', tag: version }, 1);
  // Push behaviour lives in libs/xds (the push controller and the class cache); the mesh part is injected.
  const translator = new MeshTranslator();
  // Where the connected proxies run: a workload change at an address no proxy runs at pushes nothing.
  const proxyAddresses = new ProxyAddresses(translator);
  const context = () => controller.context;
  const generators = new ClassGenerators<Ctx, ProxyView>(translator, context, log.child({ component: 'translate' }));
  const secure: SecureServices = await startSecureServices(cfg, log.child({ component: 'ca' }), metrics, () => store, kubeExtras);
  // NACKs traced to the config objects behind the rejected resources: /debug/config_issues, and their status (Kubernetes, leader only).
  const rejections = new RejectionTracker({
    log: log.child({ component: 'nacks' }),
    attribute: (proxy, typeUrl, rejected, detail, accepted) => {
      const push = controller.context;
      if (!push) return [];
      const view = generators.view(proxy, push);
      return rejected.flatMap((r) => {
        const before = accepted?.get(r.name);
        return resourceProvenance(push, view, typeUrl, r.name, decodeToJson(typeUrl, r.value), detail, before ? decodeToJson(typeUrl, before.value) : undefined);
      });
    },
    onChange: (changes) => {
      for (const c of changes) kube?.setRejection(c.object, c.message);
      metrics.configRejections.reset();
      for (const r of rejections.list()) for (const o of r.objects) metrics.configRejections.inc({ kind: o.kind });
    },
  });
  const pushStarted = new Map<string, number>();
  // Debug callers from outside the system namespace see only their own namespace (istiod: the mesh root namespace).
  const systemNamespace = () => meshConfig?.rootNamespace ?? cfg.namespace;
  const proxyState = (st: StreamState): ProxyState => ({
    connectionId: st.connectionId,
    proxyId: st.proxy.id,
    delta: st.delta,
    node: toJson(NodeSchema, st.proxy.node),
    namespace: proxyNamespace(st.proxy),
    types: st.types,
  });
  const debugSources: DebugSources = {
    syncz: () => xds.connections(),
    proxy: (id) => {
      const st = xds.streamState(id);
      return st ? proxyState(st) : undefined;
    },
    configIssues: () => ({
      rejected: sources.flatMap((s) => s.rejected().map((r) => ({ source: s.name, ...r, message: formatIssue(r) }))),
      // Model issues, and security rules that cannot be rendered (they fail closed).
      semantic: [...(controller.context?.issues ?? []), ...securityIssues, ...envoyFilterProblems, ...envoyFilterApplyIssues(controller.context)].map((i) => ({ ...i, message: formatIssue(i) })),
      // Config folder files not read (parse errors, over the size limit) and symbolic link loops.
      files: folder?.fileErrors() ?? [],
      // Config objects a connected proxy rejected resources built from (NACK), until it ACKs a later version.
      rejectedByProxy: rejections.list(),
      // Per proxy: what a proxy's data plane cannot express (MOSN), with the proxy ID.
      proxies: translator.proxyIssues(new Set(xds.connections().map((c) => c.connectionId))).map((i) => ({ ...i, message: formatIssue(i) })),
    }),
    pushStatus: () => ({ version: controller.context?.version, storeRevision: store.revision, xds: xds.metrics(), encoder: { size: generators.encoder.size, hits: generators.encoder.hits, misses: generators.encoder.misses, spliced: generators.encoder.spliced }, classCache: { units: generators.size, builds: generators.builds } }),
  };
  const debugResponder = debugHandler(debugSources);
  const xds: DiscoveryServer = new DiscoveryServer({
    generators: {
      ...countErrors({ ...generators.generators([TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment]), ...nameTableGenerator(generators, context), ...extensionConfigGenerator(generators, context), ...secure.generators }, metrics),
      // The debug types istioctl reads (their refusals are not internal errors).
      ...debugGenerators({
        connections: () => xds.connections(),
        streamState: (id) => xds.streamState(id),
        configDump: (st) => encodeConfigDump(buildConfigDump(proxyState(st))),
        systemNamespace,
        debugPath: (path, query, namespace) => {
          const r = debugResponder(path, query, namespace);
          // istiod's DebugGen prefixes a non-200 answer with its status as JSON.
          const body = (r.status === 200 ? '' : JSON.stringify({ statusCode: String(r.status) })) + (typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
          if (!debugOutputSafe(body)) {
            log.error({ path }, 'debug response withheld: it would have carried a private key');
            throw new XdsStatusError(grpc.status.INTERNAL, 'response withheld: it would have carried a private key');
          }
          return Buffer.from(body);
        },
      }),
    },
    hooks: { ...xdsHooks(metrics, rejections, pushStarted, proxyAddresses), drained: (bytes) => reclaimer.notePushed(bytes) },
    log: log.child({ component: 'xds' }),
    isReady: () => ready,
    authenticate: secure.adsAuthenticate,
    authorizeNode: secure.adsAuthorizeNode,
    // istiod's IstioControlPlaneInstance JSON: istioctl reads the instance ID and version from it.
    controlPlaneId: JSON.stringify({ Component: 'sextant', ID: cfg.podName, Info: { version, revision: cfg.revision, golang_version: '', status: 'Clean', tag: version } }),
    maxRequestBytes: cfg.xdsMaxRequestBytes,
    limits: cfg.xdsLimits,
    limitCooldownMs: cfg.xdsLimitCooldownMs,
    onLimitExceeded: (limit) => {
      metrics.xdsLimitExceeded.inc({ limit });
      reclaimer.noteLimitHit();
    },
  });
  // What refused requests leave behind is garbage and free malloc pages; give it back once the refusals stop (docs/xds.md, "Limits").
  const reclaimLog = log.child({ component: 'xds' });
  const reclaimer = new MemoryReclaimer({
    afterMs: cfg.xdsReclaimAfterMs,
    afterPushedBytes: cfg.xdsReclaimAfterPushedBytes,
    busy: () => xds.writesInFlight(),
    onReclaim: (r) => {
      metrics.xdsMemoryReclaims.inc();
      const mb = (b: number) => Math.round(b / 2 ** 20);
      const left = [r.hits ? `${r.hits} refused xDS streams` : '', r.pushedBytes >= cfg.xdsReclaimAfterPushedBytes && cfg.xdsReclaimAfterPushedBytes > 0 ? `${mb(r.pushedBytes)} MB of pushes` : ''].filter(Boolean).join(' and ');
      reclaimLog.info({ hits: r.hits, pushedMB: mb(r.pushedBytes), gc: r.gc, trimmed: r.trimmed, pauseMs: r.pauseMs, rssBeforeMB: mb(r.rssBefore), rssAfterMB: mb(r.rssAfter) }, `returned memory left by ${left}: RSS ${mb(r.rssBefore)} MB -> ${mb(r.rssAfter)} MB (paused ${r.pauseMs} ms)`);
    },
  });
  if (cfg.xdsReclaimAfterMs > 0 && !reclaimer.enabled) reclaimLog.warn({}, 'memory reclaim after xDS limit hits is unavailable here (neither a young-generation GC nor malloc_trim)');

  let lastIssues: string[] = [];
  // Endpoints, pods, nodes and WorkloadEntries, updated in place by their events (never a context rebuild).
  const endpointIndex = new EndpointIndex({ trustDomain: cfg.trustDomain });
  let securityIssues: ValidationIssue[] = [];
  // EnvoyFilter patches that cannot apply (skipped; the rest of the config is served).
  let envoyFilterProblems: ValidationIssue[] = [];
  // RequestAuthentication jwksUri: fetched here, shared by every proxy, inlined by translation (istiod's JwksResolver).
  const jwksResolver = new JwksResolver({
    log: log.child({ component: 'jwks' }),
    refreshIntervalMs: cfg.jwksRefreshIntervalMs,
    refreshOnFailureMs: cfg.jwksRefreshOnFailureMs,
    onChange: (keys) => {
      const ctx = controller.context;
      const changed = new Set(keys);
      const users = (ctx?.configs('RequestAuthentication') ?? []).filter((ra) =>
        ((ra.spec.jwtRules ?? []) as Array<{ jwksUri?: string; jwks_uri?: string; issuer: string }>).some((r) => changed.has(jwksKey(r.jwksUri ?? r.jwks_uri, r.issuer))),
      );
      controller.changed(users.map((ra) => ({ kind: 'RequestAuthentication', namespace: ra.namespace, name: ra.name })));
    },
  });
  let securityIssueObjects = new Map<string, { kind: string; namespace: string; name: string }>();
  // EnvoyFilter PatchesApplied conditions (Kubernetes, leader only): what each push context's builds applied, folded per EnvoyFilter generation.
  const envoyFilterStatus = kube ? new EnvoyFilterStatus((object, condition) => kube!.setPatchesApplied(object, condition)) : undefined;
  let statusContext: Ctx | undefined;
  /** Harvests the context being replaced (its builds are done) before following the new one. */
  const noteStatusContext = (ctx: Ctx | undefined) => {
    if (envoyFilterStatus && statusContext && statusContext !== ctx) envoyFilterStatus.harvest(statusContext);
    statusContext = ctx;
  };
  const controller: PushController<Ctx> = new PushController<Ctx>({
    build: (ver) =>
      PushContext.build(configObjects(store), { domainSuffix: cfg.domainSuffix, trustDomain: cfg.trustDomain, meshConfig, version: ver, endpointIndex, jwks: jwksResolver.snapshot() }),
    scope: (prev, next, changed) => meshScope(prev, next, changed, generators),
    endpointScopes: (ctx, services, addresses) => endpointScopes(ctx, services, addresses, generators, (ip) => proxyAddresses.has(ip)),
    push: (req, next) => {
      noteStatusContext(next);
      generators.advance(req);
      // The JWKS this config names: new ones are fetched (a push follows when they arrive).
      jwksResolver.want(jwksToFetch(next));
      reportIssues(next);
      metrics.services.set(next.allServices().length);
      metrics.virtualServices.set(next.configs('VirtualService').length);
      for (const r of new Set(req.configsUpdated?.size ? req.reason.map(pushTriggerReason) : ['global'])) metrics.pushTriggers.inc({ type: r });
      // Convergence is measured from the first change the push carries (istiod's PushRequest.Start).
      pushStarted.set(req.version, req.start ?? Date.now());
      if (pushStarted.size > 64) pushStarted.delete(pushStarted.keys().next().value!);
      xds.push(req);
    },
    onBuilt: (_ctx, seconds) => {
      metrics.pushContextBuild.observe(seconds);
      metrics.pushContextInit.observe(seconds);
    },
    debounceAfterMs: cfg.debounceAfterMs,
    debounceMaxMs: cfg.debounceMaxMs,
    edsDebounce: cfg.edsDebounce,
    log: log.child({ component: 'push' }),
  });

  function reportIssues(ctx: Ctx) {
    securityIssues = securityPolicyIssues(ctx);
    envoyFilterProblems = envoyFilterIssues(ctx);
    // Each AuthorizationPolicy with a rule that cannot be rendered gets a status condition (leader only), cleared when fixed.
    const byObject = new Map<string, { object: { kind: string; namespace: string; name: string }; reasons: string[] }>();
    for (const i of securityIssues) {
      const key = `${i.kind}/${i.namespace}/${i.name}`;
      let e = byObject.get(key);
      if (!e) byObject.set(key, (e = { object: { kind: i.kind, namespace: i.namespace ?? '', name: i.name }, reasons: [] }));
      e.reasons.push(`${i.field}: ${i.reason}`);
    }
    for (const [key, e] of byObject) kube?.setRejection(e.object, `security policy cannot be fully rendered; it fails closed: ${e.reasons.join('; ')}`);
    for (const [key, object] of securityIssueObjects) if (!byObject.has(key)) kube?.setRejection(object, undefined);
    securityIssueObjects = new Map([...byObject].map(([k, e]) => [k, e.object]));
    const now = [...ctx.issues, ...securityIssues, ...envoyFilterProblems].map(formatIssue);
    const before = new Set(lastIssues);
    for (const text of now) if (!before.has(text)) log.warn({ issue: text }, 'config issue');
    lastIssues = now;
  }

  for (const source of sources) {
    source.onBatch((batch) => {
      for (const ev of batch.events) {
        const reg = registryEventType(ev.object.kind);
        if (reg) metrics.registryEvents.inc({ type: reg, event: ev.type });
        else metrics.configEvents.inc({ type: ev.object.kind, event: ev.type });
      }
      const change = store.apply(batch);
      if (change) {
        // Endpoint objects update the index now and are pushed (EDS, to the watchers of the changed
        // clusters) after the debounce; one needing a full push (new identities) goes with the config.
        const { config, endpoints } = splitEndpointChanges(endpointIndex, change.changed as ObjectKey[], (k) => store.get(k.kind, k.namespace, k.name));
        if (endpoints) controller.endpointsChanged(endpoints.services.keys(), endpoints.proxyAddresses);
        if (config.length > 0) controller.changed(config);
      }
      updateRejected();
    });
  }
  function updateRejected() {
    metrics.configRejected.reset();
    for (const s of sources) for (const r of s.rejected()) metrics.configRejected.inc({ kind: r.kind });
  }

  // Servers first (ports are logged as soon as they are bound), readiness after the sources sync.
  // grpc-js refuses a larger message before reading it whole: the first line of defence (docs/xds.md, "Limits").
  // Keepalive: a ping every 30 s, as istiod's; but grpc-js pings busy connections too (Go's server, istiod's, pings only one
  // it has read nothing from for that long), and a busy client's answer waits behind the bytes it has not read yet. With
  // grpc-js's 20 s timeout, a cold connect of 1,000 proxies dropped dozens of connections that were receiving their config,
  // and each was sent all of it again (docs/xds.md, "Keepalive").
  const xdsServer = new grpc.Server({ 'grpc.max_receive_message_length': cfg.xdsMaxRequestBytes, 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': XDS_KEEPALIVE_TIMEOUT_MS });
  xds.addTo(xdsServer);
  // Our own listener: a client address in cooldown (docs/xds.md, "Limits") is refused at TCP accept.
  const xdsListener = await xds.listen(xdsServer, cfg.listenAddress, cfg.xdsPort, grpc.ServerCredentials.createInsecure());
  const xdsPort = xdsListener.port;
  log.info({ server: 'xds', address: hostPort(cfg.listenAddress, xdsPort) }, 'listening');

  const securePort = await secure.listen(xds);
  log.info({ server: 'secure', address: hostPort(cfg.listenAddress, securePort) }, 'listening');

  const admin = createAdminServer({
    host: cfg.listenAddress,
    port: cfg.httpPort,
    isReady: () => ready,
    log,
    systemNamespace: systemNamespace(),
    authenticate: async (bearerToken) => {
      const caller = await authenticate(secure.authenticators, { bearerToken });
      return { namespace: caller.namespace, serviceAccount: caller.serviceAccount };
    },
    debug: debugSources,
  });
  await admin.listen({ host: cfg.listenAddress, port: cfg.httpPort });
  log.info({ server: 'http', address: hostPort(cfg.listenAddress, (admin.server.address() as AddressInfo).port) }, 'listening');

  const monitoring = createMonitoringServer(metrics.registry);
  await monitoring.listen({ host: cfg.listenAddress, port: cfg.monitoringPort });
  log.info({ server: 'monitoring', address: hostPort(cfg.listenAddress, (monitoring.server.address() as AddressInfo).port) }, 'listening');

  const webhookPort = await secure.listenWebhooks(store);
  kube?.startWriters(() => secure.ca.rootCertPem(), (listener) => secure.ca.onChange(listener));
  log.info({ server: 'webhook', address: hostPort(cfg.listenAddress, webhookPort) }, 'listening');

  metrics.live.expiredNonces = () => xds.metrics().staleNonces;
  const xdsGauge = setInterval(() => {
    // A rejection that leaves the served config unchanged makes no batch; refresh the gauge here too.
    updateRejected();
  }, 5000);
  xdsGauge.unref();
  // Builds happen as proxies ask: the EnvoyFilter conditions are recomputed every 2 s (written only when they change).
  const envoyFilterStatusTimer = envoyFilterStatus
    ? setInterval(() => {
        const ctx = controller.context;
        noteStatusContext(ctx);
        if (ready && ctx) envoyFilterStatus.update(ctx, Date.now());
      }, 2000)
    : undefined;
  envoyFilterStatusTimer?.unref();

  await Promise.all(sources.map((s) => s.start()));
  controller.initialize();
  noteStatusContext(controller.context);
  ready = true;
  xds.push({ full: true, version: controller.context!.version, reason: ['ready'] });
  log.info({ version: controller.context!.version, objects: store.size(), services: controller.context!.allServices().length }, 'ready: every source synced once');

  return {
    store,
    xds,
    async stop() {
      clearInterval(xdsGauge);
      if (envoyFilterStatusTimer) clearInterval(envoyFilterStatusTimer);
      reclaimer.close();
      rejections.stop();
      controller.stop();
      jwksResolver.stop();
      // 1. No new work: ADS refuses new streams, and both gRPC servers close their listeners and send
      //    GOAWAY, so clients open their next stream or CSR on a new connection (another replica).
      const adsClosed = xds.close(ADS_FLUSH_MS);
      const grpcClosed = Promise.all([xdsListener.close(), new Promise<void>((r) => xdsServer.tryShutdown(() => r())), secure.drain()]);
      log.info({ csrsInFlight: secure.csrsInFlight(), streams: xds.metrics().connections }, 'draining: listeners closed, in-flight CSRs finishing, ADS streams ending with OK');
      // 2. ADS streams flush what was written and end with OK (docs/xds.md, "Shutdown"); CSRs already
      //    accepted finish. The servers are closed once their last call has ended.
      await adsClosed;
      const drained = await Promise.race([grpcClosed.then(() => true), sleep(DRAIN_DEADLINE_MS).then(() => false)]);
      if (!drained) log.warn({ csrsInFlight: secure.csrsInFlight(), deadlineMs: DRAIN_DEADLINE_MS }, 'drain deadline passed; closing the remaining connections');
      xdsServer.forceShutdown();
      await secure.stop();
      await kube?.stop();
      await Promise.all(sources.map((s) => s.stop().catch((err: Error) => log.warn({ source: s.name, err: err.message }, 'source stop failed'))));
      await admin.close();
      await monitoring.close();
    },
  };
}

/** Generation failures count as istiod's internal xDS errors (the server logs them and sends nothing for the type). */
function countErrors(gens: Record<string, ResourceGenerator>, metrics: Metrics): Record<string, ResourceGenerator> {
  const out: Record<string, ResourceGenerator> = {};
  for (const [typeUrl, gen] of Object.entries(gens)) {
    const wrapped: ResourceGenerator & { onChange?: unknown } = {
      generate: (proxy, watch, req) => {
        try {
          return gen.generate(proxy, watch, req);
        } catch (err) {
          metrics.xdsInternalErrors.inc();
          throw err;
        }
      },
    };
    // The server subscribes to a generator's change announcements (EndpointCache); keep them.
    const src = gen as { onChange?: (...a: unknown[]) => void };
    if (typeof src.onChange === 'function') wrapped.onChange = src.onChange.bind(gen);
    out[typeUrl] = wrapped;
  }
  return out;
}

const metricType = (typeUrl: string) => shortTypeName[typeUrl] ?? typeUrl;

/** The xDS server's hooks: istiod's pilot_* metrics on the real path, and NACK attribution. */
function xdsHooks(metrics: Metrics, rejections: RejectionTracker, pushStarted: Map<string, number>, addresses: ProxyAddresses): DiscoveryHooks {
  const byVersion = new Map<string, number>();
  // Label children bound once per type: every response is counted, so no label hashing per call.
  const perType = new Map<string, { pushes: { inc(): void }; time: { observe(v: number): void }; size: { observe(v: number): void } }>();
  const istioVersion = (p: XdsProxy) => {
    const v = p.metadata['ISTIO_VERSION'];
    return typeof v === 'string' && v ? v : 'unknown';
  };
  const count = (p: XdsProxy, d: number) => {
    const v = istioVersion(p);
    const n = (byVersion.get(v) ?? 0) + d;
    byVersion.set(v, n);
    metrics.xdsConnections.set({ version: v }, n);
  };
  return {
    connected: (p) => {
      count(p, 1);
      addresses.add(p);
    },
    disconnected: (p) => {
      count(p, -1);
      addresses.delete(p);
      rejections.disconnected(p);
    },
    responded: (_p, typeUrl, _version, bytes, seconds) => {
      let c = perType.get(typeUrl);
      if (!c) {
        const type = metricType(typeUrl);
        perType.set(typeUrl, (c = { pushes: metrics.xdsPushes.labels(type), time: metrics.xdsPushTime.labels(type), size: metrics.xdsConfigSize.labels(type) }));
      }
      c.pushes.inc();
      c.time.observe(seconds);
      c.size.observe(bytes);
    },
    pushed: (_p, req) => {
      const started = pushStarted.get(req.version);
      if (started !== undefined) metrics.proxyConvergence.observe(Math.max(0, (Date.now() - started) / 1000));
    },
    acked: (p, typeUrl, v, sent) => rejections.acked(p, typeUrl, v, sent),
    nacked: (p, nack) => {
      metrics.xdsRejects.inc({ type: metricType(nack.typeUrl) });
      rejections.nacked(p, nack);
    },
  };
}
