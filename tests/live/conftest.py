"""Fixtures of the live tests: a small synthetic market and checkpoints built from it.

The checkpoint is a real ``fit``-format file (hyper-parameters, state dict, the
train split's normaliser) holding an untrained gru_attn PPO network whose policy
head is scaled up, so its argmax actions change with the observation: parity
and resume tests then compare many different actions, not a constant one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kpremia.envs.experiment import load_market
from kpremia.run.checkpoint import build_module

DAYS = 40


def make_checkpoint(path: Path, cfg: dict, scale: float = 300.0, seed: int = 0) -> Path:
    """Write a checkpoint for ``cfg`` (data, env, encoder, algo) with seeded random weights."""
    torch.manual_seed(seed)
    market = load_market(cfg, ("train",))
    module = build_module(cfg, market.spec, market=None)
    with torch.no_grad():
        module.net.policy_head[-1].weight.mul_(scale)
    ckpt = {"hyper_parameters": {"cfg": cfg, "spec": market.spec.to_dict()}, "state_dict": module.state_dict(),
            "kpremia": {"normalizer": market.normalizer.state_dict(), "env_steps": 0, "updates": 0,
                        "bar_minutes": market.bar_minutes}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="session")
def live_cfg():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"data.days={DAYS}", "env.window_bars=8",
                                                       "env.window_1d=5", "env.window_premium=5"])
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, live_cfg) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoints" / "last.ckpt", live_cfg)


@pytest.fixture
def live_cli(tmp_path):
    """Run ``python -m kpremia live ...`` in a subprocess."""

    def _run(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "KPREMIA_RUNS_DIR": str(tmp_path / "runs"), "PYTHONWARNINGS": "ignore",
                    **(env or {})}
        return subprocess.run([sys.executable, "-m", "kpremia", "live", *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env, cwd=tmp_path)

    return _run


@pytest.fixture(scope="session")
def paper_session(live_cfg, checkpoint, tmp_path_factory) -> Path:
    """A paper session of 40 bars of the test checkpoint that traded and closed cleanly (copy it before changing it)."""
    import copy

    from kpremia.live.loop.build import run_live

    state_dir = tmp_path_factory.mktemp("paper_session") / "state"
    cfg = copy.deepcopy(live_cfg)
    cfg["ckpt"] = str(checkpoint)
    cfg["live"].update(state_dir=str(state_dir), max_bars=40, journal={"synchronous": "NORMAL"})
    run_live(cfg, overrides=[])
    return state_dir


def run_cli(capsys, *args: str) -> tuple[int, list[str]]:
    """``python -m kpremia <args>`` in this process (the code path of the real command): (exit code, stderr lines)."""
    from kpremia.app import cli

    capsys.readouterr()
    try:
        code = cli.main(list(args))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


def price_frame(closes, premiums, start: str = "2025-03-03T00:00") -> "pd.DataFrame":
    """A MarketFrame with the given closes and premiums (opens = previous close)."""
    import numpy as np
    import pandas as pd

    close = np.asarray(closes, dtype=np.float64)
    open_ = np.concatenate([[close[0]], close[:-1]])
    premium = np.asarray(premiums, dtype=np.float64)
    index = pd.date_range(start, periods=len(close), freq="15min", tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                         "close": close, "volume": np.ones(len(close)), "fx": close / (1 + premium),
                         "premium": premium}, index=index)


def rule_runner(state_dir: Path, frame, *, risk: dict | None = None, buy: float = 0.01, sell: float = 0.02,
                callbacks: list | None = None, rules=None):
    """A runner hosting the premium_threshold rule on ``frame`` with the paper broker, in-process."""
    from kpremia.data.market import ObservationBuilder
    from kpremia.envs.execution import ExecutionRules
    from kpremia.run.live_config import RiskConfig
    from kpremia.live.loop.journal import Journal
    from kpremia.live.loop.policy import PremiumThresholdRule
    from kpremia.live.loop.risk import RiskEngine
    from kpremia.live.loop.runner import LiveRunner
    from kpremia.live.loop.state import LiveState
    from kpremia.live.venues.feeds import ReplayFeed
    from kpremia.live.venues.paper import PaperBroker

    rules = rules or ExecutionRules(fee_rate=0.0005, spread_krw=0.0)
    rule = PremiumThresholdRule(buy_threshold=buy, sell_threshold=sell)
    return LiveRunner(feed=ReplayFeed(frame, start=frame.index[0]),
                      broker=PaperBroker(state_dir / "paper_exchange.sqlite", 1_000_000.0, rules),
                      policy=rule, journal=Journal(state_dir / "journal.sqlite", synchronous="NORMAL"),
                      builder=ObservationBuilder(), callbacks=list(callbacks or []),
                      risk=RiskEngine(RiskConfig(**{"kill_switch": None, **(risk or {})}), state_dir=state_dir),
                      initial_state=LiveState(run_id="r15k0000", symbol="USDT/KRW", initial_krw=1_000_000.0,
                                              cash_krw=1_000_000.0),
                      rules=rules, fingerprint=rule.fingerprint())
