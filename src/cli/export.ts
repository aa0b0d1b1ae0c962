// `whetstone export --model M --adapter DIR --format peft|gguf|merged --out PATH`: writes a saved
// adapter in the formats other tools load. The method is detected from the saved files (peft/methods.ts);
// each method lists the formats it has (the others than LoRA: peft, i.e. their own saved files again,
// checked against the model and written in --dtype, f32 by default; DoRA and IA3 also merged, folded
// into the f32 weights on the GPU as their merge does, through peft/merged-export.ts as the studio's
// merged download). For LoRA — peft: adapter_config.json and
// adapter_model.safetensors as PEFT saves them (checked against the base model, tensors in --dtype,
// a README.md of the adapter copied along); gguf: a llama.cpp LoRA adapter (.gguf) and an Ollama
// Modelfile beside it; merged: the base model with the adapter merged in, as a Hugging Face folder
// (needs the GPU; a quantized base is dequantized). GGUF is LoRA's alone. The last line of output is a JSON summary of the files written.

import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { FileReadError, InvalidArgumentError } from '../engine/errors.ts';
import { type AdapterDType, exportPeftLora, importPeftLora } from '../engine/io/export-peft.ts';
import { nodeFileSet } from '../engine/io/model-folder-node.ts';
import { ggufAdapterFiles } from '../engine/train/adapter-files.ts';
import type { ExportedFile } from '../engine/peft/lora/index.ts';
import { exportMergedFolder } from '../engine/peft/merged-export.ts';
import { detectMethod } from '../engine/peft/methods.ts';
import { loadCliModel, openModelArg } from './model-args.ts';

const FORMATS = ['peft', 'gguf', 'merged'] as const;
type ExportFormat = (typeof FORMATS)[number];

/** Where a written file went and its size. */
interface Written {
  path: string;
  bytes: number;
}

async function writeBytes(path: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Written> {
  await mkdir(dirname(path), { recursive: true });
  const handle = await open(path, 'w');
  let bytes = 0;
  try {
    for await (const chunk of chunks) {
      await handle.write(chunk);
      bytes += chunk.byteLength;
    }
  } finally {
    await handle.close();
  }
  return { path, bytes };
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() ?? false;
}

function dtypeArg(value: string | undefined, fallback: AdapterDType): AdapterDType {
  if (value === undefined) return fallback;
  if (value !== 'f32' && value !== 'f16' && value !== 'bf16') throw new InvalidArgumentError(`--dtype must be f32, f16 or bf16; got ${JSON.stringify(value)}.`);
  return value;
}

export async function exportCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      adapter: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      dtype: { type: 'string' },
      base: { type: 'string' },
    },
    strict: true,
  });
  const format = values.format as ExportFormat | undefined;
  if (format === undefined || !FORMATS.includes(format)) {
    throw new InvalidArgumentError(`--format must be one of ${FORMATS.join(', ')}; got ${JSON.stringify(values.format)}.`);
  }
  if (!values.adapter) throw new InvalidArgumentError('--adapter DIR is required: a PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors).');
  if (!values.out) throw new InvalidArgumentError(`--out PATH is required: ${format === 'gguf' ? 'the .gguf file to write (or a folder for adapter.gguf)' : 'the folder to write'}.`);
  const folder = await openModelArg(values.model);
  const adapterFiles = await nodeFileSet(values.adapter);
  const written: Written[] = [];
  const method = await detectMethod(adapterFiles);
  if (!method.exports.includes(format)) {
    throw new InvalidArgumentError(`--format ${format} is not available for ${method.label} adapters; they export as ${method.exports.join(', ')}.`);
  }
  const copyCard = async () => {
    if (adapterFiles.list().includes('README.md')) {
      written.push(await writeBytes(join(values.out as string, 'README.md'), [await readFile(join(values.adapter as string, 'README.md'))]));
    }
  };

  const writeExported = async (files: readonly ExportedFile[]) => {
    for (const f of files) {
      const w = await writeBytes(join(values.out as string, f.name), f.chunks());
      if (w.bytes !== f.bytes) throw new FileReadError(`Wrote ${w.bytes} bytes of ${f.name}; ${f.bytes} were expected.`, { file: w.path });
      written.push(w);
    }
  };

  if (format === 'merged') {
    // LoRA, DoRA and IA3: the merge path the studio's merged download also takes.
    const { gpu, model } = await loadCliModel(folder, 'f32');
    try {
      const adapter = await method.load(model, adapterFiles);
      try {
        const dtype = values.dtype === undefined ? undefined : dtypeArg(values.dtype, 'f32');
        await writeExported(await exportMergedFolder(model, adapter, folder, { dtype }));
      } finally {
        adapter.release();
      }
    } finally {
      model.release();
      gpu.destroy();
    }
  } else if (method.id !== 'lora') {
    // Other methods re-export their own files (PEFT's, or the bottleneck layout) after loading them onto the model, which checks them.
    const { gpu, model } = await loadCliModel(folder, 'f32');
    try {
      const adapter = await method.load(model, adapterFiles);
      try {
        const files = await adapter.exportFiles({ dtype: dtypeArg(values.dtype, 'f32') });
        for (const [name, bytes] of files) written.push(await writeBytes(join(values.out, name), [bytes]));
      } finally {
        adapter.release();
      }
    } finally {
      model.release();
      gpu.destroy();
    }
    await copyCard();
  } else {
    const imported = await importPeftLora(adapterFiles, folder.config);
    const stored: AdapterDType = imported.dtype === 'F16' ? 'f16' : imported.dtype === 'BF16' ? 'bf16' : 'f32';
    if (format === 'peft') {
      const files = exportPeftLora({ config: imported.config, tensors: imported.tensors, modelConfig: folder.config, dtype: dtypeArg(values.dtype, stored) });
      for (const [name, bytes] of files) written.push(await writeBytes(join(values.out, name), [bytes]));
      await copyCard();
    } else {
      const path = values.out.endsWith('.gguf') && !(await isDirectory(values.out)) ? values.out : join(values.out, 'adapter.gguf');
      const baseModel = values.base ?? imported.config.base_model_name_or_path ?? values.model ?? '';
      const { gguf, modelfile } = ggufAdapterFiles({
        config: imported.config,
        tensors: imported.tensors,
        modelConfig: folder.config,
        dtype: dtypeArg(values.dtype, 'f32'),
        name: basename(values.adapter.replace(/[\\/]+$/, '')),
        baseModel,
        adapterFile: basename(path),
      });
      written.push(await writeBytes(path, [gguf]));
      if (values.base === undefined) {
        process.stderr.write(`note: the Modelfile says FROM ${baseModel}; give --base with the base model as Ollama knows it (e.g. llama3.2:1b, or its .gguf file) if that is not it.\n`);
      }
      written.push(await writeBytes(join(dirname(path), 'Modelfile'), [new TextEncoder().encode(modelfile)]));
    }
  }
  for (const w of written) process.stderr.write(`wrote ${w.path} (${w.bytes} bytes)\n`);
  process.stdout.write(`${JSON.stringify({ format, files: written })}\n`);
  return 0;
}
