/** Label helpers shared by the model. */

/** True when every key/value of `selector` is in `labels` (an empty or missing selector matches all). */
export function selectorMatches(selector: Record<string, string> | undefined | null, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) if (labels?.[k] !== v) return false;
  return true;
}

export const LABEL_TLS_MODE = 'security.istio.io/tlsMode';
export const LABEL_REGION = 'topology.kubernetes.io/region';
export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const LABEL_SUBZONE = 'topology.istio.io/subzone';
export const LABEL_NETWORK = 'topology.istio.io/network';
export const ANNOTATION_EXPORT_TO = 'networking.istio.io/exportTo';

/** `region/zone/subzone` → parts (missing parts are ''). */
export function parseLocality(s: string | undefined | null): { region: string; zone: string; subzone: string } {
  const [region = '', zone = '', subzone = ''] = (s ?? '').split('/');
  return { region, zone, subzone };
}

export function localityLabel(l: { region: string; zone: string; subzone: string }): string {
  if (!l.region && !l.zone && !l.subzone) return '';
  return [l.region, l.zone, l.subzone].join('/').replace(/\/+$/, '');
}

/** Compares two strings the way sort wants it (byte order, not locale). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Host matching with Istio's wildcard rules: `*` matches all, `*.example.com` matches `a.example.com` and `a.b.example.com`. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern === host) return true;
  if (pattern.startsWith('*')) {
    const suffix = pattern.slice(1);
    if (host.startsWith('*')) return host.slice(1).endsWith(suffix);
    return host.endsWith(suffix);
  }
  if (host.startsWith('*')) return pattern.endsWith(host.slice(1));
  return false;
}

/** Expands a short host name the way Istio does: `reviews` in namespace `default` → `reviews.default.svc.<suffix>`. */
export function resolveShortName(host: string, namespace: string, domainSuffix: string): string {
  if (host.includes('.') || host.includes('*')) return host;
  return `${host}.${namespace}.svc.${domainSuffix}`;
}

/** Resolves an exportTo list: `.` → own namespace; default when empty. */
export function resolveExportTo(list: readonly string[] | undefined, ownNamespace: string, dflt: readonly string[]): string[] {
  const src = list && list.length > 0 ? list : dflt;
  const out = new Set<string>();
  for (const e of src) {
    if (e === '.') out.add(ownNamespace);
    else if (e === '~') continue;
    else out.add(e);
  }
  return [...out].sort(cmp);
}

export function exportedTo(exportTo: readonly string[], namespace: string): boolean {
  return exportTo.includes('*') || exportTo.includes(namespace);
}
