// The page's bundle stays light: every module the studio's page loads (value imports followed from
// src/ui/main.tsx, the entry index.html names) is checked against the engine code that computes —
// the engine side of the method registry, the model, kernels, autograd, the GPU device, file readers
// and the IndexedDB store belong to the worker's bundle. `import { type X }` counts as a value import
// here, as it does for the bundler under verbatimModuleSyntax (the module is still evaluated).

import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

/** The value imports of a source file: relative paths resolved from the root, packages by name. */
function valueImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'([^']+)'/gms)) {
    if (m[1]) continue;
    const spec = m[2];
    out.push(spec.startsWith('.') ? resolve(dirname(file), spec) : spec);
  }
  return out;
}

/** Every module the page reaches from its entry, as paths relative to the root (packages by name). */
function pageModules(): Set<string> {
  const seen = new Set<string>();
  const todo = [resolve(ROOT, 'src/ui/main.tsx')];
  while (todo.length > 0) {
    const file = todo.pop() as string;
    const key = file.startsWith('/') ? relative(ROOT, file) : file;
    if (seen.has(key)) continue;
    seen.add(key);
    if (file.startsWith('/') && /\.(ts|tsx)$/.test(file)) todo.push(...valueImports(file));
  }
  return seen;
}

describe("the page's modules", () => {
  it('reach the method metadata and no engine code that computes', () => {
    const modules = [...pageModules()];
    // The walk itself works: the Train form's settings and the method metadata are reached.
    expect(modules).toContain('src/worker/train-settings.ts');
    expect(modules).toContain('src/engine/peft/method-info.ts');
    const heavy = modules.filter(
      (m) =>
        m === 'idb' ||
        m === 'webgpu' ||
        /^src\/engine\/(kernels|autograd|model|io|train|compress|plan|reference|data)\//.test(m) ||
        /^src\/engine\/gpu\/(?!allocator\.ts$)/.test(m) ||
        /^src\/engine\/peft\/(methods|adapter|params)\.ts$/.test(m) ||
        /^src\/engine\/peft\/[^/]+\/(?!config\.ts$)[^/]+$/.test(m) ||
        m === 'src/engine/store/store-idb.ts',
    );
    expect(heavy).toEqual([]);
  });

  it('leave the charting library to the chunks the charts load on demand', () => {
    expect([...pageModules()]).not.toContain('recharts');
  });
});
