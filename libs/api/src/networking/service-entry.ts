import { z } from 'zod';
import { NetworkingWorkloadSelector } from '../common.js';

/**
 * networking.istio.io ServiceEntry, WorkloadEntry and WorkloadGroup
 * (v1, v1beta1, v1alpha3 share one schema).
 */

const PortNumber = z.int().min(1, { error: 'port number must be between 1 and 65535' }).max(65535, { error: 'port number must be between 1 and 65535' });
const Labels = z.record(z.string(), z.string());

export const WorkloadEntrySpec = z.strictObject({
  address: z.string().max(256).optional(),
  ports: z.record(z.string(), PortNumber).optional(),
  labels: Labels.optional(),
  network: z.string().optional(),
  locality: z.string().optional(),
  weight: z.int().min(0).max(4294967295).optional(),
  serviceAccount: z.string().optional(),
});

export const ServicePortSpec = z.strictObject({
  number: PortNumber,
  protocol: z.string().optional(),
  name: z.string({ error: 'port name is required' }).min(1, { error: 'port name is required' }),
  targetPort: PortNumber.optional(),
});

/** An IP address or a CIDR range (Istio's ValidateIPSubnet). */
const IpOrCidr = z
  .string()
  .refine((a) => z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()]).safeParse(a).success, { error: (iss) => `${JSON.stringify(iss.input)} is not an IP address or CIDR range` });

const HOST = /^(\*|(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*\.?)$/;

export const ServiceEntrySpec = z
  .strictObject({
    hosts: z
      .array(z.string().regex(HOST, { error: (iss) => `${JSON.stringify(iss.input)} is not a valid host: use a DNS name, optionally with a leading "*."` }))
      .min(1, { error: 'hosts must name at least one host' })
      .refine((h) => !h.includes('*'), { error: 'the host "*" is not allowed in a ServiceEntry' }),
    addresses: z.array(IpOrCidr).optional(),
    ports: z
      .array(ServicePortSpec)
      .refine((ps) => new Set(ps.map((p) => p.number)).size === ps.length, { error: 'port numbers must be unique' })
      .refine((ps) => new Set(ps.map((p) => p.name)).size === ps.length, { error: 'port names must be unique' })
      .optional(),
    location: z.enum(['MESH_EXTERNAL', 'MESH_INTERNAL']).optional(),
    resolution: z.enum(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN']).optional(),
    endpoints: z.array(WorkloadEntrySpec).optional(),
    workloadSelector: NetworkingWorkloadSelector.optional(),
    exportTo: z.array(z.string()).optional(),
    subjectAltNames: z.array(z.string()).optional(),
  })
  // A CIDR is served as a filter chain match on 0.0.0.0_<port>, which only NONE and STATIC support (Istio's rule).
  .refine((se) => !(se.addresses ?? []).some((a) => a.includes('/')) || se.resolution === undefined || se.resolution === 'NONE' || se.resolution === 'STATIC', {
    error: 'CIDR addresses are allowed only for NONE/STATIC resolution types',
    path: ['addresses'],
  })
  .refine((se) => !(se.workloadSelector && se.endpoints && se.endpoints.length > 0), { error: 'only one of endpoints or workloadSelector may be set' })
  .refine((se) => se.resolution !== 'STATIC' || se.workloadSelector !== undefined || (se.endpoints ?? []).length > 0, {
    error: 'resolution STATIC needs endpoints (or a workloadSelector)',
  })
  .refine((se) => se.resolution !== 'DNS_ROUND_ROBIN' || (se.endpoints ?? []).length <= 1, {
    error: 'resolution DNS_ROUND_ROBIN allows at most one endpoint',
  })
  .refine((se) => se.resolution !== 'STATIC' || (se.endpoints ?? []).every((e) => e.address !== undefined && e.address !== ''), {
    error: 'every endpoint of a STATIC ServiceEntry needs an address',
  });

export const WorkloadGroupSpec = z.strictObject({
  metadata: z.strictObject({ labels: Labels.optional(), annotations: Labels.optional() }).optional(),
  template: WorkloadEntrySpec.refine((t) => !t.address, { error: 'template.address must be empty; it is filled per workload' }),
  probe: z.looseObject({}).optional(),
});

export type ServiceEntry = z.infer<typeof ServiceEntrySpec>;
export type WorkloadEntry = z.infer<typeof WorkloadEntrySpec>;
export type WorkloadGroup = z.infer<typeof WorkloadGroupSpec>;
