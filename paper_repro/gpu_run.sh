#!/usr/bin/env bash
# One GPU session for the model-scale runs, sized to a 15-minute device budget (start-up included): started
# once on a machine with python3, torch and transformers already installed (no trl, no network). It installs
# nothing that touches torch (the project is put on PYTHONPATH), then runs paper_repro/gpu/device_run.py:
#   1. smoke (~1 min): environment, and one short run alone vs several at once on the one GPU (measured rate)
#   2. the gpu-small SFT warm-up (cached in the work directory)
#   3. the confidence-resolved audit of the SFT policy (all nine audit objectives, 3 rollout seeds)
#   4. opo vs grpo vs dapo x 3 seeds at train L3 / OOD L4, steps sized to the time left, as many at once as
#      the smoke found fastest; metrics packed into runs.tar.gz every 20 s
#   5. the audit of each objective's final seed-0 policy; step time, tokens/s and MFU in summary.json
# Everything lands in $OUT as it is produced (log.txt, smoke.json, sft.json, audit-start.json, runs.tar.gz,
# audit-end.json, summary.json: 7 files), so a timeout still returns data.
#
#   paper_repro/gpu_run.sh            # on the GPU machine, OUT=<dir> (default runs/gpu-run), ~8 min
#   paper_repro/gpu_run.sh --tiny     # the same plan on the CPU at toy size (tests/test_gpu_script.py)
# Extra arguments go to paper_repro/gpu/device_run.py (e.g. --budget 420).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/runs/gpu-run}"
mkdir -p "$OUT"
cd "$ROOT"
# the project's own dependencies besides torch (numpy, scipy) must already be there: say so, and go on
"$PY" -c "import torch, numpy, scipy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
  2>&1 | tee -a "$OUT/log.txt" || echo "gpu_run.sh: a dependency is missing (see above)" | tee -a "$OUT/log.txt"
"$PY" "$ROOT/paper_repro/gpu/device_run.py" --out "$OUT" "$@" 2>&1 | tee -a "$OUT/log.txt"
