// Writes the files of a model folder produced in memory-light form (ExportedFile streams) into a
// directory on the Node file system, one file at a time, each through a temporary name renamed into
// place once complete so an interrupted write leaves no half file under the final name.

import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExportedFile } from './folder.ts';

/** Writes `files` into `dir` (created when needed); returns each path with its size. */
export async function writeFolderFiles(dir: string, files: readonly ExportedFile[]): Promise<{ path: string; bytes: number }[]> {
  await mkdir(dir, { recursive: true });
  const written: { path: string; bytes: number }[] = [];
  for (const f of files) {
    const path = join(dir, f.name);
    const partial = `${path}.partial`;
    const handle = await open(partial, 'w');
    let bytes = 0;
    try {
      for await (const chunk of f.chunks()) {
        await handle.write(chunk);
        bytes += chunk.byteLength;
      }
    } catch (e) {
      await handle.close();
      await rm(partial, { force: true });
      throw e;
    }
    await handle.close();
    await rename(partial, path);
    written.push({ path, bytes });
  }
  return written;
}
