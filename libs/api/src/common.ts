import { z } from 'zod';

/**
 * Types shared by Istio's APIs (istio.io/api type/v1beta1, meta/v1alpha1).
 * Istio specs are strict objects: an unknown field is an error (see
 * docs/config-validation.md).
 */

const GO_DURATION = /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/;

/** A duration as Istio accepts it in YAML: Go syntax such as `1.5s`, `100ms`, `1m30s`. */
export const Duration = z.string().superRefine((s, ctx) => {
  if (!GO_DURATION.test(s))
    ctx.addIssue({ code: 'custom', input: s, message: `${JSON.stringify(s)} is not a duration: write a number with a unit, like "1s", "500ms" or "1m30s"` });
});

/** Parses a Go-style duration into milliseconds; undefined when malformed. */
export function durationMillis(s: string): number | undefined {
  if (!GO_DURATION.test(s)) return undefined;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of s.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]!]!;
  return total;
}

/** A duration of at least 1ms (Istio's CRDs check `duration(self) >= duration('1ms')`). */
export const PositiveDuration = z.string().superRefine((s, ctx) => {
  const ms = durationMillis(s);
  if (ms === undefined)
    ctx.addIssue({ code: 'custom', input: s, message: `${JSON.stringify(s)} is not a duration: write a number with a unit, like "1s", "500ms" or "1m30s"` });
  else if (ms < 1) ctx.addIssue({ code: 'custom', input: s, message: `must be a duration of at least 1ms, got "${s}"` });
});

const labelMap = z.record(z.string(), z.string().max(63)).superRefine((m, ctx) => {
  const keys = Object.keys(m);
  if (keys.length > 4096) ctx.addIssue({ code: 'custom', message: 'must have no more than 4096 labels', input: m });
  for (const [k, v] of Object.entries(m)) {
    if (k.length === 0) ctx.addIssue({ code: 'custom', message: 'label key must not be empty', path: [k], input: k });
    if (k.includes('*')) ctx.addIssue({ code: 'custom', message: `wildcard "*" is not allowed in label key "${k}"`, path: [k], input: k });
    if (v.includes('*')) ctx.addIssue({ code: 'custom', message: `wildcard "*" is not allowed in label value "${v}"`, path: [k], input: v });
  }
});

/** istio.type.v1beta1.WorkloadSelector */
export const WorkloadSelector = z.strictObject({
  matchLabels: labelMap.optional(),
});

/**
 * istio.networking.v1alpha3.WorkloadSelector: Sidecar, ServiceEntry and
 * EnvoyFilter select workloads with `labels` (DestinationRule and the security
 * APIs use istio.type.v1beta1.WorkloadSelector's `matchLabels`).
 */
export const NetworkingWorkloadSelector = z.strictObject({
  labels: labelMap.optional(),
});

/** istio.type.v1beta1.PolicyTargetReference */
export const PolicyTargetReference = z.strictObject({
  group: z
    .string()
    .max(253)
    .regex(/^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
      error: (iss) => `${JSON.stringify(iss.input)} is not a valid API group (a DNS subdomain, or empty for core)`,
    })
    .optional(),
  kind: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a valid kind` }),
  name: z.string().min(1).max(253),
  namespace: z
    .string()
    .refine((s) => s.length === 0, { error: 'cross-namespace references are not supported; leave namespace empty' })
    .optional(),
});

/** The `selector` / `targetRef` / `targetRefs` trio every policy kind has; at most one may be set. */
export const targetingFields = {
  selector: WorkloadSelector.optional(),
  targetRef: PolicyTargetReference.optional(),
  targetRefs: z.array(PolicyTargetReference).max(16).optional(),
};

export function atMostOneTargeting(spec: { selector?: unknown; targetRef?: unknown; targetRefs?: unknown }): boolean {
  return [spec.selector, spec.targetRef, spec.targetRefs].filter((x) => x !== undefined).length <= 1;
}
export const atMostOneTargetingError = { error: 'only one of selector, targetRef or targetRefs may be set' };

/** istio.meta.v1alpha1.IstioStatus. Written by controllers, never validated strictly. */
export const IstioStatus = z.looseObject({
  conditions: z
    .array(
      z.looseObject({
        type: z.string().optional(),
        status: z.string().optional(),
        lastProbeTime: z.string().optional(),
        lastTransitionTime: z.string().optional(),
        reason: z.string().optional(),
        message: z.string().optional(),
        observedGeneration: z.union([z.int(), z.string()]).optional(),
      }),
    )
    .optional(),
  validationMessages: z
    .array(
      z.looseObject({
        type: z.looseObject({ code: z.string().optional(), name: z.string().optional() }).optional(),
        level: z.enum(['UNKNOWN', 'ERROR', 'WARNING', 'INFO']).optional(),
        documentationUrl: z.string().optional(),
      }),
    )
    .optional(),
  observedGeneration: z.union([z.int(), z.string()]).optional(),
});

export type WorkloadSelector = z.infer<typeof WorkloadSelector>;
export type PolicyTargetReference = z.infer<typeof PolicyTargetReference>;
export type IstioStatus = z.infer<typeof IstioStatus>;
