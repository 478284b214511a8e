#!/usr/bin/env bash
# Install jmoshi-augment into ./.venv (or $VENV).
#
# Why a script and not a bare `pip install .`: `moshi` 0.2.13 pins torch<2.10, which makes pip
# replace any newer torch with a ~7 GB CUDA build. moshi runs unchanged on newer torch, so we install
# torch first (CPU build unless TORCH_SPEC says otherwise), then moshi without its pins, then us.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-test}  # e.g. EXTRAS=test,ray,llm
python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q "$TORCH_SPEC"
$PIP install -q --no-deps "moshi==0.2.13"
$PIP install -q -e ".[$EXTRAS]"
echo "installed: $($VENV/bin/jmoshi-augment --version)"
