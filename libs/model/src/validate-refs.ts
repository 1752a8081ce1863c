import type { ValidationIssue } from '@sextant/api';
import type { DestinationRuleIndex } from './destination-rules.js';
import { hostMatches, resolveShortName } from './labels.js';
import type { PushContext } from './types.js';

interface Dest {
  host?: string;
  subset?: string;
  port?: { number?: number };
}

/**
 * Semantic checks across objects (what schema validation cannot see):
 * VirtualService destinations naming hosts or subsets that do not exist,
 * DestinationRules for hosts nothing declares. Each finding is an issue;
 * nothing here stops the rest of the config from being served.
 */
export function checkReferences(push: PushContext & { destinationRuleForNamespace(ns: string, host: string): { spec: Record<string, any> } | undefined }, drs: DestinationRuleIndex, issues: ValidationIssue[]): void {
  // An exact hostname is known at once (hostMatches(h, h) holds); wildcards and misses scan.
  const hostnames = new Set(push.allServices().map((s) => s.hostname));
  const known = (host: string) => hostnames.has(host) || push.allServices().some((s) => hostMatches(s.hostname, host) || hostMatches(host, s.hostname));

  for (const dr of drs.all()) {
    if (!known(dr.host)) {
      const src = dr.from[0]!;
      issues.push({ kind: 'DestinationRule', namespace: src.namespace, name: src.name, field: 'spec.host', reason: `host ${dr.host} matches no Service or ServiceEntry; the rule has no effect until one exists` });
    }
  }

  for (const vs of push.configs('VirtualService')) {
    const check = (d: Dest | undefined, field: string) => {
      if (!d?.host) return;
      const host = resolveShortName(d.host, vs.namespace, push.domainSuffix);
      const svc = push.serviceByHostname(host, vs.namespace);
      if (!svc && !known(host)) {
        issues.push({ kind: 'VirtualService', namespace: vs.namespace, name: vs.name, field: `${field}.host`, reason: `host ${host} matches no Service or ServiceEntry; requests routed there get 503 (no healthy upstream)` });
        return;
      }
      if (svc && d.port?.number !== undefined && !svc.ports.some((p) => p.port === d.port!.number)) {
        issues.push({ kind: 'VirtualService', namespace: vs.namespace, name: vs.name, field: `${field}.port.number`, reason: `service ${host} has no port ${d.port.number} (ports: ${svc.ports.map((p) => p.port).join(', ') || 'none'})` });
      }
      if (d.subset) {
        const dr = push.destinationRuleForNamespace(vs.namespace, host);
        const subsets = ((dr?.spec.subsets ?? []) as Array<{ name: string }>).map((s) => s.name);
        if (!subsets.includes(d.subset)) {
          issues.push({
            kind: 'VirtualService',
            namespace: vs.namespace,
            name: vs.name,
            field: `${field}.subset`,
            reason: dr
              ? `subset "${d.subset}" is not defined for host ${host} (DestinationRule defines: ${subsets.join(', ') || 'none'})`
              : `subset "${d.subset}" needs a DestinationRule for host ${host} that defines it; there is none`,
          });
        }
      }
    };
    const spec = vs.spec as { http?: Array<{ route?: Array<{ destination?: Dest }>; mirror?: Dest; mirrors?: Array<{ destination?: Dest }> }>; tcp?: Array<{ route?: Array<{ destination?: Dest }> }>; tls?: Array<{ route?: Array<{ destination?: Dest }> }> };
    (spec.http ?? []).forEach((r, i) => {
      (r.route ?? []).forEach((rt, j) => check(rt.destination, `spec.http[${i}].route[${j}].destination`));
      if (r.mirror) check(r.mirror, `spec.http[${i}].mirror`);
      (r.mirrors ?? []).forEach((m, j) => check(m.destination, `spec.http[${i}].mirrors[${j}].destination`));
    });
    (spec.tcp ?? []).forEach((r, i) => (r.route ?? []).forEach((rt, j) => check(rt.destination, `spec.tcp[${i}].route[${j}].destination`)));
    (spec.tls ?? []).forEach((r, i) => (r.route ?? []).forEach((rt, j) => check(rt.destination, `spec.tls[${i}].route[${j}].destination`)));
  }
}
