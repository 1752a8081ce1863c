export { ClassGenerators, type BuildPart, type BuiltResource, type ProxyTranslator, type TypeLayer } from './class-cache.js';
export { EndpointCache } from './endpoint-cache.js';
export { watchKey } from './watch-key.js';
