import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasSystemVulkanDriver } from './node.ts';

describe('hasSystemVulkanDriver', () => {
  const root = mkdtempSync(join(tmpdir(), 'whetstone-icd-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const empty = join(root, 'empty');
  mkdirSync(join(empty, 'vulkan/icd.d'), { recursive: true });
  const isolated = { HOME: join(root, 'home'), XDG_CONFIG_DIRS: empty, XDG_DATA_DIRS: empty };

  it('is false when no search folder holds a manifest', () => {
    expect(hasSystemVulkanDriver(isolated, empty)).toBe(false);
  });

  it('finds a manifest in an XDG data folder, the sysconf folder or the home folder', () => {
    const data = join(root, 'data');
    mkdirSync(join(data, 'vulkan/icd.d'), { recursive: true });
    writeFileSync(join(data, 'vulkan/icd.d/nvidia_icd.json'), '{}');
    expect(hasSystemVulkanDriver({ ...isolated, XDG_DATA_DIRS: `${empty}:${data}` }, empty)).toBe(true);
    expect(hasSystemVulkanDriver(isolated, data)).toBe(true);
    expect(hasSystemVulkanDriver({ ...isolated, XDG_DATA_HOME: data }, empty)).toBe(true);
  });

  it('ignores files that are not manifests and trusts the driver variables', () => {
    const other = join(root, 'other');
    mkdirSync(join(other, 'vulkan/icd.d'), { recursive: true });
    writeFileSync(join(other, 'vulkan/icd.d/README'), '');
    expect(hasSystemVulkanDriver({ ...isolated, XDG_DATA_DIRS: other }, empty)).toBe(false);
    expect(hasSystemVulkanDriver({ ...isolated, VK_DRIVER_FILES: '/x/icd.json' }, empty)).toBe(true);
  });
});
