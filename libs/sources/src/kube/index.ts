export * from './client.js';
export * from './kinds.js';
export * from './informer.js';
export * from './source.js';
