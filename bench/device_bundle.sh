#!/usr/bin/env bash
# The bundle that bench/device_check.sh installs on a lent GPU machine with no network (README: "The GPU check
# on a lent device"). Run here, from the repository root, with the project's venv and the default model:
#   bash bench/device_bundle.sh [--layers N]
# Writes bench/.bundle/ (git-ignored; keep this recipe, not the binaries):
#   wheels/     every pure-Python wheel the device lacks, for Python 3.12 (manylinux x86_64), pinned to this
#               venv's versions, and energytui's own wheel. The device already has numpy, scikit-learn (scipy,
#               joblib, threadpoolctl), nvidia-ml-py, pyyaml, jinja2, packaging, pip, cmake, ninja and
#               scikit-build-core (/work/.library/device/KINDS.md), so those stay behind.
#   src/        llama-cpp-python 0.3.36's source distribution trimmed for a CUDA (sm_90) + CPU build of the
#               package and llama-bench (bench/device_prep.py trim-sdist).
#   models/     the default model cut to its first N of 30 layers (default 10), every kept tensor byte for byte:
#               the whole default model is 98 MB (86 MB under zstd -19), more than the 64 MiB that travels.
#   MANIFEST.txt  every file's size and sha256, and the total with the working tree that travels beside it.
# Fails when that total is over 60 MiB (the limit is 64 MiB; the rest is margin for the working tree).
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=10
[[ "${1:-}" == "--layers" ]] && LAYERS="$2"
VERSION=0.3.36
BUNDLE=bench/.bundle
PY=.venv/bin/python
LIMIT_MIB=60
MODEL_SRC=$($PY -c "from energytui.engine.models import default_model_name, resolve_model; print(resolve_model(default_model_name()))")
[[ -f "$MODEL_SRC" ]] || { echo "the default model is missing: run .venv/bin/energytui models fetch" >&2; exit 2; }

rm -rf "$BUNDLE.part" && mkdir -p "$BUNDLE.part"/{wheels,src,models}
trap 'rm -rf "$BUNDLE.part"' EXIT

echo "== wheels for Python 3.12 (pinned to this venv's versions)"
# The device's own packages are left out; versions of what travels are this venv's, where it has them.
$PY -m pip freeze --exclude-editable 2>/dev/null | grep -iv '^llama' > "$BUNDLE.part/constraints.txt"
nice -n 19 $PY -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -c "$BUNDLE.part/constraints.txt" -d "$BUNDLE.part/wheels" \
  "textual==8.2.8" "textual-plotext==1.0.1" sqlite-utils platformdirs rich diskcache 2>&1 | grep -v "^WARNING: Location" || true
rm -f "$BUNDLE.part"/wheels/pip-*.whl  # sqlite-utils names pip (for its plugin installer); the device has pip
nice -n 19 $PY -m pip wheel -q --no-deps -w "$BUNDLE.part/wheels" . 2>&1 | grep -v "^WARNING: Location" || true
ls "$BUNDLE.part"/wheels/energytui-*.whl >/dev/null
$PY bench/device_prep.py source-hash . > "$BUNDLE.part/SOURCE_HASH"  # the device check tells a stale wheel by it

echo "== llama-cpp-python $VERSION source, trimmed for a CUDA build"
SDIST_DIR=bench/.build
SDIST="$SDIST_DIR/llama_cpp_python-$VERSION.tar.gz"
if [[ ! -f "$SDIST" ]]; then
  mkdir -p "$SDIST_DIR"
  nice -n 19 $PY -m pip download -q --no-deps --no-binary :all: -d "$SDIST_DIR" "llama-cpp-python==$VERSION" 2>&1 \
    | grep -v "^WARNING: Location" || true
fi
nice -n 19 $PY bench/device_prep.py trim-sdist "$SDIST" "$BUNDLE.part/src/llama_cpp_python-$VERSION-trimmed.tar.xz"

echo "== the default model's first $LAYERS layers"
MODEL_NAME="smollm2-135m-q4_1-first${LAYERS}layers"
nice -n 19 $PY bench/device_prep.py derive-model "$MODEL_SRC" "$BUNDLE.part/models/$MODEL_NAME.gguf" \
  --layers "$LAYERS" 2>/dev/null
echo "$MODEL_NAME" > "$BUNDLE.part/models/NAME"

echo "== size"
(cd "$BUNDLE.part" && find . -type f ! -name MANIFEST.txt | sort | while read -r f; do
   printf '%10d  %s  %s\n' "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -c1-64)" "${f#./}"; done) > "$BUNDLE.part/MANIFEST.txt"
bundle=$(du -cb "$BUNDLE.part" | tail -1 | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
total=$((bundle + tree))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
{ echo "bundle $(mib "$bundle") + working tree $(mib "$tree") = $(mib "$total") (limit 64 MiB; this recipe's $LIMIT_MIB)"
  for part in wheels src models; do echo "  $part: $(mib "$(du -cb "$BUNDLE.part/$part" | tail -1 | cut -f1)")"; done
} | tee -a "$BUNDLE.part/MANIFEST.txt"
if (( total > LIMIT_MIB * 1048576 )); then
  echo "too large for the device's 64 MiB: use fewer --layers" >&2
  exit 1
fi
rm -rf "$BUNDLE" && mv "$BUNDLE.part" "$BUNDLE"
trap - EXIT
echo "wrote $BUNDLE (carry it: see the README's device check)"
