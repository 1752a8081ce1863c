import { parseArgs } from 'node:util';
import { defaultXdsLimits, type EdsDebounce, type XdsLimits } from '@sextant/xds';

/**
 * The daemon's flags (interface contract in docs/architecture.md). Every flag
 * can also come from an environment variable: `--xds-port` ← `SEXTANT_XDS_PORT`.
 */
const discoveryFlags = {
  'config-dir': { type: 'string' },
  // Config folder and regex limits (docs/config-validation.md).
  'config-max-file-size': { type: 'string', default: '4Mi' },
  'regex-max-program-size': { type: 'string', default: '100' },
  kubeconfig: { type: 'string' },
  'listen-address': { type: 'string', default: '0.0.0.0' },
  'xds-port': { type: 'string', default: '15010' },
  'secure-port': { type: 'string', default: '15012' },
  'monitoring-port': { type: 'string', default: '15014' },
  'http-port': { type: 'string', default: '8080' },
  'webhook-port': { type: 'string', default: '15017' },
  'trust-domain': { type: 'string', default: 'cluster.local' },
  'domain-suffix': { type: 'string', default: 'cluster.local' },
  'ca-dir': { type: 'string' },
  'jwks-file': { type: 'string' },
  'jwt-issuer': { type: 'string' },
  'max-cert-lifetime': { type: 'string', default: '2160h' },
  'agentless-sds': { type: 'boolean', default: false },
  'dns-names': { type: 'string', default: 'istiod.istio-system.svc,sextant.istio-system.svc' },
  // Lower than istiod's 100ms / 10s: an incremental push costs what changed, so little is saved by waiting (docs/xds.md, "Debounce").
  'debounce-after': { type: 'string', default: '10ms' },
  'debounce-max': { type: 'string', default: '1s' },
  // An endpoint change after a quiet period goes out at once; `true` debounces it like config, as istiod does (docs/xds.md, "Debounce").
  'eds-debounce': { type: 'string', default: 'leading' },
  'jwks-refresh-interval': { type: 'string', default: '20m' },
  'jwks-refresh-interval-on-failure': { type: 'string', default: '1m' },
  'log-level': { type: 'string', default: 'info' },
  namespace: { type: 'string' },
  'pod-name': { type: 'string' },
  'mesh-config': { type: 'string' },
  revision: { type: 'string', default: '' },
  'proxy-hub': { type: 'string', default: 'docker.io/istio' },
  'proxy-tag': { type: 'string', default: '1.28.0' },
  'mesh-id': { type: 'string' },
  'cluster-id': { type: 'string', default: 'Kubernetes' },
  cni: { type: 'boolean', default: false },
  'leader-election': { type: 'boolean', default: true },
  'discovery-address': { type: 'string', default: 'istiod.istio-system.svc:15012' },
  // Per-client xDS limits (docs/xds.md, "Limits"): far above a real proxy, bounded for a hostile one.
  'xds-max-request-bytes': { type: 'string', default: '4Mi' },
  'xds-max-names-per-request': { type: 'string', default: String(defaultXdsLimits.maxNamesPerRequest) },
  'xds-max-names-per-stream': { type: 'string', default: String(defaultXdsLimits.maxNamesPerStream) },
  'xds-max-node-bytes': { type: 'string', default: '1Mi' },
  'xds-max-streams-per-connection': { type: 'string', default: String(defaultXdsLimits.maxStreamsPerConnection) },
  'xds-max-streams-per-address': { type: 'string', default: String(defaultXdsLimits.maxStreamsPerAddress) },
  'xds-max-opening-streams-per-address': { type: 'string', default: String(defaultXdsLimits.maxOpeningStreamsPerAddress) },
  'xds-max-unknown-types': { type: 'string', default: String(defaultXdsLimits.maxUnknownTypes) },
  'xds-max-pending-bytes': { type: 'string', default: '256Mi' },
  'xds-limit-cooldown': { type: 'string', default: '1s' },
  'xds-reclaim-after': { type: 'string', default: '1s' },
  'xds-reclaim-after-pushed': { type: 'string', default: '1Gi' },
} as const;

export type DiscoveryFlagName = keyof typeof discoveryFlags;

export interface DiscoveryConfig {
  configDir: string | undefined;
  /** Largest file the folder source reads, in bytes. */
  configMaxFileBytes: number;
  /** Largest RE2 program size of an accepted regex (Envoy's re2.max_program_size.error_level). */
  regexMaxProgramSize: number;
  kubeconfig: string | undefined;
  inCluster: boolean;
  listenAddress: string;
  xdsPort: number;
  securePort: number;
  monitoringPort: number;
  httpPort: number;
  webhookPort: number;
  trustDomain: string;
  domainSuffix: string;
  caDir: string | undefined;
  jwksFile: string | undefined;
  jwtIssuer: string | undefined;
  maxCertLifetimeSeconds: number;
  agentlessSds: boolean;
  dnsNames: string[];
  debounceAfterMs: number;
  debounceMaxMs: number;
  edsDebounce: EdsDebounce;
  /** How often fetched RequestAuthentication JWKS are fetched again (istiod's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL). */
  jwksRefreshIntervalMs: number;
  /** How soon a failed JWKS fetch is retried. */
  jwksRefreshOnFailureMs: number;
  logLevel: string;
  namespace: string;
  podName: string;
  /** MeshConfig YAML file (the chart mounts the `istio` ConfigMap's `mesh` key). */
  meshConfigFile: string | undefined;
  revision: string;
  proxyHub: string;
  proxyTag: string;
  meshId: string;
  clusterId: string;
  cni: boolean;
  leaderElection: boolean;
  /** host:port injected sidecars use for config and certificates. */
  discoveryAddress: string;
  /** Largest gRPC message the ADS servers accept (grpc-js max receive size and the ADS decoder). */
  xdsMaxRequestBytes: number;
  xdsLimits: XdsLimits;
  /** Base cooldown for a client address that keeps going over limits (0 turns it off). */
  xdsLimitCooldownMs: number;
  /** Quiet time after xDS limit hits before the daemon returns the refused requests' memory (young GC + malloc_trim); 0 = never. */
  xdsReclaimAfterMs: number;
  /** Bytes pushed since the last reclaim after which a quiet push queue reclaims too (0: never). */
  xdsReclaimAfterPushedBytes: number;
}

export class FlagError extends Error {}

function envName(flag: string): string {
  return 'SEXTANT_' + flag.toUpperCase().replace(/-/g, '_');
}

/** Parses "100ms", "10s", "5m", "24h" or a number of milliseconds. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new FlagError(`--${flag}: "${value}" is not a duration (e.g. 100ms, 10s, 5m, 24h)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
}

/** Parses a byte count: "4194304", "512Ki", "4Mi", "1Gi" (or "4MiB"); `min` 0 where 0 turns something off. */
export function parseBytes(flag: string, value: string, min = 1): number {
  const m = /^(\d+)(?:(Ki|Mi|Gi)B?|B)?$/.exec(value.trim());
  const n = m ? Number(m[1]) * { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? '']! : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new FlagError(`--${flag}: "${value}" is not a size in bytes (e.g. 4194304, 512Ki, 4Mi)`);
  return n;
}

function parseCount(flag: string, value: string): number {
  const n = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new FlagError(`--${flag}: "${value}" is not a positive integer`);
  return n;
}

function parseEdsDebounce(value: string): EdsDebounce {
  if (value === 'leading' || value === 'true') return value;
  throw new FlagError(`--eds-debounce: "${value}" is not one of leading (push an endpoint change after a quiet period at once) or true (debounce it like config, as istiod)`);
}

function parsePort(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new FlagError(`--${flag}: "${value}" is not a port (0-65535; 0 picks a free one)`);
  return n;
}

export function parseDiscoveryFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): DiscoveryConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options: discoveryFlags, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new FlagError((err as Error).message);
  }
  // A flag given on the command line wins; otherwise its SEXTANT_* variable; otherwise the default.
  const given = new Set(argv.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]!));
  const get = (flag: DiscoveryFlagName): string | undefined => {
    if (!given.has(flag) && env[envName(flag)] !== undefined) return env[envName(flag)];
    const v = values[flag];
    return typeof v === 'boolean' ? String(v) : v;
  };
  const bool = (flag: DiscoveryFlagName) => {
    const v = get(flag);
    return v === 'true' || v === '1';
  };
  const inCluster = !!env.KUBERNETES_SERVICE_HOST && !get('config-dir') && !get('kubeconfig');
  return {
    configDir: get('config-dir'),
    configMaxFileBytes: parseBytes('config-max-file-size', get('config-max-file-size')!),
    regexMaxProgramSize: parseCount('regex-max-program-size', get('regex-max-program-size')!),
    kubeconfig: get('kubeconfig'),
    inCluster,
    listenAddress: get('listen-address')!,
    xdsPort: parsePort('xds-port', get('xds-port')!),
    securePort: parsePort('secure-port', get('secure-port')!),
    monitoringPort: parsePort('monitoring-port', get('monitoring-port')!),
    httpPort: parsePort('http-port', get('http-port')!),
    webhookPort: parsePort('webhook-port', get('webhook-port')!),
    trustDomain: get('trust-domain')!,
    domainSuffix: get('domain-suffix')!,
    caDir: get('ca-dir'),
    jwksFile: get('jwks-file'),
    jwtIssuer: get('jwt-issuer'),
    maxCertLifetimeSeconds: parseDuration('max-cert-lifetime', get('max-cert-lifetime')!) / 1000,
    agentlessSds: bool('agentless-sds'),
    dnsNames: get('dns-names')!.split(',').map((s) => s.trim()).filter(Boolean),
    debounceAfterMs: parseDuration('debounce-after', get('debounce-after')!),
    debounceMaxMs: parseDuration('debounce-max', get('debounce-max')!),
    edsDebounce: parseEdsDebounce(get('eds-debounce')!),
    jwksRefreshIntervalMs: parseDuration('jwks-refresh-interval', get('jwks-refresh-interval')!),
    jwksRefreshOnFailureMs: parseDuration('jwks-refresh-interval-on-failure', get('jwks-refresh-interval-on-failure')!),
    logLevel: get('log-level')!,
    namespace: get('namespace') ?? env.POD_NAMESPACE ?? 'istio-system',
    podName: get('pod-name') ?? env.POD_NAME ?? `sextant-${process.pid}`,
    meshConfigFile: get('mesh-config'),
    revision: get('revision')!,
    proxyHub: get('proxy-hub')!,
    proxyTag: get('proxy-tag')!,
    meshId: get('mesh-id') ?? get('trust-domain')!,
    clusterId: get('cluster-id')!,
    cni: bool('cni'),
    leaderElection: bool('leader-election'),
    discoveryAddress: get('discovery-address')!,
    xdsMaxRequestBytes: parseBytes('xds-max-request-bytes', get('xds-max-request-bytes')!),
    xdsLimitCooldownMs: parseDuration('xds-limit-cooldown', get('xds-limit-cooldown')!),
    xdsReclaimAfterMs: parseDuration('xds-reclaim-after', get('xds-reclaim-after')!),
    xdsReclaimAfterPushedBytes: parseBytes('xds-reclaim-after-pushed', get('xds-reclaim-after-pushed')!, 0),
    xdsLimits: {
      maxNamesPerRequest: parseCount('xds-max-names-per-request', get('xds-max-names-per-request')!),
      maxNamesPerStream: parseCount('xds-max-names-per-stream', get('xds-max-names-per-stream')!),
      maxNodeBytes: parseBytes('xds-max-node-bytes', get('xds-max-node-bytes')!),
      maxStreamsPerConnection: parseCount('xds-max-streams-per-connection', get('xds-max-streams-per-connection')!),
      maxStreamsPerAddress: parseCount('xds-max-streams-per-address', get('xds-max-streams-per-address')!),
      maxOpeningStreamsPerAddress: parseCount('xds-max-opening-streams-per-address', get('xds-max-opening-streams-per-address')!),
      maxUnknownTypes: parseCount('xds-max-unknown-types', get('xds-max-unknown-types')!),
      maxPendingBytes: parseBytes('xds-max-pending-bytes', get('xds-max-pending-bytes')!),
    },
  };
}

export const translateFlags = {
  f: { type: 'string', short: 'f', multiple: true },
  filename: { type: 'string', multiple: true },
  proxy: { type: 'string' },
  metadata: { type: 'string' },
  type: { type: 'string', default: 'all' },
  o: { type: 'string', short: 'o', default: 'json' },
  output: { type: 'string' },
  'domain-suffix': { type: 'string', default: 'cluster.local' },
  'trust-domain': { type: 'string', default: 'cluster.local' },
} as const;
