#!/usr/bin/env bash
# The GPU check on a lent NVIDIA machine (no network; Python 3.12, CUDA's nvcc, cmake, ninja), from the repository
# root, with the bundle of bench/device_bundle.sh carried in bench/.bundle:
#   bash bench/device_check.sh            on the device: build llama-cpp-python with CUDA (sm_90), then measure
#   bash bench/device_check.sh --dry-run  here, on the CPU, with the NVML stand-in (bench/dryrun/pynvml.py)
#   bash bench/device_check.sh --continue on the same machine after a run that was cut short: keeps its build and
#                                         database, resumes the unfinished energytui runs, skips the finished ones
# Steps (each time-boxed; the whole run stops by DEVICE_CHECK_BUDGET_S: 470 s on the device, 270 s with --continue):
#   preflight   the machine, the GPU (nvidia-smi, read only), the bundle's checksums
#   install     the bundle's wheels with --no-index into a fresh target (bench/.device/site)
#   build       llama-cpp-python 0.3.36 with CUDA for sm_90 (and llama-bench) on every core, into
#               bench/.device/llama; kept for a rerun on the same machine (dry run: the project venv's CPU
#               build stands in, and the trimmed source is only configured)
#   deps        every distribution energytui needs is importable (bundle + the machine's own)
#   model       the bundle's model, and its Q8_0 rung written with llama.cpp's quantize API
#   manifests   gpu-check.yaml and gpu-calibrate.yaml with that model and this machine's thread counts
#   doctor, gpu-check (cpu, hybrid, gpu), gpu-compare (NVML counter vs integrated power), llama-bench (GPU
#   decode, same build), calibrate (cpu at two thread counts and gpu, two quantizations), advise (budgets
#   30/100/150/200/400 W, text and --json, --explain), held-out (each GPU configuration left out of the fit)
# It never changes clocks, power limits or any other GPU setting: NVML is only read (nvmlDeviceGet*), and
# nvidia-smi only queried. Results: $OUT (else bench/.device/out): summary.md, device-check.db and
# logs.tar.gz (every step's log, the manifests, the advisor's JSON), refreshed after every step so a
# failed or stopped run still returns what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=device CONTINUE=0
for arg in "$@"; do
  case $arg in
    --dry-run) MODE=dry-run ;;
    --continue) CONTINUE=1 ;;
    *) echo "usage: bash bench/device_check.sh [--dry-run] [--continue]" >&2; exit 2 ;;
  esac
done
BUNDLE=$ROOT/bench/.bundle
W=$ROOT/bench/.device
LOGS=$W/logs
OUT=${OUT:-$W/out}
DB=$W/device-check.db
NPROC=$(nproc)
VERSION=0.3.36
CUDA_FA=${DEVICE_CHECK_CUDA_FA:-OFF}  # OFF: FlashAttention kernels not compiled (about a minute less of build)
CMAKE_FLAGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=$CUDA_FA -DGGML_CUDA_NCCL=OFF \
-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF"
BUDGETS="30W 100W 150W 200W 400W"
if [[ $MODE == device ]]; then
  BUDGET_S=${DEVICE_CHECK_BUDGET_S:-$(( CONTINUE ? 270 : 470 ))}  # a --continue call has what is left of 15 minutes
  PY=${DEVICE_PYTHON:-python3}
  PYPATH=$W/site:$W/llama
  SKIP_GPU=()
  NGL=99 BENCH_BACKEND=gpu REPS=() CAP_SCALE=1
else
  BUDGET_S=${DEVICE_CHECK_BUDGET_S:-900}  # this 2-CPU machine is slower than the device's 16 cores
  PY=$W/dry-base/bin/python
  PYPATH=$ROOT/bench/dryrun:$W/site:$W/llama  # the NVML stand-in ahead of any real pynvml
  SKIP_GPU=(--skip-gpu)  # the CPU-only llama.cpp here runs no gpu or hybrid trial
  NGL=0 BENCH_BACKEND=cpu
  REPS=(--repetitions 1)  # the calibration's trials once each: 24 trials instead of 48 on these 2 CPUs
  CAP_SCALE=2  # every step's limit doubled: 2 shared CPUs, not 16 (the whole run still stops by BUDGET_S)
fi
export PYTHONPATH=$PYPATH PYTHONUNBUFFERED=1 ENERGYTUI_HOME=$W/home PIP_DISABLE_PIP_VERSION_CHECK=1
export ROOT BUNDLE W LOGS DB NPROC VERSION CMAKE_FLAGS MODE PY BUDGETS
T0=$(date +%s)

rm -rf "$LOGS" "$W/run"
(( CONTINUE )) || rm -f "$DB" "$DB-wal" "$DB-shm"
mkdir -p "$LOGS" "$W/run" "$OUT"
rm -f "$OUT/summary.md" "$OUT/device-check.db" "$OUT/device-check.db.gz" "$OUT/logs.tar.gz"
exec > >(tee "$LOGS/console.log") 2>&1

elapsed() { echo $(( $(date +%s) - T0 )); }

save() {  # what $OUT returns (at most 8 files): refreshed after every step
  if [[ -f $DB ]]; then
    "$PY" -c "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d)" \
      "$DB" "$OUT/device-check.db" 2>/dev/null
    if (( $(stat -c %s "$OUT/device-check.db" 2>/dev/null || echo 0) > 15 * 1048576 )); then
      gzip -f "$OUT/device-check.db"
    fi
  fi
  "$PY" "$ROOT/bench/device_prep.py" summary "$OUT" --work "$W" > /dev/null 2>&1
  tar -czf "$OUT/logs.tar.gz" -C "$W" logs run 2>/dev/null
}

# step NAME CAP_S COMMAND...: runs COMMAND for at most CAP_S seconds (less when the whole run's budget, minus
# RESERVE seconds kept for the steps after it, runs out first), its output in $LOGS/NAME.log.
step() {
  local name=$1 cap=$(( $2 * CAP_SCALE )) reserve=${RESERVE:-0}
  shift 2
  local left=$(( BUDGET_S - $(elapsed) - reserve ))
  local limit=$(( cap < left ? cap : left ))
  if (( limit < 5 )); then
    echo "=== [$(elapsed) s] $name: SKIPPED, the run's ${BUDGET_S} s are spent"
    printf '%s\tskipped (no time left)\t0\n' "$name" >> "$LOGS/steps.tsv"
    return 1
  fi
  echo "=== [$(elapsed) s] $name (at most ${limit} s)"
  local started rc status
  started=$(date +%s)
  timeout -s INT -k 10 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status="STOPPED at its ${limit} s limit" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  tail -n "${TAIL:-8}" "$LOGS/$name.log" | cut -c1-200 | sed 's/^/    /'
  echo "    -> $name: $status in $(( $(date +%s) - started )) s"
  printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - started ))" >> "$LOGS/steps.tsv"
  save
  return $rc
}

# run_step NAME CAP_S [MANIFEST]: `energytui run` of $W/run/MANIFEST.yaml (default NAME) into $DB; with --continue
# a run finished in an earlier call is skipped and an unfinished one resumed.
run_step() {
  local manifest=$W/run/${3:-$1}.yaml state=none
  (( CONTINUE )) && state=$("$PY" "$ROOT/bench/device_prep.py" run-state "$DB" "$manifest")
  if [[ $state == done ]]; then
    echo "=== [$(elapsed) s] $1: done in an earlier call (--continue)"
    printf '%s\tdone earlier\t0\n' "$1" >> "$LOGS/steps.tsv"
    return 0
  fi
  step "$1" "$2" "$PY" -m energytui run "$manifest" --db "$DB" "$([[ $state == unfinished ]] && echo --resume || echo --fresh)" \
    --format md "${SKIP_GPU[@]}"
}

et() { "$PY" -m energytui "$@"; }
export -f et

preflight() {
  echo "mode: $MODE; $(date -u +%FT%TZ); $(uname -srm); $NPROC CPUs; python: $("$PY" --version 2>&1) ($PY)"
  if [[ $MODE == device ]]; then
    nvidia-smi --query-gpu=name,driver_version,power.limit,power.draw,memory.total --format=csv,noheader \
      | tee "$LOGS/gpu.txt"
    nvcc --version | tail -2
    cmake --version | head -1
    "$PY" -m pip list 2>/dev/null | grep -iE "^(numpy|scikit-learn|scipy|nvidia-ml-py|pyyaml|jinja2|packaging|\
scikit-build-core|cmake|ninja|setuptools|rich|typing.extensions) " || true
  else
    echo "Stand-in GPU A and B (dry run: tests/fakes/nvml_trace.json replayed, NOT a GPU)" | tee "$LOGS/gpu.txt"
  fi
  echo "device check ($MODE), $(date -u +%F)" > "$LOGS/mode.txt"
  [[ -f $BUNDLE/MANIFEST.txt ]] || { echo "no bundle at $BUNDLE: run bench/device_bundle.sh here first"; return 2; }
  (cd "$BUNDLE" && awk 'NF == 3 && $3 != "MANIFEST.txt" { print $2 "  " $3 }' MANIFEST.txt | sha256sum -c --quiet) \
    && echo "bundle: every file matches MANIFEST.txt ($(tail -4 "$BUNDLE/MANIFEST.txt" | head -1))"
}
export -f preflight

dry_base() {  # here only: an interpreter with what the device has of energytui's needs, and nothing else
  [[ -x $W/dry-base/bin/python ]] && { echo "dry-base: present"; return 0; }
  python3 -m venv "$W/dry-base.part" &&
  nice -n 10 "$W/dry-base.part/bin/pip" install -q -c "$BUNDLE/constraints.txt" numpy scikit-learn nvidia-ml-py \
    pyyaml jinja2 packaging 2>&1 | grep -v "^WARNING: Location" ; rm -rf "$W/dry-base"
  mv "$W/dry-base.part" "$W/dry-base" && "$W/dry-base/bin/pip" list 2>/dev/null | tail -n +3 | tr -s ' ' | paste -sd,
}
export -f dry_base

install_bundle() {
  rm -rf "$W/site"
  "$PY" -m pip install --no-index --no-deps --no-compile --no-cache-dir --target "$W/site" "$BUNDLE"/wheels/*.whl \
    || return 1
  ls "$W/site" | grep -c dist-info | xargs echo "distributions installed into $W/site:"
  local now
  now=$("$PY" "$ROOT/bench/device_prep.py" source-hash "$ROOT")
  if [[ $now != "$(cat "$BUNDLE/SOURCE_HASH" 2>/dev/null)" ]]; then
    echo "energytui's source differs from the bundle's wheel: installing it from this working tree instead"
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$W/site" --upgrade \
      "$ROOT" || echo "WARNING: that failed; the bundle's (older) energytui wheel stays"
  fi
}
export -f install_bundle

build() {
  local stamp
  stamp="$W/llama/.built-$(echo "$CMAKE_FLAGS $(sha256sum "$BUNDLE"/src/*.tar.xz)" | sha256sum | cut -c1-16)"
  if [[ $MODE == dry-run ]]; then
    echo "CUDA build SKIPPED (dry run): the project venv's CPU llama-cpp-python $VERSION stands in for it"
    rm -rf "$W/llama" && mkdir -p "$W/llama"
    local site
    site=$("$ROOT/.venv/bin/python" -c "import llama_cpp, pathlib; print(pathlib.Path(llama_cpp.__file__).parents[1])")
    cp -r "$site/llama_cpp" "$site"/llama_cpp_python-$VERSION.dist-info "$W/llama/"
    echo "the trimmed source, configured for the CPU (cmake only, proves the trimmed tree and llama-bench's target):"
    rm -rf "$W/src" "$W/build-dry" && mkdir -p "$W/src"
    tar -xJf "$BUNDLE"/src/*.tar.xz -C "$W/src" &&
    nice -n 10 cmake -S "$W/src/llama_cpp_python-$VERSION" -B "$W/build-dry" -G Ninja -DLLAVA_BUILD=OFF \
      -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF -Wno-dev > "$W/build-dry.log" 2>&1 || { tail -20 "$W/build-dry.log"; return 1; }
    ninja -C "$W/build-dry" -t targets all | grep -q "^bin/llama-bench:" && echo "configured; llama-bench is a target"
    rm -rf "$W/build-dry"
    return 0
  fi
  if [[ -f $stamp ]]; then
    echo "llama-cpp-python with CUDA: already built on this machine ($stamp), kept"
    return 0
  fi
  command -v nvcc > /dev/null || export PATH=/usr/local/cuda/bin:$PATH
  # The source is unpacked once per bundle; its build folder stays, so a build stopped by its time limit goes on
  # where it stopped at the next call on the same machine (ninja skips what is compiled).
  local source_stamp
  source_stamp="$W/src/.from-$(sha256sum "$BUNDLE"/src/*.tar.xz | cut -c1-16)"
  if [[ ! -f $source_stamp ]]; then
    rm -rf "$W/src" "$W/build" && mkdir -p "$W/src" && tar -xJf "$BUNDLE"/src/*.tar.xz -C "$W/src" && touch "$source_stamp" \
      || return 1
  fi
  local hints extra libdirs
  hints=$("$PY" "$ROOT/bench/device_prep.py" cuda-args)
  extra=$(sed -n 's/^cmake: //p' <<< "$hints")
  libdirs=$(sed -n 's/^libdirs: //p' <<< "$hints")
  if [[ -n $libdirs ]]; then
    export LIBRARY_PATH=$libdirs${LIBRARY_PATH:+:$LIBRARY_PATH} LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  echo "building llama-cpp-python $VERSION: CMAKE_ARGS=$CMAKE_FLAGS $extra; $NPROC jobs; libraries: ${libdirs:-the toolkit}"
  rm -rf "$W/llama"
  CMAKE_ARGS="$CMAKE_FLAGS $extra" CMAKE_BUILD_PARALLEL_LEVEL=$NPROC "$PY" -m pip install -v --no-index --no-deps \
    --no-build-isolation --no-cache-dir --no-compile --target "$W/llama" --config-settings=build-dir="$W/build" \
    "$W/src/llama_cpp_python-$VERSION" > "$LOGS/build-verbose.log" 2>&1
  local rc=$?
  grep -E "^\[[0-9]+/[0-9]+\]" "$LOGS/build-verbose.log" | tail -1
  (( rc == 0 )) || { grep -iE "error|fatal" "$LOGS/build-verbose.log" | head -20; return $rc; }
  echo "$libdirs" > "$W/llama/.libdirs"
  "$PY" -c "import llama_cpp as l; assert l.llama_supports_gpu_offload(), 'built without GPU offload'; \
print('llama_cpp', l.__version__, 'GPU offload:', bool(l.llama_supports_gpu_offload()))" || return 1
  ls -la "$W/build/bin/llama-bench"
  touch "$stamp"
}
export -f build

model() {
  local name path
  name=$(cat "$BUNDLE/models/NAME")
  mkdir -p "$W/home/models"
  path=$W/home/models/$name.gguf
  ln -sf "$BUNDLE/models/$name.gguf" "$path"
  echo "$name: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['method'], '; sha256', \
d['sha256'][:16])" "$BUNDLE/models/$name.gguf.json" 2>/dev/null)" | tee "$LOGS/model.txt"
  et models ladder "$path" --quants Q8_0 && et models list
}
export -f model

manifests() {
  local name
  name=$(cat "$BUNDLE/models/NAME")
  "$PY" "$ROOT/bench/device_prep.py" manifest "$ROOT/config/manifests/gpu-check.yaml" "$W/run/gpu-check.yaml" \
    --model "smollm2-135m-q4_1=$name" &&
  "$PY" "$ROOT/bench/device_prep.py" manifest "$ROOT/config/manifests/gpu-calibrate.yaml" "$W/run/gpu-calibrate.yaml" \
    --model "smollm2-135m-q4_1=$name" --cpu-threads "$(( NPROC / 2 > 0 ? NPROC / 2 : 1 )),$NPROC" "$@" &&
  cat "$W/run/gpu-check.yaml" && grep -A3 "threads" "$W/run/gpu-calibrate.yaml" | head -8
}
export -f manifests

llama_bench() {
  local binary=${LLAMA_BENCH:-$W/build/bin/llama-bench}
  if [[ ! -x $binary ]]; then
    echo "no llama-bench at $binary (dry run: set LLAMA_BENCH to a CPU build, e.g. bench/overhead.py's): not compared"
    return 0
  fi
  "$binary" -m "$W/home/models/$(cat "$BUNDLE/models/NAME").gguf" -ngl "$1" -t "$NPROC" -p 0 -n 128 -d 128 -r 3 \
    -o json > "$LOGS/llama_bench.json" || return 1
  "$PY" "$ROOT/bench/device_prep.py" bench-ratio "$DB" "$LOGS/llama_bench.json" --backend "$2"
}
export -f llama_bench

advise() {  # exit 4 from `energytui advise` means "no configuration fits": an answer, not a failure
  local budget rc=0 code
  for budget in $BUDGETS; do
    et advise --db "$DB" --tokens 128 --prompt-tokens 128 --budget "$budget" > "$LOGS/advise_$budget.txt" 2>&1
    code=$?; (( code == 0 || code == 4 )) || rc=$code
    et advise --db "$DB" --tokens 128 --prompt-tokens 128 --budget "$budget" --json > "$LOGS/advise_$budget.json" \
      2>> "$LOGS/advise_$budget.txt"
    code=$?; (( code == 0 || code == 4 )) || rc=$code
    echo "$budget: $(grep -m1 -A1 -E "^Recommended|^No configuration" "$LOGS/advise_$budget.txt" | paste -sd' ')"
  done
  et advise --db "$DB" --tokens 128 --prompt-tokens 128 --explain > "$LOGS/advise_explain.txt" 2>&1
  code=$?; (( code == 0 || code == 4 )) || rc=$code
  grep -iE "held.out" "$LOGS/advise_explain.txt" | head -4
  return $rc
}
export -f advise

echo "energytui device check ($MODE): budget ${BUDGET_S} s, $NPROC CPUs; results in $OUT"
[[ -f $BUNDLE/MANIFEST.txt ]] || { echo "no bundle at $BUNDLE: run bash bench/device_bundle.sh here first"; exit 2; }
[[ $MODE == dry-run ]] && { TAIL=3 step dry-base 600 bash -c dry_base || exit 1; }
step preflight 30 bash -c preflight || { echo "no usable bundle: stopping"; save; exit 2; }
step install 90 bash -c install_bundle || { echo "the bundle did not install: stopping"; save; exit 1; }
step build 360 bash -c build || { echo "llama-cpp-python did not build: stopping (bash bench/device_check.sh \
--continue on the same machine goes on with the build where it stopped)"; save; exit 1; }
# cuBLAS from a pip wheel (see device_prep.py cuda-args): its folder for llama.cpp's libraries and llama-bench
if [[ -s $W/llama/.libdirs ]]; then export LD_LIBRARY_PATH=$(cat "$W/llama/.libdirs")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
step deps 30 "$PY" "$ROOT/bench/device_prep.py" check-deps --target "$W/site"
step model 60 bash -c model || { echo "no model: stopping"; save; exit 1; }
step manifests 15 bash -c "manifests ${REPS[*]}" || { save; exit 1; }
step doctor 40 "$PY" -m energytui doctor
TAIL=14 RESERVE=120 run_step gpu-check 150
if [[ $MODE == device ]]; then
  step gpu-compare 30 "$PY" "$ROOT/bench/gpu_compare.py" "$DB"
else  # the stand-in replays a trace in 50 ms steps: its figure (1.8-3.8 % here) proves the plumbing, not the target
  step gpu-compare 30 bash -c '"$PY" "$ROOT/bench/gpu_compare.py" "$DB"; code=$?; (( code <= 1 )) || exit $code'
fi
step llama-bench 60 bash -c "llama_bench $NGL $BENCH_BACKEND"
TAIL=14 RESERVE=75 run_step calibrate 240 gpu-calibrate
TAIL=12 RESERVE=15 step advise 60 bash -c advise
step held-out 60 "$PY" "$ROOT/bench/device_prep.py" held-out "$DB" --backend "$BENCH_BACKEND"
save
echo "=== [$(elapsed) s] summary ($OUT/summary.md)"
cat "$OUT/summary.md"
ls -la "$OUT"
if grep -qE $'\t(FAILED|STOPPED)' "$LOGS/steps.tsv"; then exit 1; fi
