import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// The layer rule of eslint.config.js, exercised on code that breaks it and code that does not.
describe('layer lint rules', () => {
  const eslint = new ESLint();
  const lint = async (filePath: string, code: string) => {
    const [result] = await eslint.lintText(code, { filePath });
    return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
  };

  it('keeps UI libraries and upper layers out of src/engine', async () => {
    const messages = await lint('src/engine/model/probe.ts', "import { useState } from 'react';\nimport { useStudio } from '../../ui/store.ts';\nexport const x = [useState, useStudio];\n");
    expect(messages).toHaveLength(2);
    expect(messages.join('\n')).toMatch(/must not import/);
  });

  it('lets src/engine import its own modules', async () => {
    expect(await lint('src/engine/model/probe.ts', "import { Rng } from '../random.ts';\nexport const r = new Rng(1);\n")).toEqual([]);
  });

  it('keeps UI code out of src/worker', async () => {
    expect(await lint('src/worker/probe.ts', "import { App } from '../ui/App.tsx';\nexport const a = App;\n")).toHaveLength(1);
  });
});
