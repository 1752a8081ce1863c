import { z } from 'zod';
import { PositiveDuration, atMostOneTargeting, atMostOneTargetingError, targetingFields } from '../common.js';

/** telemetry.istio.io v1 / v1alpha1: one schema serves every version, as in Istio. */

export const WorkloadMode = z.enum(['CLIENT_AND_SERVER', 'CLIENT', 'SERVER']);
export const ProviderRef = z.strictObject({ name: z.string().min(1) });

const setCount = (o: Record<string, unknown>, keys: string[]) => keys.filter((k) => o[k] !== undefined).length;

export const CustomTag = z
  .strictObject({
    literal: z.strictObject({ value: z.string().min(1) }).optional(),
    environment: z.strictObject({ name: z.string().min(1), defaultValue: z.string().optional() }).optional(),
    header: z.strictObject({ name: z.string().min(1), defaultValue: z.string().optional() }).optional(),
    formatter: z.strictObject({ value: z.string().min(1) }).optional(),
  })
  .refine((t) => setCount(t, ['literal', 'environment', 'header', 'formatter']) <= 1, {
    error: 'only one of literal, environment, header or formatter may be set',
  });

export const Tracing = z.strictObject({
  match: z.strictObject({ mode: WorkloadMode.optional() }).optional(),
  providers: z.array(ProviderRef).optional(),
  randomSamplingPercentage: z.number().min(0).max(100).nullable().optional(),
  disableSpanReporting: z.boolean().nullable().optional(),
  customTags: z.record(z.string(), CustomTag).optional(),
  useRequestIdForTraceSampling: z.boolean().nullable().optional(),
  enableIstioTags: z.boolean().nullable().optional(),
  disableContextPropagation: z.boolean().nullable().optional(),
});

export const MetricSelector = z
  .strictObject({
    metric: z
      .enum([
        'ALL_METRICS',
        'REQUEST_COUNT',
        'REQUEST_DURATION',
        'REQUEST_SIZE',
        'RESPONSE_SIZE',
        'TCP_OPENED_CONNECTIONS',
        'TCP_CLOSED_CONNECTIONS',
        'TCP_SENT_BYTES',
        'TCP_RECEIVED_BYTES',
        'GRPC_REQUEST_MESSAGES',
        'GRPC_RESPONSE_MESSAGES',
      ])
      .optional(),
    customMetric: z.string().min(1).optional(),
    mode: WorkloadMode.optional(),
  })
  .refine((m) => setCount(m, ['metric', 'customMetric']) <= 1, { error: 'only one of metric or customMetric may be set' });

export const TagOverride = z
  .strictObject({
    operation: z.enum(['UPSERT', 'REMOVE']).optional(),
    value: z.string().optional(),
  })
  .refine((t) => t.operation !== 'UPSERT' || (t.value ?? '') !== '', { error: 'value must be set when operation is UPSERT', path: ['value'] })
  .refine((t) => t.operation !== 'REMOVE' || t.value === undefined, { error: 'value must not be set when operation is REMOVE', path: ['value'] });

export const MetricsOverrides = z.strictObject({
  match: MetricSelector.optional(),
  disabled: z.boolean().nullable().optional(),
  tagOverrides: z.record(z.string(), TagOverride).optional(),
});

export const Metrics = z.strictObject({
  providers: z.array(ProviderRef).optional(),
  overrides: z.array(MetricsOverrides).optional(),
  reportingInterval: PositiveDuration.optional(),
});

export const AccessLogging = z.strictObject({
  match: z.strictObject({ mode: WorkloadMode.optional() }).optional(),
  providers: z.array(ProviderRef).optional(),
  disabled: z.boolean().nullable().optional(),
  filter: z.strictObject({ expression: z.string().optional() }).optional(),
});

export const TelemetrySpec = z
  .strictObject({
    ...targetingFields,
    tracing: z.array(Tracing).optional(),
    metrics: z.array(Metrics).optional(),
    accessLogging: z.array(AccessLogging).optional(),
  })
  .refine(atMostOneTargeting, atMostOneTargetingError);

export type WorkloadMode = z.infer<typeof WorkloadMode>;
export type Tracing = z.infer<typeof Tracing>;
export type Metrics = z.infer<typeof Metrics>;
export type AccessLogging = z.infer<typeof AccessLogging>;
export type TelemetrySpec = z.infer<typeof TelemetrySpec>;
