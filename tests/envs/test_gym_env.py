"""KPremiaGymEnv: gymnasium's checker passes with no warnings; make() works."""

from __future__ import annotations

import importlib.util
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import kpremia  # noqa: F401  (registers kpremia/KPremia-v0)
from kpremia.envs.gym_env import KPremiaGymEnv

from .conftest import build_market, random_walk_close

ENV_ID = "kpremia/KPremia-v0"
HAS_DATA_LAYER = importlib.util.find_spec("kpremia.data.market") is not None


@pytest.fixture
def market():
    return build_market(random_walk_close(300), valid_from=20)


def test_env_checker_passes_without_warnings(market) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gymnasium.make(ENV_ID, market=market, env={"max_steps": 50, "fee_rate": 0.0005}).unwrapped)
        check_env(gymnasium.make(ENV_ID, market=market, env={"action_scheme": "target_weight", "max_steps": 5}).unwrapped)
        # built directly there is no spec to re-make it from, so only the render-mode check is skipped
        check_env(KPremiaGymEnv(market, env={"tick_size_krw": 0.5, "min_order_krw": 5000.0}), skip_render_check=True)


def test_episode_through_the_gym_api(market) -> None:
    env = KPremiaGymEnv(market, env={"max_steps": 10})
    obs, info = env.reset(seed=3)
    assert set(obs) == set(env.observation_space.spaces) and obs in env.observation_space
    assert info["portfolio_value_krw"] == 1_000_000.0
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
        assert obs in env.observation_space
        total += reward
        steps += 1
        done = terminated or truncated
    assert truncated and steps == 10 and info["episode_length"] == 10
    assert total == pytest.approx(info["episode_return"], abs=1e-5)
    # the obs the episode ended on, not the next episode's first one
    assert obs["account"][2] == pytest.approx(info["episode_return"], abs=1e-5)


def test_reset_seed_is_deterministic(market) -> None:
    env = KPremiaGymEnv(market)
    a, _ = env.reset(seed=5)
    b, _ = env.reset(seed=5)
    c, _ = env.reset(seed=6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_make_with_a_market(market) -> None:
    env = gymnasium.make(ENV_ID, market=market, env={"max_steps": 5})
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(1)
    assert obs in env.observation_space
    env.close()


@pytest.mark.skipif(not HAS_DATA_LAYER, reason="kpremia.data.market not built yet")
def test_make_default_synthetic_market() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gymnasium.make(ENV_ID)
        obs, _ = env.reset(seed=0)
        for _ in range(5):
            obs, *_ = env.step(env.action_space.sample())
    assert obs in env.observation_space
    check_env(env.unwrapped)
