import { z } from 'zod';
import { NetworkingWorkloadSelector, PolicyTargetReference } from '../common.js';

/** networking.istio.io EnvoyFilter (v1alpha3). Patch values are free-form Envoy JSON. */

export const EnvoyFilterApplyTo = z.enum([
  'INVALID',
  'LISTENER',
  'FILTER_CHAIN',
  'NETWORK_FILTER',
  'HTTP_FILTER',
  'ROUTE_CONFIGURATION',
  'VIRTUAL_HOST',
  'HTTP_ROUTE',
  'CLUSTER',
  'EXTENSION_CONFIG',
  'BOOTSTRAP',
  'LISTENER_FILTER',
]);

export const EnvoyConfigObjectPatch = z.strictObject({
  applyTo: EnvoyFilterApplyTo,
  match: z
    .strictObject({
      context: z.enum(['ANY', 'SIDECAR_INBOUND', 'SIDECAR_OUTBOUND', 'GATEWAY']).optional(),
      proxy: z.strictObject({ proxyVersion: z.string().optional(), metadata: z.record(z.string(), z.string()).optional() }).optional(),
      listener: z.looseObject({}).optional(),
      routeConfiguration: z.looseObject({}).optional(),
      cluster: z.strictObject({ portNumber: z.int().optional(), service: z.string().optional(), subset: z.string().optional(), name: z.string().optional() }).optional(),
    })
    .optional(),
  patch: z.strictObject({
    operation: z.enum(['INVALID', 'MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE']),
    value: z.record(z.string(), z.unknown()).optional(),
    filterClass: z.enum(['UNSPECIFIED', 'AUTHN', 'AUTHZ', 'STATS']).optional(),
  }),
});

export const EnvoyFilterSpec = z
  .strictObject({
    workloadSelector: NetworkingWorkloadSelector.optional(),
    targetRefs: z.array(PolicyTargetReference).optional(),
    configPatches: z.array(EnvoyConfigObjectPatch).optional(),
    priority: z.int().optional(),
  })
  .refine((f) => !(f.workloadSelector && f.targetRefs), { error: 'only one of workloadSelector or targetRefs may be set' });

export type EnvoyFilter = z.infer<typeof EnvoyFilterSpec>;
