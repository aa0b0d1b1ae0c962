// The `whetstone` command line: parses arguments and runs EngineApi commands on Dawn in Node.
// Each command's output is a stable contract: JSON where a script will read it.

import { parseArgs } from 'node:util';
import { describeError } from '../engine/errors.ts';
import { openNodeGpu } from '../engine/gpu/node.ts';
import { EngineApi } from '../worker/engine-api.ts';
import { benchCommand } from './bench.ts';
import { evalCommand } from './eval.ts';
import { exportCommand } from './export.ts';
import { generateCommand } from './generate.ts';
import { infoCommand } from './info.ts';
import { TRAIN_USAGE, trainCommand } from './train.ts';

const USAGE = `whetstone <command> [options]

Commands:
  gpu [--json]        Describe the WebGPU adapter and run the kernel self-test
  bench [--tokens 16,128] [--models SmolLM2-135M,...] [--repeats N] [--out FILE] [--no-tfjs]
                      Time the kernels on model-shaped problems against TensorFlow.js's WebGPU
                      backend on the same adapter; prints a table and writes JSON
  info --model DIR    Summarise a model folder as JSON (architecture, sizes, parameters, dtype)
  eval --model DIR --data FILE [--adapter DIR] [--json] [--dtype f32|bf16] [--batch-tokens N]
       [--format F] [--train-on-prompt] [--skip-bad-rows]
                      Loss and perplexity on a JSONL file of {"text": ...} or
                      {"input_ids": [...], "labels": [...]} rows (-100 labels are not counted), or
                      on any dataset format train takes, with the same chat templates and loss
                      masks; with a PEFT LoRA adapter folder on top when --adapter is given
  generate --model DIR --prompt TEXT [--chat] [--max-new-tokens N] [--temperature T]
           [--top-p P] [--top-k K] [--seed S] [--dtype f32|bf16] [--adapter DIR]
                      Stream a continuation of the prompt (--chat: through the model's chat
                      template); greedy unless a temperature is given or generation_config.json
                      sets do_sample
  export --model DIR --adapter DIR --format peft|gguf|merged --out PATH [--dtype f32|f16|bf16]
         [--base OLLAMA_BASE]
                      Write a PEFT LoRA adapter as PEFT files, as a llama.cpp GGUF adapter with an
                      Ollama Modelfile beside it, or merged into the base model as a Hugging Face
                      folder (--dtype: the tensors' type; merged keeps the checkpoint's by default)
  ${TRAIN_USAGE}
                      Fine-tune a LoRA adapter on a dataset file; writes the PEFT adapter, README.md,
                      metrics.jsonl and resumable checkpoints/ to --out (Ctrl-C stops, --resume continues)
  help                Show this text

--model takes a Hugging Face model folder or hub:ORG/NAME[@REVISION], downloaded (resumably) into
the cache first.

Environment:
  VK_ICD_FILENAMES    Vulkan driver to use (default: the system's, else Chromium's SwiftShader)
  HF_ENDPOINT         Hub to download from (default https://huggingface.co)
  HF_TOKEN            Access token for gated models
  WHETSTONE_HOME      Cache folder (default $XDG_CACHE_HOME/whetstone or ~/.cache/whetstone)`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'gpu':
        return await gpuCommand(rest);
      case 'bench':
        return await benchCommand(rest);
      case 'info':
        return await infoCommand(rest);
      case 'eval':
        return await evalCommand(rest);
      case 'generate':
        return await generateCommand(rest);
      case 'export':
        return await exportCommand(rest);
      case 'train':
        return await trainCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return 0;
      default:
        console.error(`Unknown command "${command}".\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    const d = describeError(e);
    console.error(`error: ${d.name}: ${d.message}`);
    if (d.hint) console.error(`hint: ${d.hint}`);
    return 1;
  }
}

async function gpuCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, strict: true });
  const api = new EngineApi(() => openNodeGpu());
  const status = await api.connect();
  if (!status.ok) {
    console.error(`error: ${status.error.name}: ${status.error.message}`);
    if (status.error.hint) console.error(`hint: ${status.error.hint}`);
    return 1;
  }
  const report = await api.selfTest();
  if (values.json) {
    console.log(JSON.stringify({ adapter: status.adapter, selfTest: report }));
  } else {
    const a = status.adapter;
    console.log(`adapter: ${a.vendor} ${a.architecture} ${a.description}`.trim());
    console.log(`f16: ${a.f16 ? 'yes' : 'no'}  subgroups: ${a.subgroups ? 'yes' : 'no'}  timestamp-query: ${a.timestampQuery ? 'yes' : 'no'}`);
    console.log(`max storage binding: ${a.limits.maxStorageBufferBindingSize} bytes  max buffer: ${a.limits.maxBufferSize} bytes`);
    for (const c of report.cases) {
      console.log(`${c.passed ? 'pass' : 'FAIL'}  ${c.name.padEnd(24)} ${c.problem.padEnd(22)} relL2 ${c.relL2.toExponential(2)}  ${c.ms.toFixed(1)} ms`);
    }
    console.log(report.passed ? 'self-test passed' : 'self-test FAILED');
  }
  return report.passed ? 0 : 1;
}
