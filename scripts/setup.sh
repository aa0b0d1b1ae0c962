#!/usr/bin/env bash
# Installs what the tests need beyond npm packages: Debian's Chromium (headless browser tests, and
# the SwiftShader Vulkan driver that gives a CPU WebGPU adapter) and the Vulkan loader (Dawn in
# Node). Does nothing when they are present. Where it cannot install, it says what to install and
# exits non-zero.
set -euo pipefail

need_pkgs=()
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
[ -f /usr/lib/chromium/vk_swiftshader_icd.json ] || need_pkgs+=(chromium)
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then need_pkgs+=(libvulkan1); fi
# Unique package names.
mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u | sed '/^$/d')

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found $(node --version 2>/dev/null || echo none))." >&2
  exit 1
fi

if [ "${#need_pkgs[@]}" -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${need_pkgs[*]} (Debian packages) for WebGPU tests…"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: apt-get is not available. Install these yourself: ${need_pkgs[*]}" >&2
  echo "       (Chromium with its SwiftShader Vulkan driver at /usr/lib/chromium/, and the Vulkan loader libvulkan.so.1)." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "setup: root is needed to install ${need_pkgs[*]}. Run:" >&2
  echo "       sudo apt-get update && sudo apt-get install -y ${need_pkgs[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
echo "setup: installed ${need_pkgs[*]}."
