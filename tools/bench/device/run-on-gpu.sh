#!/usr/bin/env bash
# The bench on the GPU machine (the `device` tool: one H200, no node_modules, no network), run from
# the repository root with `.gl` (Vulkan/EGL loader packages) and `.device` (build.mjs's bundle,
# node.xz, dawn.node.xz) carried; see README.md. Writes everything to $OUT:
#   gpu.txt, torch-cuda-<B>x<L>.json (PyTorch + PEFT on CUDA), webgpu-<B>x<L>.json (tfjs-backend-webgpu
#   on Dawn/Vulkan), and a log of each. Sizes: BENCH_SIZES (default "16x64 64x256"; the first runs
#   every method and inference, the others full fine-tuning and LoRA).
set -uo pipefail
OUT=${OUT:?set OUT to the folder for the results}
SIZES=${BENCH_SIZES:-16x64 64x256}
METHODS_FIRST=${BENCH_METHODS:-full,lora,bitfit,ia3,adapters,prompt-tuning,prefix-tuning,full-fused-adam,lora-fused-adam}
DAWN_BACKEND=${DAWN_BACKEND:-vulkan}
STEPS=${BENCH_STEPS:-10}
WORK=/tmp/tfjs-peft-bench

if [ "$DAWN_BACKEND" = vulkan ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  # The driver's Vulkan ICD lives in the read-only driver mount on these machines.
  if ! ls /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json >/dev/null 2>&1 &&
    [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
fi
mkdir -p "$WORK"
python3 - <<'PY'
import lzma, os, shutil
for name in ("node", "dawn.node"):
    with lzma.open(f".device/{name}.xz") as src, open(f"/tmp/tfjs-peft-bench/{name}", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.chmod("/tmp/tfjs-peft-bench/node", 0o755)
PY
NODE=$WORK/node
export TFJS_PEFT_DAWN_NODE=$WORK/dawn.node TFJS_PEFT_DAWN_FLAGS=backend=$DAWN_BACKEND TFJS_PEFT_BENCH_WEIGHTS=random
export EGL_PLATFORM=${EGL_PLATFORM:-surfaceless}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  echo "node $($NODE --version); $(nproc) cores; $(python3 -c 'import torch,peft;print("torch",torch.__version__,"peft",peft.__version__)' 2>&1)"
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
} | tee "$OUT/gpu.txt"

first=1
for size in $SIZES; do
  batch=${size%x*}
  length=${size#*x}
  if [ $first = 1 ]; then methods=$METHODS_FIRST inference=true; else methods=full,lora inference=false; fi
  first=0
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    PYTHONUNBUFFERED=1 timeout 300 python3 tools/bench/torch_reference.py --device cuda --threads "$(nproc)" \
      --batch "$batch" --length "$length" --steps "$STEPS" --warmup 3 --infer-runs 20 --matmul-size 8192 \
      --out "$OUT/torch-cuda-$size.json" 2>&1 | tee "$OUT/torch-cuda-$size.log"
  fi
  json=$(printf '{"backend":"webgpu","methods":[%s],"batch":%s,"length":%s,"reduced":null,"steps":%s,"warmup":2,"inference":%s,"inferRuns":20,"matMulN":%s,"matMulRuns":7,"profile":true,"printFlops":false,"out":"%s"}' \
    "$(echo "$methods" | sed 's/[^,]*/"&"/g')" "$batch" "$length" "$STEPS" "$inference" "${BENCH_MATMUL_N:-4096}" "$OUT/webgpu-$size.json")
  timeout 400 "$NODE" .device/bench-worker.mjs "$json" 2>&1 | grep -v 'artificially reduced' | tee "$OUT/webgpu-$size.log"
done
ls -la "$OUT"
