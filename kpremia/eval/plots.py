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
* ``compare.png`` (``python -m kpremia compare``): test return and max drawdown per group of
  runs, mean ± std over seeds, with every seed's value as a dot.

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
                  focus: str = "premium_threshold") -> Figure:
    """Return (%) of the policy and the baselines; random and the oracle in their own panel.

    The trades marked (and the thick line) are the policy's, or without one the ``focus`` rule's.
    """
    traders = {**({POLICY: policy_trace} if policy_trace is not None else {}), **baseline_traces}
    main = {n: t for n, t in traders.items() if n not in OUT_OF_SCALE}
    apart = {n: t for n, t in traders.items() if n in OUT_OF_SCALE}
    fig = Figure(figsize=(12, 6.2 if apart else 4.5))
    if apart:
        ax, ax_apart = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    else:
        ax, ax_apart = fig.subplots(), None
    who = POLICY if policy_trace is not None else (focus if focus in main else next(iter(main), None))
    shown = main.get(who) if who is not None else None
    for name, trace in main.items():
        is_policy = name == who
        ax.plot(trace["time"], _return_pct(trace), color=COLOURS.get(name), label=_label(name, trace),
                linewidth=2.0 if is_policy else 1.1, linestyle="--" if name == "cash" else "-",
                zorder=4 if is_policy else 2)
    if shown is not None:  # the trades of the policy (or of the focus rule) on its own line
        pct = _return_pct(shown)
        for mask, marker, colour in ((_trades(shown)[0], "^", "tab:green"), (_trades(shown)[1], "v", "tab:red")):
            ax.scatter(shown.loc[mask, "time"], pct[mask], marker=marker, color=colour, s=22, zorder=5,
                       edgecolors="black", linewidths=0.4)
        handles, labels = ax.get_legend_handles_labels()
        if bool(shown["traded"].astype(bool).any()):
            handles += [Line2D([], [], marker="^", color="tab:green", linestyle="", markeredgecolor="black"),
                        Line2D([], [], marker="v", color="tab:red", linestyle="", markeredgecolor="black")]
            labels += [f"{LABELS.get(who, who)} buys", f"{LABELS.get(who, who)} sells"]
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
    fig.autofmt_xdate()
    return fig


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
                   band_trace: pd.DataFrame | None = None) -> Figure:
    """The premium, the band rule's levels, the fills of ``who`` and (hollow) the band rule's."""
    fig = Figure(figsize=(12, 4.2))
    ax = fig.subplots()
    ax.plot(trace["time"], 100 * trace["premium"], color="0.3", linewidth=0.8, label="premium")
    if levels:
        every = f", deciding every {levels['every']:g} bars" if "every" in levels else ""
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
    ax.set_title(f"Premium, the band rule's levels (fit on train) and the {name}'s fills")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.autofmt_xdate()
    return fig


def position_figure(trace: pd.DataFrame, who: str = POLICY) -> Figure:
    """The USDT weight held (0 = all KRW, 1 = all USDT)."""
    fig = Figure(figsize=(12, 3))
    ax = fig.subplots()
    ax.step(trace["time"], trace["position"], where="post", color="tab:blue", linewidth=0.9)
    ax.fill_between(trace["time"], trace["position"], step="post", alpha=0.2, color="tab:blue")
    ax.set_ylim(min(-0.05, float(trace["position"].min()) - 0.05), 1.05)
    ax.set_ylabel("USDT weight")
    ax.set_title(f"{LABELS.get(who, who)} position")
    ax.grid(True, alpha=0.3)
    fig.autofmt_xdate()
    return fig


COMPARE_TRADERS = (POLICY, "premium_threshold", "premium_zscore", "buy_and_hold")


def compare_figure(records: pd.DataFrame) -> Figure:
    """Mean ± std over seeds of test return and max drawdown, per group (experiment and setting).

    ``records``: one row per (run, trader) with columns ``group``, ``trader``, ``return`` and
    ``max_drawdown`` (fractions).  Each seed is a dot over its group's bar; random and the
    oracle are left out (they are in the table) so the bars stay readable.
    """
    rows = records[records["trader"].isin(COMPARE_TRADERS)]
    groups = list(dict.fromkeys(rows["group"]))
    traders = [t for t in COMPARE_TRADERS if t in set(rows["trader"])]
    fig = Figure(figsize=(11, 1.2 + 0.55 * max(1, len(groups)) * max(1, len(traders)) / 2 + 1.0))
    axes = fig.subplots(1, 2, sharey=True)
    height = 0.8 / max(1, len(traders))
    rng = np.random.default_rng(0)  # jitter of the seed dots only
    for ax, metric, title in ((axes[0], "return", "test return (%)"), (axes[1], "max_drawdown", "max drawdown (%)")):
        for j, trader in enumerate(traders):
            for i, group in enumerate(groups):
                values = 100 * rows.loc[(rows["group"] == group) & (rows["trader"] == trader), metric].astype(float)
                values = values.dropna()
                if values.empty:
                    continue
                y = i + (j - (len(traders) - 1) / 2) * height
                std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                ax.barh(y, float(values.mean()), height=height * 0.9, xerr=std if len(values) > 1 else None,
                        color=COLOURS.get(trader), alpha=0.75, capsize=3,
                        label=LABELS.get(trader, trader) if i == 0 else None)
                ax.scatter(values, y + rng.uniform(-height * 0.25, height * 0.25, len(values)), s=10,
                           color="black", zorder=3)
        ax.axvline(0.0, color="0.6", linewidth=0.8)
        ax.set_xlabel(title)
        ax.grid(True, axis="x", alpha=0.3)
    counts = {g: int(rows.loc[(rows["group"] == g) & (rows["trader"] == POLICY)].shape[0]) for g in groups}
    axes[0].set_yticks(range(len(groups)))
    axes[0].set_yticklabels([f"{g}\n(n={counts[g]})" if counts[g] else g for g in groups], fontsize="small")
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small", frameon=False)
    fig.suptitle("Test split, mean ± std over seeds (dots: one seed each)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
