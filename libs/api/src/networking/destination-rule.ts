import { z } from 'zod';
import { Duration, WorkloadSelector } from '../common.js';

/**
 * networking.istio.io DestinationRule (v1, v1beta1, v1alpha3 share one schema).
 * Field names and enums follow istio.io/api networking/v1alpha3/destination_rule.proto.
 */

const u32 = z.int().min(0).max(4294967295);
const PortSelector = z.strictObject({
  number: z.int().min(1, { error: 'port number must be between 1 and 65535' }).max(65535, { error: 'port number must be between 1 and 65535' }),
});

export const LocalityLoadBalancerSetting = z.strictObject({
  distribute: z
    .array(
      z.strictObject({
        from: z.string().min(1, { error: 'from must name a locality (region/zone/subzone, "*" allowed at the end)' }),
        to: z.record(z.string(), u32).refine((m) => Object.values(m).reduce((a, b) => a + b, 0) === 100, {
          error: 'the weights in to must add up to 100',
        }),
      }),
    )
    .optional(),
  failover: z.array(z.strictObject({ from: z.string().min(1), to: z.string().min(1) })).optional(),
  failoverPriority: z.array(z.string()).optional(),
  enabled: z.boolean().nullable().optional(),
});

export const LoadBalancerSettings = z
  .strictObject({
    simple: z.enum(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST']).optional(),
    consistentHash: z
      .strictObject({
        httpHeaderName: z.string().min(1).optional(),
        httpCookie: z.strictObject({ name: z.string().min(1, { error: 'cookie name is required' }), path: z.string().optional(), ttl: Duration.optional(), attributes: z.array(z.strictObject({ name: z.string(), value: z.string().optional() })).optional() }).optional(),
        useSourceIp: z.boolean().optional(),
        httpQueryParameterName: z.string().min(1).optional(),
        ringHash: z.strictObject({ minimumRingSize: z.union([z.int().min(0), z.string().regex(/^[0-9]+$/)]).optional() }).optional(),
        maglev: z.strictObject({ tableSize: z.union([z.int().min(0), z.string().regex(/^[0-9]+$/)]).optional() }).optional(),
        minimumRingSize: z.union([z.int().min(0), z.string().regex(/^[0-9]+$/)]).optional(),
      })
      .refine((h) => [h.httpHeaderName, h.httpCookie, h.useSourceIp, h.httpQueryParameterName].filter((x) => x !== undefined && x !== false).length <= 1, {
        error: 'only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set',
      })
      .refine((h) => !(h.ringHash && h.maglev), { error: 'only one of ringHash or maglev may be set' })
      .optional(),
    localityLbSetting: LocalityLoadBalancerSetting.optional(),
    warmupDurationSecs: Duration.optional(),
  })
  .refine((lb) => !(lb.simple && lb.consistentHash), { error: 'only one of simple or consistentHash may be set' });

export const ConnectionPoolSettings = z.strictObject({
  tcp: z
    .strictObject({
      maxConnections: z.int().min(0).optional(),
      connectTimeout: Duration.optional(),
      tcpKeepalive: z.strictObject({ probes: u32.optional(), time: Duration.optional(), interval: Duration.optional() }).optional(),
      maxConnectionDuration: Duration.optional(),
      idleTimeout: Duration.optional(),
    })
    .optional(),
  http: z
    .strictObject({
      http1MaxPendingRequests: z.int().min(0).optional(),
      http2MaxRequests: z.int().min(0).optional(),
      maxRequestsPerConnection: z.int().min(0).optional(),
      maxRetries: z.int().min(0).optional(),
      idleTimeout: Duration.optional(),
      h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional(),
      useClientProtocol: z.boolean().optional(),
      maxConcurrentStreams: z.int().min(0).optional(),
    })
    .optional(),
});

export const OutlierDetection = z.strictObject({
  splitExternalLocalOriginErrors: z.boolean().optional(),
  consecutiveLocalOriginFailures: u32.nullable().optional(),
  consecutiveGatewayErrors: u32.nullable().optional(),
  consecutive5xxErrors: u32.nullable().optional(),
  consecutiveErrors: z.int().optional(),
  interval: Duration.optional(),
  baseEjectionTime: Duration.optional(),
  maxEjectionPercent: z.int().min(0, { error: 'maxEjectionPercent must be between 0 and 100' }).max(100, { error: 'maxEjectionPercent must be between 0 and 100' }).optional(),
  minHealthPercent: z.int().min(0, { error: 'minHealthPercent must be between 0 and 100' }).max(100, { error: 'minHealthPercent must be between 0 and 100' }).optional(),
});

export const ClientTLSSettings = z
  .strictObject({
    mode: z.enum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']).optional(),
    clientCertificate: z.string().optional(),
    privateKey: z.string().optional(),
    caCertificates: z.string().optional(),
    credentialName: z.string().optional(),
    subjectAltNames: z.array(z.string()).optional(),
    sni: z.string().optional(),
    insecureSkipVerify: z.boolean().nullable().optional(),
    caCrl: z.string().optional(),
  })
  .refine((t) => !(t.mode === 'MUTUAL' && !t.credentialName && (!t.clientCertificate || !t.privateKey)), {
    error: 'MUTUAL mode needs credentialName, or both clientCertificate and privateKey',
  })
  .refine((t) => t.mode !== 'ISTIO_MUTUAL' || (!t.clientCertificate && !t.privateKey && !t.caCertificates && !t.credentialName), {
    error: 'ISTIO_MUTUAL uses the mesh certificates; do not set clientCertificate, privateKey, caCertificates or credentialName',
  });

const policyFields = {
  loadBalancer: LoadBalancerSettings.optional(),
  connectionPool: ConnectionPoolSettings.optional(),
  outlierDetection: OutlierDetection.optional(),
  tls: ClientTLSSettings.optional(),
};

export const PortTrafficPolicy = z.strictObject({ port: PortSelector.optional(), ...policyFields });

export const TrafficPolicy = z.strictObject({
  ...policyFields,
  portLevelSettings: z
    .array(PortTrafficPolicy)
    .max(4096)
    .refine((ps) => ps.every((p) => p.port !== undefined), { error: 'every portLevelSettings entry must name a port' })
    .refine((ps) => new Set(ps.map((p) => p.port?.number)).size === ps.length, { error: 'a port may appear only once in portLevelSettings' })
    .optional(),
  tunnel: z.strictObject({ protocol: z.string().optional(), targetHost: z.string(), targetPort: z.int().min(1).max(65535) }).optional(),
  proxyProtocol: z.strictObject({ version: z.enum(['V1', 'V2']).optional() }).optional(),
  retryBudget: z.strictObject({ percent: z.number().min(0).max(100).optional(), minRetryConcurrency: u32.optional() }).optional(),
});

export const Subset = z.strictObject({
  name: z
    .string()
    .min(1, { error: 'subset name is required' })
    .regex(/^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a valid subset name (letters, digits, "-", "_", ".")` }),
  labels: z.record(z.string(), z.string()).optional(),
  trafficPolicy: TrafficPolicy.optional(),
});

export const DestinationRuleSpec = z.strictObject({
  host: z.string({ error: 'host is required: the service (FQDN or short name) the rule applies to' }).min(1, { error: 'host is required: the service (FQDN or short name) the rule applies to' }),
  trafficPolicy: TrafficPolicy.optional(),
  subsets: z
    .array(Subset)
    .refine((s) => new Set(s.map((x) => x.name)).size === s.length, { error: 'subset names must be unique' })
    .optional(),
  exportTo: z.array(z.string()).optional(),
  workloadSelector: WorkloadSelector.optional(),
});

export type DestinationRule = z.infer<typeof DestinationRuleSpec>;
export type TrafficPolicy = z.infer<typeof TrafficPolicy>;
export type PortTrafficPolicy = z.infer<typeof PortTrafficPolicy>;
export type LoadBalancerSettings = z.infer<typeof LoadBalancerSettings>;
export type ConnectionPoolSettings = z.infer<typeof ConnectionPoolSettings>;
export type OutlierDetection = z.infer<typeof OutlierDetection>;
export type ClientTLSSettings = z.infer<typeof ClientTLSSettings>;
export type LocalityLoadBalancerSetting = z.infer<typeof LocalityLoadBalancerSetting>;
export type Subset = z.infer<typeof Subset>;
export type ConsistentHash = NonNullable<LoadBalancerSettings['consistentHash']>;
