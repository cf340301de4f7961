"""Parity: the same bars through the backtest simulator and through `live` with the paper broker.

Same actions, same fills (price, fee, side), same equity at every close: the paper
broker calls the simulator's execution code, and the live observation builder with
the checkpoint's normaliser reproduces the simulator's observation tables.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from kpremia.envs.experiment import ALL_SPLITS, load_market
from kpremia.eval.backtest import run_policy_backtest
from kpremia.live.loop.build import run_live
from kpremia.live.loop.journal import read_table
from kpremia.run.checkpoint import load_module

from .conftest import make_checkpoint


@pytest.mark.parametrize("decision_every", [1, 4])
def test_backtest_and_paper_session_agree(live_cfg, checkpoint, tmp_path, decision_every):
    """With ``env.decision_every=k`` live acts on the backtest's cadence and holds in between."""
    if decision_every > 1:
        live_cfg = copy.deepcopy(live_cfg)
        live_cfg["env"]["decision_every"] = decision_every
        checkpoint = make_checkpoint(tmp_path / "ckpt" / "last.ckpt", live_cfg)
    module = load_module(checkpoint)
    market = load_market(module.cfg, ALL_SPLITS)
    test = market.tensors["test"]
    trace = run_policy_backtest(lambda obs: module.act(obs, deterministic=True), test, module.cfg["env"])[0]

    cli = copy.deepcopy(live_cfg)
    cli["ckpt"] = str(checkpoint)
    cli["live"].update(state_dir=str(tmp_path / "state"), journal={"synchronous": "NORMAL"})
    run_live(cli, overrides=[])
    journal = tmp_path / "state" / "journal.sqlite"
    decisions = read_table(journal, "decisions")
    fills = read_table(journal, "fills")

    assert test.valid_from == 0 and len(decisions) == test.n_bars == len(trace)
    assert (pd.to_datetime(decisions["bar_time"]) == trace["time"]).all()
    # actions: every bar but the last (the backtest has no next open to fill at)
    acts = np.arange(len(trace) - 1) % decision_every == 0
    np.testing.assert_array_equal(decisions["action"].to_numpy()[:-1][acts],
                                  trace["action"].to_numpy()[:-1][acts].astype(int))
    assert decisions["action"].iloc[:-1][~acts].isna().all()  # no decision between two decisions
    assert trace["traded"].sum() > 20, "the parity check needs many trades"
    # fills: the bar after each decision, at the simulator's price and fee
    traded = trace[trace["traded"]]
    assert len(fills) == len(traded)
    np.testing.assert_array_equal(fills["price"].to_numpy(), traded["fill_price"].to_numpy())
    np.testing.assert_array_equal(fills["fee_krw"].to_numpy(), traded["fee_krw"].to_numpy())
    np.testing.assert_array_equal(fills["step"].to_numpy(), traded.index.to_numpy())  # booked at bar t = step t
    # equity at every close (the journal marks the account at the decision bar's close)
    np.testing.assert_array_equal(decisions["equity_krw"].to_numpy(), trace["portfolio_value_krw"].to_numpy())
