#!/usr/bin/env bash
# Regenerate the pictures in docs/img that come from runs, with the commands the docs print:
#
#   bash scripts/docs_images.sh [--steps N] [--out DIR] [--runs DIR]
#
#   equity.png, premium.png    the main job (experiment=gru_attn_ppo, seed 0) tested on its test split
#   compare.png                a 4-job multirun (mlp_ppo, fx-hedged vs plain log-return reward, seeds 0 and 1),
#                              `test <sweep dir>`, then `compare`
#   backtest_daily_equity.png  `backtest` of the rules on the researcher-layout daily file
#
#   --steps N   algo.total_env_steps of the trainings (default: each experiment's own budget)
#   --out DIR   where the pictures go (default docs/img)
#   --runs DIR  where the runs go (default: $KPREMIA_RUNS_DIR/docs_images, else runs/docs_images)
#
# Not made here: results_levers.png (bash scripts/results.sh --write-docs) and status_page.png /
# status_halted.png (the headless-Chromium screenshots of tests/live/test_status_page.py).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=""
OUT=docs/img
RUNS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $1; see bash scripts/docs_images.sh --help" >&2; exit 2 ;;
  esac
done
RUNS="${RUNS:-${KPREMIA_RUNS_DIR:-runs}/docs_images}"
export KPREMIA_RUNS_DIR="$RUNS"
budget=()
[ -n "$STEPS" ] && budget=("algo.total_env_steps=$STEPS")
mkdir -p "$OUT" "$RUNS"
last_line() { tail -n 1 "$1"; }

echo "== the main job, tested (equity.png, premium.png)"
python -m kpremia fit experiment=gru_attn_ppo seed=0 ${budget[@]+"${budget[@]}"} | tee "$RUNS/main.out"
run=$(last_line "$RUNS/main.out")
python -m kpremia test "ckpt=$run" | tee "$RUNS/main_test.out"
cp "$run/report/equity.png" "$OUT/equity.png"
cp "$run/report/premium.png" "$OUT/premium.png"

echo "== a 4-job multirun, one test command, compare (compare.png)"
before=$(ls -d "$RUNS"/multirun/*/ 2>/dev/null | sort | tail -n 1 || true)
python -m kpremia fit -m experiment=mlp_ppo env.reward=fx_hedged,log_return seed=0,1 ${budget[@]+"${budget[@]}"}
sweep=$(ls -d "$RUNS"/multirun/*/ | sort | tail -n 1)
[ "$sweep" != "$before" ] || { echo "no new multirun directory under $RUNS/multirun" >&2; exit 1; }
python -m kpremia test "$sweep"
python -m kpremia compare "$sweep"
cp "$sweep/compare.png" "$OUT/compare.png"

echo "== the rules on a daily file (backtest_daily_equity.png)"
work=$(mktemp -d)
(cd "$work" && python "$OLDPWD/tests/fixtures/real_formats/formats.py" data >/dev/null)
python -m kpremia backtest data=csv "data.path=$work/data/researcher_daily.csv" data.time_column=date_utc \
  'data.columns={usdt_krw_close: close, usd_krw: fx}' | tee "$RUNS/backtest.out"
cp "$(last_line "$RUNS/backtest.out")/equity.png" "$OUT/backtest_daily_equity.png"
rm -rf "$work"
echo "pictures written to $OUT: equity.png premium.png compare.png backtest_daily_equity.png"
