export * from './types.js';
export { DiscoveryServer, type ChangeSource, type ServerBookkeeping } from './server/discovery-server.js';
export { defaultXdsLimits, limitNames, type LimitName, type XdsLimits } from './limits.js';
export { ClassGenerators, EndpointCache, watchKey, type BuiltResource, type ProxyTranslator } from './cache/index.js';
export { PushController, pushRequest, type PushControllerOptions, type PushScope } from './push/index.js';
export { ADS_SERVICE, adsServiceDefinition } from './service.js';
export { enablePreFramedWrites } from './frames.js';
export { DebugType, DEBUG_TYPE_PREFIX, XdsStatusError, debugGenerators, debugScope, peerHost, proxyNamespace, type DebugTypeOptions } from './debug-types.js';
export { RejectionTracker, describe as describeRejections, type Rejection, type RejectedObjectRef, type RejectionTrackerOptions } from './rejections.js';
