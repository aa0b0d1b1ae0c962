// Opens the Gpu in Node.js through Dawn (the `webgpu` npm package) on Vulkan. Not for browsers.
//
// Choice of Vulkan driver: VK_ICD_FILENAMES when set; otherwise the system's drivers (a real GPU),
// and when none is installed or they offer no adapter, the SwiftShader CPU driver that Debian's
// `chromium` ships.

import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GpuUnavailableError } from '../errors.ts';
import { type Gpu, type GpuOptions, gpuFromAdapter } from './device.ts';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

const HOW_TO_GET_ONE =
  'Run `bash scripts/setup.sh` (as root it installs Debian\'s `chromium` and `libvulkan1`, which give a ' +
  'CPU WebGPU adapter through SwiftShader), or install a Vulkan driver for your GPU. To choose a driver, ' +
  `set VK_ICD_FILENAMES, e.g. VK_ICD_FILENAMES=${SWIFTSHADER_ICD}.`;

// Dawn frees its instance when the JavaScript GPU object is collected, even while a device made from
// it is still in use (a crash in the instance's event processing). Every instance that produced an
// adapter is therefore kept here for the life of the process.
const instances: GPU[] = [];

/**
 * Dawn options. `disable_workgroup_init` skips zero-filling workgroup memory at every dispatch,
 * which on SwiftShader makes each pipeline compile in milliseconds instead of seconds. Every kernel
 * writes its workgroup memory before reading it, so results do not change; where one did not, the
 * uninitialised reads would show up here as garbage rather than pass quietly as zeros.
 */
const DAWN_OPTIONS = ['enable-dawn-features=disable_workgroup_init'];

export async function openNodeGpu(options: GpuOptions = {}): Promise<Gpu> {
  if (!process.env.XDG_RUNTIME_DIR || !existsSync(process.env.XDG_RUNTIME_DIR)) {
    process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'whetstone-xdg-'));
  }
  let mod: typeof import('webgpu');
  try {
    mod = await import('webgpu');
  } catch (cause) {
    throw new GpuUnavailableError(`The \`webgpu\` package (Dawn for Node) could not be loaded: ${String(cause)}`, {
      hint: 'Run `npm install` in the project folder.',
      cause,
    });
  }
  Object.assign(globalThis, mod.globals);

  const tried: string[] = [];
  const attempt = async (label: string): Promise<GPUAdapter | null> => {
    tried.push(label);
    try {
      const instance = mod.create(DAWN_OPTIONS);
      const adapter = await instance.requestAdapter({ powerPreference: 'high-performance' });
      if (adapter) instances.push(instance);
      return adapter;
    } catch {
      return null;
    }
  };

  let adapter: GPUAdapter | null;
  if (process.env.VK_ICD_FILENAMES) {
    adapter = await attempt(`VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES}`);
  } else {
    // With no driver manifest installed, asking the loader only makes Dawn print warnings.
    adapter = hasSystemVulkanDriver() ? await attempt('system Vulkan drivers') : (tried.push('system Vulkan drivers (none installed)'), null);
    if (!adapter && existsSync(SWIFTSHADER_ICD)) {
      process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      adapter = await attempt(`SwiftShader (${SWIFTSHADER_ICD})`);
    }
  }
  if (!adapter) {
    const missingLoader = !hasVulkanLoader();
    throw new GpuUnavailableError(
      `No WebGPU adapter found in Node (tried: ${tried.join('; ')}).` +
        (missingLoader ? ' The Vulkan loader (libvulkan.so.1) is not installed.' : ''),
      { hint: HOW_TO_GET_ONE },
    );
  }
  return gpuFromAdapter(adapter, 'node-dawn', options);
}

function hasVulkanLoader(): boolean {
  return ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1', '/usr/lib/libvulkan.so.1'].some(
    (p) => existsSync(p),
  );
}

/**
 * Whether the Vulkan loader would find a driver manifest: the files it reads from the driver
 * environment variables, or a `*.json` in one of its search folders (XDG config and data folders,
 * /etc and /usr/share by default).
 */
export function hasSystemVulkanDriver(env: NodeJS.ProcessEnv = process.env, sysconfdir = '/etc'): boolean {
  if (env.VK_DRIVER_FILES || env.VK_ADD_DRIVER_FILES) return true;
  const split = (v: string | undefined, fallback: string) => (v || fallback).split(':').filter(Boolean);
  const home = env.HOME || homedir();
  const roots = [
    ...split(env.XDG_CONFIG_DIRS, '/etc/xdg'),
    sysconfdir,
    env.XDG_DATA_HOME || join(home, '.local/share'),
    ...split(env.XDG_DATA_DIRS, '/usr/local/share:/usr/share'),
  ];
  return roots.some((root) => {
    try {
      return readdirSync(join(root, 'vulkan/icd.d')).some((f) => f.endsWith('.json'));
    } catch {
      return false;
    }
  });
}
