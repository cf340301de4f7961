"""Stable-Baselines3 on kpremia: make_vec_env over the gymnasium env, and the batched KPremiaVecEnv."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecMonitor  # noqa: E402

import kpremia  # noqa: E402,F401  (registers kpremia/KPremia-v0)
from kpremia.core.errors import UserError  # noqa: E402
from kpremia.envs.batched import BatchedEnv  # noqa: E402
from kpremia.envs.execution import ExecutionRules  # noqa: E402
from kpremia.envs.gym_env import KPremiaGymEnv  # noqa: E402
from kpremia.envs.render import HEIGHT, WIDTH  # noqa: E402
from kpremia.envs.sb3 import KPremiaVecEnv  # noqa: E402

from .conftest import build_market, random_walk_close  # noqa: E402

ENV_ID = "kpremia/KPremia-v0"


@pytest.fixture
def market():
    return build_market(random_walk_close(400), valid_from=20)


@pytest.fixture
def crash_market():
    """Prices fall 5 % a bar: holding USDT for 14 bars ruins the account (terminated)."""
    return build_market(1400.0 * 0.95 ** np.arange(300), valid_from=20)


def test_make_vec_env_and_ppo(market) -> None:
    """The usual SB3 route: make_vec_env asks gymnasium for render_mode='rgb_array'."""
    venv = make_vec_env(ENV_ID, n_envs=4, seed=0, env_kwargs={"market": market, "env": {"max_steps": 16}})
    assert isinstance(venv, DummyVecEnv) and venv.render_mode == "rgb_array"
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    assert model.num_timesteps == 128
    assert len(model.ep_info_buffer) >= 8 and all(1 <= ep["l"] <= 16 for ep in model.ep_info_buffer)
    frame = venv.render()  # four envs tiled by SB3
    assert frame.dtype == np.uint8 and frame.shape == (2 * HEIGHT, 2 * WIDTH, 3)


def test_sb3_env_checker_passes_on_the_gym_env(market) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(KPremiaGymEnv(market, env={"max_steps": 20}), warn=True)
        sb3_check_env(KPremiaGymEnv(market, render_mode="rgb_array", env={"max_steps": 20}), skip_render_check=False)


def _twin_run(market, n_envs: int, steps: int, seed: int, **kw):
    """Step KPremiaVecEnv and a plain BatchedEnv with the same seed and actions."""
    venv = KPremiaVecEnv(n_envs, market, seed=seed, env=kw)
    twin = BatchedEnv(market, n_envs, seed=seed, **kw)
    venv.seed(seed)
    obs = venv.reset()
    twin_obs = twin.reset(seed=seed)
    rng = np.random.default_rng(seed)
    yield obs, twin_obs, None, None
    for _ in range(steps):
        actions = rng.choice(3, size=n_envs, p=[0.15, 0.8, 0.05])  # hold, buy, sell: mostly holding USDT
        out = venv.step(actions)
        twin_out = twin.step(torch.as_tensor(actions))
        yield out, twin_out, venv, actions


def test_vecenv_matches_the_simulator_and_reports_autoreset_as_sb3_expects(crash_market) -> None:
    n_envs, n_term, n_trunc = 16, 0, 0
    for out, twin_out, venv, _ in _twin_run(crash_market, n_envs, 120, seed=3, max_steps=30,
                                           action_scheme="hold_buy_sell"):
        if venv is None:  # reset
            obs, twin_obs = out, twin_out
            assert all(np.array_equal(obs[k], twin_obs[k].numpy()) for k in twin_obs)
            continue
        obs, rewards, dones, infos = out
        t_obs, t_reward, t_term, t_trunc, t_info = twin_out
        assert all(np.array_equal(obs[k], t_obs[k].numpy()) for k in t_obs)
        assert rewards.dtype == np.float32 and np.array_equal(rewards, t_reward.numpy())
        assert np.array_equal(dones, (t_term | t_trunc).numpy())
        assert len(infos) == n_envs
        for i, info in enumerate(infos):
            assert info["TimeLimit.truncated"] == bool(t_trunc[i] and not t_term[i])
            assert info["episode_length"] == int(t_info["episode_length"][i])
            if dones[i]:
                final = info["terminal_observation"]
                assert set(final) == set(obs)
                # the auto-reset observation is the simulator's final_obs, not the next episode's first
                assert all(np.array_equal(final[k], t_info["final_obs"][k][i].numpy()) for k in final)
                assert final in venv.observation_space
            else:
                assert "terminal_observation" not in info
        for i in range(n_envs):
            assert {k: v[i] for k, v in obs.items()} in venv.observation_space
        n_term += int(t_term.sum())
        n_trunc += int(t_trunc.sum())
    assert n_term > 0 and n_trunc > 0  # both kinds of episode end were exercised


def test_ppo_trains_on_the_batched_vecenv(market) -> None:
    venv = VecCheckNan(VecMonitor(KPremiaVecEnv(32, market, seed=0, env={"max_steps": 16})), raise_exception=True)
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=128, n_epochs=2, seed=0, device="cpu")
    assert model.get_env().unwrapped is venv.unwrapped  # used as is, not re-wrapped in a DummyVecEnv
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=32 * 16 * 3)
    assert model.num_timesteps == 32 * 16 * 3
    # every env finishes at least 3 episodes (16 steps, or fewer where a start is near the split's end)
    assert len(model.ep_info_buffer) >= 3 * 32 and all(1 <= ep["l"] <= 16 for ep in model.ep_info_buffer)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    rewards, lengths = evaluate_policy(model, VecMonitor(KPremiaVecEnv(4, market, seed=1, env={"max_steps": 16})),
                                       n_eval_episodes=4, return_episode_rewards=True)
    assert len(lengths) == 4 and all(1 <= n <= 16 for n in lengths) and all(np.isfinite(rewards))


def test_vecenv_seeding_and_attributes(market) -> None:
    venv = KPremiaVecEnv(8, market, env={"max_steps": 16})
    venv.seed(7)
    a = venv.reset()
    venv.seed(7)
    b = venv.reset()
    c = venv.reset()  # no new seed: the generator moves on
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert venv.get_attr("rules") == [ExecutionRules()] * 8 and venv.get_attr("n_actions", [0, 3]) == [2, 2]
    venv.set_attr("rules", ExecutionRules(fee_rate=0.0005))
    assert venv.env.rules.fee_rate == 0.0005 and venv.env_is_wrapped(VecMonitor) == [False] * 8
    with pytest.raises(UserError, match="3 actions for 8 envs"):
        venv.step(np.zeros(3, dtype=np.int64))


def test_vecenv_renders_env_zero(market) -> None:
    venv = KPremiaVecEnv(8, market, render_mode="rgb_array", env={"max_steps": 16})
    assert venv.metadata["render_fps"] > 0 and "rgb_array" in venv.metadata["render_modes"]
    venv.reset()
    for _ in range(5):
        venv.step(np.ones(8, dtype=np.int64))
    frame = venv.render()
    assert frame.dtype == np.uint8 and frame.shape == (HEIGHT, WIDTH, 3)
    assert KPremiaVecEnv(2, market, render_mode="ansi").render().startswith("no episode")


def test_video_recorder(market, tmp_path) -> None:
    pytest.importorskip("moviepy")
    from stable_baselines3.common.vec_env import VecVideoRecorder

    venv = VecVideoRecorder(KPremiaVecEnv(4, market, render_mode="rgb_array", env={"max_steps": 16}), str(tmp_path),
                            record_video_trigger=lambda step: step == 0, video_length=10)
    venv.reset()
    for _ in range(12):
        venv.step(np.zeros(4, dtype=np.int64))
    venv.close()
    assert list(tmp_path.glob("*.mp4"))


def test_missing_sb3_is_one_clear_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    monkeypatch.setitem(sys.modules, "stable_baselines3.common", None)
    monkeypatch.setitem(sys.modules, "stable_baselines3.common.vec_env", None)
    monkeypatch.delitem(sys.modules, "kpremia.envs.sb3")
    with pytest.raises(UserError, match=r"needs stable-baselines3.*pip install 'kpremia\[bench\]'"):
        import kpremia.envs.sb3  # noqa: F401
