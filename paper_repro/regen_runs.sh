#!/usr/bin/env bash
# Regenerate every committed LM run, then the figures and REPORT.md (`make runs`):
#   figures/runs/cpu-tiny/         Exp 1: the baselines, GOPO, OPO as released and DAPO as its paper specifies
#   figures/runs/cpu-tiny-scarce/  Exp 2: 10% of the train pool, 8 epochs without replacement
#   figures/runs/cpu-tiny-long/    only with LONG=1: opo, grpo, dapo for LONG_STEPS steps ("OPO keeps improving
#                                  after step 100"); about 9 more minutes on 2 cores
#   figures/runs/smollm2-cpu/      only with REAL=1: SmolLM2-135M-Instruct (--preset smollm2-cpu), opo, grpo, dapo x
#                                  REAL_SEEDS x REAL_STEPS; 4-8 min per run measured on this 2-core machine
#                                  while other jobs shared it (its audit, `opo-theory audit`, stays)
# Two worker processes, one thread each, split so that they finish together on a 2-core machine; a last
# `compare --resume` per directory trains nothing and writes its summary. Environment overrides (a quick check
# of the script): PY, SEEDS, STEPS (Exp 1), SCARCE_STEPS, LONG, LONG_STEPS, REAL, REAL_SEEDS, REAL_STEPS,
# EXTRA (more KEY=VALUE settings for
# every run), RUNS (output root, default figures/runs), FIGURES (0: skip the figures and the report).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-100}
SCARCE_STEPS=${SCARCE_STEPS:-50}
LONG=${LONG:-0}
LONG_STEPS=${LONG_STEPS:-300}
REAL=${REAL:-0}
REAL_SEEDS=${REAL_SEEDS:-3}
REAL_STEPS=${REAL_STEPS:-4}
RUNS=${RUNS:-figures/runs}
EXTRA=${EXTRA:-}
MAIN_A="opo,opo-released,gopo";  MAIN_B="grpo,dapo,gspo,dr-grpo,dapo-paper"
SCARCE_A="opo,gopo";              SCARCE_B="grpo,dapo,gspo"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

compare() {  # compare PRESET OBJECTIVES STEPS DIR [--resume]
    $PY -m opo_theory compare --preset "$1" --objectives "$2" --seeds "$SEEDS" --steps "$3" --out "$RUNS/$4" \
        --quiet ${5:-} ${EXTRA:+--set $EXTRA}
}

# the runs go; the committed audit (cpu-tiny/audit, `opo-theory audit`, its own command) stays
find "$RUNS/cpu-tiny" -mindepth 1 -maxdepth 1 ! -name audit -exec rm -rf {} + 2>/dev/null || true
rm -rf "$RUNS/cpu-tiny-scarce" "$RUNS/cpu-tiny-long"
# the SFT warm-up every preset here shares (same SFT settings), once, before the workers start
$PY -m opo_theory train --objective grpo --preset cpu-tiny --steps 1 --out "$RUNS/.sft-warmup" --quiet \
    --set trust_region_metrics=false grad_split=false $EXTRA
rm -rf "$RUNS/.sft-warmup"
start=$(date +%s)
(compare cpu-tiny "$MAIN_A" "$STEPS" cpu-tiny && compare cpu-tiny-scarce "$SCARCE_A" "$SCARCE_STEPS" cpu-tiny-scarce) &
a=$!
(compare cpu-tiny "$MAIN_B" "$STEPS" cpu-tiny && compare cpu-tiny-scarce "$SCARCE_B" "$SCARCE_STEPS" cpu-tiny-scarce) &
b=$!
wait $a
wait $b
if [ "$LONG" = 1 ]; then
    compare cpu-tiny opo "$LONG_STEPS" cpu-tiny-long & a=$!
    compare cpu-tiny grpo,dapo "$LONG_STEPS" cpu-tiny-long & b=$!
    wait $a
    wait $b
    compare cpu-tiny opo,grpo,dapo "$LONG_STEPS" cpu-tiny-long --resume
fi
if [ "$REAL" = 1 ]; then
    real() {  # real OBJECTIVES [--resume]
        $PY -m opo_theory compare --preset smollm2-cpu --objectives "$1" --seeds "$REAL_SEEDS" --steps "$REAL_STEPS" \
            --out "$RUNS/smollm2-cpu" --quiet ${2:-}
    }
    find "$RUNS/smollm2-cpu" -mindepth 1 -maxdepth 1 ! -name audit -exec rm -rf {} + 2>/dev/null || true
    real opo,grpo & a=$!     # one process each: a run needs ~2.5-5 GB
    real dapo & b=$!
    wait $a
    wait $b
    real opo,grpo,dapo --resume
fi
compare cpu-tiny "$MAIN_A,$MAIN_B" "$STEPS" cpu-tiny --resume
compare cpu-tiny-scarce "$SCARCE_A,$SCARCE_B" "$SCARCE_STEPS" cpu-tiny-scarce --resume
echo "regen_runs: LM runs took $(( $(date +%s) - start )) s after the SFT warm-up" >&2
if [ "${FIGURES:-1}" != 0 ]; then
    $PY -m opo_theory figures
fi
