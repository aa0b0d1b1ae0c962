// The training layer's entry point: what the worker, the CLI and the UI import to train an adapter,
// evaluate it, and keep, list and resume checkpoints. Nothing is computed here.

export { type TrainArgs, type TrainOptions, type TrainResult, train } from './trainer.ts';
export { type EvaluateRowsOptions, type TrainableAdapter, evaluateRows } from './evaluate.ts';
export { type BatchSizing, type Row, type TrainExample, prepareRows } from './batches.ts';
export {
  BlobCheckpointStore,
  type CheckpointStore,
  type DataPlan,
  MemoryCheckpointStore,
  type TrainCheckpoint,
  latestCheckpoint,
  pruneCheckpoints,
} from './checkpoint.ts';
export { type DivergenceOptions, type DivergenceReason, TrainingDivergedError } from './divergence.ts';
export { type StepMetrics, type TrainProgress, formatDuration, formatValue } from './metrics.ts';
