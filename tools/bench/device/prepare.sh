#!/usr/bin/env bash
# Makes what run-on-gpu.sh needs on the GPU machine, here, from the repository root: .device/ (the
# bundled bench worker, node and dawn.node, xz-compressed) and .gl/ (Vulkan/EGL loader packages for
# amd64), both kept out of git through .git/info/exclude. Then call the device tool's `run` with
#   command: OUT=$OUT bash tools/bench/device/run-on-gpu.sh     carry: [".gl", ".device"]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
for ignored in /.gl/ /.device/; do grep -qxF "$ignored" .git/info/exclude || echo "$ignored" >>.git/info/exclude; done
mkdir -p .device .gl /tmp/amd64/partial
node tools/bench/device/build.mjs .device/bench-worker.mjs
xz -T0 -6 -c "$(command -v node)" >.device/node.xz
dawn=$(ls node_modules/.pnpm/webgpu@*/node_modules/webgpu/dist/linux-x64/dawn.node | head -1)
xz -T0 -6 -c "$dawn" >.device/dawn.node.xz
apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${apt[@]}" update >/dev/null
(cd .gl && apt-get "${apt[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
du -sh .device .gl
