"""The report's pictures, drawn for a person to read.

* ``equity.png``: return (%) on a linear axis.  The top panel holds the traders a policy is
  judged against (the policy, the band rule, the z-score band, buy-and-hold, cash), with the
  policy's trades marked and each line's final return in the legend.  The random trader
  (often ruined, -50 to -100 %) and the hindsight oracle (+100 % and more) would flatten those
  lines into one; they get a panel of their own below, on its own scale.
* ``premium.png``: the premium with the band rule's buy and sell levels (fit on the train
  split, read from ``summary.json``'s ``baseline_params``, with its decision cadence), the
  policy's fills (filled markers) and the band rule's (hollow markers).
* ``position.png``: the USDT weight held.
* ``equity.png`` ends with an underwater panel (drawdown below the running peak) of the policy
  and the band rule.
* ``learning.png``: the run's validation return against env steps, policy beside the band rule.
* ``compare_learning.png`` (``python -m kpremia compare``): every run's validation curve, one
  panel per group, one line per seed, beside the band rule's.
* ``compare.png`` (``python -m kpremia compare``): per group, every market's paired difference
  between the policy and the band rule (a dot), the mean with its 95 % bootstrap interval, and the
  policy's max drawdown per market.

Every report picture carries a title line saying what it is (run, checkpoint, data, split, bar
size, fee); time axes are bar open times in UTC.

Matplotlib through ``Figure`` objects (the Agg canvas, no pyplot state), so plotting is safe
in threads, tests and servers.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

POLICY = "policy"
# One colour per trader in every picture.
COLOURS = {POLICY: "black", "premium_threshold": "tab:orange", "premium_zscore": "tab:purple",
           "buy_and_hold": "tab:green", "cash": "0.55", "random": "tab:red", "oracle": "tab:olive"}
LABELS = {POLICY: "policy", "premium_threshold": "band rule", "premium_zscore": "z-score band",
          "buy_and_hold": "buy and hold", "cash": "cash", "random": "random", "oracle": "oracle (hindsight)"}
OUT_OF_SCALE = ("random", "oracle")


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (written atomically by the caller)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _return_pct(trace: pd.DataFrame) -> pd.Series:
    values = trace["portfolio_value_krw"].astype(float)
    return 100.0 * (values / values.iloc[0] - 1.0)


def _trades(trace: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Masks of the bars where a buy / a sell filled."""
    step = trace["position"].astype(float).diff().fillna(trace["position"].astype(float))
    filled = trace["traded"].astype(bool)
    return filled & (step > 0), filled & (step < 0)


def _label(name: str, trace: pd.DataFrame) -> str:
    final = float(_return_pct(trace).iloc[-1])
    trades = int(trace["traded"].astype(bool).sum())
    ruined = ", ruined" if "ruined" in trace and bool(trace["ruined"].any()) else ""
    return f"{LABELS.get(name, name)} {final:+.2f} % ({trades:,} trade{'' if trades == 1 else 's'}{ruined})"


def equity_figure(policy_trace: pd.DataFrame | None, baseline_traces: Mapping[str, pd.DataFrame], *,
                  focus: str = "premium_threshold", stamp: str | None = None) -> Figure:
    """Return (%) of the policy and the baselines; random and the oracle in their own panel; drawdowns below.

    The trades marked (and the thick line) are the policy's, or without one the ``focus`` rule's.  A
    trader that never traded lies on the cash line: it is drawn with markers so it stays visible.
    The underwater panel shows how far below its running peak the marked trader and the band rule were.
    """
    traders = {**({POLICY: policy_trace} if policy_trace is not None else {}), **baseline_traces}
    main = {n: t for n, t in traders.items() if n not in OUT_OF_SCALE}
    apart = {n: t for n, t in traders.items() if n in OUT_OF_SCALE}
    ratios = [3, *([1.3] if apart else []), 1.2]
    fig = Figure(figsize=(12, 4.5 + 1.7 * (len(ratios) - 1)))
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    ax, ax_apart, ax_under = axes[0], (axes[1] if apart else None), axes[-1]
    who = POLICY if policy_trace is not None else (focus if focus in main else next(iter(main), None))
    shown = main.get(who) if who is not None else None
    for k, (name, trace) in enumerate(main.items()):
        is_policy = name == who
        idle = name != "cash" and not bool(trace["traded"].astype(bool).any())
        ax.plot(trace["time"], _return_pct(trace), color=COLOURS.get(name), label=_label(name, trace),
                linewidth=2.0 if is_policy else 1.1, linestyle="--" if name == "cash" else "-",
                zorder=4 if is_policy else 2, marker="o" if idle else None, markersize=3.5,
                markevery=(k * 7 % 40, max(1, len(trace) // 25)) if idle else None)
    if shown is not None:  # the trades of the policy (or of the focus rule) on its own line
        pct = _return_pct(shown)
        for mask, marker, colour in ((_trades(shown)[0], "^", "tab:green"), (_trades(shown)[1], "v", "tab:red")):
            ax.scatter(shown.loc[mask, "time"], pct[mask], marker=marker, color=colour, s=22, zorder=5,
                       edgecolors="black", linewidths=0.4)
        handles, labels = ax.get_legend_handles_labels()
        if bool(shown["traded"].astype(bool).any()):
            handles += [Line2D([], [], marker="^", color="tab:green", linestyle="", markeredgecolor="black"),
                        Line2D([], [], marker="v", color="tab:red", linestyle="", markeredgecolor="black")]
            labels += [f"{LABELS.get(who, who)} buys (fill at the open after the decision bar)",
                       f"{LABELS.get(who, who)} sells (fill at the open after the decision bar)"]
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.axhline(0.0, color="0.75", linewidth=0.8, zorder=1)
    ax.set_ylabel("return (%)")
    ax.set_title("Equity: policy vs the rules it must beat" if policy_trace is not None
                 else "Equity: the rules (no policy)")
    ax.grid(True, alpha=0.3)
    if ax_apart is not None:
        for name, trace in apart.items():
            ax_apart.plot(trace["time"], _return_pct(trace), color=COLOURS.get(name), linewidth=1.0,
                          label=_label(name, trace))
        ax_apart.axhline(0.0, color="0.75", linewidth=0.8)
        ax_apart.set_ylabel("return (%)")
        ax_apart.set_title("out of scale above: the hindsight oracle (the ceiling) and random trading",
                           fontsize="small")
        ax_apart.grid(True, alpha=0.3)
        ax_apart.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    for name in dict.fromkeys([who, "premium_threshold"]):
        if name in main:
            ax_under.fill_between(main[name]["time"], -drawdown_pct(main[name]), 0.0, step="post",
                                  color=COLOURS.get(name), alpha=0.35 if name == who else 0.2,
                                  label=f"{LABELS.get(name, name)} max {float(drawdown_pct(main[name]).max()):.2f} %")
    ax_under.set_ylabel("drawdown (%)")
    ax_under.set_title("underwater: below the running peak", fontsize="small")
    ax_under.grid(True, alpha=0.3)
    ax_under.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    _time_axis(fig, ax_under, stamp)
    return fig


def drawdown_pct(trace: pd.DataFrame) -> pd.Series:
    """How far the portfolio value is below its running peak, in % (0 at a new high, positive below)."""
    values = trace["portfolio_value_krw"].astype(float)
    return 100.0 * (1.0 - values / values.cummax())


def _time_axis(fig: Figure, ax: Any, stamp: str | None) -> None:
    """Label the time axis with its zone (bar open times, UTC) and put what the report is in the title."""
    ax.set_xlabel("time (UTC, bar open)")
    if stamp:
        fig.suptitle(stamp, fontsize="small", y=1.0)
    fig.autofmt_xdate()


def every_bars(n: float) -> str:
    """``every bar`` / ``every 16 bars``."""
    return "every bar" if float(n) == 1 else f"every {float(n):g} bars"


def band_levels(params: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The band rule's premium levels and cadence from ``summary.json``'s ``baseline_params`` (None if absent)."""
    rule = (params or {}).get("premium_threshold") or {}
    buy, sell = rule.get("buy_premium_at_or_below"), rule.get("sell_premium_at_or_above")
    if not isinstance(buy, (int, float)) or not isinstance(sell, (int, float)):
        return None
    out = {"buy": float(buy), "sell": float(sell)}
    if isinstance(rule.get("decision_every_bars"), (int, float)):
        out["every"] = float(rule["decision_every_bars"])
    return out


def premium_figure(trace: pd.DataFrame, who: str = POLICY, *, levels: Mapping[str, float] | None = None,
                   band_trace: pd.DataFrame | None = None, stamp: str | None = None) -> Figure:
    """The premium, the band rule's levels, the fills of ``who`` and (hollow) the band rule's."""
    fig = Figure(figsize=(12, 4.2))
    ax = fig.subplots()
    ax.plot(trace["time"], 100 * trace["premium"], color="0.3", linewidth=0.8, label="premium")
    if levels:
        every = f", deciding {every_bars(levels['every'])}" if "every" in levels else ""
        ax.axhline(100 * levels["buy"], color=COLOURS["premium_threshold"], linestyle="--", linewidth=1.2,
                   label=f"band rule buys at <= {100 * levels['buy']:.2f} %{every}")
        ax.axhline(100 * levels["sell"], color=COLOURS["premium_threshold"], linestyle=":", linewidth=1.4,
                   label=f"band rule sells at >= {100 * levels['sell']:.2f} %")
    buys, sells = _trades(trace)
    name = LABELS.get(who, who)
    ax.scatter(trace.loc[buys, "time"], 100 * trace.loc[buys, "premium"], marker="^", color="tab:green", s=26,
               edgecolors="black", linewidths=0.4, label=f"{name} buys ({int(buys.sum())})", zorder=4)
    ax.scatter(trace.loc[sells, "time"], 100 * trace.loc[sells, "premium"], marker="v", color="tab:red", s=26,
               edgecolors="black", linewidths=0.4, label=f"{name} sells ({int(sells.sum())})", zorder=4)
    if band_trace is not None and who != "premium_threshold":
        b_buys, b_sells = _trades(band_trace)
        ax.scatter(band_trace.loc[b_buys, "time"], 100 * band_trace.loc[b_buys, "premium"], marker="^", s=60,
                   facecolors="none", edgecolors=COLOURS["premium_threshold"], linewidths=1.2,
                   label=f"band rule buys ({int(b_buys.sum())})", zorder=3)
        ax.scatter(band_trace.loc[b_sells, "time"], 100 * band_trace.loc[b_sells, "premium"], marker="v", s=60,
                   facecolors="none", edgecolors=COLOURS["premium_threshold"], linewidths=1.2,
                   label=f"band rule sells ({int(b_sells.sum())})", zorder=3)
    ax.set_ylabel("premium (%)")
    ax.set_title(f"Premium, the band rule's levels (fit on train) and the {name}'s fills "
                 "(marked at the fill: the open after the decision bar)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    _time_axis(fig, ax, stamp)
    return fig


def position_figure(trace: pd.DataFrame, who: str = POLICY, *, stamp: str | None = None) -> Figure:
    """The USDT weight held (0 = all KRW, 1 = all USDT)."""
    fig = Figure(figsize=(12, 3))
    ax = fig.subplots()
    ax.step(trace["time"], trace["position"], where="post", color="tab:blue", linewidth=0.9)
    ax.fill_between(trace["time"], trace["position"], step="post", alpha=0.2, color="tab:blue")
    ax.set_ylim(min(-0.05, float(trace["position"].min()) - 0.05), 1.05)
    ax.set_ylabel("USDT weight")
    ax.set_title(f"{LABELS.get(who, who)} position")
    ax.grid(True, alpha=0.3)
    _time_axis(fig, ax, stamp)
    return fig


def learning_figure(curve: pd.DataFrame, *, stamp: str | None = None) -> Figure:
    """Validation return of the policy and of the band rule against env steps (``metrics.csv`` of ``fit``)."""
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    ax.plot(curve["env_steps"], 100 * curve["policy"], color=COLOURS[POLICY], marker="o", markersize=3,
            label="policy")
    if curve["band_rule"].notna().any():
        ax.plot(curve["env_steps"], 100 * curve["band_rule"], color=COLOURS["premium_threshold"], linestyle="--",
                label="band rule (fit on train)")
    ax.axhline(0.0, color="0.75", linewidth=0.8)
    ax.set_xlabel("env steps")
    ax.set_ylabel("validation return (%)")
    ax.set_title("Validation during fit: policy vs the band rule", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if stamp:
        fig.suptitle(stamp, fontsize="small", y=1.0)
    return fig


def compare_figure(markets: pd.DataFrame, stats: pd.DataFrame) -> Figure:
    """Per group: each market's paired difference to the band rule (a dot), the mean and its 95 % interval.

    ``markets``: one row per (group, run, market) with ``group``, ``excess`` (policy return minus the
    band rule's on that market, a fraction) and ``max_drawdown`` (the policy's, a fraction).
    ``stats``: one row per group with ``group``, ``mean``, ``ci_low``, ``ci_high``, ``n`` and ``verdict``.
    The right panel shows the policy's max drawdown per market: the bar spans min .. max (never below 0).
    Readable from 2 to a dozen groups: one row each, the verdict in the label.
    """
    groups = list(stats["group"])
    fig = Figure(figsize=(12, 2.2 + 0.55 * max(2, len(groups))))
    ax, ax_dd = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 1.4]})
    rng = np.random.default_rng(0)  # vertical jitter of the market dots only
    for i, row in enumerate(stats.itertuples(index=False)):
        mine = markets[markets["group"] == row.group]
        excess = 100 * mine["excess"].astype(float).dropna()
        ax.scatter(excess, i + rng.uniform(-0.18, 0.18, len(excess)), s=12, color="tab:blue", alpha=0.6,
                   zorder=3, label="one market (a seed's test split or an unseen draw)" if i == 0 else None)
        if np.isfinite(row.mean):
            low, high = 100 * row.ci_low, 100 * row.ci_high
            has_ci = np.isfinite(low) and np.isfinite(high)
            ax.errorbar(100 * row.mean, i, xerr=[[100 * row.mean - low], [high - 100 * row.mean]] if has_ci else None,
                        fmt="D", color="black", capsize=5, markersize=6, zorder=4, linewidth=1.6,
                        label="mean, 95 % bootstrap interval" if i == 0 else None)
        dd = 100 * mine["max_drawdown"].astype(float).dropna()
        if len(dd):
            ax_dd.hlines(i, float(dd.min()), float(dd.max()), color="0.4", linewidth=2.0)
            ax_dd.scatter(dd, i + rng.uniform(-0.18, 0.18, len(dd)), s=10, color=COLOURS[POLICY], zorder=3)
            ax_dd.plot(float(dd.mean()), i, marker="|", markersize=14, color="tab:red", zorder=4)
    ax.axvline(0.0, color="tab:orange", linewidth=1.2, label="level with the band rule")
    ax.set_xlabel("policy return minus the band rule's, per market (percentage points)")
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([f"{r.group}\n{r.verdict} (n={r.n})" for r in stats.itertuples(index=False)],
                       fontsize="small")
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    ax_dd.set_xlabel("policy max drawdown (%): min..max, red = mean")
    ax_dd.set_xlim(left=0.0)
    ax_dd.grid(True, axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small", frameon=False)
    fig.suptitle("Paired against the band rule on the same markets: ahead only where the interval is right of 0")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def learning_curves_figure(curves: Mapping[str, Mapping[str, pd.DataFrame]]) -> Figure:
    """Validation return against env steps, one panel per group, one line per run (seed), band rule dashed.

    ``curves``: group -> {run label (its seed) -> :func:`kpremia.eval.curves.validation_curve` frame}.
    """
    groups = list(curves)
    cols = min(3, max(1, len(groups)))
    rows = -(-len(groups) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.0 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, group in zip(axes, groups, strict=False):
        for k, (label, curve) in enumerate(curves[group].items()):
            line, = ax.plot(curve["env_steps"], 100 * curve["policy"], marker="o", markersize=2.5, linewidth=1.2,
                            label=f"policy, {label}")
            if curve["band_rule"].notna().any():
                ax.plot(curve["env_steps"], 100 * curve["band_rule"], linestyle="--", linewidth=0.9,
                        color=line.get_color(), alpha=0.7, label="band rule" if k == 0 else None)
        ax.axhline(0.0, color="0.75", linewidth=0.8)
        ax.set_title(group, fontsize="small")
        ax.set_xlabel("env steps")
        ax.set_ylabel("validation return (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    fig.suptitle("Validation during fit, per run: policy (solid) vs the band rule on the same markets (dashed)")
    fig.tight_layout()
    return fig
