// Test support for the CLI: runs main() in-process with stdout and stderr captured (process
// writes and console), so tests can check the command's output contract.
import { vi } from 'vitest';
import { main } from './main.ts';

export async function runCaptured(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void (stdout += `${a.join(' ')}\n`));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (stderr += `${a.join(' ')}\n`));
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    for (const s of [out, err, log, error]) s.mockRestore();
  }
}
