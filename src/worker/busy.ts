// One GPU job at a time in the engine: training, generation and exports share the loaded model and
// the device, so a job claims the engine for its duration and another one asking meanwhile gets an
// EngineBusyError naming the job that runs.

import { EngineBusyError } from '../engine/errors.ts';

export class EngineJobs {
  private running: string | null = null;

  /** The job that holds the engine, or null. */
  get current(): string | null {
    return this.running;
  }

  /** Runs `fn` as the job `name`; throws EngineBusyError when another job holds the engine. */
  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (this.running !== null) throw new EngineBusyError(`The engine is busy with ${this.running}; ${name} cannot start now.`);
    this.running = name;
    try {
      return await fn();
    } finally {
      this.running = null;
    }
  }
}
