import { z } from 'zod';

/**
 * Kubernetes naming rules (k8s.io/apimachinery/pkg/util/validation), written
 * as zod checks whose messages say what is wrong in plain words.
 */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Which Kubernetes rule an object's name follows. */
export type NameRule = 'dns1123-subdomain' | 'dns1123-label' | 'dns1035-label';

/** Returns why `name` breaks `rule`, or undefined when it is a valid name. */
export function checkName(name: string, rule: NameRule): string | undefined {
  if (name.length === 0) return 'must not be empty';
  switch (rule) {
    case 'dns1123-subdomain':
      if (name.length > 253) return `must be no more than 253 characters (has ${name.length})`;
      if (!DNS1123_SUBDOMAIN.test(name))
        return `"${name}" is not a valid name: use lower case letters, digits, '-' and '.', starting and ending with a letter or digit`;
      return undefined;
    case 'dns1123-label':
      if (name.length > 63) return `must be no more than 63 characters (has ${name.length})`;
      if (!DNS1123_LABEL.test(name))
        return `"${name}" is not a valid name: use lower case letters, digits and '-', starting and ending with a letter or digit`;
      return undefined;
    case 'dns1035-label':
      if (name.length > 63) return `must be no more than 63 characters (has ${name.length})`;
      if (!DNS1035_LABEL.test(name))
        return `"${name}" is not a valid name: use lower case letters, digits and '-', starting with a letter and ending with a letter or digit`;
      return undefined;
  }
}

/** A label or annotation key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters. */
export function checkQualifiedName(key: string): string | undefined {
  if (key.length === 0) return 'key must not be empty';
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (prefix.length === 0) return `key "${key}" has an empty prefix before '/'`;
    if (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))
      return `key "${key}" has an invalid prefix "${prefix}": it must be a DNS subdomain (lower case letters, digits, '-' and '.')`;
  }
  if (name.length === 0) return `key "${key}" has an empty name after the prefix`;
  if (name.length > 63) return `key "${key}" is too long: the part after the prefix must be no more than 63 characters`;
  if (!QUALIFIED_NAME_PART.test(name))
    return `key "${key}" is not valid: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  return undefined;
}

export function checkLabelValue(value: string): string | undefined {
  if (value.length > 63) return `must be no more than 63 characters (has ${value.length})`;
  if (!LABEL_VALUE.test(value))
    return `"${value}" is not a valid label value: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  return undefined;
}

/** A map whose keys are label keys (checked) and whose values are strings. */
function keyedStringMap(checkValue?: (v: string) => string | undefined) {
  return z.record(z.string(), z.string()).superRefine((m, ctx) => {
    for (const [k, v] of Object.entries(m)) {
      const keyProblem = checkQualifiedName(k);
      if (keyProblem) ctx.addIssue({ code: 'custom', message: keyProblem, path: [k], input: k });
      const valueProblem = checkValue?.(v);
      if (valueProblem) ctx.addIssue({ code: 'custom', message: valueProblem, path: [k], input: v });
    }
  });
}

export const Labels = keyedStringMap(checkLabelValue);
export const Annotations = keyedStringMap();

export const OwnerReference = z.looseObject({
  apiVersion: z.string(),
  kind: z.string(),
  name: z.string(),
  uid: z.string().optional(),
  controller: z.boolean().optional(),
  blockOwnerDeletion: z.boolean().optional(),
});

/**
 * ObjectMeta as Sextant reads it. Unknown metadata fields (managedFields,
 * finalizers, ...) are accepted and dropped: the API server owns them.
 * The name is checked by `validateObject` against the kind's name rule.
 */
export const ObjectMetaSchema = z.looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  labels: Labels.optional(),
  annotations: Annotations.optional(),
  resourceVersion: z.string().optional(),
  generation: z.int().optional(),
  uid: z.string().optional(),
  creationTimestamp: z.union([z.string(), z.date()]).nullable().optional(),
  ownerReferences: z.array(OwnerReference).optional(),
});
