import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';

/**
 * A thin JSON client for the Kubernetes API. Authentication, TLS and
 * kubeconfig/in-cluster loading come from `@kubernetes/client-node`'s
 * `KubeConfig` (exec plugins, tokens, client certificates, token refresh);
 * requests and watch streams are plain `node:http(s)` so that objects stay raw
 * JSON (the generated clients turn timestamps into Dates) and so that the
 * watch connection is under our control (abort, stall detection, Status
 * bodies on errors).
 */
export interface KubeClientOptions {
  kubeconfigPath?: string | undefined;
  inCluster?: boolean | undefined;
  /** An already loaded config (tests, or when the caller owns it). */
  kubeConfig?: KubeConfig | undefined;
  /** One API server by URL and optional bearer token, no kubeconfig file (a local API server, as tests start). */
  server?: { url: string; token?: string | undefined } | undefined;
}

export class KubeApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string | undefined,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}

/** A Kubernetes object as it comes over the wire. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface KubeList {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: KubeObject[];
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined> | undefined;
  body?: unknown;
  contentType?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Whole-request timeout in ms (default 30 s). */
  timeoutMs?: number | undefined;
}

export interface WatchHandle {
  /** Resolves when the stream ends (server close, abort or error); rejects never. */
  done: Promise<Error | undefined>;
  abort(): void;
}

export class KubeClient {
  readonly config: KubeConfig;

  constructor(opts: KubeClientOptions = {}) {
    if (opts.kubeConfig) {
      this.config = opts.kubeConfig;
    } else if (opts.server) {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        // client-node refuses plain http:// unless skipTLSVerify is set (there is no TLS to verify then).
        clusters: [{ name: 'server', server: opts.server.url, skipTLSVerify: opts.server.url.startsWith('http:') }],
        users: [{ name: 'user', ...(opts.server.token ? { token: opts.server.token } : {}) }],
        contexts: [{ name: 'server', cluster: 'server', user: 'user' }],
        currentContext: 'server',
      });
      this.config = kc;
    } else {
      const kc = new KubeConfig();
      if (opts.kubeconfigPath) kc.loadFromFile(opts.kubeconfigPath);
      else if (opts.inCluster) kc.loadFromCluster();
      else kc.loadFromDefault();
      this.config = kc;
    }
    if (!this.config.getCurrentCluster()) throw new Error('kubeconfig has no current cluster');
  }

  get server(): string {
    return this.config.getCurrentCluster()!.server;
  }

  /**
   * client-node gives every request a new agent, so each one (a lease renewal
   * every 2 s, a status write) opened its own TLS connection and built a TLS
   * context. Requests share one keep-alive agent instead, replaced when the
   * TLS settings change (rotated client certificates). Proxy agents are used
   * as given.
   */
  private pooledAgent(given: https.RequestOptions['agent']): https.RequestOptions['agent'] {
    if (!given || Object.getPrototypeOf(given) !== https.Agent.prototype) return given;
    const options = (given as https.Agent).options;
    if (this.pool && TLS_OPTIONS.every((k) => sameOption(this.pool!.options[k], options[k]))) return this.pool.agent;
    // The previous agent's sockets (open watches) finish on their own; it keeps none when they do.
    if (this.pool) this.pool.agent.keepAlive = false;
    // An idle socket is closed well before the API server's idle timeout (90 s), so a request never races its close.
    this.pool = { options, agent: new https.Agent({ ...options, keepAlive: true, keepAliveMsecs: 30_000, timeout: options.timeout ?? 30_000 }) };
    return this.pool.agent;
  }
  private pool: { options: https.AgentOptions; agent: https.Agent & { keepAlive?: boolean } } | undefined;

  private async open(method: string, path: string, opts: RequestOptions, accept = 'application/json'): Promise<http.ClientRequest> {
    const url = new URL(this.server.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const reqOpts: https.RequestOptions = { method, headers: { Accept: accept } };
    await this.config.applyToHTTPSOptions(reqOpts);
    const mod = url.protocol === 'https:' ? https : http;
    if (url.protocol === 'http:') delete reqOpts.agent;
    else reqOpts.agent = this.pooledAgent(reqOpts.agent);
    return mod.request(url, { ...reqOpts, signal: opts.signal });
  }

  /** One JSON request; a non-2xx answer throws KubeApiError with the Status' reason and message. */
  async request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const req = await this.open(method, path, opts);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed as T);
          else reject(statusError(status, parsed, `${method} ${path}`, text));
        });
      });
      if (opts.body !== undefined) {
        req.setHeader('Content-Type', opts.contentType ?? 'application/json');
        req.end(JSON.stringify(opts.body));
      } else req.end();
    });
  }

  /**
   * Opens a watch stream. `onEvent` is called for every event line; the
   * returned `done` resolves with the reason the stream ended (undefined for a
   * clean server-side close).
   */
  async watch(path: string, query: Record<string, string | number | boolean | undefined>, onEvent: (ev: WatchEvent) => void): Promise<WatchHandle> {
    const req = await this.open('GET', path, { query: { ...query, watch: 'true' } });
    let response: http.IncomingMessage | undefined;
    let settle!: (e: Error | undefined) => void;
    const done = new Promise<Error | undefined>((r) => (settle = r));
    let settled = false;
    const finish = (e: Error | undefined) => {
      if (settled) return;
      settled = true;
      // Destroy explicitly (an AbortSignal fired after the response completed errors on a pooled socket).
      response?.destroy();
      req.destroy();
      settle(e);
    };
    req.on('error', (err) => finish(err));
    req.on('response', (res) => {
      response = res;
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          finish(statusError(status, parsed, `watch ${path}`, text));
        });
        res.on('error', (err) => finish(err));
        return;
      }
      res.socket?.setKeepAlive(true, 30_000);
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      lines.on('line', (line) => {
        if (!line.trim()) return;
        let ev: WatchEvent;
        try {
          ev = JSON.parse(line) as WatchEvent;
        } catch {
          finish(new Error(`watch ${path}: unparseable event line`));
          return;
        }
        onEvent(ev);
      });
      lines.on('error', (err) => finish(err));
      res.on('error', (err) => finish(err));
      res.on('end', () => finish(undefined));
      // A close without the end of the chunked body means the connection was lost.
      res.on('close', () => finish(res.complete ? undefined : new Error(`watch ${path}: connection lost`)));
    });
    req.end();
    return { done, abort: () => finish(new Error('aborted')) };
  }
}

/** The agent options client-node sets from the kubeconfig (KubeConfig.applyToHTTPSOptions). */
const TLS_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'timeout', 'servername', 'ciphers', 'honorCipherOrder', 'ecdhCurve', 'clientCertEngine', 'crl', 'dhparam', 'secureOptions', 'secureProtocol', 'sessionIdContext'] as const;

function sameOption(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameOption(x, b[i]));
  return false;
}

function statusError(code: number, body: unknown, what: string, text: string): KubeApiError {
  const s = (body ?? {}) as { reason?: string; message?: string; details?: unknown };
  return new KubeApiError(code, s.reason, `${what}: ${code} ${s.reason ?? ''} ${s.message ?? text.slice(0, 200)}`.replace(/\s+/g, ' ').trim(), s.details);
}

/** The API path of a collection: `/api/v1/pods`, `/apis/networking.istio.io/v1/namespaces/ns/virtualservices`. */
export function collectionPath(group: string, version: string, plural: string, namespace?: string): string {
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  return namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
}

export function isNotFound(e: unknown): boolean {
  return e instanceof KubeApiError && e.statusCode === 404;
}
export function isConflict(e: unknown): boolean {
  return e instanceof KubeApiError && e.statusCode === 409;
}
export function isGone(e: unknown): boolean {
  return e instanceof KubeApiError && e.statusCode === 410;
}
