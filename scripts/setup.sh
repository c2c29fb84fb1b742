#!/usr/bin/env bash
# Idempotent environment setup: creates .venv if missing and installs everything the project needs.
# A second run reinstalls nothing (a stamp keyed by the hash of the inputs is checked first).
#   bash scripts/setup.sh            # python environment + local LLM server and model
#   SKIP_LLM=1 bash scripts/setup.sh # python environment only
#   SKIP_BROWSER=1 ...               # without the headless chromium of the review app's browser test
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.duplexalign-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first, from the local CPU wheel; a bare `torch` would fetch a CUDA build.
  "$VENV/bin/pip" install -q "torch==2.13.0"
  # dev = tests + every optional backend the tests exercise; ray = the `ray` engine (its
  # two-node tests run on a local cluster on 127.0.0.1)
  "$VENV/bin/pip" install -q -e ".[dev,ray]"
  # moshi pins torch<2.10 in its metadata: install it alone, without dependencies.
  "$VENV/bin/pip" install -q --no-deps "moshi==0.2.13"
  echo "$want" > "$STAMP"
fi
# Headless Chromium and its driver for the review app's browser test: the distribution's packages
# (apt-get; skipped when both binaries exist). Nothing downloads a browser at test time.
if [ "${SKIP_BROWSER:-0}" != "1" ] && \
   ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" != "0" ] && [ -z "$SUDO" ]; }; then
    echo "setup: cannot install chromium + chromium-driver here (needs apt-get as root or sudo);" \
         "the review browser test will be skipped" >&2
  elif ! { $SUDO apt-get update -q && \
           $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }; then
    echo "setup: apt-get could not install chromium + chromium-driver;" \
         "the review browser test will be skipped" >&2
  fi
fi
if [ "${SKIP_LLM:-0}" != "1" ]; then
  bash scripts/setup_llm.sh
fi
