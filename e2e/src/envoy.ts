/**
 * Runs a real Envoy ($SEXTANT_CACHE/bin/envoy) bootstrapped against an ADS
 * server on 127.0.0.1, for tests. The admin interface listens on a free
 * loopback port; the process is always killed at the end (stop(), or process
 * exit as a last resort).
 */
import type { ChildProcess } from 'node:child_process';
import { spawnManaged } from './child.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toolPath } from './tools.js';

export interface EnvoyOptions {
  /** host:port of the ADS server (plaintext gRPC). */
  adsAddress: string;
  nodeId: string;
  /** node.cluster (default `sextant-test`). */
  cluster?: string;
  metadata?: Record<string, unknown>;
  /** DELTA_GRPC instead of GRPC. */
  delta?: boolean;
  /** 0 (default) picks a free port. */
  adminPort?: number;
  /** Deep-merged into the generated bootstrap (JSON form). */
  bootstrapExtra?: Record<string, unknown>;
  /** Log level (default warning). */
  logLevel?: string;
  /** Extra command-line arguments. */
  args?: string[];
  /** Run inside this network namespace (`ip netns exec NS`); the admin API then listens on `adminHost`. */
  netns?: string;
  /** Address of the admin API (default 127.0.0.1). */
  adminHost?: string;
  /** Run with this group ID (root's user ID kept), so iptables can exempt Envoy's own connections as Istio's 1337 rule does. */
  gid?: number;
}

export interface RunningEnvoy {
  adminUrl: string;
  /** The bootstrap written for this instance. */
  bootstrap: Record<string, unknown>;
  /** Resolves once a listener of that name is active, with its bound address (deadline). */
  waitForListener(name: string, timeoutMs?: number): Promise<{ address: string; port: number }>;
  /** GET /config_dump as JSON. */
  configDump(): Promise<ConfigDump>;
  /** GET /stats as name → value. */
  stats(): Promise<Record<string, number | string>>;
  /** Polls stats until the predicate holds (deadline). */
  waitForStat(pred: (stats: Record<string, number | string>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, number | string>>;
  /** GET any admin path as text. */
  admin(path: string): Promise<string>;
  /** Everything Envoy wrote to stderr/stdout so far. */
  output(): string;
  stop(): Promise<void>;
}

export interface ConfigDump {
  configs: ({ '@type': string } & Record<string, unknown>)[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = isObject(cur) && isObject(v) ? merge(cur, v) : v;
  }
  return out;
}

/** A static cluster of one address speaking HTTP/2 (gRPC), as a bootstrap's xDS and SDS clusters; `extra` adds fields (a transport socket). */
export function grpcCluster(name: string, host: string, port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    ...extra,
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }] },
  };
}

export function envoyBootstrap(opts: EnvoyOptions): Record<string, unknown> {
  const [host, portText] = splitHostPort(opts.adsAddress);
  const bootstrap: Record<string, unknown> = {
    node: { id: opts.nodeId, cluster: opts.cluster ?? 'sextant-test', metadata: opts.metadata ?? {} },
    admin: { address: { socket_address: { address: opts.adminHost ?? '127.0.0.1', port_value: opts.adminPort ?? 0 } } },
    dynamic_resources: {
      ads_config: {
        api_type: opts.delta ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        set_node_on_first_message_only: true,
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }],
      },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [grpcCluster('xds-grpc', host, Number(portText))],
    },
  };
  return opts.bootstrapExtra ? merge(bootstrap, opts.bootstrapExtra) : bootstrap;
}

function splitHostPort(address: string): [string, string] {
  const i = address.lastIndexOf(':');
  if (i < 0) throw new Error(`adsAddress ${address} is not host:port`);
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), address.slice(i + 1)];
}

async function until<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs: number, proc?: ChildProcess, output?: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr = '';
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`envoy exited (code ${proc.exitCode}) while waiting for ${what}\n${output?.() ?? ''}`);
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr})` : ''}\n${output?.().slice(-4000) ?? ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startEnvoy(opts: EnvoyOptions): Promise<RunningEnvoy> {
  const bin = toolPath('envoy');
  if (!bin) throw new Error('envoy is not installed; run `make tools` (scripts/install-envoy.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'sextant-envoy-'));
  const bootstrap = envoyBootstrap(opts);
  const bootstrapPath = join(dir, 'bootstrap.json');
  const adminPath = join(dir, 'admin-address');
  writeFileSync(bootstrapPath, JSON.stringify(bootstrap, null, 2));
  const baseId = 10_000 + Math.floor(Math.random() * 1_000_000);
  const args = [
    '-c', bootstrapPath,
    '--base-id', String(baseId),
    '--disable-hot-restart',
    '-l', opts.logLevel ?? 'warning',
    '--admin-address-path', adminPath,
    '--concurrency', '1',
    ...(opts.args ?? []),
  ];
  const asGroup = opts.gid !== undefined ? ['setpriv', `--regid=${opts.gid}`, '--clear-groups', '--'] : [];
  const prefix = [...(opts.netns ? ['ip', 'netns', 'exec', opts.netns] : []), ...asGroup];
  const child = prefix.length ? spawnManaged(prefix[0]!, [...prefix.slice(1), bin, ...args]) : spawnManaged(bin, args);
  const { proc, output } = child;
  // Also settles when the spawn fails (Node emits no 'exit' then).
  const exited = child.ended.then(() => undefined);
  let adminUrl: string;
  try {
    const address = await until(
      async () => (existsSync(adminPath) ? readFileSync(adminPath, 'utf8').trim() || undefined : undefined),
      'the admin address file',
      15_000,
      proc,
      output,
    );
    adminUrl = `http://${address}`;
  } catch (err) {
    proc.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const admin = async (path: string) => {
    const res = await fetch(`${adminUrl}${path}`);
    const text = await res.text();
    if (!res.ok) throw new Error(`admin ${path}: HTTP ${res.status}: ${text.slice(0, 200)}`);
    return text;
  };
  const stats = async () => {
    const text = await admin('/stats');
    const outStats: Record<string, number | string> = {};
    for (const line of text.split('\n')) {
      const i = line.indexOf(': ');
      if (i < 0) continue;
      const v = line.slice(i + 2);
      outStats[line.slice(0, i)] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    }
    return outStats;
  };
  return {
    adminUrl,
    bootstrap,
    admin,
    output,
    stats,
    async waitForStat(pred, what, timeoutMs = 15_000) {
      return until(async () => {
        const s = await stats();
        return pred(s) ? s : undefined;
      }, what, timeoutMs, proc, output);
    },
    async configDump() {
      return JSON.parse(await admin('/config_dump')) as ConfigDump;
    },
    async waitForListener(name, timeoutMs = 15_000) {
      // Active, not merely known: /listeners also lists listeners still warming
      // (waiting for their routes or secrets), which do not serve yet.
      return until(
        async () => {
          const j = JSON.parse(await admin('/listeners?format=json')) as {
            listener_statuses?: { name: string; local_address?: { socket_address?: { address: string; port_value: number } } }[];
          };
          const sa = j.listener_statuses?.find((x) => x.name === name)?.local_address?.socket_address;
          if (!sa) return undefined;
          const dump = JSON.parse(await admin('/config_dump?resource=dynamic_listeners')) as { configs?: Array<{ name?: string; active_state?: unknown }> };
          const active = dump.configs?.some((c) => c.name === name && c.active_state !== undefined);
          return active ? { address: sa.address, port: sa.port_value } : undefined;
        },
        `listener ${name}`,
        timeoutMs,
        proc,
        output,
      );
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
        rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The Envoy of a pod `client-abc` (namespace default, app=client) as an
 * iptables-mode sidecar inside a test's network namespace: REDIRECT
 * interception, run with group 1337 so the namespace's outbound capture lets
 * its own connections out.
 */
export function startNetnsSidecarEnvoy(ns: { name: string; pod: string }, adsAddress: string): Promise<RunningEnvoy> {
  return startEnvoy({
    adsAddress,
    nodeId: `sidecar~${ns.pod}~client-abc.default~default.svc.cluster.local`,
    metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'REDIRECT', LABELS: { app: 'client' } },
    netns: ns.name,
    adminHost: ns.pod,
    gid: 1337,
  });
}
