#!/usr/bin/env bash
# Regenerate every committed char-GPT LM run, then the figures and REPORT.md (`make runs`):
#   figures/runs/cpu-tiny/       Exp 1: the baselines, GOPO, OPO as released, DAPO as its paper specifies and the
#                                released OPO runs' own DAPO and GSPO settings; SEEDS seeds from SFT start 0
#   figures/runs/cpu-tiny-sft1/  the same comparison from a second SFT warm-up (sft_seed=1): a verdict that holds
#                                from one warm-up only is conditional on it
#   figures/runs/cpu-tiny-scarce/  Exp 2: 10% of the train pool, 8 epochs without replacement
#   figures/runs/cpu-tiny-long/  opo, grpo, dapo, gspo for LONG_STEPS steps ("OPO keeps improving after step 100")
#   figures/runs/cpu-tiny-lr/    opo, grpo, dapo, gspo at the learning rates LRS beside the main runs' 1e-4, seeds
#                                0..LR_SEEDS-1 (REPORT compares each objective at its best rate)
#   figures/runs/smollm2-cpu/    only with REAL=1: SmolLM2-135M-Instruct (--preset smollm2-cpu), opo, grpo, dapo x
#                                REAL_SEEDS x REAL_STEPS; 4-8 min per run on this 2-core machine
# The audits (figures/runs/*/audit*) are paper_repro/regen_audits.sh. Every run is one `compare` of one objective,
# queued in priority order (main, scarce, second SFT start, long, learning rates) on WORKERS processes of one
# thread each; an interrupted regeneration continues where it stopped when rerun with RESUME=1. A last
# `compare --resume` per directory trains nothing and writes its summary. Environment overrides (a quick check of
# the script): PY, SEEDS, STEPS, SCARCE_STEPS, LONG_STEPS, LRS, LR_SEEDS, REAL, REAL_SEEDS, REAL_STEPS, EXTRA
# (more KEY=VALUE settings for every run), RUNS (output root, default figures/runs), WORKERS, RESUME, FIGURES
# (0: skip the figures and the report).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-5}
STEPS=${STEPS:-100}
SCARCE_STEPS=${SCARCE_STEPS:-50}
LONG_STEPS=${LONG_STEPS:-200}
LRS=${LRS:-3e-05 0.0003}
LR_SEEDS=${LR_SEEDS:-3}
REAL=${REAL:-0}
REAL_SEEDS=${REAL_SEEDS:-3}
REAL_STEPS=${REAL_STEPS:-4}
RUNS=${RUNS:-figures/runs}
EXTRA=${EXTRA:-}
WORKERS=${WORKERS:-2}
RESUME=${RESUME:-0}
MAIN="opo,opo-released,gopo,grpo,dapo,gspo,dr-grpo,dapo-paper,dapo-released,gspo-released"
SCARCE="opo,gopo,grpo,dapo,gspo"
CORE="opo,grpo,dapo,gspo"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PY RUNS EXTRA RESUME

# one queued job: DIR PRESET STEPS SEEDS OBJECTIVE [KEY=VALUE ...]; a finished run is left as it is on RESUME=1
job() {
    local dir=$1 preset=$2 steps=$3 seeds=$4 objective=$5
    shift 5
    local args=()
    [ "$RESUME" = 1 ] && args+=(--resume)
    [ -n "$EXTRA" ] && args+=(--set $EXTRA)
    [ $# -gt 0 ] && args+=(--set "$@")
    $PY -m opo_theory compare --preset "$preset" --objectives "$objective" --seeds "$seeds" --steps "$steps" \
        --out "$RUNS/$dir" --quiet "${args[@]}"
}
export -f job

each() {  # each DIR PRESET STEPS SEEDS OBJECTIVES [KEY=VALUE ...]: one queue line per objective
    local dir=$1 preset=$2 steps=$3 seeds=$4 objectives=$5
    shift 5
    for o in ${objectives//,/ }; do echo "$dir $preset $steps $seeds $o${*:+ $*}"; done
}

summarize() {  # summarize DIR PRESET STEPS SEEDS OBJECTIVES [KEY=VALUE ...]: trains nothing, writes the summary
    local dir=$1 preset=$2 steps=$3 seeds=$4 objectives=$5
    shift 5
    local args=(--resume)
    [ -n "$EXTRA" ] && args+=(--set $EXTRA)
    [ $# -gt 0 ] && args+=(--set "$@")
    $PY -m opo_theory compare --preset "$preset" --objectives "$objectives" --seeds "$seeds" --steps "$steps" \
        --out "$RUNS/$dir" --quiet "${args[@]}"
}

lr_variants() {
    local out=()
    for o in ${CORE//,/ }; do for lr in $LRS; do out+=("$o(lr=$lr)"); done; done
    (IFS=,; echo "${out[*]}")
}
LR_VARIANTS=$(lr_variants)

if [ "$RESUME" != 1 ]; then   # the runs go; the committed audits (audit*, paper_repro/regen_audits.sh) stay
    for d in cpu-tiny cpu-tiny-sft1; do
        find "$RUNS/$d" -mindepth 1 -maxdepth 1 ! -name 'audit*' -exec rm -rf {} + 2>/dev/null || true
    done
    rm -rf "$RUNS/cpu-tiny-scarce" "$RUNS/cpu-tiny-long" "$RUNS/cpu-tiny-lr"
fi
# the two SFT warm-ups every run here starts from, once each, before the workers start
for sft in 0 1; do
    $PY -m opo_theory train --objective grpo --preset cpu-tiny --steps 1 --out "$RUNS/.sft-warmup" --quiet \
        --set trust_region_metrics=false grad_split=false sft_seed=$sft $EXTRA
    rm -rf "$RUNS/.sft-warmup"
done
start=$(date +%s)
{
    each cpu-tiny cpu-tiny "$STEPS" "$SEEDS" "$MAIN"
    each cpu-tiny-scarce cpu-tiny-scarce "$SCARCE_STEPS" "$SEEDS" "$SCARCE"
    each cpu-tiny-sft1 cpu-tiny "$STEPS" "$SEEDS" "$MAIN" sft_seed=1
    each cpu-tiny-long cpu-tiny "$LONG_STEPS" "$SEEDS" "$CORE"
    for v in ${LR_VARIANTS//,/ }; do echo "cpu-tiny-lr cpu-tiny $STEPS $LR_SEEDS $v"; done
} | xargs -P "$WORKERS" -L 1 bash -c 'job "$@" && echo "regen_runs: done $1 $5" >&2' _
summarize cpu-tiny cpu-tiny "$STEPS" "$SEEDS" "$MAIN"
summarize cpu-tiny-scarce cpu-tiny-scarce "$SCARCE_STEPS" "$SEEDS" "$SCARCE"
summarize cpu-tiny-sft1 cpu-tiny "$STEPS" "$SEEDS" "$MAIN" sft_seed=1
summarize cpu-tiny-long cpu-tiny "$LONG_STEPS" "$SEEDS" "$CORE"
summarize cpu-tiny-lr cpu-tiny "$STEPS" "$LR_SEEDS" "$LR_VARIANTS"
echo "regen_runs: char-GPT runs took $(( $(date +%s) - start )) s after the SFT warm-ups" >&2
if [ "$REAL" = 1 ]; then
    real() {  # real OBJECTIVES [--resume]
        $PY -m opo_theory compare --preset smollm2-cpu --objectives "$1" --seeds "$REAL_SEEDS" --steps "$REAL_STEPS" \
            --out "$RUNS/smollm2-cpu" --quiet ${2:-}
    }
    [ "$RESUME" = 1 ] || find "$RUNS/smollm2-cpu" -mindepth 1 -maxdepth 1 ! -name 'audit*' -exec rm -rf {} + \
        2>/dev/null || true
    real opo,grpo $([ "$RESUME" = 1 ] && echo --resume) & a=$!     # one process each: a run needs ~2.5-5 GB
    real dapo $([ "$RESUME" = 1 ] && echo --resume) & b=$!
    wait $a
    wait $b
    real opo,grpo,dapo --resume
fi
if [ "${FIGURES:-1}" != 0 ]; then
    $PY -m opo_theory figures
fi
