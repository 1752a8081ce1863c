export * from './tools.js';
export * from './sextant.js';
