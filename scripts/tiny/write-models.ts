// Command line: writes the tiny test models of scripts/tiny/models.ts as Hugging Face folders.
//   npx tsx scripts/tiny/write-models.ts OUTDIR          every TINY_MODELS spec into OUTDIR/<name>/,
//                                                        and the demo model into OUTDIR/demo/
//   npx tsx scripts/tiny/write-models.ts --demo OUTDIR   the studio's demo model into OUTDIR/
//                                                        (the app serves it from public/models/demo/)
// The PyTorch reference reads the folders: /usr/bin/python3 scripts/torch_reference.py OUTDIR.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_MODEL, TINY_MODELS, type TinyModelSpec, makeTinyModel } from './models.ts';

function writeFolder(spec: TinyModelSpec, dir: string): void {
  mkdirSync(dir, { recursive: true });
  let total = 0;
  for (const file of makeTinyModel(spec)) {
    writeFileSync(join(dir, file.name), file.bytes);
    total += file.bytes.byteLength;
  }
  console.log(`${dir}: ${spec.architecture}, ${spec.dtype}, ${total} bytes`);
}

const args = process.argv.slice(2);
const demo = args[0] === '--demo';
const outDir = demo ? args[1] : args[0];
if (outDir === undefined || args.length !== (demo ? 2 : 1) || outDir.startsWith('--')) {
  console.error('usage: npx tsx scripts/tiny/write-models.ts OUTDIR\n       npx tsx scripts/tiny/write-models.ts --demo OUTDIR');
  process.exit(2);
}
if (demo) writeFolder(DEMO_MODEL, outDir);
else for (const spec of [...TINY_MODELS, DEMO_MODEL]) writeFolder(spec, join(outDir, spec.name));
