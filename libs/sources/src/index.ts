export * from './types.js';
export * from './folder.js';
export * from './store.js';
export * from './kube/index.js';
export * from './jwks.js';
