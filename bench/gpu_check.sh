#!/usr/bin/env bash
# The GPU check, for a Linux machine with an NVIDIA GPU, its driver and the CUDA toolkit (nvcc).
#   bash bench/gpu_check.sh            (from the repository root; needs PyPI for the build and model)
# 1. builds llama-cpp-python 0.3.36 with CUDA for this card into its own venv (.venv-gpu),
# 2. runs config/manifests/gpu-check.yaml (cpu, hybrid, gpu) with NVML sampling at 100 Hz,
# 3. compares NVML counter energy with integrated NVML power over the same windows (≤ 3%).
# It never changes the GPU's clocks or power limit. Output: bench/results/gpu-check-*.txt
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader
venv=.venv-gpu
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=native" "$venv/bin/pip" install -q \
  --no-binary llama-cpp-python --no-cache-dir "llama-cpp-python==0.3.36"
"$venv/bin/pip" install -q -e .
"$venv/bin/python" -c "import llama_cpp as l; assert l.llama_supports_gpu_offload(), 'llama.cpp built without GPU offload'"
"$venv/bin/energytui" models fetch
mkdir -p bench/results
out="bench/results/gpu-check-$(date +%Y%m%d-%H%M%S)"
"$venv/bin/energytui" doctor | tee "$out.txt" || true
"$venv/bin/energytui" run config/manifests/gpu-check.yaml --db "$out.db" --fresh | tee -a "$out.txt"
"$venv/bin/python" bench/gpu_compare.py "$out.db" | tee -a "$out.txt"
echo "wrote $out.txt and $out.db"
