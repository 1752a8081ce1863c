export * from './types.js';
export * from './protocol.js';
export * from './labels.js';
export * from './proxy.js';
export { PushContext, sameItems, type PushContextStatic, type PushContextExtras } from './push-context.js';
export * from './push-scope.js';
export { spiffeId } from './endpoints.js';
export { EndpointIndex, ENDPOINT_KINDS, isEndpointKind, splitEndpointChanges, serviceKeyOf, updatedServiceKeys, type EndpointReader, type EndpointUpdate, type EndpointPushType, type IndexedService, type ServiceSource, type EndpointIndexOptions } from './endpoint-index.js';
export * from './proxy-dependencies.js';
