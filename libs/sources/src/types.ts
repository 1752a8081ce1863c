import type { ObjectKey, ObjectMeta, ValidationIssue } from '@sextant/api';

/**
 * A validated configuration object as every source yields it. `kind` is the
 * Kubernetes kind (`Service`, `VirtualService`, ...), `group` its API group
 * ('' for core), `version` the served version it arrived in.
 */
export interface ConfigObject<Body = unknown> {
  kind: string;
  group: string;
  version: string;
  metadata: ObjectMeta;
  /** The validated object minus apiVersion/kind/metadata (spec, data, endpoints, ...). */
  body: Body;
}

export type ConfigEvent =
  | { type: 'add'; object: ConfigObject }
  | { type: 'update'; object: ConfigObject; old: ConfigObject }
  | { type: 'delete'; object: ConfigObject };

/** One batch of events from one source, applied atomically downstream. */
export interface ConfigBatch {
  source: string;
  events: ConfigEvent[];
}

/**
 * A source of configuration: the watched folder or Kubernetes. Both yield the
 * same events, so everything downstream is shared.
 */
export interface ConfigSource {
  readonly name: string;
  /** Starts watching; resolves once the initial state has been delivered (synced). */
  start(): Promise<void>;
  hasSynced(): boolean;
  /** Registers a listener for batches; returns an unsubscribe function. */
  onBatch(listener: (batch: ConfigBatch) => void): () => void;
  /** Objects currently rejected, with why; a rejected object that had a valid version keeps serving it. */
  rejected(): ReadonlyArray<ValidationIssue & { key: ObjectKey }>;
  stop(): Promise<void>;
}
