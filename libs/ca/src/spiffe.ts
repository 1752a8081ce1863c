/**
 * SPIFFE IDs (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md)
 * and Istio's workload identity shape spiffe://<td>/ns/<ns>/sa/<sa>.
 */

export interface SpiffeId {
  trustDomain: string;
  path: string;
}

const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** Parses a SPIFFE ID strictly; returns a reason string when it is not one. */
export function parseSpiffeId(uri: string): SpiffeId | string {
  if (uri.length > 2048) return 'SPIFFE ID longer than 2048 bytes';
  if (!uri.startsWith('spiffe://')) return 'scheme must be spiffe://';
  const rest = uri.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (!trustDomain) return 'empty trust domain';
  if (trustDomain.length > 255) return 'trust domain longer than 255 characters';
  if (!TRUST_DOMAIN_RE.test(trustDomain)) return `trust domain ${JSON.stringify(trustDomain)} has characters outside [a-z0-9._-]`;
  if (path) {
    for (const seg of path.slice(1).split('/')) {
      if (seg === '') return 'path has an empty segment or a trailing slash';
      if (seg === '.' || seg === '..') return 'path has a dot segment';
      if (!SEGMENT_RE.test(seg)) return `path segment ${JSON.stringify(seg)} has characters outside [A-Za-z0-9._-]`;
    }
  }
  return { trustDomain, path };
}

/** A Kubernetes name usable as namespace / service account (DNS-1123 subdomain-ish, no slashes). */
const K8S_NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function isKubernetesName(s: string): boolean {
  return K8S_NAME_RE.test(s);
}

export function workloadIdentity(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** ns and sa of an Istio workload SPIFFE ID, or undefined when the path is not /ns/<ns>/sa/<sa>. */
export function parseWorkloadIdentity(uri: string): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  const id = parseSpiffeId(uri);
  if (typeof id === 'string') return undefined;
  const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id.path);
  if (!m) return undefined;
  return { trustDomain: id.trustDomain, namespace: m[1]!, serviceAccount: m[2]! };
}

/** `system:serviceaccount:<ns>:<sa>` → { namespace, serviceAccount }. */
export function parseServiceAccountUsername(sub: string): { namespace: string; serviceAccount: string } | undefined {
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(sub);
  if (!m || !isKubernetesName(m[1]!) || !isKubernetesName(m[2]!)) return undefined;
  return { namespace: m[1]!, serviceAccount: m[2]! };
}
