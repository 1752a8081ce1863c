// Kubernetes writers and adapters: Lease election, the status writer, the
// istio-ca-root-cert publisher, the webhook caBundle patcher, the Secret-backed
// CA store and TokenReview. Config in (informers, the kube source) stays in
// @sextant/sources; this package writes.
export * from './leader.js';
export * from './tokenreview.js';
export * from './rootcert.js';
export * from './castore.js';
export * from './cabundle.js';
export * from './status.js';
export * from './reconcile-queue.js';
