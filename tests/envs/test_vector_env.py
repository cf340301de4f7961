"""KPremiaVectorEnv: gymnasium's VectorEnv API over the batched simulator (same-step auto-reset)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import kpremia  # noqa: F401  (registers kpremia/KPremia-v0)
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.execution import ExecutionRules
from kpremia.envs.render import HEIGHT, WIDTH
from kpremia.envs.vector_env import KPremiaVectorEnv

from .conftest import build_market

ENV_ID = "kpremia/KPremia-v0"


@pytest.fixture
def crash_market():
    """Prices fall 5 % a bar: holding USDT for 14 bars ruins the account (terminated)."""
    return build_market(1400.0 * 0.95 ** np.arange(300), valid_from=20)


def test_make_vec_builds_the_batched_env(crash_market) -> None:
    envs = gymnasium.make_vec(ENV_ID, num_envs=8, market=crash_market, env={"max_steps": 10})
    assert isinstance(envs, KPremiaVectorEnv) and envs.num_envs == 8
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.action_space == gymnasium.spaces.MultiDiscrete([2] * 8)
    obs, info = envs.reset(seed=0)
    assert obs in envs.observation_space and info["portfolio_value_krw"].shape == (8,)
    obs, rewards, term, trunc, infos = envs.step(envs.action_space.sample())
    assert obs in envs.observation_space
    assert rewards.dtype == np.float64 and term.dtype == bool and trunc.shape == (8,)
    sync = gymnasium.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", market=crash_market)
    assert isinstance(sync, SyncVectorEnv)


def test_steps_match_the_simulator_and_final_obs_is_reported(crash_market) -> None:
    n = 16
    # no spread: at the crash's last prices (far below one KRW) a 0.5 KRW spread would ruin every episode
    envs = KPremiaVectorEnv(n, crash_market, env={"max_steps": 30, "action_scheme": "hold_buy_sell", "spread_krw": 0.0})
    twin = BatchedEnv(crash_market, n, rules=ExecutionRules(spread_krw=0.0), max_steps=30, action_scheme="hold_buy_sell")
    obs, _ = envs.reset(seed=[4, 5])  # a list: its first element seeds the one generator
    t_obs = twin.reset(seed=4)
    assert all(np.array_equal(obs[k], t_obs[k].numpy()) for k in obs)
    rng = np.random.default_rng(0)
    ended = {"terminated": 0, "truncated": 0}
    for _ in range(120):
        actions = rng.choice(3, size=n, p=[0.15, 0.8, 0.05])
        obs, rewards, term, trunc, infos = envs.step(actions)
        t_obs, t_reward, t_term, t_trunc, t_info = twin.step(torch.as_tensor(actions))
        assert all(np.array_equal(obs[k], t_obs[k].numpy()) for k in obs)
        assert np.array_equal(rewards, t_reward.double().numpy())
        assert np.array_equal(term, t_term.numpy()) and np.array_equal(trunc, t_trunc.numpy())
        done = term | trunc
        if not done.any():
            assert "final_obs" not in infos
            continue
        assert np.array_equal(infos["_final_obs"], done) and np.array_equal(infos["_final_info"], done)
        for i in range(n):
            final = infos["final_obs"][i]
            if done[i]:
                assert all(np.array_equal(final[k], t_info["final_obs"][k][i].numpy()) for k in final)
                assert infos["final_info"]["episode_length"][i] == int(t_info["episode_length"][i])
            else:
                assert final is None
        ended["terminated"] += int(term.sum())
        ended["truncated"] += int(trunc.sum())
    assert ended["terminated"] > 0 and ended["truncated"] > 0


def test_gymnasium_episode_statistics_wrapper(crash_market) -> None:
    """gymnasium's own wrapper reads the autoreset mode and reports each finished episode."""
    envs = RecordEpisodeStatistics(KPremiaVectorEnv(4, crash_market, env={"max_steps": 5}))
    envs.reset(seed=0)
    total = np.zeros(4)
    for step in range(5):
        _, rewards, term, trunc, infos = envs.step(np.zeros(4, dtype=np.int64))
        total += rewards
    assert trunc.all() and np.array_equal(infos["episode"]["l"], [5, 5, 5, 5])
    np.testing.assert_allclose(infos["episode"]["r"], total, rtol=1e-6)


def test_render_draws_env_zero(crash_market) -> None:
    envs = KPremiaVectorEnv(4, crash_market, render_mode="rgb_array", env={"max_steps": 10})
    envs.reset(seed=0)
    envs.step(np.ones(4, dtype=np.int64))
    (frame,) = envs.render()
    assert frame.dtype == np.uint8 and frame.shape == (HEIGHT, WIDTH, 3)
    assert KPremiaVectorEnv(2, crash_market).render() is None
