#!/usr/bin/env bash
# Builds @tensorflow/tfjs-node's native binding (lib/napi-v*/tfjs_binding.node) against the
# TensorFlow C API found inside a tensorflow-cpu wheel, instead of the libtensorflow tarball and the
# prebuilt addon that tfjs-node's own install script downloads (those hosts are unreachable here).
#
# tfjs-node is an OPTIONAL backend for our tests: whenever the wheel (or a compiler) is not
# available this script explains why and exits 0, and the test harness reports the `tensorflow`
# backend as skipped. Set TFJS_NODE_BUILD_STRICT=1 to make any failure exit 1 instead.
#
# Inputs (all optional):
#   TF_WHEEL        path of a tensorflow-cpu wheel to use as is
#   TF_WHEEL_SPEC   pip requirement to download (default tensorflow-cpu==2.21.0, from pip's configured index)
#   TFJS_PEFT_CACHE cache directory (default <repo>/.cache, gitignored)
# Usage: pnpm --filter @tfjs-peft/test-utils build:tfjs-node   (or run this file from anywhere)
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
CACHE_ROOT=${TFJS_PEFT_CACHE:-$REPO/.cache}
SPEC=${TF_WHEEL_SPEC:-tensorflow-cpu==2.21.0}
STRICT=${TFJS_NODE_BUILD_STRICT:-0}

say() { echo "[build:tfjs-node] $*"; }
give_up() {
  say "NOT BUILT: $*"
  say "The 'tensorflow' test backend will be reported as SKIPPED. Other backends are unaffected."
  [ "$STRICT" = 1 ] && exit 1
  exit 0
}

# tfjs-node is installed (as an optional dependency) under packages/test-utils; resolve it from there.
PKG_JSON=$(cd "$REPO/packages/test-utils" && node -p "require.resolve('@tensorflow/tfjs-node/package.json')" 2>/dev/null) \
  || give_up "@tensorflow/tfjs-node is not installed (run pnpm install first)"
PKG=$(cd "$(dirname "$PKG_JSON")" && pwd -P)

if ls "$PKG"/lib/napi-v*/tfjs_binding.node >/dev/null 2>&1 && [ "${TFJS_NODE_REBUILD:-0}" != 1 ]; then
  say "binding already built: $(ls "$PKG"/lib/napi-v*/tfjs_binding.node) (TFJS_NODE_REBUILD=1 to rebuild)"
  exit 0
fi

for tool in python3 make g++; do
  command -v "$tool" >/dev/null 2>&1 || give_up "'$tool' is not installed (needed to build the addon)"
done
[ -f /usr/include/node/node_api.h ] || give_up "Node headers missing at /usr/include/node (Debian: apt-get install libnode-dev, or nodejs from NodeSource)"

# 1. The wheel: given, cached, or downloaded through pip's configured (local) index, without deps.
WHEEL=${TF_WHEEL:-}
if [ -z "$WHEEL" ]; then
  WHEEL_DIR=$CACHE_ROOT/tf-wheel
  mkdir -p "$WHEEL_DIR"
  if ! ls "$WHEEL_DIR"/tensorflow_cpu-*.whl >/dev/null 2>&1; then
    say "downloading $SPEC with pip (no dependencies) into $WHEEL_DIR"
    python3 -m pip download -q --retries 1 --no-deps --only-binary=:all: "$SPEC" -d "$WHEEL_DIR" \
      || give_up "pip could not obtain $SPEC (no index serving it on this machine?); set TF_WHEEL=/path/to/wheel"
  fi
  WHEEL=$(ls "$WHEEL_DIR"/tensorflow_cpu-*.whl 2>/dev/null | head -1)
fi
[ -f "$WHEEL" ] || give_up "no tensorflow-cpu wheel found (TF_WHEEL=$WHEEL)"
say "using wheel $WHEEL"

# 2. Unpack only the C API shared libraries and headers (cached per wheel).
LIB=$CACHE_ROOT/libtensorflow/$(basename "$WHEEL" .whl)
if [ ! -f "$LIB/.complete" ]; then
  rm -rf "$LIB" && mkdir -p "$LIB"
  python3 - "$WHEEL" "$LIB" <<'PY' || give_up "could not unpack $WHEEL"
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
wanted = {'tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'}
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n in wanted or n.startswith('tensorflow/include/tensorflow/c/')
             or n.startswith('tensorflow/include/tensorflow/core/platform/') or n.startswith('tensorflow/include/tsl/')
             or n.startswith('tensorflow/include/xla/tsl/')]
    missing = wanted - set(names)
    if missing:
        sys.exit('wheel lacks ' + ', '.join(sorted(missing)))
    for n in names:
        z.extract(n, out)
PY
  touch "$LIB/.complete"
fi

# 3. Lay the library out the way binding.gyp expects (deps/include, deps/lib, rpath $ORIGIN/../../deps/lib).
mkdir -p "$PKG/deps/lib"
ln -sfn "$LIB/tensorflow/include" "$PKG/deps/include"
( cd "$PKG/deps/lib" \
  && ln -sf "$LIB/tensorflow/libtensorflow_cc.so.2" libtensorflow_cc.so.2 \
  && ln -sf "$LIB/tensorflow/libtensorflow_framework.so.2" libtensorflow_framework.so.2 \
  && ln -sf libtensorflow_cc.so.2 libtensorflow.so \
  && ln -sf libtensorflow_cc.so.2 libtensorflow.so.2 \
  && ln -sf libtensorflow_framework.so.2 libtensorflow_framework.so ) || give_up "could not link the library into $PKG/deps"

# 4. Compile with node-gyp straight away (no node-pre-gyp download attempt, no header download:
#    nodedir=/usr uses the distribution's Node headers).
NODE_GYP=$(node -p "require.resolve('node-gyp/bin/node-gyp.js', {paths: [process.argv[1]]})" "$(npm root -g)/npm" 2>/dev/null) \
  || give_up "node-gyp not found (it ships with npm)"
NAPI=$(node -p "Math.max(...require(process.argv[1]).binary.napi_versions.filter(v => v <= +process.versions.napi))" "$PKG/package.json")
OUT_DIR=$PKG/lib/napi-v$NAPI
say "compiling tfjs_binding.node (N-API $NAPI) with node-gyp"
start=$(date +%s)
( cd "$PKG" && node "$NODE_GYP" rebuild --nodedir=/usr --jobs="$(nproc)" \
    --module_name=tfjs_binding --module_path="$OUT_DIR" --napi_build_version="$NAPI" >"$CACHE_ROOT/tfjs-node-build.log" 2>&1 ) \
  || { tail -30 "$CACHE_ROOT/tfjs-node-build.log"; give_up "node-gyp failed (full log: $CACHE_ROOT/tfjs-node-build.log)"; }
[ -f "$OUT_DIR/tfjs_binding.node" ] || cp "$PKG/build/Release/tfjs_binding.node" "$OUT_DIR/" 2>/dev/null || true
[ -f "$OUT_DIR/tfjs_binding.node" ] || give_up "build finished but $OUT_DIR/tfjs_binding.node is missing"

# 5. Smoke test: the binding loads and runs an op.
node -e "const tf = require(process.argv[1]); tf.setBackend('tensorflow'); const y = tf.add(tf.scalar(1), tf.scalar(2)).dataSync()[0]; if (y !== 3) throw new Error('1+2=' + y); console.log('[build:tfjs-node] smoke test ok, TF', tf.version.tfjs, 'backend', tf.getBackend())" "$PKG" 2>&1 | grep -v "^$" \
  || give_up "the built binding does not load (see above)"
say "built $OUT_DIR/tfjs_binding.node in $(( $(date +%s) - start )) s"
