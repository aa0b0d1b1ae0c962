import { describe, expect, it } from 'vitest';
import { EngineJobs } from './busy.ts';

describe('EngineJobs', () => {
  it('runs one job at a time and frees the engine when a job ends or fails', async () => {
    const jobs = new EngineJobs();
    let release!: () => void;
    const first = jobs.run('training', () => new Promise<string>((r) => (release = () => r('done'))));
    expect(jobs.current).toBe('training');
    await expect(jobs.run('generation', async () => 1)).rejects.toMatchObject({ name: 'EngineBusyError', message: expect.stringContaining('training') });
    release();
    await expect(first).resolves.toBe('done');
    expect(jobs.current).toBeNull();
    await expect(jobs.run('generation', async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(jobs.current).toBeNull();
    await expect(jobs.run('export', async () => 7)).resolves.toBe(7);
  });
});
