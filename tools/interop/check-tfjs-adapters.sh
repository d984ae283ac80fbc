#!/usr/bin/env bash
# Reverse interop check: Hugging Face PEFT loads every adapter folder tfjs-peft wrote into
# fixtures/tfjs-written/ (tools/interop/write-tfjs-adapters.ts) and reproduces our outputs.
# Needs the Python venv (.venv-hf, see tools/fixtures-python/README.md); CI does not run this —
# CI runs the jest test that re-checks the committed files in tfjs. Usage, from the repository root:
#   tools/interop/check-tfjs-adapters.sh | tee fixtures/tfjs-written/peft-check-transcript.txt
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv-hf/bin/python}
echo "# Hugging Face PEFT loading adapters written by tfjs-peft"
echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- packages/peft-core packages/peft-lora packages/test-utils tools/interop || echo ' (with uncommitted changes)')"
"$PY" -c 'import sys, torch, peft, safetensors; print(f"# python {sys.version.split()[0]}, torch {torch.__version__}, peft {peft.__version__}, safetensors {safetensors.__version__}")'
echo "# node $(node --version); adapters written by: node --conditions=@tfjs-peft/source --import tsx tools/interop/write-tfjs-adapters.ts"
echo
status=0
for dir in fixtures/tfjs-written/*/; do
  dir=${dir%/}
  # The PEFT fixture whose base and inputs the adapter was written on (lora-mlp, lora-conv, lora-embedding).
  FIXTURE=fixtures/$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["fixture"])' "$dir/expected_outputs.json")
  echo "\$ $PY tools/fixtures-python/check_tfjs_adapter.py $FIXTURE $dir"
  "$PY" tools/fixtures-python/check_tfjs_adapter.py "$FIXTURE" "$dir" || status=1
  multi=0
  for sub in "$dir"/*/; do
    [ -f "$sub/adapter_config.json" ] || continue
    sub=${sub%/}
    name=$(basename "$sub")
    echo "\$ $PY tools/fixtures-python/check_tfjs_adapter.py $FIXTURE $sub --adapter-name $name"
    "$PY" tools/fixtures-python/check_tfjs_adapter.py "$FIXTURE" "$sub" --adapter-name "$name" || status=1
    multi=1
  done
  if [ $multi = 1 ]; then
    echo "\$ $PY tools/interop/check_tfjs_multi_adapter.py $FIXTURE $dir"
    "$PY" tools/interop/check_tfjs_multi_adapter.py "$FIXTURE" "$dir" || status=1
  fi
  echo
done
echo "# overall: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
