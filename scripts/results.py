"""Write docs/results.md: learning curves of the default and each lever, test tables over seeds.

Why a script: the results page is only worth reading if anyone can regenerate it from
runs they made themselves.  It reads run directories written by ``python -m kpremia fit``
(``metrics.csv``) and ``python -m kpremia test`` (``report/<checkpoint>/<data>/test/summary.json``:
the training market's test split and the unseen synthetic markets ``test`` draws with
``eval.test_markets``) and writes the Markdown page and its PNG figures; it trains nothing.

    python scripts/results.py --table "gru_attn_ppo (default)=runs/results/default" \\
        --table "mlp_ppo=runs/results/mlp" \\
        --lever "default (k=16, fx_hedged, hold_buy_sell)=runs/results/levers/default" ... \\
        --out docs/results.md

``--table LABEL=DIR``: DIR holds one run directory per seed (each tested); the page leads with
the paired statistics of the policy against the band rule over seeds × markets (mean, interval,
median, IQM, win rate and the verdict, :mod:`kpremia.eval.paired`), then mean ± std over the seeds
of every row (policy and baselines) on the test split and on the unseen markets.  ``--lever LABEL=DIR``: DIR is one run (or holds runs of several seeds);
its validation curves go into the figure.  ``scripts/results.sh`` runs everything.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

ROWS = ("policy", "premium_threshold", "premium_zscore", "model_based", "buy_and_hold", "cash", "random", "oracle")
ROW_NAMES = {"policy": "**policy**", "premium_threshold": "band rule (premium_threshold)",
             "premium_zscore": "z-score band (premium_zscore)",
             "model_based": "model-based, causal (model_based)", "buy_and_hold": "buy and hold",
             "cash": "cash", "random": "random", "oracle": "oracle (hindsight)"}


def _label_dir(spec: str) -> tuple[str, Path]:
    label, _, path = spec.rpartition("=")
    if not label:
        raise SystemExit(f"error: {spec!r} is not LABEL=DIR")
    return label, Path(path)


def _runs(root: Path) -> list[Path]:
    """Run directories under ``root`` (``root`` itself when it is one)."""
    if (root / "metrics.csv").is_file() or (root / "config.yaml").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/metrics.csv"))


def _summaries(run: Path) -> tuple[dict | None, list[dict]]:
    """(the test split's summary, the unseen markets' summaries) of one run's best checkpoint."""
    found = [json.loads(p.read_text()) for p in sorted(run.glob("report/best*/*/test/summary.json"))]
    own = [s for s in found if not str(s.get("market", "")).startswith("unseen")]
    return (own[0] if own else None), [s for s in found if str(s.get("market", "")).startswith("unseen")]


def paired_sentence(label: str, runs: list[Path]) -> tuple[str, str]:
    """One sentence (the verdict with its interval) and a one-row table of the paired statistics."""
    from kpremia.eval.paired import paired_stats

    diffs, strata = [], []
    for run in runs:
        own, unseen = _summaries(run)
        for summary in ([own] if own else []) + unseen:
            band = summary.get("baselines", {}).get("premium_threshold")
            if band is not None and "policy" in summary:
                diffs.append(summary["policy"]["return"] - band["return"])
                strata.append(str(run))
    stats = paired_stats(diffs, strata=strata)
    if not stats.n:
        return f"{label}: no tested markets.", ""
    pct = lambda v: f"{100 * v:+.2f}"  # noqa: E731
    sentence = (f"**{label}** is {stats.verdict}: the policy's test return minus the band rule's on the same "
                f"market is {pct(stats.mean)} points on average over {len(runs)} seeds × their own test split "
                f"and unseen markets (n = {stats.n}), 95 % bootstrap interval {pct(stats.ci_low)} .. "
                f"{pct(stats.ci_high)}.")
    rows = ["| policy − band rule | mean | 95 % interval | median | IQM | win rate | n |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| percentage points | {pct(stats.mean)} | {pct(stats.ci_low)} .. {pct(stats.ci_high)} | "
            f"{pct(stats.median)} | {pct(stats.iqm)} | {100 * stats.win_rate:.0f} % | {stats.n} |"]
    return sentence, "\n".join(rows)


def _row_metrics(summary: dict, row: str) -> dict | None:
    metrics = summary["policy"] if row == "policy" else summary.get("baselines", {}).get(row)
    if metrics is None:
        return None
    oracle = summary.get("baselines", {}).get("oracle", {}).get("return")
    capture = metrics["return"] / oracle if oracle and oracle > 0 else float("nan")
    return {"return": metrics["return"], "n_trades": metrics["n_trades"], "max_drawdown": metrics["max_drawdown"],
            "ruined": metrics.get("ruined", 0.0), "capture": capture}


def _mean_std(values: list[float], signed: bool = True) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:+.2f} ± {std:.2f}" if signed else f"{mean:.2f} ± {std:.2f}"


def table(summaries: list[dict]) -> str:
    """Markdown table: mean ± std over ``summaries`` of each row."""
    lines = ["| trader | return % | trades | max DD % | oracle capture % | ruined |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in ROWS:
        ms = [m for m in (_row_metrics(s, row) for s in summaries) if m is not None]
        if not ms:
            continue
        lines.append("| " + " | ".join([
            ROW_NAMES[row],
            _mean_std([100 * m["return"] for m in ms]),
            f"{statistics.fmean(m['n_trades'] for m in ms):,.1f}",
            _mean_std([100 * m["max_drawdown"] for m in ms], signed=False),
            _mean_std([100 * m["capture"] for m in ms]) if row != "oracle" else "100",
            f"{sum(m['ruined'] for m in ms):.0f} / {len(ms)}",
        ]) + " |")
    return "\n".join(lines)


def _wins(summaries: list[dict], other: str) -> str:
    """How many of the summaries the policy beat ``other`` in (return)."""
    pairs = [(s["policy"]["return"], s["baselines"][other]["return"]) for s in summaries
             if other in s.get("baselines", {})]
    return f"{sum(p > o for p, o in pairs)}/{len(pairs)}"


def _val_curves(run: Path) -> pd.DataFrame:
    metrics = pd.read_csv(run / "metrics.csv")
    cols = [c for c in ("env_steps", "val/return", "val/n_trades", "val/band_return") if c in metrics]
    return metrics.dropna(subset=["val/return"])[cols]


def curves_figure(levers: list[tuple[str, list[Path]]]) -> Figure:
    """Validation return and trades vs env steps, one line per lever (mean over its runs)."""
    fig = Figure(figsize=(11, 4.2))
    ax_ret, ax_trades = fig.subplots(1, 2)
    band_done = False
    for label, runs in levers:
        frames = [_val_curves(r) for r in runs]
        merged = pd.concat(frames).groupby("env_steps").mean(numeric_only=True).reset_index()
        x = merged["env_steps"] / 1e3
        line, = ax_ret.plot(x, 100 * merged["val/return"], marker="o", markersize=3, label=label)
        ax_trades.plot(x, merged["val/n_trades"], marker="o", markersize=3, color=line.get_color(), label=label)
        if "val/band_return" in merged and not band_done and len(runs) == 1:
            ax_ret.axhline(100 * merged["val/band_return"].iloc[0], color="0.4", linestyle="--", linewidth=1,
                           label="band rule on val")
            band_done = True
    ax_ret.set_xlabel("env steps (decisions), thousands")
    ax_ret.set_ylabel("validation return (%)")
    ax_ret.axhline(0.0, color="0.7", linewidth=0.8)
    ax_trades.set_xlabel("env steps (decisions), thousands")
    ax_trades.set_ylabel("validation trades")
    ax_trades.set_yscale("symlog")
    for ax in (ax_ret, ax_trades):
        ax.grid(True, alpha=0.3)
    ax_ret.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    return fig


def _save(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="append", default=[], help="LABEL=DIR of tested runs (one per seed)")
    parser.add_argument("--lever", action="append", default=[], help="LABEL=DIR of runs whose curves to plot")
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--notes", default=None, help="a Markdown file appended as the page's reading")
    parser.add_argument("--command", action="append", default=[], help="a command to list under 'Reproduce'")
    args = parser.parse_args(argv)

    out = Path(args.out)
    img_dir = out.parent / "img"
    parts = ["# Results", "",
             "Generated by `scripts/results.py` from run directories (see *Reproduce* at the end). "
             "Every trader pays the same execution rules: fee 0.1 % per fill, half of a one-tick "
             "(0.5 KRW) bid/ask spread per fill, fills at the next bar's open (which has moved from the "
             "close the decision saw). The band rules are tuned on the train split only; every trace "
             "covers the whole split (a ruined trader is counted in *ruined*, not cut short).", ""]
    for label, root in map(_label_dir, args.table):
        runs = _runs(root)
        own = [s for s in (_summaries(r)[0] for r in runs) if s is not None]
        unseen = [u for r in runs for u in _summaries(r)[1]]
        parts += [f"## {label}", ""]
        sentence, paired = paired_sentence(label, runs)
        parts += [sentence, "", paired, ""] if paired else [sentence, ""]
        if own:
            period = own[0].get("period", ["?", "?"])
            parts += [f"Test split of each seed's own synthetic market ({len(own)} seeds; seed 0's test period "
                      f"{str(period[0])[:10]} .. {str(period[1])[:10]}), mean ± std over seeds. The policy beat "
                      f"the band rule in {_wins(own, 'premium_threshold')} seeds, buy-and-hold in "
                      f"{_wins(own, 'buy_and_hold')}, cash in {_wins(own, 'cash')}.", "", table(own), ""]
        if unseen:
            markets = sorted({str(u.get("data_seed")) for u in unseen})
            parts += [f"Unseen synthetic markets (`eval.test_markets`: same process, other draws; "
                      f"data seeds {', '.join(markets)}, each policy on each, {len(unseen)} evaluations; "
                      f"the baselines are fit on each market's own train split): the policy beat the band rule in "
                      f"{_wins(unseen, 'premium_threshold')}, cash in {_wins(unseen, 'cash')}.", "",
                      table(unseen), ""]
        params = [s.get("baseline_params", {}) for s in own]
        if params and params[0]:
            parts += ["Band levels chosen on train (seed 0): "
                      + "; ".join(f"`{k}` {json.dumps(v)}" for k, v in params[0].items() if v), ""]
    if args.lever:
        levers = [(label, _runs(root)) for label, root in map(_label_dir, args.lever)]
        _save(curves_figure(levers), img_dir / "results_levers.png")
        parts += ["## Learning curves of the levers", "",
                  "Validation, deterministic policy, every lever changed alone from the default "
                  "(`mlp_ppo`, seed 0 unless the label says otherwise). Runs with `eval.val_draws` (the main "
                  "job) report the mean over their validation split and the further market draws.", "",
                  "![validation return and trades vs env steps](img/results_levers.png)", ""]
        rows = ["| lever | best val return % | at env steps | trades there | last val return % | last trades "
                "| band rule on val % |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for label, runs in levers:
            for run in runs:
                c = _val_curves(run)
                best = c.loc[c["val/return"].idxmax()]
                last = c.iloc[-1]
                name = f"{label} ({run.name})" if len(runs) > 1 else label
                band = f"{100 * last['val/band_return']:+.2f}" if "val/band_return" in c else "n/a"
                rows.append(f"| {name} | {100 * best['val/return']:+.2f} | {int(best['env_steps']):,} | "
                            f"{int(best['val/n_trades'])} | {100 * last['val/return']:+.2f} | "
                            f"{int(last['val/n_trades'])} | {band} |")
        parts += rows + [""]
    if args.notes:
        parts += [Path(args.notes).read_text().rstrip(), ""]
    if args.command:
        parts += ["## Reproduce", "", "```bash", *args.command, "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    print(out)


if __name__ == "__main__":
    main()
