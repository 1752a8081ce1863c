/**
 * The minimal shapes of the Kubernetes and Istio objects the model reads,
 * taken from `ConfigObject.body`. Bodies crossed zod validation in
 * `@sextant/api`; these types only describe the fields read here.
 */
export interface KubeServiceBody {
  spec?: {
    type?: string;
    ports?: Array<{ name?: string; protocol?: string; appProtocol?: string; port: number; targetPort?: number | string }> | null;
    selector?: Record<string, string> | null;
    clusterIP?: string;
    clusterIPs?: string[] | null;
    externalName?: string;
  };
}

export interface EndpointSliceBody {
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints?: Array<{
    addresses: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    targetRef?: { kind?: string; name?: string; namespace?: string } | null;
    nodeName?: string | null;
    zone?: string | null;
  }> | null;
  ports?: Array<{ name?: string | null; port?: number | null; protocol?: string | null; appProtocol?: string | null }> | null;
}

export interface PodBody {
  spec?: { nodeName?: string; serviceAccountName?: string; serviceAccount?: string; containers?: Array<{ name: string; ports?: Array<{ name?: string; containerPort: number }> | null }> };
  status?: { phase?: string; podIP?: string; podIPs?: Array<{ ip: string }> | null };
}

export interface WorkloadEntrySpec {
  address?: string;
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  network?: string;
  locality?: string;
  weight?: number;
  serviceAccount?: string;
}

export interface ServiceEntrySpec {
  hosts: string[];
  addresses?: string[];
  ports?: Array<{ number: number; protocol?: string; name: string; targetPort?: number }>;
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  resolution?: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
  endpoints?: WorkloadEntrySpec[];
  /** networking.v1alpha3.WorkloadSelector: `labels`, not `matchLabels`. */
  workloadSelector?: { labels?: Record<string, string> };
  exportTo?: string[];
  subjectAltNames?: string[];
}
