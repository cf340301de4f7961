#!/usr/bin/env bash
# The results page: experiments fit and tested over seeds (each seed's own test split and unseen
# markets), the levers' validation curves, then the page (scripts/results.py).  One run at a time.
#
#   bash scripts/results.sh [options] [-- fit overrides for every run]
#
#   --table EXPERIMENT[:STEPS]  fit + test EXPERIMENT over the seeds, STEPS decisions per run (default: the
#                               experiment's own budget); repeatable.  Default: gru_attn_ppo mlp_ppo:32768
#   --seeds "0 1 2 3 4"         training seeds (each seed is also its synthetic market's seed)
#   --markets 4                 unseen market draws every run is also tested on (eval.test_markets; 0 for none)
#   --levers STEPS              the levers' runs (mlp_ppo, seed 0, one lever changed each) at STEPS decisions,
#                               plus a long pair at 12 x STEPS; 0 skips them (default 32768)
#   --out DIR                   where the runs go (default: $KPREMIA_RUNS_DIR/results, else runs/results)
#   --write-docs                write the page to docs/results.md (figures in docs/img/); without it the page
#                               is <out>/results.md (figures in <out>/img/) and docs/ is left alone
#   --dry-run                   print the commands, run nothing
#
# A run already tested is kept; a run whose fit stopped part-way resumes from its last.ckpt
# (`fit ckpt=<run dir>`), so the script can be rerun after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."

TABLES=()
SEEDS="0 1 2 3 4"
MARKETS=4
LEVER_STEPS=32768
OUT=""
WRITE_DOCS=0
DRY=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --table) TABLES+=("$2"); shift 2 ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    --markets) MARKETS="$2"; shift 2 ;;
    --levers) LEVER_STEPS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    --dry-run) DRY=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $1; see bash scripts/results.sh --help" >&2; exit 2 ;;
  esac
done
[ ${#TABLES[@]} -gt 0 ] || TABLES=(gru_attn_ppo mlp_ppo:32768)
OUT="${OUT:-${KPREMIA_RUNS_DIR:-runs}/results}"
case "$LEVER_STEPS" in ''|*[!0-9]*) echo "error: --levers takes a number of decisions (0 skips)" >&2; exit 2 ;; esac

run() {  # echo the command; run it unless --dry-run
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}

tested() {  # tested DIR: its best checkpoint has a report on its own test split
  compgen -G "$1/report/best*/*/test/summary.json" > /dev/null
}

fit_into() {  # fit_into DIR overrides...: a new run in DIR, or resume the one there, or keep a finished one
  local dir=$1; shift
  if [ -f "$dir/checkpoints/last.ckpt" ] && ! tested "$dir" && [ ! -f "$dir/done" ]; then
    run python -m kpremia fit "ckpt=$dir" ${EXTRA[@]+"${EXTRA[@]}"}
  elif [ ! -f "$dir/checkpoints/last.ckpt" ]; then
    run python -m kpremia fit "$@" ${EXTRA[@]+"${EXTRA[@]}"} "hydra.run.dir=$dir"
  fi
  [ "$DRY" = 1 ] || touch "$dir/done"
}

page_args=()
for spec in "${TABLES[@]}"; do
  experiment=${spec%%:*}
  steps=""
  [ "$spec" != "$experiment" ] && steps=${spec#*:}
  budget=()
  [ -n "$steps" ] && budget=("algo.total_env_steps=$steps")
  name="$experiment${steps:+_$steps}"
  for s in $SEEDS; do
    dir="$OUT/$name/seed$s"
    fit_into "$dir" "experiment=$experiment" ${budget[@]+"${budget[@]}"} "seed=$s"
    tested "$dir" || run python -m kpremia test "ckpt=$dir" "eval.test_markets=$MARKETS"
  done
  label="$experiment, ${steps:+$steps decisions}"
  [ -n "$steps" ] || label="$experiment, its own budget"
  page_args+=(--table "$label=$OUT/$name" --lever "$experiment${steps:+ ($steps decisions)}, every seed=$OUT/$name")
done

if [ "$LEVER_STEPS" != 0 ]; then
  long=$((LEVER_STEPS * 12))
  L=(experiment=mlp_ppo "algo.total_env_steps=$LEVER_STEPS" algo.rollouts_per_epoch=1 seed=0)
  LONG=(experiment=mlp_ppo "algo.total_env_steps=$long" algo.rollouts_per_epoch=4 seed=0)
  fit_into "$OUT/levers/default" "${L[@]}"
  fit_into "$OUT/levers/k1" "${L[@]}" env.decision_every=1
  fit_into "$OUT/levers/log_return" "${L[@]}" env.reward=log_return
  fit_into "$OUT/levers/signal" "${L[@]}" env.action_scheme=signal
  fit_into "$OUT/levers/target_weight" "${L[@]}" env/action_scheme=target_weight env.action_scheme.rebalance_band=0.1
  fit_into "$OUT/levers/default_long" "${LONG[@]}"
  fit_into "$OUT/levers/log_return_long" "${LONG[@]}" env.reward=log_return
  page_args+=(
    --lever "default levers (k=16, fx_hedged, hold_buy_sell)=$OUT/levers/default"
    --lever "decision_every=1=$OUT/levers/k1"
    --lever "reward=log_return=$OUT/levers/log_return"
    --lever "action_scheme=signal=$OUT/levers/signal"
    --lever "target_weight + rebalance_band 0.1=$OUT/levers/target_weight"
    --lever "default levers, $long decisions=$OUT/levers/default_long"
    --lever "reward=log_return, $long decisions=$OUT/levers/log_return_long"
  )
fi

if [ "$WRITE_DOCS" = 1 ]; then page=docs/results.md; else page="$OUT/results.md"; fi
command="bash scripts/results.sh"
for spec in "${TABLES[@]}"; do command+=" --table $spec"; done
command+=" --seeds \"$SEEDS\" --markets $MARKETS --levers $LEVER_STEPS"
[ "$WRITE_DOCS" = 1 ] && command+=" --write-docs"
[ ${#EXTRA[@]} -gt 0 ] && command+=" -- ${EXTRA[*]}"
run python scripts/results.py "${page_args[@]}" --notes docs/results_notes.md --out "$page" --command "$command"
