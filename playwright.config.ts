// End-to-end tests: the built studio served by `vite preview`, driven in Debian's headless Chromium
// with WebGPU on SwiftShader (see scripts/setup.sh). Playwright's own browser downloads are not used.
import { defineConfig } from '@playwright/test';

export const CHROMIUM = process.env.WHETSTONE_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
];
// `disable_workgroup_init`, as in the Node tests (src/engine/gpu/node.ts): Dawn skips zero-filling
// workgroup memory, which on SwiftShader halves the time of every new pipeline's first run. Every
// kernel writes its workgroup memory before reading it; the Node GPU tests would show garbage if one
// did not. A person's browser keeps the zero-fill, which changes no result.
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--enable-features=Vulkan', '--enable-dawn-features=disable_workgroup_init'];
// WHETSTONE_E2E_PORT and WHETSTONE_E2E_DIST let two suites run side by side on one machine (each
// with its own `vite build --outDir DIR`).
const PORT = Number(process.env.WHETSTONE_E2E_PORT ?? 4173);
const DIST = process.env.WHETSTONE_E2E_DIST ?? 'dist';

export default defineConfig({
  testDir: 'e2e',
  timeout: 180_000,
  expect: { timeout: 60_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: DIST === 'dist' ? 'test-results/e2e' : `test-results/e2e-${PORT}`,
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    launchOptions: { executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...WEBGPU_ARGS] },
    screenshot: 'only-on-failure',
    trace: 'off',
  },
  webServer: {
    command: `npx vite preview --host 127.0.0.1 --port ${PORT} --strictPort --outDir ${DIST}`,
    url: `http://127.0.0.1:${PORT}`,
    reuseExistingServer: !process.env.CI,
    timeout: 60_000,
  },
});
