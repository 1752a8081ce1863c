import type { PushContext } from '@sextant/model';

/**
 * The outbound cluster of a provider's `service` (`hostname` or
 * `namespace/hostname`) and port, as istiod's model.LookupCluster finds it;
 * a string is the reason it could not.
 */
export function lookupServiceCluster(push: PushContext, service: string, port: number): { hostname: string; cluster: string } | string {
  if (!service) return 'service must not be empty';
  const parts = service.split('/');
  const all = push.allServices();
  if (parts.length === 2) {
    const svc = all.find((s) => s.hostname === parts[1] && s.namespace === parts[0]);
    if (svc) return { hostname: svc.hostname, cluster: `outbound|${port}||${svc.hostname}` };
  } else {
    const found = all.filter((s) => s.hostname === service);
    const nss = [...new Set(found.map((s) => s.namespace))];
    if (nss.length === 1) return { hostname: found[0]!.hostname, cluster: `outbound|${port}||${found[0]!.hostname}` };
    if (nss.length > 1) return `found ${service} in multiple namespaces ${JSON.stringify(nss)}, specify the namespace explicitly in the format of <Namespace>/<Hostname>`;
  }
  return `could not find service ${service} in Istio service registry`;
}
