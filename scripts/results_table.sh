#!/usr/bin/env bash
# Reproduce the README's results table: every experiment x 3 seeds at an equal budget of
# env steps, each tested on the test split, then one comparison table.
#
#   bash scripts/results_table.sh [env steps per run] [experiments, comma-separated]
#
# Runs land in $KPREMIA_RUNS_DIR/multirun/<stamp>/; the table in compare.md / compare.csv there.
set -euo pipefail
STEPS="${1:-131072}"
EXPERIMENTS="${2:-gru_attn_ppo,lstm_ppo,dnn_lstm_ppo,mlp_ppo}"
RUNS="${KPREMIA_RUNS_DIR:-runs}"
export KPREMIA_RUNS_DIR="$RUNS"
before=$(ls -d "$RUNS"/multirun/*/ 2>/dev/null | sort | tail -n 1 || true)
python -m kpremia fit -m "experiment=$EXPERIMENTS" seed=0,1,2 "algo.total_env_steps=$STEPS" \
  trainer.enable_progress_bar=false
sweep=$(ls -d "$RUNS"/multirun/*/ | sort | tail -n 1)
[ "$sweep" != "$before" ] || { echo "no new multirun directory under $RUNS/multirun" >&2; exit 1; }
for ckpt in "$sweep"/*/checkpoints/best-*.ckpt; do
  python -m kpremia test "ckpt=$ckpt" eval.plots=false > /dev/null
done
python -m kpremia compare "$sweep" --out "$sweep"
