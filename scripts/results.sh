#!/usr/bin/env bash
# Regenerate docs/results.md: the default experiment over 5 seeds (test split + unseen markets),
# the levers one at a time (validation curves), then the page.  Usage:
#
#   bash scripts/results.sh [DECISIONS_DEFAULT] [DECISIONS_LEVERS]
#
# DECISIONS_DEFAULT: algo.total_env_steps of the default runs (default: the experiment's own,
# 524,288); DECISIONS_LEVERS: of each lever run (default 32,768).  Runs go to runs/results/.
# Seeds run one after the other; on a machine with more cores start them side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
DEFAULT_STEPS=${1:-}
LEVER_STEPS=${2:-32768}
OUT=runs/results
SEEDS="0 1 2 3 4"
UNSEEN="100 101"
budget=()
[ -n "$DEFAULT_STEPS" ] && budget=("algo.total_env_steps=$DEFAULT_STEPS" "algo.rollouts_per_epoch=2")

table() {  # table NAME overrides...: fit + test (own test split, unseen markets) per seed
  local name=$1; shift
  for s in $SEEDS; do
    python -m kpremia fit "$@" seed=$s hydra.run.dir=$OUT/$name/seed$s
    ckpt=$(ls $OUT/$name/seed$s/checkpoints/best-*.ckpt | head -1)
    python -m kpremia test ckpt="$ckpt"
    for u in $UNSEEN; do python -m kpremia test ckpt="$ckpt" data.seed=$u; done
  done
}
table default experiment=gru_attn_ppo "${budget[@]}"
table mlp experiment=mlp_ppo algo.total_env_steps=$LEVER_STEPS algo.rollouts_per_epoch=1

L="experiment=mlp_ppo algo.total_env_steps=$LEVER_STEPS algo.rollouts_per_epoch=1 seed=0"
lever() { python -m kpremia fit $L "${@:2}" hydra.run.dir=$OUT/levers/$1; }
lever default
lever k1 env.decision_every=1
lever log_return env.reward=log_return
lever signal env.action_scheme=signal
lever target_weight env/action_scheme=target_weight env.action_scheme.rebalance_band=0.1
L="experiment=mlp_ppo algo.total_env_steps=393216 algo.rollouts_per_epoch=4 seed=0"
lever default_393k
lever log_return_393k env.reward=log_return

python scripts/results.py \
  --table "gru_attn_ppo, the default experiment=$OUT/default" \
  --table "mlp_ppo (the same levers, fast encoder)=$OUT/mlp" \
  --lever "default levers (k=16, fx_hedged, hold_buy_sell)=$OUT/levers/default" \
  --lever "decision_every=1=$OUT/levers/k1" \
  --lever "reward=log_return=$OUT/levers/log_return" \
  --lever "action_scheme=signal=$OUT/levers/signal" \
  --lever "target_weight + rebalance_band 0.1=$OUT/levers/target_weight" \
  --lever "default levers, 393,216 decisions=$OUT/levers/default_393k" \
  --lever "reward=log_return, 393,216 decisions=$OUT/levers/log_return_393k" \
  --lever "gru_attn_ppo default=$OUT/default" \
  --notes docs/results_notes.md --out docs/results.md \
  --command "bash scripts/results.sh $DEFAULT_STEPS $LEVER_STEPS"
