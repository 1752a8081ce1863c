import { z } from 'zod';

// Placeholder specs; the translation work replaces each with the full schema of
// Istio's networking API (networking.istio.io v1/v1beta1/v1alpha3).
export const VirtualServiceSpec = z.looseObject({});
export const DestinationRuleSpec = z.looseObject({});
export const GatewaySpec = z.looseObject({});
export const ServiceEntrySpec = z.looseObject({});
export const WorkloadEntrySpec = z.looseObject({});
export const WorkloadGroupSpec = z.looseObject({});
export const SidecarSpec = z.looseObject({});
export const EnvoyFilterSpec = z.looseObject({});
