#!/usr/bin/env bash
# Regenerate the committed confidence-resolved gradient audits at one revision (`make runs`, after regen_runs.sh):
#   figures/runs/cpu-tiny/audit            the SFT policy, SEEDS x UPDATES updates, the default audit objectives
#   figures/runs/cpu-tiny/audit-field      the SFT policy, SEEDS x UPDATES updates, grpo, dapo and the field's losses
#   figures/runs/cpu-tiny/audit-trainer/<run>  mid-run checkpoints: cpu-tiny opo and grpo runs trained to CK_STEPS
#                                          steps (in SCRATCH, kept for a resume), each audited from its checkpoint
#                                          at the trainer's update count (ppo_epochs x minibatches updates cycling
#                                          over its mini-batches, `--minibatches`) with the checkpoint's AdamW
#                                          state; TRAINER_SEEDS seeds; objectives TRAINER_OBJECTIVES
#   figures/runs/cpu-tiny/audit-confident  the confident policy (`--policy confident`), CONF_SEEDS x UPDATES,
#                                          TRAINER_OBJECTIVES
# Environment overrides (a quick check of the script): PY, RUNS (output root, default figures/runs), SCRATCH
# (checkpoint runs, default runs/audit-checkpoints), SEEDS, UPDATES, CK_STEPS, TRAINER_SEEDS, CONF_SEEDS, EXTRA
# (more KEY=VALUE settings for every run and the SFT/confident audits), RESUME (1: continue where it stopped),
# FIGURES (0: skip the figures and the report).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-figures/runs}
SCRATCH=${SCRATCH:-runs/audit-checkpoints}
SEEDS=${SEEDS:-8}
UPDATES=${UPDATES:-8}
CK_STEPS=${CK_STEPS:-50}
TRAINER_SEEDS=${TRAINER_SEEDS:-5}
CONF_SEEDS=${CONF_SEEDS:-5}
EXTRA=${EXTRA:-}
RESUME=${RESUME:-0}
DEFAULT="opo,opo-code,opo-exact,gopo,grpo,dapo,gspo,dr-grpo,ppo-kl"
FIELD="grpo,dapo,bnpo,luspo,cispo,sapo,vespo,gpg,dro,dppo-tv,dppo-kl,gmpo,clip-cov,kl-cov"
TRAINER_OBJECTIVES="opo,opo-exact,grpo,dapo,gspo"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
resume=()
[ "$RESUME" = 1 ] && resume=(--resume)
extra=()
[ -n "$EXTRA" ] && extra=(--set $EXTRA)

audit() {  # audit DIR [audit options]: a finished or partial audit is continued on RESUME=1, else started over
    local dir=$1
    shift
    [ "$RESUME" = 1 ] || rm -rf "${RUNS:?}/$dir"
    $PY -m opo_theory audit --out "$RUNS/$dir" --quiet "${resume[@]}" "$@" >/dev/null    # the verdict: audit.json
    echo "regen_audits: done $dir ($(( $(date +%s) - start )) s)" >&2
}

start=$(date +%s)
audit cpu-tiny/audit --preset cpu-tiny --objectives "$DEFAULT" --seeds "$SEEDS" --updates "$UPDATES" "${extra[@]}"
audit cpu-tiny/audit-field --preset cpu-tiny --objectives "$FIELD" --seeds "$SEEDS" --updates "$UPDATES" "${extra[@]}"
audit cpu-tiny/audit-confident --preset cpu-tiny --policy confident --objectives "$TRAINER_OBJECTIVES" \
    --seeds "$CONF_SEEDS" --updates "$UPDATES" "${extra[@]}"
[ "$RESUME" = 1 ] || rm -rf "${RUNS:?}/cpu-tiny/audit-trainer"
for run in opo grpo; do
    ck="$SCRATCH/$run"
    [ "$RESUME" = 1 ] || rm -rf "$ck"
    $PY -m opo_theory train --objective "$run" --preset cpu-tiny --steps "$CK_STEPS" --out "$ck" --quiet \
        "${resume[@]}" --set checkpoint_every="$CK_STEPS" $EXTRA
    # the trainer's update count and mini-batches, from the run's own config.json
    read -r updates minibatches < <($PY -c "import json, sys; c = json.load(open(sys.argv[1]))['config']; \
print(c['ppo_epochs'] * c['minibatches'], c['minibatches'])" "$ck/config.json")
    audit "cpu-tiny/audit-trainer/$run" --checkpoint "$ck" --objectives "$TRAINER_OBJECTIVES" \
        --seeds "$TRAINER_SEEDS" --updates "$updates" --minibatches "$minibatches"
done
echo "regen_audits: audits took $(( $(date +%s) - start )) s" >&2
if [ "${FIGURES:-1}" != 0 ]; then
    $PY -m opo_theory figures
fi
