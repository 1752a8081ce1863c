import { z } from 'zod';
import { PositiveDuration, atMostOneTargeting, atMostOneTargetingError, targetingFields } from '../common.js';

/** security.istio.io v1 / v1beta1: one schema serves every version, as in Istio. */

export const MutualTLSMode = z.enum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);
export const PeerAuthenticationMutualTLS = z.strictObject({ mode: MutualTLSMode.optional() });

const portKey = /^[0-9]+$/;

export const PeerAuthenticationSpec = z
  .strictObject({
    selector: targetingFields.selector,
    mtls: PeerAuthenticationMutualTLS.optional(),
    portLevelMtls: z
      .record(z.string(), PeerAuthenticationMutualTLS)
      .superRefine((m, ctx) => {
        if (Object.keys(m).length === 0) ctx.addIssue({ code: 'custom', message: 'must list at least one port when set', input: m });
        for (const k of Object.keys(m)) {
          const n = Number(k);
          if (!portKey.test(k) || n < 1 || n > 65535)
            ctx.addIssue({ code: 'custom', message: `port "${k}" must be a number between 1 and 65535`, path: [k], input: k });
        }
      })
      .optional(),
  })
  .refine((s) => s.portLevelMtls === undefined || Object.keys(s.selector?.matchLabels ?? {}).length > 0, {
    error: 'portLevelMtls requires a selector with matchLabels',
    path: ['portLevelMtls'],
  });

export const JWTHeader = z.strictObject({
  name: z.string().min(1),
  prefix: z.string().optional(),
});

export const ClaimToHeader = z.strictObject({
  header: z
    .string()
    .min(1)
    .regex(/^[-_A-Za-z0-9]+$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a valid header name (letters, digits, '-' and '_')` }),
  claim: z.string().min(1),
});

const httpUrl = z
  .string()
  .min(1)
  .max(2048)
  .refine((s) => /^https?:\/\//i.test(s), { error: (iss) => `${JSON.stringify(iss.input)} must be an http:// or https:// URL` });

export const JWTRule = z
  .strictObject({
    issuer: z.string().min(1),
    audiences: z.array(z.string().min(1)).optional(),
    jwksUri: httpUrl.optional(),
    /** Deprecated spelling Istio's CRD still accepts. */
    jwks_uri: httpUrl.optional(),
    jwks: z.string().optional(),
    fromHeaders: z.array(JWTHeader).optional(),
    fromParams: z.array(z.string().min(1)).optional(),
    fromCookies: z.array(z.string().min(1)).optional(),
    outputPayloadToHeader: z.string().optional(),
    forwardOriginalToken: z.boolean().optional(),
    outputClaimToHeaders: z.array(ClaimToHeader).optional(),
    spaceDelimitedClaims: z.array(z.string().min(1)).max(64).optional(),
    timeout: PositiveDuration.optional(),
    presence: z.enum(['OPTIONAL', 'REQUIRED']).optional(),
  })
  .refine((r) => [r.jwksUri, r.jwks_uri, r.jwks].filter((x) => x !== undefined).length <= 1, {
    error: 'only one of jwks or jwksUri may be set',
  });

export const RequestAuthenticationSpec = z
  .strictObject({
    ...targetingFields,
    jwtRules: z.array(JWTRule).max(4096).optional(),
  })
  .refine(atMostOneTargeting, atMostOneTargetingError);

const strings = z.array(z.string()).optional();

export const AuthorizationSource = z
  .strictObject({
    principals: strings,
    notPrincipals: strings,
    requestPrincipals: strings,
    notRequestPrincipals: strings,
    namespaces: strings,
    notNamespaces: strings,
    serviceAccounts: z.array(z.string().max(320)).max(16).optional(),
    notServiceAccounts: z.array(z.string().max(320)).max(16).optional(),
    ipBlocks: strings,
    notIpBlocks: strings,
    remoteIpBlocks: strings,
    notRemoteIpBlocks: strings,
    trustDomains: strings,
    notTrustDomains: strings,
  })
  .refine(
    (s) =>
      !(s.serviceAccounts !== undefined || s.notServiceAccounts !== undefined) ||
      [s.principals, s.notPrincipals, s.namespaces, s.notNamespaces].every((x) => x === undefined),
    { error: 'serviceAccounts cannot be set together with namespaces or principals' },
  );

export const AuthorizationOperation = z.strictObject({
  hosts: strings,
  notHosts: strings,
  ports: strings,
  notPorts: strings,
  methods: strings,
  notMethods: strings,
  paths: strings,
  notPaths: strings,
});

export const AuthorizationCondition = z.strictObject({
  key: z.string(),
  values: strings,
  notValues: strings,
});

export const AuthorizationRule = z.strictObject({
  from: z.array(z.strictObject({ source: AuthorizationSource.optional() })).max(512).optional(),
  to: z.array(z.strictObject({ operation: AuthorizationOperation.optional() })).optional(),
  when: z.array(AuthorizationCondition).optional(),
});

export const AuthorizationAction = z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']);

export const AuthorizationPolicySpec = z
  .strictObject({
    ...targetingFields,
    rules: z.array(AuthorizationRule).max(512).optional(),
    action: AuthorizationAction.optional(),
    provider: z.strictObject({ name: z.string().optional() }).optional(),
  })
  .refine(atMostOneTargeting, atMostOneTargetingError)
  .refine((s) => s.action !== 'CUSTOM' || s.provider !== undefined, {
    error: 'action CUSTOM requires a provider',
    path: ['provider'],
  })
  .refine((s) => s.provider === undefined || s.action === 'CUSTOM', {
    error: 'provider may only be set with action CUSTOM',
    path: ['provider'],
  });

export type MutualTLSMode = z.infer<typeof MutualTLSMode>;
export type PeerAuthenticationSpec = z.infer<typeof PeerAuthenticationSpec>;
export type JWTRule = z.infer<typeof JWTRule>;
export type RequestAuthenticationSpec = z.infer<typeof RequestAuthenticationSpec>;
export type AuthorizationSource = z.infer<typeof AuthorizationSource>;
export type AuthorizationOperation = z.infer<typeof AuthorizationOperation>;
export type AuthorizationCondition = z.infer<typeof AuthorizationCondition>;
export type AuthorizationRule = z.infer<typeof AuthorizationRule>;
export type AuthorizationAction = z.infer<typeof AuthorizationAction>;
export type AuthorizationPolicySpec = z.infer<typeof AuthorizationPolicySpec>;
