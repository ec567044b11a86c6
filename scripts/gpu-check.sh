#!/usr/bin/env bash
# Build aisle with CUDA and run the chat and embedding benchmarks on a GPU machine, next to the
# CPU figures of the same build. Not run in CI (no GPU there) and not run on the machines this
# project is developed on; it is ready for the first machine with an NVIDIA GPU and the CUDA
# toolkit (nvcc) installed.
#
#   scripts/gpu-check.sh            build with --features cuda, then bench chat and embed on cuda:0
#   GPU=1 scripts/gpu-check.sh      another device
#
# Writes target/gpu-check/{chat,embed}-{cuda,cpu}.{txt,json}. What to look for: the chat rows
# "N streams aggregate" (continuous batching on the GPU), "time to first token ... warm prefix
# cache", and the embed rows' throughput at batch 32. Known: with cuda the projections of a
# batch run on the GPU in one matmul, but each sequence's KV cache and its attention stay in host
# memory (aisle's cache is host-side), so decoding copies activations to the host per layer; the
# figures say how much that costs.
set -euo pipefail
cd "$(dirname "$0")/.."
gpu=${GPU:-0}
command -v nvcc >/dev/null || { echo "gpu-check: nvcc (the CUDA toolkit) is needed" >&2; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi -L
models/fetch.sh --with-qwen
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/gpu}
cargo build --release --locked --features cuda
bin="$CARGO_TARGET_DIR/release/aisle"
out=target/gpu-check
mkdir -p "$out"
for model in SmolLM2-135M-Instruct Qwen2.5-Coder-1.5B-Instruct; do
  AISLE_CHAT_MODEL=$model "$bin" bench chat embed --device "cuda:$gpu" --no-anchor \
    --json "$out/$model-cuda.json" | tee "$out/$model-cuda.txt"
  AISLE_CHAT_MODEL=$model "$bin" bench chat embed --device cpu \
    --json "$out/$model-cpu.json" | tee "$out/$model-cpu.txt"
done
echo "gpu-check: reports in $out"
