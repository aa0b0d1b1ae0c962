// The Node side of model folders: a FileSet over a directory on disk (its top-level regular files,
// symlinks followed, as in a Hugging Face cache snapshot) and a one-call opener. Kept apart from
// model-folder.ts so that browser bundles never import node:fs. It only reads.

import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FileReadError, MissingFileError } from '../errors.ts';
import { type FileSet, type ModelFolder, type OpenOptions, openModelFolder } from './model-folder.ts';
import { openFileSource } from './source-node.ts';

/** Lists `dir` once; `open(name)` opens one of the listed files (named by its full path in messages). */
export async function nodeFileSet(dir: string): Promise<FileSet> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileReadError(code === 'ENOENT' ? 'The folder does not exist.' : `The folder could not be read: ${(e as Error).message}`, {
      file: dir,
      cause: e,
    });
  }
  const names: string[] = [];
  for (const e of entries) {
    if (e.isFile()) names.push(e.name);
    else if (e.isSymbolicLink()) {
      const st = await stat(join(dir, e.name)).catch(() => null);
      if (st?.isFile()) names.push(e.name);
    }
  }
  names.sort();
  const listed = new Set(names);
  return {
    name: dir,
    list: () => [...names],
    open(name) {
      if (!listed.has(name)) throw new MissingFileError(`${name} is not in ${dir}.`, { file: join(dir, name) });
      return openFileSource(join(dir, name));
    },
  };
}

/** openModelFolder over a directory on disk. */
export async function openModelDirectory(dir: string, options: OpenOptions = {}): Promise<ModelFolder> {
  return openModelFolder(await nodeFileSet(dir), options);
}
