export * from './virtual-service.js';
export * from './gateway.js';
export * from './destination-rule.js';
export * from './service-entry.js';
export * from './sidecar.js';
export * from './envoy-filter.js';
