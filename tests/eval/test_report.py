"""The report: files exist, agree with each other, and the plots are real PNGs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pandas as pd
import pytest
import torch

from kpremia.envs.config import EnvConfig
from kpremia.eval.backtest import run_backtest, run_baseline_backtest
from kpremia.eval.baselines import make_baselines
from kpremia.eval.report import PLOT_FILES, format_table, write_report

from .conftest import premium_market

RULES = EnvConfig.from_dict(dict(fee_rate=0.0005, slippage_bps=1.0, tick_size_krw=0.5, action_scheme="signal"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def traces():
    train, test = premium_market(800, 1, name="train"), premium_market(500, 2, name="test")
    actions = torch.randint(0, 2, (test.n_bars,), generator=torch.Generator().manual_seed(0))
    actions[actions == 1] = torch.bernoulli(torch.full((int((actions == 1).sum()),), 0.1)).long()
    policy = run_backtest(test, actions, RULES)
    baselines = {}
    for name, b in make_baselines(["cash", "buy_and_hold", "premium_threshold", "oracle"], RULES).items():
        b.fit(train)
        baselines[name] = run_baseline_backtest(b, test, RULES)
    return policy, baselines


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_files_are_consistent(tmp_path: Path, traces) -> None:
    policy, baselines = traces
    summary = write_report(tmp_path / "report", policy, baselines, {"split": "test", "seed": 3})
    out = tmp_path / "report"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    trace = pd.read_csv(out / "trace.csv")
    assert len(trace) == len(policy)
    final = trace["portfolio_value_krw"].iloc[-1]
    assert on_disk["policy"]["final_value_krw"] == pytest.approx(final, rel=1e-12)
    assert on_disk["policy"]["return"] == pytest.approx(final / trace["portfolio_value_krw"].iloc[0] - 1, rel=1e-9)
    assert on_disk["policy"]["n_trades"] == trace["traded"].sum()
    assert set(on_disk["baselines"]) == set(baselines)
    oracle_ret = on_disk["baselines"]["oracle"]["return"]
    assert on_disk["oracle_capture"] == pytest.approx(on_disk["policy"]["return"] / oracle_ret)
    assert oracle_ret >= max(m["return"] for m in on_disk["baselines"].values())
    assert on_disk["split"] == "test" and on_disk["seed"] == 3
    equity = pd.read_csv(out / "equity.csv")
    assert equity["policy"].iloc[-1] == pytest.approx(final)
    assert equity["oracle"].iloc[-1] == pytest.approx(on_disk["baselines"]["oracle"]["final_value_krw"])
    for name in PLOT_FILES:
        width, height = png_size(out / name)
        assert width > 300 and height > 150
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


def test_policy_metrics_from_several_seeds(tmp_path: Path, traces) -> None:
    policy, baselines = traces
    summary = write_report(tmp_path, policy, {}, {"policy_metrics": {"return": 0.5, "n_seeds": 3}}, plots=False)
    assert summary["policy"] == {"return": 0.5, "n_seeds": 3}
    assert summary["policy_trace"]["final_value_krw"] == policy["portfolio_value_krw"].iloc[-1]
    assert summary["oracle_capture"] is None and not (tmp_path / "equity.png").exists()


def test_format_table(traces) -> None:
    policy, baselines = traces
    from kpremia.eval.report import summarise_traces

    text = format_table(summarise_traces(policy, baselines, {"split": "test"}))
    lines = text.splitlines()
    assert lines[0] == "split: test"
    assert lines[1].split()[:3] == ["return", "sharpe", "sortino"]
    assert [ln.split()[0] for ln in lines[3:-1]] == ["policy", "cash", "buy_and_hold", "premium_threshold", "oracle"]
    assert lines[-1].startswith("oracle capture") and lines[-1].endswith("%")


def test_equity_is_a_linear_return_chart_with_the_oracle_and_random_apart(traces) -> None:
    """The old chart: log scale, only 1x and 0.1x labelled, the oracle and random squeezing the rest flat."""
    from kpremia.eval.plots import equity_figure

    policy, baselines = traces
    fig = equity_figure(policy, baselines, stamp="gru_attn_ppo seed 0, best | synthetic | test split, 15m bars")
    main, apart, under = fig.axes
    assert main.get_yscale() == apart.get_yscale() == "linear" and main.get_ylabel() == "return (%)"
    assert under.get_ylabel() == "drawdown (%)" and "UTC" in under.get_xlabel()
    assert fig._suptitle.get_text().startswith("gru_attn_ppo seed 0, best")
    plotted = {line.get_label().split(" ")[0] for line in main.get_lines() if not line.get_label().startswith("_")}
    assert {"policy", "band", "buy", "cash"} <= plotted and "oracle" not in plotted
    assert [line.get_label().split(" ")[0] for line in apart.get_lines()
            if not line.get_label().startswith("_")] == ["oracle"]
    # the policy line ends at its return in percent, and its trades are marked on it
    (policy_line,) = [ln for ln in main.get_lines() if ln.get_label().startswith("policy")]
    final = 100 * (policy["portfolio_value_krw"].iloc[-1] / policy["portfolio_value_krw"].iloc[0] - 1)
    assert policy_line.get_ydata()[-1] == pytest.approx(final)
    marked = sum(len(c.get_offsets()) for c in main.collections)
    assert marked == int(policy["traded"].sum())
    assert f"{final:+.2f} %" in policy_line.get_label()


def test_the_premium_chart_draws_the_band_rules_levels_from_the_summary(tmp_path: Path, traces) -> None:
    from kpremia.eval.plots import band_levels, premium_figure

    policy, baselines = traces
    summary = write_report(tmp_path, policy, baselines, {"baseline_params": {"premium_threshold": {
        "buy_premium_at_or_below": 0.004, "sell_premium_at_or_above": 0.021, "decision_every_bars": 16}}}, plots=False)
    levels = band_levels(summary["baseline_params"])
    assert levels == {"buy": 0.004, "sell": 0.021, "every": 16.0}
    ax = premium_figure(policy, levels=levels, band_trace=baselines["premium_threshold"]).axes[0]
    horizontal = {round(float(ln.get_ydata()[0]), 6): ln.get_label() for ln in ax.get_lines()[1:]}
    assert horizontal[0.4].startswith("band rule buys at <= 0.40 %, deciding every 16 bars")
    assert horizontal[2.1].startswith("band rule sells at >= 2.10 %")
    labels = [c.get_label() for c in ax.collections]
    assert any(lbl.startswith("policy buys") for lbl in labels) and any(lbl.startswith("band rule buys")
                                                                        for lbl in labels)
    assert band_levels({"premium_threshold": {}}) is None  # no levels (a given-levels backtest names them)
