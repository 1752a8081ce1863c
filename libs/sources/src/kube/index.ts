export * from './client.js';
export * from './kinds.js';
export * from './informer.js';
export * from './source.js';
export * from './leader.js';
export * from './tokenreview.js';
export * from './rootcert.js';
export * from './castore.js';
