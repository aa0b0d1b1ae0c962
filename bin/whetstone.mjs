#!/usr/bin/env node
// The `whetstone` command: runs src/cli/main.ts through tsx, with `?raw` imports of shaders/.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register('./raw-hooks.mjs', import.meta.url);
registerTsx();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
