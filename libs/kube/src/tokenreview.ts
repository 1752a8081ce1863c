import { KubeClient } from '@sextant/sources';

/**
 * The answer of a TokenReview, in the shape `@sextant/ca`'s `TokenReviewer`
 * expects (`authenticated`, `username`, `audiences`, `error`), plus the
 * service account and pod it names.
 */
export interface TokenReviewResult {
  authenticated: boolean;
  /** `system:serviceaccount:<ns>:<sa>` */
  username?: string;
  audiences?: string[];
  error?: string;
  /** Set for service account tokens. */
  namespace?: string;
  serviceAccount?: string;
  /** Pod name and uid when the token is bound to a pod (projected tokens). */
  podName?: string;
  podUid?: string;
}

export interface KubeTokenReviewer {
  /**
   * Authenticates a bearer token with the API server for the given audiences
   * (default `istio-ca`). A token the API server refuses gives
   * `authenticated: false` with its error; a failed call throws.
   */
  review(token: string, audiences?: string[]): Promise<TokenReviewResult>;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

/** A TokenReview (authentication.k8s.io/v1) against the API server. Implements `@sextant/ca`'s `TokenReviewer`. */
export function createTokenReviewer(client: KubeClient, opts: { timeoutMs?: number } = {}): KubeTokenReviewer {
  return {
    async review(token: string, audiences: string[] = ['istio-ca']): Promise<TokenReviewResult> {
      if (!token) return { authenticated: false, error: 'no token' };
      const res = await client.request<{ status?: TokenReviewStatus }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } },
        timeoutMs: opts.timeoutMs ?? 10_000,
      });
      const st = res?.status ?? {};
      if (!st.authenticated) return { authenticated: false, error: st.error ?? 'token not authenticated' };
      const got = st.audiences ?? [];
      if (audiences.length && !audiences.some((a) => got.includes(a))) {
        return { authenticated: false, audiences: got, error: `token audiences [${got.join(', ')}] do not include ${audiences.join(', ')}` };
      }
      const username = st.user?.username ?? '';
      const out: TokenReviewResult = { authenticated: true, username, audiences: got };
      const parts = username.split(':');
      if (parts.length === 4 && parts[0] === 'system' && parts[1] === 'serviceaccount' && parts[2] && parts[3]) {
        out.namespace = parts[2];
        out.serviceAccount = parts[3];
      }
      const extra = st.user?.extra ?? {};
      const pod = extra['authentication.kubernetes.io/pod-name']?.[0];
      const uid = extra['authentication.kubernetes.io/pod-uid']?.[0];
      if (pod) out.podName = pod;
      if (uid) out.podUid = uid;
      return out;
    },
  };
}
