#!/usr/bin/env node
// Runs scripts/bench-methods.ts through tsx with the `?raw` shader hooks the CLI uses:
//   node scripts/bench-methods.mjs [--steps 30] [--methods lora,ia3]
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register('../bin/raw-hooks.mjs', import.meta.url);
registerTsx();
await import('./bench-methods.ts');
