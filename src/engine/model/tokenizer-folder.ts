// The tokenizer of an opened model folder: reads tokenizer.json with tokenizer_config.json,
// generation_config.json and chat_template.jinja when the folder has them, and builds the Tokenizer
// (tokenizer.ts). Used by the studio's worker and by the CLI. It reads no weights.

import { TokenizerError } from '../errors.ts';
import { MAX_JSON_BYTES, type ModelFolder } from '../io/model-folder.ts';
import { readText } from '../io/source.ts';
import { type Tokenizer, loadTokenizer } from './tokenizer.ts';

/** The folder's tokenizer (tokenizer.json, with tokenizer_config.json, generation_config.json and chat_template.jinja when present). */
export async function loadFolderTokenizer(folder: ModelFolder): Promise<Tokenizer> {
  const has = (name: string) => folder.files.list().includes(name);
  if (!has('tokenizer.json')) {
    throw new TokenizerError(`${folder.files.name ?? 'The model folder'} has no tokenizer.json.`, { file: 'tokenizer.json' });
  }
  const read = async (name: string): Promise<string> => {
    const source = await folder.files.open(name);
    try {
      return await readText(source, MAX_JSON_BYTES);
    } finally {
      await source.close?.();
    }
  };
  return loadTokenizer({
    tokenizerJson: await read('tokenizer.json'),
    tokenizerConfig: has('tokenizer_config.json') ? await read('tokenizer_config.json') : undefined,
    generationConfig: folder.generationConfig ?? undefined,
    chatTemplate: has('chat_template.jinja') ? await read('chat_template.jinja') : undefined,
  });
}
