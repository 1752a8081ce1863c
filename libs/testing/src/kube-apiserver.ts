import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeClient, type KubeObject } from '@sextant/sources';

/**
 * A small in-memory stand-in for the API server's list/watch/CRUD protocol,
 * for unit tests of the supervisor's failure handling (dropped, stalled and
 * expired watches; failing lists; lease conflicts), which a real API server
 * cannot be made to do on demand. Compatibility with the real thing is the
 * e2e tests' job (e2e/src/kube-*.test.ts).
 */
export class TestApiServer {
  private server: http.Server;
  private rv = 100;
  /** collection path (without namespace) -> key (ns/name) -> object */
  private readonly data = new Map<string, Map<string, KubeObject>>();
  private readonly history: Array<{ coll: string; type: string; object: KubeObject; rv: number }> = [];
  private compactedBelow = 0;
  private readonly watchers = new Set<{ coll: string; res: http.ServerResponse; stalled: boolean; field?: string }>();
  /** The next this-many watches are accepted but never sent anything (a silent stall). */
  stallNext = 0;
  /** Emits `change` ({ coll, type, object }) for every write, and `watch` (coll) for every watch opened. */
  readonly events = new EventEmitter();
  /** Number of upcoming list requests that answer 500. */
  failLists = 0;
  readonly counts = { lists: 0, watches: 0 };

  constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A client of this server (plain HTTP, bearer token `test`). */
  client(): KubeClient {
    return new KubeClient({ server: { url: this.url, token: 'test' } });
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Ends every open watch connection abruptly. */
  dropWatches(): void {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
  }

  /** Forgets the event history: watches from an older resourceVersion get 410 Gone. */
  compact(): void {
    this.compactedBelow = this.rv + 1;
    this.history.length = 0;
  }

  openWatches(): number {
    return this.watchers.size;
  }

  upsert(coll: string, obj: KubeObject): KubeObject {
    const m = this.coll(coll);
    const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name}`;
    const prev = m.get(key);
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv), uid: prev?.metadata?.uid ?? `uid-${this.rv}` } };
    m.set(key, stored);
    this.emit(coll, prev ? 'MODIFIED' : 'ADDED', stored);
    return stored;
  }

  remove(coll: string, namespace: string | undefined, name: string): void {
    const m = this.coll(coll);
    const key = `${namespace ?? ''}/${name}`;
    const prev = m.get(key);
    if (!prev) return;
    m.delete(key);
    this.emit(coll, 'DELETED', { ...prev, metadata: { ...prev.metadata, resourceVersion: String(++this.rv) } });
  }

  get(coll: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.coll(coll).get(`${namespace ?? ''}/${name}`);
  }

  private coll(c: string): Map<string, KubeObject> {
    let m = this.data.get(c);
    if (!m) this.data.set(c, (m = new Map()));
    return m;
  }

  private emit(coll: string, type: string, object: KubeObject): void {
    this.history.push({ coll, type, object, rv: this.rv });
    this.events.emit('change', { coll, type, object });
    for (const w of this.watchers) {
      if (w.coll === coll && !w.stalled && matches(object, w.field)) w.res.write(JSON.stringify({ type, object }) + '\n');
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    // /api/v1[/namespaces/ns]/plural[/name] or /apis/g/v[/namespaces/ns]/plural[/name]
    const parts = url.pathname.split('/').filter(Boolean);
    const prefixLen = parts[0] === 'api' ? 2 : 3;
    const prefix = '/' + parts.slice(0, prefixLen).join('/');
    let rest = parts.slice(prefixLen);
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const coll = `${prefix}/${rest[0]}`;
    const name = rest[1];
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const status = (code: number, reason: string, message: string) => send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
    const field = url.searchParams.get('fieldSelector') ?? undefined;
    if (req.method === 'GET' && !name) {
      if (url.searchParams.get('watch') === 'true') return this.watch(coll, Number(url.searchParams.get('resourceVersion') || 0), field, res);
      this.counts.lists++;
      if (this.failLists > 0) {
        this.failLists--;
        return status(500, 'InternalError', 'injected list failure');
      }
      const items = [...this.coll(coll).values()].filter((o) => (!namespace || o.metadata?.namespace === namespace) && matches(o, field));
      return send(200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items });
    }
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const m = this.coll(coll);
      if (req.method === 'GET') {
        const o = m.get(`${namespace ?? ''}/${name}`);
        return o ? send(200, o) : status(404, 'NotFound', `${rest[0]} "${name}" not found`);
      }
      const obj = JSON.parse(body || '{}') as KubeObject;
      if (req.method === 'POST') {
        if (name === undefined && coll.endsWith('/tokenreviews')) return send(201, this.tokenReview(obj));
        const key = `${namespace ?? ''}/${obj.metadata?.name}`;
        if (m.has(key)) return status(409, 'AlreadyExists', `${rest[0]} "${obj.metadata?.name}" already exists`);
        return send(201, this.upsert(coll, { ...obj, metadata: { ...obj.metadata, namespace } }));
      }
      if (req.method === 'PUT' && name) {
        const cur = m.get(`${namespace ?? ''}/${name}`);
        if (!cur) return status(404, 'NotFound', `${rest[0]} "${name}" not found`);
        if (obj.metadata?.resourceVersion && obj.metadata.resourceVersion !== cur.metadata?.resourceVersion) {
          return status(409, 'Conflict', 'the object has been modified; please apply your changes to the latest version and try again');
        }
        return send(200, this.upsert(coll, { ...obj, metadata: { ...obj.metadata, namespace, name } }));
      }
      if (req.method === 'DELETE' && name) {
        this.remove(coll, namespace, name);
        return send(200, { kind: 'Status', status: 'Success' });
      }
      status(405, 'MethodNotAllowed', 'not supported');
    });
  }

  /** Tokens of the form `sa:<ns>:<name>:<audience>` authenticate; anything else does not. */
  private tokenReview(obj: KubeObject): unknown {
    const spec = (obj as { spec?: { token?: string; audiences?: string[] } }).spec ?? {};
    const p = (spec.token ?? '').split(':');
    if (p.length !== 4 || p[0] !== 'sa') return { ...obj, status: { authenticated: false, error: 'invalid bearer token' } };
    return {
      ...obj,
      status: {
        authenticated: true,
        audiences: [p[3]],
        user: { username: `system:serviceaccount:${p[1]}:${p[2]}`, extra: { 'authentication.kubernetes.io/pod-name': ['pod-1'] } },
      },
    };
  }

  private watch(coll: string, fromRv: number, field: string | undefined, res: http.ServerResponse): void {
    this.counts.watches++;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    if (fromRv && fromRv < this.compactedBelow) {
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } }) + '\n');
      return;
    }
    const stalled = this.stallNext > 0;
    if (stalled) this.stallNext--;
    const w = { coll, res, stalled, field };
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
    if (!w.stalled) {
      for (const h of this.history) if (h.coll === coll && h.rv > fromRv && matches(h.object, field)) res.write(JSON.stringify({ type: h.type, object: h.object }) + '\n');
    }
    this.events.emit('watch', coll);
  }
}

function matches(o: KubeObject, field: string | undefined): boolean {
  if (!field) return true;
  const m = /^metadata\.name=(.*)$/.exec(field);
  return m ? o.metadata?.name === m[1] : true;
}
