import type { ConfigObject, ObjectKey, ValidationIssue } from '@sextant/api';

export type { ConfigObject } from '@sextant/api';

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
