/**
 * A minimal Kubernetes REST client for the side-by-side benchmark: the admin
 * kubeconfig scripts/cluster.sh writes (client certificate), one keep-alive
 * HTTPS agent, so a timed write is one request and nothing else (no kubectl
 * process start inside a measured window).
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { parse } from 'yaml';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const plurals: Record<string, string> = {
  Namespace: 'namespaces',
  ServiceAccount: 'serviceaccounts',
  Service: 'services',
  Pod: 'pods',
  ConfigMap: 'configmaps',
  Deployment: 'deployments',
  EndpointSlice: 'endpointslices',
  DestinationRule: 'destinationrules',
  VirtualService: 'virtualservices',
  Sidecar: 'sidecars',
};

export class Kube {
  private readonly server: URL;
  private readonly agent: https.Agent;

  constructor(
    kubeconfig: string,
    /** How long one request may wait for its response (REQUEST_TIMEOUT_MS; tests shorten it). */
    private readonly requestTimeoutMs = REQUEST_TIMEOUT_MS,
  ) {
    type Kc = {
      clusters: Array<{ cluster: { server: string; 'certificate-authority-data': string } }>;
      users: Array<{ user: { 'client-certificate-data': string; 'client-key-data': string } }>;
    };
    const kc = parse(readFileSync(kubeconfig, 'utf8')) as Kc;
    const c = kc.clusters[0]!.cluster;
    const u = kc.users[0]!.user;
    this.server = new URL(c.server);
    const b64 = (s: string) => Buffer.from(s, 'base64');
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: 32,
      ca: b64(c['certificate-authority-data']),
      cert: b64(u['client-certificate-data']),
      key: b64(u['client-key-data']),
    });
  }

  /** The collection path of a kind (namespaced unless a Namespace). */
  static path(apiVersion: string, kind: string, namespace?: string, name?: string): string {
    const plural = plurals[kind];
    if (!plural) throw new Error(`bench kube client: no plural known for kind ${kind}`);
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const ns = namespace ? `/namespaces/${namespace}` : '';
    return `${base}${ns}/${plural}${name ? `/${name}` : ''}`;
  }

  /**
   * One API request. One that gets no response within the request timeout
   * fails (status 0, naming it) instead of waiting for ever: a set-up once
   * hung on a request the apiserver never answered, and nothing ended it.
   */
  request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = https.request(
        {
          host: this.server.hostname,
          port: this.server.port,
          path,
          method,
          agent: this.agent,
          headers: { accept: 'application/json', ...(data ? { 'content-type': contentType, 'content-length': data.length } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            if ((res.statusCode ?? 500) >= 300) reject(new KubeError(res.statusCode ?? 0, `${method} ${path}: ${res.statusCode} ${text.slice(0, 500)}`));
            else resolve((text ? JSON.parse(text) : undefined) as T);
          });
        },
      );
      req.on('error', reject);
      req.setTimeout(this.requestTimeoutMs, () => req.destroy(new KubeError(0, `${method} ${path}: no response within ${this.requestTimeoutMs / 1000} s`)));
      req.end(data);
    });
  }

  create(obj: KubeObject): Promise<KubeObject> {
    return this.request('POST', Kube.path(obj.apiVersion, obj.kind, obj.metadata.namespace), obj);
  }

  /** Creates every object, CONCURRENCY requests at a time; an object that exists already is left as it is. */
  async createAll(objs: KubeObject[], concurrency = 16): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < objs.length) {
        const o = objs[next++]!;
        // A create that timed out may have happened: once more, and 409 (already there) is success.
        await retryTimedOut(() => this.create(o)).catch((err: unknown) => {
          if (!(err instanceof KubeError && err.status === 409)) throw err;
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  async deleteAll(objs: KubeObject[], concurrency = 16): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < objs.length) {
        const o = objs[next++]!;
        await this.request('DELETE', Kube.path(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name)).catch((err: unknown) => {
          if (!(err instanceof KubeError && err.status === 404)) throw err;
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  mergePatch(apiVersion: string, kind: string, namespace: string, name: string, patch: unknown): Promise<KubeObject> {
    return this.request('PATCH', Kube.path(apiVersion, kind, namespace, name), patch, 'application/merge-patch+json');
  }

  /** Replaces the spec of an object (GET for the resourceVersion, then PUT). */
  async replace(obj: KubeObject): Promise<KubeObject> {
    const cur = await this.request<KubeObject>('GET', Kube.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name));
    return this.request('PUT', Kube.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name), {
      ...obj,
      metadata: { ...obj.metadata, resourceVersion: cur.metadata.resourceVersion },
    });
  }

  list<T = KubeObject>(path: string): Promise<{ items: T[]; metadata: { resourceVersion: string } }> {
    return retryTimedOut(() => this.request('GET', path));
  }

  /**
   * Watches PATH from RESOURCEVERSION; calls ONEVENT with the arrival time of
   * each event. Returns a stop function.
   */
  watch<T>(path: string, resourceVersion: string, onEvent: (type: string, obj: T, at: number) => void): () => void {
    const sep = path.includes('?') ? '&' : '?';
    const req = https.request(
      {
        host: this.server.hostname,
        port: this.server.port,
        path: `${path}${sep}watch=1&allowWatchBookmarks=false&resourceVersion=${resourceVersion}`,
        method: 'GET',
        agent: new https.Agent({ ca: this.agent.options.ca, cert: this.agent.options.cert, key: this.agent.options.key }),
      },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const at = Date.now();
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (!line.trim()) continue;
            const ev = JSON.parse(line) as { type: string; object: T };
            onEvent(ev.type, ev.object, at);
          }
        });
      },
    );
    req.on('error', () => undefined);
    req.end();
    return () => req.destroy();
  }

  close(): void {
    this.agent.destroy();
  }
}

/** How long one API request may wait for its response. */
export const REQUEST_TIMEOUT_MS = 60_000;

/** Runs F again (up to 3 times in all) while it fails for want of a response; other failures are F's. */
export async function retryTimedOut<T>(f: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await f();
    } catch (err) {
      if (!(err instanceof KubeError && err.status === 0) || i >= attempts) throw err;
    }
  }
}

export class KubeError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
