#!/usr/bin/env bash
# Runs every test tier and prints one summary: lint and types, unit tests (pure TypeScript), GPU
# tests (Node + Dawn on the machine's WebGPU adapter) and end-to-end tests (the built studio in
# headless Chromium with WebGPU). Every tier runs even when an earlier one fails; the exit code is
# non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=test-results
mkdir -p "$out"
rm -f "$out"/*.json
status=0
step() {
  local name=$1
  shift
  echo
  echo "=== $name: $*"
  if ! "$@"; then
    echo "=== $name FAILED"
    status=1
  fi
}

step lint npx eslint .
step typecheck npx tsc --noEmit -p .
step unit npx vitest run --project unit --reporter=default --reporter=json --outputFile.json="$out/unit.json"
step gpu npx vitest run --project gpu --reporter=default --reporter=json --outputFile.json="$out/gpu.json"
step build npx vite build --logLevel warn
PLAYWRIGHT_JSON_OUTPUT_NAME="$out/e2e.json" step e2e npx playwright test --reporter=list,json

echo
node scripts/test-summary.mjs "$out" || status=1
exit $status
