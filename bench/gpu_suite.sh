#!/usr/bin/env bash
# The GPU measurements, as one command on a lent H100/H200 (no network there): wheels for what
# its image lacks are carried in .whl/ (see bench/RESULTS.md for how they were fetched).
#   bash bench/gpu_suite.sh            (writes logs and JSON under $OUT, or bench/out/)
set -uo pipefail
OUT=${OUT:-bench/out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$OUT/gpu.txt"
python3 -c "import torch, moshi; print('torch', torch.__version__, 'moshi', moshi.__version__)" | tee -a "$OUT/gpu.txt"
echo "== Mimi: batched encoder vs per-file mimi.encode loop"
timeout 200 python3 bench/bench_mimi.py --device cuda --dialogues ${MIMI_DIALOGUES:-64} --min-seconds 20 --max-seconds 60 --batch-size 64 --repeat 1 2>&1 | tee "$OUT/mimi.log"
echo "== runtime: 7B architecture, random bf16 weights, batched sessions vs one-after-another"
# Goal (issue 20): >= 32 real-time sessions (p99 step + Opus < 80 ms) on an H100, >= 48 on an H200.
# 48 sessions need ~75 GB of KV cache + 15 GB of weights: use SESSIONS=1,16,32 on an 80 GB card.
# Opus runs in OPUS_WORKERS processes as the server does; compaction: 1 session on 32 slots.
timeout 420 python3 bench/bench_runtime.py --device cuda --arch 7b --sessions ${SESSIONS:-1,16,32,48} --steps 60 \
  --opus-workers ${OPUS_WORKERS:-4} --opus-sessions ${OPUS_SESSIONS:-16,32,48} --compaction-slots ${COMPACTION_SLOTS:-32} \
  --json "$OUT/runtime.json" 2>&1 | tee "$OUT/runtime.log"
echo "== runtime: per-session sampling, one draw per-row vs one temperature (issue 25)"
timeout 120 python3 bench/bench_row_sampling.py --device cuda --batch 1,32,64 --repeat 200 2>&1 | tee "$OUT/row_sampling.log"
if [ -f bench/bench_ms_tts.py ] && [ -n "${MS_TTS:-}" ]; then
  echo "== multi-stream TTS"
  timeout 150 python3 bench/bench_ms_tts.py --device cuda 2>&1 | tee "$OUT/ms_tts.log"
fi
