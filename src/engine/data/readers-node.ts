// Node-only dataset reading: rows of a dataset file given by path, through the file-path
// ByteSource of io/source-node.ts. Kept apart from readers.ts so that browser bundles never import
// node:fs. It adds no parsing of its own.
import { openFileSource } from '../io/source-node.ts';
import { type DatasetRow, readRows, type ReadRowsOptions } from './readers.ts';

/** The rows of the dataset file at `path` (see readRows); the file is closed when the iteration ends, however it ends. */
export async function* readFileRows(path: string, options: ReadRowsOptions = {}): AsyncGenerator<DatasetRow> {
  const source = await openFileSource(path);
  try {
    yield* readRows(source, options);
  } finally {
    await source.close?.();
  }
}
