export * from './logger.js';
export * from './object.js';
