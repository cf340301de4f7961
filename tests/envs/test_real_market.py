"""BatchedEnv over the data layer's default synthetic market (skipped until the data layer exists)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from kpremia.envs.execution import ExecutionRules

pytestmark = pytest.mark.skipif(importlib.util.find_spec("kpremia.data.market") is None,
                                reason="kpremia.data.market not built yet")


@pytest.fixture(scope="module")
def market_data():
    from kpremia.envs.experiment import experiment_market

    return experiment_market()  # the default experiment's market, cached: shared with the gym tests


def test_spec_matches_the_data_layer_and_obs_rows_come_from_the_tables(market_data) -> None:
    from kpremia.envs.batched import BatchedEnv

    market = market_data.tensors["train"]
    env = BatchedEnv(market, 64, rules=ExecutionRules(fee_rate=0.0005), max_steps=30, seed=0)
    assert env.spec == market_data.spec
    env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        obs, reward, terminated, truncated, info = env.step(torch.randint(0, 2, (64,), generator=gen))
        for k, table in market.obs.items():
            assert torch.equal(obs[k], table[info["t"]])
        assert all(torch.isfinite(v).all() for v in obs.values()) and torch.isfinite(reward).all()
    assert (info["t"] >= market.valid_from).all()


def test_every_registered_encoder_reads_the_obs_views(market_data) -> None:
    """Obs keys are column views of one buffer; encoders must treat them like contiguous tensors."""
    from kpremia.core.registry import ENCODERS
    from kpremia.envs.batched import BatchedEnv

    env = BatchedEnv(market_data.tensors["train"], 8, seed=0)
    env.reset()
    obs, *_ = env.step(torch.ones(8, dtype=torch.long))
    if not ENCODERS.names():
        pytest.skip("no encoders registered yet")
    for name in ENCODERS.names():
        torch.manual_seed(0)
        encoder = ENCODERS.get(name)(env.spec).eval()
        with torch.no_grad():
            assert torch.equal(encoder(obs), encoder({k: v.contiguous() for k, v in obs.items()})), name
