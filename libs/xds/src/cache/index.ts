export { ClassGenerators, type BuiltResource, type ProxyTranslator } from './class-cache.js';
export { EndpointCache } from './endpoint-cache.js';
export { StaticGenerator, watchKey } from './static.js';
