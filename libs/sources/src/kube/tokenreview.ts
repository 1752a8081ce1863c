import { KubeClient } from './client.js';

/** Who an authenticated Kubernetes service account token belongs to. */
export interface ReviewedToken {
  namespace: string;
  serviceAccount: string;
  /** `system:serviceaccount:<ns>:<sa>` */
  username: string;
  /** Pod name and uid when the token is bound to a pod (projected tokens). */
  podName?: string | undefined;
  podUid?: string | undefined;
  audiences: string[];
}

export interface TokenReviewer {
  /** Authenticates a bearer token with the API server; throws with the reason when it is not valid. */
  review(token: string): Promise<ReviewedToken>;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

/**
 * A TokenReview (authentication.k8s.io/v1) against the API server, with the
 * audience Istio's CA uses (`istio-ca`). Only service account tokens are
 * accepted: the caller's identity is the namespace and service account.
 */
export function createTokenReviewer(client: KubeClient, opts: { audiences?: string[]; timeoutMs?: number } = {}): TokenReviewer {
  const audiences = opts.audiences ?? ['istio-ca'];
  return {
    async review(token: string): Promise<ReviewedToken> {
      if (!token) throw new Error('no token');
      const res = await client.request<{ status?: TokenReviewStatus }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } },
        timeoutMs: opts.timeoutMs ?? 10_000,
      });
      const st = res?.status ?? {};
      if (!st.authenticated) throw new Error(`token not authenticated${st.error ? `: ${st.error}` : ''}`);
      const got = st.audiences ?? [];
      if (audiences.length && !audiences.some((a) => got.includes(a))) {
        throw new Error(`token audiences [${got.join(', ')}] do not include ${audiences.join(', ')}`);
      }
      const username = st.user?.username ?? '';
      const parts = username.split(':');
      if (parts.length !== 4 || parts[0] !== 'system' || parts[1] !== 'serviceaccount' || !parts[2] || !parts[3]) {
        throw new Error(`token is not a service account token (user ${JSON.stringify(username)})`);
      }
      const extra = st.user?.extra ?? {};
      return {
        namespace: parts[2],
        serviceAccount: parts[3],
        username,
        podName: extra['authentication.kubernetes.io/pod-name']?.[0],
        podUid: extra['authentication.kubernetes.io/pod-uid']?.[0],
        audiences: got,
      };
    },
  };
}
