export * from './tools.js';
export * from './sextant.js';
export * from './cluster.js';
export * from './istiod.js';
