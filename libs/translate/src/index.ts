export * from './route-translate.js';
export * from './virtual-service.js';
export * from './route.js';
export * from './listener-filters.js';
export * from './listener.js';
export * from './gateway.js';
export * from './grpc.js';
