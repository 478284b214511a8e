#!/usr/bin/env bash
# Install jmoshi-augment into ./.venv (or $VENV).
#
# Why a script and not a bare `pip install .`: `moshi` 0.2.13 pins torch<2.10, which makes pip
# replace any newer torch with a ~7 GB CUDA build. moshi runs unchanged on newer torch, so we install
# torch first (CPU build unless TORCH_SPEC says otherwise), then us, then moshi last without its
# pins (README, "Install": the one deliberate pin override). Installing moshi last keeps pip's
# resolver from reporting moshi's pins as conflicts at our step; --no-warn-conflicts says we know.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-test}  # e.g. EXTRAS=test,ray,llm
MOSHI_SPEC="moshi==0.2.13"
# setuptools warns on every editable install that our package-dir mapping uses its import finder
# (a note for packagers, not an install problem): keep it out of the user's log.
export PYTHONWARNINGS="ignore:Editable installation"
python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q "$TORCH_SPEC"
$PIP install -q -e ".[$EXTRAS]"
$PIP install -q --no-deps --no-warn-conflicts "$MOSHI_SPEC"
echo "installed $($VENV/bin/jmoshi-augment --version) into $VENV ($TORCH_SPEC, $MOSHI_SPEC without its pins, extras: $EXTRAS); next: $VENV/bin/jmoshi-augment synth recipes/sample.yaml"
