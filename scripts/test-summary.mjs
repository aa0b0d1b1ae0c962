// Reads the JSON reports of scripts/test-all.sh and prints the counts per tier and in total.
// A tier whose report is missing (it crashed before writing one) counts as a failure.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? 'test-results';
const tiers = [
  ['unit', 'unit tests (TypeScript)'],
  ['gpu', 'GPU tests (Node + Dawn)'],
  ['e2e', 'end-to-end tests (Chromium + WebGPU)'],
];
let passed = 0;
let failed = 0;
let skipped = 0;
let missing = 0;
for (const [file, label] of tiers) {
  const path = join(dir, `${file}.json`);
  if (!existsSync(path)) {
    console.log(`${label}: no report (the tier did not run to completion)`);
    missing++;
    continue;
  }
  const r = JSON.parse(readFileSync(path, 'utf8'));
  let p;
  let f;
  let s;
  if (file === 'e2e') {
    p = r.stats.expected + (r.stats.flaky ?? 0);
    f = r.stats.unexpected;
    s = r.stats.skipped;
  } else {
    p = r.numPassedTests;
    f = r.numFailedTests;
    s = r.numPendingTests + (r.numTodoTests ?? 0);
  }
  console.log(`${label}: ${p} passed, ${f} failed${s ? `, ${s} skipped` : ''}`);
  if (p === 0) {
    console.log(`${label}: ran no test`);
    missing++;
  }
  passed += p;
  failed += f;
  skipped += s;
}
console.log(`tests: ${passed} passed, ${failed + missing} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed + missing > 0 ? 1 : 0);
