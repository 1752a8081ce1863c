/** The MOSN v1.6.1 profile: what a MOSN sidecar gets instead of the Envoy form of the same config. */
export * from './detect.js';
export { MOSN_INBOUND_PASSTHROUGH, MOSN_TOMBSTONE_CLUSTER, mosnSdsConfig, withMosnSds } from './common.js';
export * from './listeners.js';
export * from './routes.js';
export * from './clusters.js';
export * from './endpoints.js';
export * from './tombstones.js';
