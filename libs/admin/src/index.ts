export * from './server.js';
export * from './metrics.js';
export * from './webhooks.js';
export * from './inject.js';
export * from './config-dump.js';
