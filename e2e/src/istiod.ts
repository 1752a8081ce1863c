/**
 * Runs Istio's own control plane, `pilot-discovery discovery`, outside a pod
 * against a cluster's kubeconfig, on 127.0.0.1 only: the reference the parity
 * suite and the side-by-side benchmark compare Sextant with.
 *
 * What it needs to run outside a pod:
 * - every listener on a free loopback port (plaintext ADS `--grpcAddr`, the
 *   TLS ADS + CA `--secureGRPCAddr`, `/ready` + debug `--httpAddr`, webhooks
 *   `--httpsAddr`, `/metrics` `--monitoringAddr`, ControlZ `--ctrlz_port`);
 * - `POD_NAMESPACE` (istio-system) and a POD_NAME; no webhook configurations
 *   to patch (`INJECTION_WEBHOOK_CONFIG_NAME`/`VALIDATION_WEBHOOK_CONFIG_NAME`
 *   empty);
 * - a scratch working directory: istiod resolves ./etc/cacerts,
 *   ./etc/istio/config/mesh and ./var/run/secrets/... relative to it, so with
 *   none of them present it reads MeshConfig from the `istio` ConfigMap in its
 *   namespace and keeps a self-signed CA in the `istio-ca-secret` Secret, as
 *   it does in a cluster without plugged-in certificates.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnManaged } from './child.js';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from './backends.js';
import { toolPath } from './tools.js';

export interface IstiodOptions {
  kubeconfig: string;
  /** Its namespace (POD_NAMESPACE); default istio-system. */
  namespace?: string;
  /** CLUSTER_ID / --clusterID; default Kubernetes (what pilot-agent sends by default). */
  clusterId?: string;
  /** Extra environment (feature flags such as PILOT_DEBOUNCE_AFTER). */
  env?: Record<string, string>;
  /** Extra flags for `pilot-discovery discovery`. */
  args?: string[];
  /** Deadline for /ready (ms); default 90 s. */
  readyTimeoutMs?: number;
  /** `--log_output_level`; default `default:info`. */
  logLevel?: string;
}

export interface RunningIstiod {
  /** 127.0.0.1:<port>: plaintext gRPC ADS (istiod's 15010). */
  grpcAddress: string;
  /** 127.0.0.1:<port>: TLS gRPC ADS and the CA (istiod's 15012). */
  secureGrpcAddress: string;
  /** http://127.0.0.1:<port>: /ready and /debug/* (istiod's 8080). */
  httpUrl: string;
  /** http://127.0.0.1:<port>: /metrics (istiod's 15014). */
  monitoringUrl: string;
  /** 127.0.0.1:<port>: webhooks over TLS (istiod's 15017). */
  httpsAddress: string;
  cwd: string;
  process: ChildProcess;
  /** Everything istiod wrote so far (the last 2 MB). */
  output(): string;
  /** GETs a debug path (e.g. /debug/syncz) from the http port, as text. */
  debug(path: string): Promise<string>;
  /** SIGTERM, then SIGKILL after the deadline; removes the scratch directory. Resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
}

/**
 * Files scripts/install-istio.sh keeps next to pilot-discovery, from the same
 * Istio module version: `istio-crds.yaml` (Istio's own CRDs,
 * manifests/charts/base/files/crd-all.gen.yaml) and `xds-descriptors.binpb`
 * (the protobuf descriptors istiod is compiled with, for decoding its xDS).
 */
export function istiodShareFile(name: 'istio-crds.yaml' | 'xds-descriptors.binpb'): string {
  const bin = toolPath('pilot-discovery');
  if (!bin) throw new Error('pilot-discovery is not installed; run `make tools`');
  const p = join(dirname(dirname(realpathSync(bin))), 'share', name);
  if (!existsSync(p)) throw new Error(`${p} is missing; run \`make tools\``);
  return p;
}


/** Starts istiod and resolves once its /ready answers 200. Throws if pilot-discovery is not installed. */
export async function startIstiod(opts: IstiodOptions): Promise<RunningIstiod> {
  const bin = toolPath('pilot-discovery');
  if (!bin) throw new Error('pilot-discovery is not installed; run `make tools`');
  const namespace = opts.namespace ?? 'istio-system';
  const ports = {
    grpc: await freePort(),
    secure: await freePort(),
    http: await freePort(),
    https: await freePort(),
    monitoring: await freePort(),
    ctrlz: await freePort(),
  };
  const cwd = mkdtempSync(join(tmpdir(), 'sextant-istiod-'));
  const args = [
    'discovery',
    '--kubeconfig', opts.kubeconfig,
    '--grpcAddr', `127.0.0.1:${ports.grpc}`,
    '--secureGRPCAddr', `127.0.0.1:${ports.secure}`,
    '--httpAddr', `127.0.0.1:${ports.http}`,
    '--httpsAddr', `127.0.0.1:${ports.https}`,
    '--monitoringAddr', `127.0.0.1:${ports.monitoring}`,
    '--ctrlz_address', '127.0.0.1',
    '--ctrlz_port', String(ports.ctrlz),
    '--clusterID', opts.clusterId ?? 'Kubernetes',
    '--domain', 'cluster.local',
    '--log_output_level', opts.logLevel ?? 'default:info',
    ...(opts.args ?? []),
  ];
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: cwd,
    POD_NAMESPACE: namespace,
    POD_NAME: `istiod-${process.pid}`,
    REVISION: 'default',
    // No webhook configurations exist to patch with a caBundle.
    INJECTION_WEBHOOK_CONFIG_NAME: '',
    VALIDATION_WEBHOOK_CONFIG_NAME: '',
    ...opts.env,
  };
  const child = spawnManaged(bin, args, { cwd, env, group: true });
  const { proc } = child;
  let exited = false;
  // child.ended also settles when the spawn fails (no 'exit' then).
  const exitPromise = child.ended.then((end) => {
    exited = true;
    return end.code;
  });

  const httpUrl = `http://127.0.0.1:${ports.http}`;
  const stop = async (timeoutMs = 10_000): Promise<number | null> => {
    if (!exited) {
      child.signal('SIGTERM');
      const timer = setTimeout(() => child.signal('SIGKILL'), timeoutMs);
      await exitPromise;
      clearTimeout(timer);
    }
    rmSync(cwd, { recursive: true, force: true });
    return exitPromise;
  };
  const istiod: RunningIstiod = {
    grpcAddress: `127.0.0.1:${ports.grpc}`,
    secureGrpcAddress: `127.0.0.1:${ports.secure}`,
    httpUrl,
    monitoringUrl: `http://127.0.0.1:${ports.monitoring}`,
    httpsAddress: `127.0.0.1:${ports.https}`,
    cwd,
    process: proc,
    output: child.output,
    async debug(path) {
      const res = await fetch(`${httpUrl}${path}`);
      if (!res.ok) throw new Error(`istiod ${path}: ${res.status} ${await res.text()}`);
      return res.text();
    },
    stop,
  };

  // /ready answers 200 once the config and service registries have synced.
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
  let last = '';
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`pilot-discovery exited (${String(proc.exitCode ?? proc.signalCode)}) before ready:\n${child.output().slice(-6000)}`);
    }
    try {
      const res = await fetch(`${httpUrl}/ready`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return istiod;
      last = `${res.status} ${(await res.text()).slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      await stop(2000);
      throw new Error(`istiod not ready within ${opts.readyTimeoutMs ?? 90_000} ms (last: ${last}):\n${child.output().slice(-6000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

