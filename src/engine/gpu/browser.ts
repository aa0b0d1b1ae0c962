// Opens the Gpu in a browser or a Web Worker through `navigator.gpu`. Not for Node: see node.ts.

import { GpuUnavailableError } from '../errors.ts';
import { type Gpu, type GpuOptions, gpuFromAdapter } from './device.ts';

export async function openBrowserGpu(options: GpuOptions = {}): Promise<Gpu> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    const insecure = typeof globalThis.isSecureContext === 'boolean' && !globalThis.isSecureContext;
    throw new GpuUnavailableError(
      insecure
        ? 'WebGPU is only available on secure pages (https:// or http://localhost), and this page is not one.'
        : 'This browser does not expose WebGPU (navigator.gpu is missing).',
      {
        hint:
          'Use Chrome or Edge 113 or newer, or Safari 26. On Linux, start Chrome with ' +
          '--enable-unsafe-webgpu (and --enable-features=Vulkan), or enable chrome://flags/#enable-unsafe-webgpu. ' +
          'In Firefox, WebGPU needs version 141+ on Windows or dom.webgpu.enabled elsewhere.',
      },
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new GpuUnavailableError('The browser has WebGPU but found no usable GPU adapter.', {
      hint:
        'Update the graphics driver, or allow a software adapter: in Chrome start with ' +
        '--enable-unsafe-webgpu --enable-unsafe-swiftshader. Check chrome://gpu for "WebGPU: Hardware accelerated".',
    });
  }
  return gpuFromAdapter(adapter, 'browser', options);
}
