"""The backtest report: trace.csv, summary.json and plots, policy beside the baselines.

Why one writer: ``test`` reports, ``compare`` reads, and a researcher opens the
files by hand; they must agree.  Every number in ``summary.json`` is computed
from the traces written beside it with :func:`kpremia.eval.backtest.report_metrics`
(the formulas of :mod:`kpremia.eval.formulas`), and every file is written
atomically (temp file, then ``os.replace``), so a crash never leaves a
half-written report for ``compare`` to read.

``summary.json`` layout::

    {"policy": {metric: value, ..., "final_value_krw": V},
     "baselines": {name: {metric: value, ..., "final_value_krw": V}},
     "oracle_capture": policy return / oracle return (null without a profitable oracle),
     ...extra (split, experiment, seed, period, ...)}

When ``extra["policy_metrics"]`` is given (e.g. the mean over seeds of a sampled
policy) it becomes ``"policy"``, and the metrics of the one trace written to
``trace.csv`` go to ``"policy_trace"``.

A rules-only backtest (``python -m kpremia backtest``) has no policy: the summary
has no ``"policy"`` entry, and ``trace.csv`` and the premium / position plots show
one of the baselines (``focus``, the band rule by default), named in ``"focus"``.

``trades.csv`` lists the holdings (entry/exit time, prices, premium, holding time, P&L; see
:mod:`kpremia.eval.trades`).  A hit rate is null ("n/a" in tables) for a trader that closed no
round trip: there is nothing to score.

Plots (PNG, :mod:`kpremia.eval.plots`): ``equity.png`` (return in %, the policy beside the
rules it must beat, random and the oracle in a panel of their own, an underwater panel),
``learning.png`` (the validation curve, when the run logged one), ``premium.png`` (the
premium with the band rule's levels, the policy's fills and the band rule's), ``position.png``
(the policy's USDT weight).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kpremia.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from kpremia.eval.backtest import report_metrics
from kpremia.eval.plots import band_levels, equity_figure, learning_figure, png_bytes, position_figure, premium_figure
from kpremia.eval.trades import trade_list

log = logging.getLogger(__name__)

POLICY = "policy"
ORACLE = "oracle"
PLOT_FILES = ("equity.png", "premium.png", "position.png")
LEARNING_PLOT = "learning.png"


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null (strict JSON; a hit rate without round trips is not a number)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def summarise_traces(policy_trace: pd.DataFrame | None, baseline_traces: Mapping[str, pd.DataFrame],
                     extra: Mapping[str, Any] | None = None, *, bar_minutes: float | None = None) -> dict[str, Any]:
    """The summary dict (the content of ``summary.json``) without writing anything.

    ``policy_trace`` None: a rules-only backtest (baselines only, no ``"policy"`` entry).
    """
    extra = dict(extra or {})
    given = extra.pop("policy_metrics", None)
    summary: dict[str, Any] = {}
    if policy_trace is not None:
        trace_summary = _metrics_with_value(policy_trace, bar_minutes)
        summary[POLICY] = dict(given) if given is not None else trace_summary
    summary["baselines"] = {name: _metrics_with_value(tr, bar_minutes) for name, tr in baseline_traces.items()}
    if policy_trace is not None and given is not None:
        summary["policy_trace"] = trace_summary
    summary["oracle_capture"] = oracle_capture(summary)
    for key, value in extra.items():
        summary.setdefault(key, value)
    return summary


def oracle_capture(summary: Mapping[str, Any]) -> float | None:
    """Policy return / oracle return; None without an oracle or when the oracle cannot profit."""
    oracle = summary.get("baselines", {}).get(ORACLE)
    if POLICY not in summary or not oracle or oracle.get("return", 0.0) <= 0.0:
        return None
    return float(summary[POLICY]["return"]) / float(oracle["return"])


def write_report(out_dir: str | Path, policy_trace: pd.DataFrame | None,
                 baseline_traces: Mapping[str, pd.DataFrame], extra: Mapping[str, Any] | None = None, *,
                 plots: bool = True, bar_minutes: float | None = None, focus: str = "premium_threshold",
                 stamp: str | None = None, curve: pd.DataFrame | None = None) -> dict[str, Any]:
    """Write ``trace.csv``, ``trades.csv``, ``equity.csv``, ``summary.json`` and the plots into ``out_dir``.

    Returns the summary.  Without a policy (``policy_trace`` None) the trace, the trade list and the
    premium / position plots are those of the baseline ``focus`` (or the first baseline if ``focus`` is
    not among them).  ``stamp`` (what the report is: checkpoint, data, split, bar size, fee) titles
    every picture and is kept in the summary; ``curve`` (:mod:`kpremia.eval.curves`) adds
    ``learning.png``.  With ``plots`` false, pictures of an earlier report in ``out_dir`` are removed,
    so no picture ever sits beside numbers it was not drawn from.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)  # until the new one is complete, there is no report here
    summary = summarise_traces(policy_trace, baseline_traces, extra, bar_minutes=bar_minutes)
    if stamp:
        summary["stamp"] = stamp
    if policy_trace is not None:
        shown, who = policy_trace, POLICY
    else:
        who = focus if focus in baseline_traces else next(iter(baseline_traces))
        shown = baseline_traces[who]
        summary["focus"] = who
    atomic_write_text(out / "trace.csv", shown.to_csv(index=False))
    atomic_write_text(out / "trades.csv", trade_list(shown).to_csv(index=False))
    atomic_write_text(out / "equity.csv", _equity_table(policy_trace, baseline_traces).to_csv(index=False))
    for name in (*PLOT_FILES, LEARNING_PLOT):
        (out / name).unlink(missing_ok=True)
    if plots:
        levels = band_levels(summary.get("baseline_params"))
        figures = [("equity.png", equity_figure(policy_trace, baseline_traces, focus=who, stamp=stamp)),
                   ("premium.png", premium_figure(shown, who, levels=levels, stamp=stamp,
                                                  band_trace=baseline_traces.get("premium_threshold"))),
                   ("position.png", position_figure(shown, who, stamp=stamp))]
        if curve is not None and not curve.empty:
            figures.append((LEARNING_PLOT, learning_figure(curve, stamp=stamp)))
        for name, fig in figures:
            atomic_write_bytes(out / name, png_bytes(fig))
    summary = _json_safe(summary)
    atomic_write_json(out / "summary.json", summary)  # last: its presence means the report is complete
    log.info("report written to %s", out)
    return summary


_TABLE_COLUMNS = (("return", "return", "pct"), ("sharpe", "sharpe", "num"), ("sortino", "sortino", "num"),
                  ("max_drawdown", "max_dd", "pct"), ("turnover", "turnover", "num"),
                  ("hit_rate", "hit_rate", "pct"), ("n_trades", "trades", "int"), ("fees_krw", "fees_krw", "int"))


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "pct":
        return f"{100 * float(value):.2f}%"
    if kind == "int":
        return f"{float(value):,.0f}"
    return f"{float(value):.3f}"


def format_table(summary: Mapping[str, Any]) -> str:
    """Policy vs baselines as an aligned text table, with the oracle capture under it."""
    rows = [*([(POLICY, summary[POLICY])] if POLICY in summary else []), *summary.get("baselines", {}).items()]
    header = ["", *(label for _, label, _ in _TABLE_COLUMNS)]
    body = [[name, *(_fmt(metrics.get(key), kind) for key, _, kind in _TABLE_COLUMNS)] for name, metrics in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in body)]
    if POLICY in summary:
        capture = summary.get("oracle_capture")
        lines.append(f"oracle capture (policy return / oracle return): {_fmt(capture, 'pct')}")
    if summary.get("split"):
        lines.insert(0, f"split: {summary['split']}")
    return "\n".join(lines)


def _metrics_with_value(trace: pd.DataFrame, bar_minutes: float | None) -> dict[str, float]:
    metrics = report_metrics(trace, bar_minutes=bar_minutes)
    metrics["final_value_krw"] = float(trace["portfolio_value_krw"].iloc[-1])
    return metrics


def _with_policy(policy_trace: pd.DataFrame | None,
                 baseline_traces: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {**({POLICY: policy_trace} if policy_trace is not None else {}), **baseline_traces}


def _equity_table(policy_trace: pd.DataFrame | None, baseline_traces: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Portfolio value per bar of the policy and every baseline (a ruined trace ends early: NaN)."""
    traders = _with_policy(policy_trace, baseline_traces)
    table = next(iter(traders.values()))[["time"]].copy()
    for name, trace in traders.items():
        values = trace.set_index("time")["portfolio_value_krw"]
        table[name] = values.reindex(table["time"]).to_numpy()
    return table


__all__ = ["PLOT_FILES", "format_table", "oracle_capture", "summarise_traces", "write_report"]
