"""``python -m kpremia live-report state_dir=<dir>``: what live trading got vs what the simulator says.

The journal's bars are replayed through the simulator's execution rules
(:func:`kpremia.envs.execution.rebalance`: fill at the next bar's open, fee,
slippage, tick, minimum order) with the decisions the journal recorded (each
made by the model version the model journal says traded that bar), from the
same starting cash.  The report then compares, fill by fill and in total:

* **fills**: bars where one side filled and the other did not, and the fill
  price gap in basis points of the simulated price;
* **fees**: live fees vs simulated fees (KRW);
* **PnL**: live equity vs simulated equity at the last close (KRW and %).

With the ``paper`` broker the gaps are zero by construction (the same code
fills both); with an exchange they measure slippage, partial fills, latency and
fee tiers the backtest did not model.  Written to ``<state_dir>/live_report/``
(``gap_report.json``, ``fills.csv``) and printed as a table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from kpremia.core.errors import UserError
from kpremia.core.io import atomic_write_json, atomic_write_text
from kpremia.envs.config import EnvConfig
from kpremia.envs.execution import ExecutionRules
from kpremia.live.learning.control_log import read_events
from kpremia.run.checkpoint import peek_checkpoint, saved_run_config
from kpremia.live.loop.account import Account
from kpremia.live.loop.records import read_frame


def versions_by_step(state_dir: Path, first_version: str | None = None) -> list[tuple[int, str]]:
    """``[(first step, version)]``: which model version traded from which step (from the model journal)."""
    out: list[tuple[int, str]] = []
    for e in read_events(state_dir / "model_journal.sqlite"):
        step = e["detail"].get("trades_from_step")
        if step is not None and e["model_version"]:
            out.append((int(step), str(e["model_version"])))
        elif e["source"] == "host" and e["kind"] == "start" and e["model_version"]:
            out.append((0, str(e["model_version"])))
    if not out and first_version:
        out.append((0, first_version))
    return sorted(out, key=lambda x: x[0])


def gap_report(state_dir: str | Path, rules: ExecutionRules) -> dict[str, Any]:
    """Replay the journal with the simulator's ``rules``; the gaps as a dict (and ``fills`` rows)."""
    state_dir = Path(state_dir)
    journal = state_dir / "journal.sqlite"
    if not journal.is_file():
        raise UserError(f"{journal} not found: pass the live.state_dir of a `live` session (state_dir=<dir>)")
    decisions = read_frame(journal, "SELECT step, bar_time, open, close, target_weight, action_name, equity_krw, "
                               "client_order_id FROM decisions ORDER BY step")
    if decisions.empty:
        raise UserError(f"{journal} has no decisions yet: run `live` on it first")
    fills = read_frame(journal, "SELECT f.client_order_id, SUM(f.usdt_delta) AS usdt, SUM(f.krw_delta) AS krw, "
                           "SUM(f.fee_krw) AS fee, SUM(f.usdt_delta * f.price) / SUM(f.usdt_delta) AS price "
                           "FROM fills f GROUP BY f.client_order_id")
    meta = dict(read_frame(journal, "SELECT key, value FROM meta").values.tolist())
    state = json.loads(read_frame(journal, "SELECT state_json FROM state").iloc[0, 0])
    initial = float(meta.get("initial_krw") or state["initial_krw"])
    live_fill = {r.client_order_id: r for r in fills.itertuples()}
    versions = versions_by_step(state_dir)

    sim = Account(initial)  # the simulator's account, booked like the paper exchange's
    rows = []
    pending: tuple[Any, float] | None = None  # (decision row, target) filling at the next open
    for d in decisions.itertuples():
        if pending is not None:
            prev, target = pending
            fill = sim.rebalance(target, d.open, rules)
            traded = fill is not None
            sim_fee = fill.fee_krw if traded else 0.0
            sim_price = fill.price if traded else math.nan
            sim_usdt = fill.usdt_delta if traded else 0.0
            live = live_fill.get(prev.client_order_id) if isinstance(prev.client_order_id, str) else None
            rows.append({
                "decision_step": prev.step, "fill_bar": d.bar_time, "client_order_id": prev.client_order_id,
                "model_version": _version_at(versions, prev.step), "sim_traded": traded,
                "live_traded": live is not None, "sim_price": sim_price,
                "live_price": float(live.price) if live is not None else math.nan,
                "price_gap_bps": ((float(live.price) / sim_price - 1) * 1e4 if live is not None and traded
                                  else math.nan),
                "sim_usdt": sim_usdt, "live_usdt": float(live.usdt) if live is not None else 0.0,
                "sim_fee_krw": sim_fee, "live_fee_krw": float(live.fee) if live is not None else 0.0,
            })
            pending = None
        if isinstance(d.client_order_id, str) and d.target_weight is not None and not math.isnan(d.target_weight):
            pending = (d, float(d.target_weight))
    last = decisions.iloc[-1]
    sim_equity = sim.value(float(last["close"]))
    live_equity = Account(float(state["cash_krw"]), float(state["position_usdt"])).value(float(last["close"]))
    table = pd.DataFrame(rows)
    both = table[table["sim_traded"] & table["live_traded"]] if not table.empty else table
    report = {
        "state_dir": str(state_dir), "bars": int(len(decisions)), "first_bar": str(decisions["bar_time"].iloc[0]),
        "last_bar": str(last["bar_time"]), "initial_krw": initial, "rules": rules.to_dict(),
        "model_versions": [{"from_step": s, "version": v} for s, v in versions],
        "orders": int(decisions["client_order_id"].notna().sum()),
        "fills_sim": int(table["sim_traded"].sum()) if not table.empty else 0,
        "fills_live": int(table["live_traded"].sum()) if not table.empty else 0,
        "fill_mismatches": int((table["sim_traded"] != table["live_traded"]).sum()) if not table.empty else 0,
        "price_gap_bps_mean": float(both["price_gap_bps"].mean()) if len(both) else 0.0,
        "price_gap_bps_max_abs": float(both["price_gap_bps"].abs().max()) if len(both) else 0.0,
        "fees_sim_krw": float(table["sim_fee_krw"].sum()) if not table.empty else 0.0,
        "fees_live_krw": float(table["live_fee_krw"].sum()) if not table.empty else 0.0,
        "equity_sim_krw": sim_equity, "equity_live_krw": live_equity,
        "pnl_sim_krw": sim_equity - initial, "pnl_live_krw": live_equity - initial,
        "pnl_gap_krw": live_equity - sim_equity, "pnl_gap_pct": (live_equity / sim_equity - 1.0) * 100,
    }
    report["fee_gap_krw"] = report["fees_live_krw"] - report["fees_sim_krw"]
    return {**report, "fills": table}


def _version_at(versions: list[tuple[int, str]], step: int) -> str | None:
    current = None
    for first, name in versions:
        if first <= step:
            current = name
    return current


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"live vs simulator, {r['bars']} bars {r['first_bar']} .. {r['last_bar']} ({r['state_dir']})",
        f"{'':24}{'live':>16}{'simulator':>16}{'gap':>16}",
        f"{'fills':24}{r['fills_live']:>16}{r['fills_sim']:>16}{r['fill_mismatches']:>16}",
        f"{'fees KRW':24}{r['fees_live_krw']:>16,.0f}{r['fees_sim_krw']:>16,.0f}{r['fee_gap_krw']:>16,.0f}",
        f"{'PnL KRW':24}{r['pnl_live_krw']:>16,.0f}{r['pnl_sim_krw']:>16,.0f}{r['pnl_gap_krw']:>16,.0f}",
        f"{'fill price gap (bps)':24}{'':>32}{r['price_gap_bps_mean']:>+16.2f}  (mean; max |gap| "
        f"{r['price_gap_bps_max_abs']:.2f})",
        "model versions: " + (", ".join(f"{v['version']} from step {v['from_step']}" for v in r["model_versions"])
                              or "(no model journal: a rule or a run without versions)"),
    ]
    return "\n".join(lines) + "\n"


def live_report_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``live-report`` command: rules from the checkpoint that traded (or the composed env)."""
    state_dir = cfg.get("state_dir") or (cfg.get("live") or {}).get("state_dir")
    if not state_dir:
        raise UserError("`live-report` needs state_dir=<the live.state_dir of a session>")
    env = dict(cfg["env"])
    source = _first_checkpoint(Path(state_dir))
    if source is not None and not cfg.get("_env_overridden"):
        try:
            env = dict(saved_run_config(peek_checkpoint(source))["env"])
        except (UserError, KeyError):
            pass
    report = gap_report(state_dir, EnvConfig.of(env).execution)
    out_dir = Path(state_dir) / "live_report"
    fills = report.pop("fills")
    atomic_write_json(out_dir / "gap_report.json", report)
    atomic_write_text(out_dir / "fills.csv", fills.to_csv(index=False))
    print(format_report(report), end="")
    print(out_dir, flush=True)
    return report


def _first_checkpoint(state_dir: Path) -> Path | None:
    from kpremia.live.learning.versions import VersionStore

    for v in VersionStore(state_dir / "versions").list():
        if v.source and Path(v.source).is_file():
            return Path(v.source)
    return None
