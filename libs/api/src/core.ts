import { z } from 'zod';

/**
 * The Kubernetes objects Sextant reads. The API server has already validated
 * them, and they carry many fields Sextant never looks at, so these schemas
 * are loose: fields not listed here are accepted and ignored. The fields that
 * are listed are checked (types, enums, port ranges), which catches mistakes
 * in Kubernetes objects written into the config folder by hand.
 */

export const Protocol = z.enum(['TCP', 'UDP', 'SCTP']);
export const Port = z.int().min(1).max(65535);
const IntOrString = z.union([z.int(), z.string()]);
const StringMap = z.record(z.string(), z.string());
const BASE64 = /^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const Base64Map = z.record(
  z.string(),
  z.string().regex(BASE64, { error: 'must be base64 encoded (use stringData for plain text)' }),
);

export const ObjectReference = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  fieldPath: z.string().optional(),
});

export const ServicePort = z.looseObject({
  name: z.string().optional(),
  protocol: Protocol.optional(),
  appProtocol: z.string().optional(),
  port: Port,
  targetPort: IntOrString.optional(),
  nodePort: z.int().min(0).max(65535).optional(),
});

export const ServiceBody = z.looseObject({
  spec: z
    .looseObject({
      type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).optional(),
      ports: z.array(ServicePort).nullable().optional(),
      selector: StringMap.nullable().optional(),
      clusterIP: z.string().optional(),
      clusterIPs: z.array(z.string()).nullable().optional(),
      externalName: z.string().optional(),
      externalIPs: z.array(z.string()).nullable().optional(),
      loadBalancerIP: z.string().optional(),
      sessionAffinity: z.string().optional(),
      ipFamilies: z.array(z.enum(['IPv4', 'IPv6'])).nullable().optional(),
      ipFamilyPolicy: z.string().optional(),
      publishNotReadyAddresses: z.boolean().optional(),
      internalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
      externalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
    })
    .optional(),
  status: z
    .looseObject({
      loadBalancer: z
        .looseObject({
          ingress: z.array(z.looseObject({ ip: z.string().optional(), hostname: z.string().optional() })).nullable().optional(),
        })
        .optional(),
    })
    .optional(),
});

export const EndpointConditions = z.looseObject({
  ready: z.boolean().nullable().optional(),
  serving: z.boolean().nullable().optional(),
  terminating: z.boolean().nullable().optional(),
});

export const Endpoint = z.looseObject({
  addresses: z.array(z.string()).min(1).max(100),
  conditions: EndpointConditions.optional(),
  hostname: z.string().nullable().optional(),
  targetRef: ObjectReference.nullable().optional(),
  nodeName: z.string().nullable().optional(),
  zone: z.string().nullable().optional(),
  hints: z
    .looseObject({ forZones: z.array(z.looseObject({ name: z.string() })).nullable().optional() })
    .nullable()
    .optional(),
});

export const EndpointPort = z.looseObject({
  name: z.string().nullable().optional(),
  protocol: Protocol.nullable().optional(),
  port: z.int().min(0).max(65535).nullable().optional(),
  appProtocol: z.string().nullable().optional(),
});

/** discovery.k8s.io/v1 EndpointSlice: its fields are top-level, beside metadata. */
export const EndpointSliceBody = z.looseObject({
  addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
  endpoints: z.array(Endpoint).max(1000).nullable().optional(),
  ports: z.array(EndpointPort).max(100).nullable().optional(),
});

export const ContainerPort = z.looseObject({
  name: z.string().optional(),
  containerPort: Port,
  protocol: Protocol.optional(),
  hostPort: z.int().optional(),
});

export const Container = z.looseObject({
  name: z.string(),
  image: z.string().optional(),
  ports: z.array(ContainerPort).nullable().optional(),
});

export const PodBody = z.looseObject({
  spec: z
    .looseObject({
      nodeName: z.string().optional(),
      serviceAccountName: z.string().optional(),
      serviceAccount: z.string().optional(),
      hostNetwork: z.boolean().optional(),
      containers: z.array(Container).optional(),
      initContainers: z.array(Container).nullable().optional(),
    })
    .optional(),
  status: z
    .looseObject({
      phase: z.string().optional(),
      podIP: z.string().optional(),
      podIPs: z.array(z.looseObject({ ip: z.string() })).nullable().optional(),
      hostIP: z.string().optional(),
      conditions: z.array(z.looseObject({ type: z.string(), status: z.string() })).nullable().optional(),
    })
    .optional(),
});

export const NamespaceBody = z.looseObject({
  spec: z.looseObject({ finalizers: z.array(z.string()).optional() }).optional(),
  status: z.looseObject({ phase: z.string().optional() }).optional(),
});

export const NodeBody = z.looseObject({
  spec: z.looseObject({ podCIDR: z.string().optional(), podCIDRs: z.array(z.string()).nullable().optional() }).optional(),
  status: z
    .looseObject({
      addresses: z.array(z.looseObject({ type: z.string(), address: z.string() })).nullable().optional(),
    })
    .optional(),
});

export const SecretBody = z.looseObject({
  type: z.string().optional(),
  data: Base64Map.nullable().optional(),
  stringData: StringMap.nullable().optional(),
  immutable: z.boolean().optional(),
});

export const ConfigMapBody = z.looseObject({
  data: StringMap.nullable().optional(),
  binaryData: Base64Map.nullable().optional(),
  immutable: z.boolean().optional(),
});

export type ServicePort = z.infer<typeof ServicePort>;
export type ServiceBody = z.infer<typeof ServiceBody>;
export type Endpoint = z.infer<typeof Endpoint>;
export type EndpointPort = z.infer<typeof EndpointPort>;
export type EndpointSliceBody = z.infer<typeof EndpointSliceBody>;
export type ContainerPort = z.infer<typeof ContainerPort>;
export type PodBody = z.infer<typeof PodBody>;
export type NamespaceBody = z.infer<typeof NamespaceBody>;
export type NodeBody = z.infer<typeof NodeBody>;
export type SecretBody = z.infer<typeof SecretBody>;
export type ConfigMapBody = z.infer<typeof ConfigMapBody>;
