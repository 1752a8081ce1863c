import { z } from 'zod';
import { NetworkingWorkloadSelector } from '../common.js';
import { ConnectionPoolSettings } from './destination-rule.js';

/** networking.istio.io Sidecar (v1, v1beta1, v1alpha3). */

const PortNumber = z.int().min(1, { error: 'port number must be between 1 and 65535' }).max(65535, { error: 'port number must be between 1 and 65535' });
const SidecarPort = z.strictObject({
  number: PortNumber,
  protocol: z.string().optional(),
  name: z.string().optional(),
  targetPort: PortNumber.optional(),
});
const CaptureMode = z.enum(['DEFAULT', 'IPTABLES', 'NONE']);

/** `namespace/dnsName`, where namespace is `*`, `.`, `~` or a name, and dnsName may start with `*`. */
const EgressHost = z.string().refine((h) => /^(\*|\.|~|[a-z0-9]([-a-z0-9]*[a-z0-9])?)\/(\*|(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*)$/.test(h), {
  error: (iss) => `${JSON.stringify(iss.input)} is not a valid egress host: write namespace/dnsName, e.g. "./*", "istio-system/*" or "*/reviews.default.svc.cluster.local"`,
});

export const IstioIngressListener = z.strictObject({
  port: SidecarPort,
  bind: z.string().optional(),
  captureMode: CaptureMode.optional(),
  defaultEndpoint: z.string().optional(),
  tls: z.looseObject({}).optional(),
  connectionPool: ConnectionPoolSettings.optional(),
});

export const IstioEgressListener = z.strictObject({
  port: SidecarPort.optional(),
  bind: z.string().optional(),
  captureMode: CaptureMode.optional(),
  hosts: z.array(EgressHost).min(1, { error: 'an egress listener must list at least one host' }),
});

export const SidecarSpec = z
  .strictObject({
    workloadSelector: NetworkingWorkloadSelector.optional(),
    ingress: z.array(IstioIngressListener).optional(),
    egress: z.array(IstioEgressListener).optional(),
    inboundConnectionPool: ConnectionPoolSettings.optional(),
    outboundTrafficPolicy: z
      .strictObject({
        mode: z.enum(['REGISTRY_ONLY', 'ALLOW_ANY']).optional(),
        egressProxy: z.looseObject({ host: z.string(), subset: z.string().optional(), port: z.looseObject({ number: PortNumber }).optional() }).optional(),
      })
      .optional(),
  })
  .refine((s) => (s.egress ?? []).filter((e) => e.port === undefined).length <= 1, {
    error: 'only one egress listener may omit port (the catch-all listener)',
  });

export type Sidecar = z.infer<typeof SidecarSpec>;
export type IstioEgressListener = z.infer<typeof IstioEgressListener>;
