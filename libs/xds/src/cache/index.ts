export { ClassGenerators, type BuiltResource, type ProxyTranslator } from './class-cache.js';
export { EndpointCache } from './endpoint-cache.js';
export { watchKey } from './watch-key.js';
