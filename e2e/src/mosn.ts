/**
 * Runs a real MOSN ($SEXTANT_CACHE/bin/mosn, v1.6.1, built by
 * scripts/install-mosn.sh) as an Istio xDS client of an ADS server on
 * 127.0.0.1, for tests. Each instance lives in a temp dir of its own: MOSN
 * derives its base path (logs, pid, upgrade socket) from the config file's
 * directory, and dials SDS at a path relative to its working directory. The
 * admin API listens on a free loopback port; the process is always killed at
 * the end (stop(), or process exit as a last resort).
 */
import { describeEnd, spawnManaged } from './child.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './backends.js';
import { toolPath } from './tools.js';

export interface MosnOptions {
  /** host:port of the ADS server (plaintext gRPC). */
  adsAddress: string;
  nodeId: string;
  cluster?: string;
  metadata?: Record<string, unknown>;
  /** MOSN log level (default INFO; DEBUG shows every xDS conversion). */
  logLevel?: string;
  /** Run inside this network namespace (`ip netns exec NS`); the admin API then listens on `adminHost`. */
  netns?: string;
  /** Address of the admin API (default 127.0.0.1; in a namespace, an address the test reaches). */
  adminHost?: string;
  /** Working directory (default: the instance's temp dir). MOSN dials SDS relative to it. */
  cwd?: string;
}

export interface RunningMosn {
  adminUrl: string;
  /** The working directory (SDS is dialled relative to it). */
  dir: string;
  /** GET /api/v1/config_dump as JSON (MOSN's own config form). */
  configDump(): Promise<Record<string, any>>;
  /** Resolves once MOSN holds a listener of that name (deadline). */
  waitForListener(name: string, timeoutMs?: number): Promise<Record<string, any>>;
  /** Polls the config dump until the predicate holds (deadline). */
  waitForDump(pred: (dump: Record<string, any>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, any>>;
  output(): string;
  /** Whether the process is still running. */
  alive(): boolean;
  stop(): Promise<void>;
}


/** Every listener config in a MOSN config dump, by name. */
export function mosnListeners(dump: Record<string, any>): Map<string, Record<string, any>> {
  const out = new Map<string, Record<string, any>>();
  const listeners = dump.mosn_config?.servers?.[0]?.listeners ?? dump.listener ?? {};
  for (const l of Array.isArray(listeners) ? listeners : Object.values(listeners)) if (l?.name) out.set(l.name, l);
  return out;
}

export async function startMosn(opts: MosnOptions): Promise<RunningMosn> {
  const bin = toolPath('mosn');
  if (!bin) throw new Error('mosn is not installed; run `make tools` (scripts/install-mosn.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'sextant-mosn-'));
  mkdirSync(join(dir, 'conf'));
  const [host, port] = [opts.adsAddress.slice(0, opts.adsAddress.lastIndexOf(':')), Number(opts.adsAddress.slice(opts.adsAddress.lastIndexOf(':') + 1))];
  const adminHost = opts.adminHost ?? '127.0.0.1';
  // A fresh namespace has every port free except what MOSN itself binds (15001, 15006).
  const adminPort = opts.netns ? 16000 + Math.floor(Math.random() * 1000) : await freePort();
  const config = {
    servers: [{ default_log_path: 'stdout', default_log_level: opts.logLevel ?? 'INFO', routers: [], listeners: [] }],
    // Never inherit listeners from another MOSN through the upgrade socket.
    disable_upgrade: true,
    node: { id: opts.nodeId, cluster: opts.cluster ?? 'sextant-test', metadata: opts.metadata ?? {} },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [
        {
          name: 'xds-grpc',
          type: 'STATIC',
          connect_timeout: '1s',
          lb_policy: 'ROUND_ROBIN',
          http2_protocol_options: {},
          load_assignment: { cluster_name: 'xds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }] },
        },
      ],
    },
    admin: { address: { socket_address: { address: adminHost, port_value: adminPort } } },
  };
  const configPath = join(dir, 'conf', 'mosn.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const cmd = opts.netns ? ['ip', ['netns', 'exec', opts.netns, bin, 'start', '-c', configPath]] as const : [bin, ['start', '-c', configPath]] as const;
  const child = spawnManaged(cmd[0], cmd[1], { cwd: opts.cwd ?? dir });
  const { proc, output } = child;
  const adminUrl = `http://${adminHost}:${adminPort}`;
  const configDump = async () => {
    const res = await fetch(`${adminUrl}/api/v1/config_dump`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`config_dump: HTTP ${res.status}`);
    return (await res.json()) as Record<string, any>;
  };
  const waitForDump = async (pred: (d: Record<string, any>) => boolean, what: string, timeoutMs = 30_000) => {
    const end = Date.now() + timeoutMs;
    let lastErr = '';
    for (;;) {
      if (child.isEnded()) throw new Error(`mosn ended (${describeEnd(await child.ended)}) while waiting for ${what}\n${output().slice(-6000)}`);
      try {
        const d = await configDump();
        if (pred(d)) return d;
      } catch (err) {
        lastErr = (err as Error).message;
      }
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} ${lastErr}\n${output().slice(-6000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return {
    adminUrl,
    dir,
    configDump,
    waitForDump,
    async waitForListener(name, timeoutMs) {
      const d = await waitForDump((x) => mosnListeners(x).has(name), `MOSN listener ${name}`, timeoutMs);
      return mosnListeners(d).get(name)!;
    },
    output,
    alive: () => !child.isEnded(),
    async stop() {
      try {
        await child.stop(3000);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
