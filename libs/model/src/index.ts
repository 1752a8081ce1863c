export * from './types.js';
export * from './protocol.js';
export * from './labels.js';
export * from './proxy.js';
export { PushContext, type PushContextStatic, type PushContextExtras } from './push-context.js';
export * from './push-scope.js';
export { spiffeId } from './endpoints.js';
