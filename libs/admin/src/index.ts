export * from './server.js';
export * from './metrics.js';
export * from './webhooks.js';
export { ADMISSION_VERSIONS, parseAdmissionReview, type AdmissionAnswer, type AdmissionVersion, type Hook, type Outcome } from './admission.js';
export * from './inject.js';
