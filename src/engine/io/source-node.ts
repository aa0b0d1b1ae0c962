// The Node file-path ByteSource, over a fs/promises FileHandle. Kept apart from source.ts so that
// browser bundles never import node:fs. It reads; it never writes or creates files.

import { open } from 'node:fs/promises';
import { FileReadError } from '../errors.ts';
import { type ByteSource, checkRead } from './source.ts';

/**
 * Opens `path` for reading. The size is taken once, at open; a file that shrinks afterwards gives a
 * FileReadError on the read that runs short. Call `close()` when done.
 */
export async function openFileSource(path: string, name: string = path): Promise<ByteSource> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileReadError(code === 'ENOENT' ? 'The file does not exist.' : `The file could not be opened: ${(e as Error).message}`, {
      file: name,
      cause: e,
    });
  }
  let size: number;
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new FileReadError('This is not a regular file.', { file: name });
    size = st.size;
  } catch (e) {
    await handle.close();
    throw e;
  }
  const fh = handle;
  let closed = false;
  const source: ByteSource = {
    name,
    size,
    async read(offset, length) {
      checkRead(source, offset, length);
      if (closed) throw new FileReadError('The file was read after it was closed.', { file: name, byteOffset: offset });
      const out = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(out, got, length - got, offset + got));
        } catch (e) {
          throw new FileReadError(`Reading ${length} bytes at offset ${offset} failed: ${(e as Error).message}`, {
            file: name,
            byteOffset: offset + got,
            cause: e,
          });
        }
        if (n === 0) {
          throw new FileReadError(
            `Expected ${length} bytes at offset ${offset}, the file ended after ${got}; it was truncated while open.`,
            { file: name, byteOffset: offset + got },
          );
        }
        got += n;
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
  return source;
}
