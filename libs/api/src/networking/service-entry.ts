import { z } from 'zod';

// Placeholder: replaced by the full schema of Istio's networking API.
export const ServiceEntrySpec = z.looseObject({});
export const WorkloadEntrySpec = z.looseObject({});
export const WorkloadGroupSpec = z.looseObject({});
