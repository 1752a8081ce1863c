/**
 * Fetches the JWKS that RequestAuthentication rules name by `jwksUri` (or by
 * issuer, through OpenID discovery), as istiod's JwksResolver does
 * (pilot/pkg/model/jwks_resolver.go): in the control plane, once per URI
 * however many proxies use it, cached and refreshed, so proxies get the keys
 * inline and never reach the JWKS server themselves.
 *
 * - a URI seen for the first time is fetched at once; until that succeeds
 *   it has no entry, and translation inlines a public-only key (every token
 *   for the issuer is rejected: fail closed), retried every
 *   `refreshOnFailureMs`;
 * - every `refreshIntervalMs` all entries are fetched again; a change calls
 *   `onChange` (a push); a failed refresh keeps the last good keys (as istiod)
 *   and retries sooner;
 * - a URI no rule names any more is forgotten;
 * - content must be a JWKS (a `keys` array); link-local and cloud metadata
 *   addresses are refused; responses are capped at 1 MiB.
 */
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import type { Logger } from '@sextant/api';

export interface JwksTarget {
  /** The URI to fetch; absent: OpenID discovery from `issuer`. */
  jwksUri?: string;
  issuer: string;
  timeoutMs: number;
}

export interface JwksResolverOptions {
  log: Logger;
  /** Refresh period of fetched keys (istiod's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, 20 min). */
  refreshIntervalMs?: number;
  /** Retry period after a failed fetch (istiod: 1 min). */
  refreshOnFailureMs?: number;
  /** Called (debounced by the caller's push controller) when a key set appeared or changed: the keys whose JWKS changed. */
  onChange: (keys: string[]) => void;
}

interface Entry {
  target: JwksTarget;
  jwks?: string;
  lastError?: string;
  timer?: NodeJS.Timeout;
  inFlight: boolean;
}

const MAX_BYTES = 1 << 20;

/** Link-local (169.254/16, fe80::/10) and well-known cloud metadata addresses (istiod's jwksBlockedIP). */
export function blockedJwksAddress(ip: string): string | undefined {
  const v = ip.toLowerCase();
  if (isIP(v) === 4 && v.startsWith('169.254.')) return `resolved IP ${ip} is link-local`;
  if (isIP(v) === 6 && /^fe[89ab][0-9a-f]:/.test(v)) return `resolved IP ${ip} is link-local`;
  if (v === '100.100.100.200' || v === 'fd00:ec2::254') return `resolved IP ${ip} is a known cloud metadata address`;
  return undefined;
}

const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return (callback as (e: Error | null, a: LookupAddress[] | string, f?: number) => void)(err, []);
    const list = addresses as LookupAddress[];
    for (const a of list) {
      const why = blockedJwksAddress(a.address);
      if (why) return (callback as (e: Error | null, a: string, f?: number) => void)(new Error(`connection blocked: ${why}`), '', 4);
    }
    if ((options as { all?: boolean }).all) return (callback as (e: Error | null, a: LookupAddress[]) => void)(null, list);
    const first = list[0]!;
    (callback as (e: Error | null, a: string, f: number) => void)(null, first.address, first.family);
  });
};

/** GET a URL as text (http or https, bounded in time and size). */
export function fetchText(url: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new Error(`invalid URL ${url}`));
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      reject(new Error(`unsupported scheme in ${url}`));
      return;
    }
    const literal = u.hostname.replace(/^\[|\]$/g, '');
    const blocked = isIP(literal) ? blockedJwksAddress(literal) : undefined;
    if (blocked) {
      reject(new Error(`connection blocked: ${blocked}`));
      return;
    }
    const opts: RequestOptions = { method: 'GET', timeout: timeoutMs, lookup: guardedLookup, headers: { accept: 'application/json' } };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, opts, (res) => {
      if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) {
        res.resume();
        reject(new Error(`GET ${url}: status ${res.statusCode}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BYTES) req.destroy(new Error(`GET ${url}: response over ${MAX_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    const deadline = setTimeout(() => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function validJwks(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as { keys?: unknown };
    if (!j || typeof j !== 'object' || !Array.isArray(j.keys) || j.keys.length === 0) return 'not a JWKS (no "keys")';
    return undefined;
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
}

export class JwksResolver {
  private readonly entries = new Map<string, Entry>();
  private readonly refreshMs: number;
  private readonly failureMs: number;
  private stopped = false;

  constructor(private readonly opts: JwksResolverOptions) {
    this.refreshMs = opts.refreshIntervalMs ?? 20 * 60_000;
    this.failureMs = opts.refreshOnFailureMs ?? 60_000;
  }

  /** The JWKS fetched so far, by key (a snapshot; the push context holds it). */
  snapshot(): ReadonlyMap<string, string> {
    const out = new Map<string, string>();
    for (const [k, e] of this.entries) if (e.jwks !== undefined) out.set(k, e.jwks);
    return out;
  }

  /** What the current config needs: new keys are fetched, keys no rule names are dropped. */
  want(targets: ReadonlyMap<string, JwksTarget>): void {
    if (this.stopped) return;
    for (const [k, e] of this.entries) {
      if (!targets.has(k)) {
        clearTimeout(e.timer);
        this.entries.delete(k);
      }
    }
    for (const [k, t] of targets) {
      const e = this.entries.get(k);
      if (e) {
        e.target = t;
        continue;
      }
      const fresh: Entry = { target: t, inFlight: false };
      this.entries.set(k, fresh);
      void this.fetch(k, fresh);
    }
  }

  /** The last error per key that has no keys yet or failed its last refresh. */
  errors(): Array<{ key: string; error: string }> {
    return [...this.entries].filter(([, e]) => e.lastError).map(([key, e]) => ({ key, error: e.lastError! }));
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
  }

  private async fetch(key: string, e: Entry): Promise<void> {
    if (e.inFlight || this.stopped) return;
    e.inFlight = true;
    clearTimeout(e.timer);
    const t = e.target;
    let failed = false;
    try {
      let uri = t.jwksUri;
      if (!uri) {
        const discovery = `${t.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
        const doc = JSON.parse(await fetchText(discovery, t.timeoutMs)) as { jwks_uri?: unknown };
        if (typeof doc.jwks_uri !== 'string') throw new Error(`invalid jwks_uri ${JSON.stringify(doc.jwks_uri)} in ${discovery}`);
        uri = doc.jwks_uri;
      }
      const text = await fetchText(uri, t.timeoutMs);
      const bad = validJwks(text);
      if (bad) throw new Error(`content of ${uri} is ${bad}`);
      if (this.entries.get(key) !== e) return; // dropped while fetching
      const changed = e.jwks !== text;
      e.jwks = text;
      if (e.lastError) this.opts.log.info({ jwks: key }, 'JWKS fetched again');
      delete e.lastError;
      if (changed) this.opts.onChange([key]);
    } catch (err) {
      failed = true;
      const msg = (err as Error).message;
      if (e.lastError !== msg) this.opts.log.warn({ jwks: key, err: msg, keptPreviousKeys: e.jwks !== undefined }, e.jwks === undefined ? 'JWKS fetch failed: tokens for this issuer are rejected' : 'JWKS refresh failed: keeping the previous keys');
      e.lastError = msg;
    } finally {
      e.inFlight = false;
      if (!this.stopped && this.entries.get(key) === e) {
        e.timer = setTimeout(() => void this.fetch(key, e), failed ? this.failureMs : this.refreshMs);
        e.timer.unref();
      }
    }
  }
}
