// Lint rules. The layer rules keep imports pointing down: src/engine/ never imports UI, worker or
// CLI code (nor React and friends), and src/worker/ never imports UI code.
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const UI_PACKAGES = ['react', 'react-dom', 'react-dom/*', 'zustand', 'zustand/*', 'recharts', 'recharts/*'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test-results/', 'playwright-report/', '.bench/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/ui/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: reactHooks.configs.recommended.rules,
  },
  {
    files: ['src/engine/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: UI_PACKAGES.filter((p) => !p.includes('*')).map((name) => ({ name, message: 'src/engine/ must not import UI libraries.' })),
          patterns: [
            { group: UI_PACKAGES.filter((p) => p.includes('*')), message: 'src/engine/ must not import UI libraries.' },
            { group: ['**/ui/**', '**/ui', '**/worker/**', '**/cli/**', '*.tsx'], message: 'src/engine/ must not import from src/ui, src/worker or src/cli (imports point down).' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/worker/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: UI_PACKAGES.filter((p) => !p.includes('*')).map((name) => ({ name, message: 'src/worker/ must not import UI libraries.' })),
          patterns: [{ group: ['**/ui/**', '**/ui', '**/cli/**'], message: 'src/worker/ must not import from src/ui or src/cli.' }],
        },
      ],
    },
  },
);
