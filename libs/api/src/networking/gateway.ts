import { z } from 'zod';

// Placeholder: replaced by the full schema of Istio's networking API.
export const GatewaySpec = z.looseObject({});
