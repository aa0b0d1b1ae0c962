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
import { QUANTIZE_USAGE, quantizeCommand } from './quantize.ts';
import { TRAIN_USAGE, trainCommand } from './train.ts';
import { COMPRESS_REPORT_USAGE, compressReportCommand } from './compress-report.ts';
import { DISTILL_USAGE, distillCommand } from './distill.ts';
import { PRUNE_USAGE, pruneCommand } from './prune.ts';
import { SHARE_USAGE, shareCommand } from './share.ts';

const USAGE = `whetstone <command> [options]

Commands:
  gpu [--json]        Describe the WebGPU adapter and run the kernel self-test
  bench [--tokens 16,128] [--models SmolLM2-135M,...] [--repeats N] [--out FILE] [--no-tfjs]
        [--no-kernels] [--no-train] [--train-model DIR]
                      Time the kernels on model-shaped problems against TensorFlow.js's WebGPU
                      backend on the same adapter; prints a table and writes JSON
  info --model DIR    Summarise a model folder as JSON (architecture, sizes, parameters, dtype)
  eval --model DIR --data FILE [--adapter DIR] [--json] [--dtype f32|bf16] [--batch-tokens N]
       [--format F] [--train-on-prompt] [--skip-bad-rows] [--quant nf4|fp4|int8|int4 [--double-quant] [--block N]]
       [--act-int8 dynamic|static [--calib FILE]]
                      Loss and perplexity on a JSONL file of {"text": ...} or
                      {"input_ids": [...], "labels": [...]} rows (-100 labels are not counted), or
                      on any dataset format train takes, with the same chat templates and loss
                      masks; with an adapter folder on top when --adapter is given (any method:
                      LoRA, DoRA, IA3, prompt or prefix tuning, bottleneck; found from its files)
  generate --model DIR --prompt TEXT [--chat] [--max-new-tokens N] [--temperature T]
           [--top-p P] [--top-k K] [--seed S] [--dtype f32|bf16] [--adapter DIR]
           [--quant nf4|fp4|int8|int4 [--double-quant] [--block N]]
                      Stream a continuation of the prompt (--chat: through the model's chat
                      template); greedy unless a temperature is given or generation_config.json
                      sets do_sample
  export --model DIR --adapter DIR --format peft|gguf|merged --out PATH [--dtype f32|f16|bf16]
         [--base OLLAMA_BASE]
                      Write a saved adapter again (peft; any method, its own files) or, for LoRA, as a llama.cpp GGUF adapter with an
                      Ollama Modelfile beside it, or merged into the base model as a Hugging Face
                      folder (--dtype: the tensors' type; merged keeps the checkpoint's by default)
  ${TRAIN_USAGE}
                      Fine-tune an adapter (--method, docs/methods.md) on a dataset file; writes the adapter files, README.md (LoRA),
                      metrics.jsonl and resumable checkpoints/ to --out (Ctrl-C stops, --resume continues)
  ${QUANTIZE_USAGE}
                      Post-training quantization of the projection weights into a Hugging Face
                      folder (NF4/FP4 and INT8 in bitsandbytes' serialization, which transformers
                      loads; INT4 groups in Whetstone's own); prints per-layer error and, with
                      --data, the evaluation loss before and after
  ${PRUNE_USAGE}
                      Write a pruned model folder: dropped layers, fewer attention heads (whole KV
                      groups or query heads per group) and MLP neurons (smaller config), or
                      unstructured / N:M sparsity by magnitude or Wanda; optional LoRA recovery
  ${SHARE_USAGE}
                      Write a model folder with blocks shared across depth and/or weights clustered
                      to a k-entry codebook per tensor (loads back in Whetstone)
  ${DISTILL_USAGE}
                      Train a smaller student (a folder, or the teacher with layers dropped) on the
                      teacher's distributions; prints held-out KL and losses before and after
  ${COMPRESS_REPORT_USAGE}
                      Apply each compression technique to a model and print one markdown table:
                      size, evaluation loss before and after, and generation tokens/s
  help                Show this text

--model takes a Hugging Face model folder or hub:ORG/NAME[@REVISION], downloaded (resumably) into
the cache first; when the Hub cannot be reached, a finished earlier download is used.

Environment:
  VK_ICD_FILENAMES    Vulkan driver to use (default: the system's, else Chromium's SwiftShader)
  HF_ENDPOINT         Hub to download from (default https://huggingface.co)
  HF_TOKEN            Access token for gated models
  HF_HUB_OFFLINE=1    Use the cached download of a hub: model without asking the Hub
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
      case 'prune':
        return await pruneCommand(rest);
      case 'share':
        return await shareCommand(rest);
      case 'distill':
        return await distillCommand(rest);
      case 'compress-report':
        return await compressReportCommand(rest);
      case 'quantize':
        return await quantizeCommand(rest);
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
