"""BatchedEnv: timing, rewards, episode ends, auto-reset, seeding, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.core.spec import OBS_KEYS
from kpremia.data.tensors import MarketTensors
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.execution import ExecutionRules
from kpremia.envs.reward import RewardRule

from .conftest import build_market, random_walk_close

HOLD, SIGNAL = 0, 1


def const(value: int, n_envs: int = 1) -> torch.Tensor:
    return torch.full((n_envs,), value, dtype=torch.long)


def bar_of(obs: dict[str, torch.Tensor]) -> list[int]:
    """The bar each env's observation was gathered from (column 0 of the fixture tables)."""
    return obs["features"][:, 0].round().long().tolist()


def test_obs_matches_spec(walk_market) -> None:
    env = BatchedEnv(walk_market, 8, seed=1)
    obs = env.reset()
    assert list(obs) == list(OBS_KEYS) == env.spec.keys()
    for k in OBS_KEYS:
        assert obs[k].shape == (8, *env.spec[k]) and obs[k].dtype == torch.float32
    assert env.spec["account"] == (3,) and env.spec["features"] == (4,)
    assert env.spec.feature_names == walk_market.feature_names
    assert torch.equal(obs["account"], torch.tensor([[1.0, 0.0, 0.0]]).expand(8, 3))
    assert env.n_actions == 2 and env.action_names == ("hold", "signal")


def test_holding_cash_keeps_value_and_gives_zero_reward(walk_market) -> None:
    env = BatchedEnv(walk_market, 4, seed=0)
    env.reset()
    for _ in range(30):
        obs, reward, terminated, truncated, info = env.step(const(HOLD, 4))
        assert torch.equal(reward, torch.zeros(4))
        assert torch.equal(info["portfolio_value_krw"], torch.full((4,), 1_000_000.0, dtype=torch.float64))
        assert not info["traded"].any() and torch.equal(info["fee_krw"], torch.zeros(4, dtype=torch.float64))
        assert torch.equal(obs["account"], torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3))


def test_decision_at_close_fills_at_next_open() -> None:
    n = 40
    close = np.full(n, 1000.0)
    open_ = np.full(n, 1100.0)  # every bar opens 10 % above the previous close
    market = build_market(close, open_, valid_from=5)
    env = BatchedEnv(market, 1, rules=ExecutionRules(fee_rate=0.0, spread_krw=0.0), random_start=False, max_steps=None)
    env.reset()
    _, reward, _, _, info = env.step(const(SIGNAL))
    assert info["fill_price"].item() == 1100.0  # the open of t+1, not the close of t
    assert info["usdt_weight"].item() == pytest.approx(1.0)
    assert info["portfolio_value_krw"].item() == pytest.approx(1_000_000.0 / 1100.0 * 1000.0)
    assert reward.item() == pytest.approx(math.log(1000.0 / 1100.0), rel=1e-6)
    assert info["t"].item() == 6


def test_reward_is_log_value_ratio_and_sums_to_episode_return(walk_market) -> None:
    env = BatchedEnv(walk_market, 3, rules=ExecutionRules(fee_rate=0.0005), max_steps=50, seed=3)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    total = torch.zeros(3, dtype=torch.float64)
    prev_value = torch.full((3,), 1_000_000.0, dtype=torch.float64)
    for i in range(50):
        _, reward, terminated, truncated, info = env.step(torch.randint(0, 2, (3,), generator=gen))
        value = info["portfolio_value_krw"]
        assert torch.allclose(reward.double(), torch.log(value / prev_value), atol=1e-6)
        total += torch.log(value / prev_value)
        prev_value = value
    assert truncated.all() and not terminated.any()  # max_steps = 50 reached
    assert torch.allclose(info["episode_return"], total, atol=1e-9)
    assert info["episode_length"].tolist() == [50, 50, 50]


def test_truncation_at_max_steps_auto_resets_with_final_obs(walk_market) -> None:
    env = BatchedEnv(walk_market, 2, max_steps=5, random_start=False)
    obs = env.reset()
    assert bar_of(obs) == [20, 20]
    for i in range(4):
        obs, _, terminated, truncated, info = env.step(const(SIGNAL if i == 0 else HOLD, 2))
        assert not truncated.any() and not terminated.any()
        assert bar_of(obs) == [21 + i] * 2 and bar_of(info["final_obs"]) == bar_of(obs)
    obs, _, terminated, truncated, info = env.step(const(HOLD, 2))
    assert truncated.all() and not terminated.any()
    assert bar_of(info["final_obs"]) == [25, 25]  # where the episode ended
    assert bar_of(obs) == [20, 20] and info["t"].tolist() == [20, 20]  # the new episode
    assert info["final_obs"]["account"][0, 1].item() > 0.9  # still holding USDT at the end
    assert torch.equal(obs["account"], torch.tensor([[1.0, 0.0, 0.0]]).expand(2, 3))
    assert info["episode_length"].tolist() == [5, 5]


def test_truncation_at_the_end_of_the_split() -> None:
    market = build_market(random_walk_close(30), valid_from=20)
    env = BatchedEnv(market, 1, max_steps=None, random_start=False)
    env.reset()
    for i in range(8):
        _, _, terminated, truncated, _ = env.step(const(HOLD))
        assert not truncated.item() and not terminated.item()
    _, _, terminated, truncated, info = env.step(const(HOLD))
    assert truncated.item() and not terminated.item()
    assert bar_of(info["final_obs"]) == [29] and info["episode_length"].item() == 9


def test_random_starts_stay_inside_the_split(walk_market) -> None:
    env = BatchedEnv(walk_market, 4096, seed=0)
    t = env.reset()["features"][:, 0]
    assert t.min().item() >= 20 and t.max().item() <= walk_market.n_bars - 2
    assert t.min().item() < 40 and t.max().item() > walk_market.n_bars - 20  # the whole range is used


def crash_market(n: int = 40, start: int = 5) -> MarketTensors:
    close = np.full(n, 1000.0)
    close[start + 2:] = 1000.0 * 0.8 ** np.arange(1, n - start - 1)  # -20 % a bar
    return build_market(close, valid_from=start)


def test_ruin_terminates_and_is_not_truncated() -> None:
    env = BatchedEnv(crash_market(), 1, rules=ExecutionRules(fee_rate=0.0, spread_krw=0.0), random_start=False, max_steps=4)
    env.reset()
    env.step(const(SIGNAL))  # all in USDT at 1000
    _, _, terminated, truncated, _ = env.step(const(HOLD))  # close 800: V = 800k
    assert not terminated.item()
    _, _, terminated, truncated, _ = env.step(const(HOLD))  # 640k
    assert not terminated.item()
    _, reward, terminated, truncated, info = env.step(const(HOLD))  # 512k, and max_steps = 4
    assert not terminated.item() and truncated.item()  # 512k is not ruin: max_steps ends it
    env = BatchedEnv(crash_market(), 1, rules=ExecutionRules(fee_rate=0.0, spread_krw=0.0), random_start=False, max_steps=5)
    env.reset()
    env.step(const(SIGNAL))
    values = []
    for _ in range(4):
        _, _, terminated, truncated, info = env.step(const(HOLD))
        values.append(info["portfolio_value_krw"].item())
    # 409.6k < 500k at step 5, which is also max_steps: ruin wins, the flags stay apart
    assert values[-1] == pytest.approx(409_600.0)
    assert terminated.item() and not truncated.item()
    assert info["episode_return"].item() == pytest.approx(math.log(0.4096))


def test_ruin_fraction_near_one_with_a_small_drop() -> None:
    close = np.full(30, 1000.0)
    close[8:] = 985.0  # -1.5 %
    market = build_market(close, valid_from=5)
    env = BatchedEnv(market, 1, rules=ExecutionRules(fee_rate=0.0, spread_krw=0.0), ruin_fraction=0.99, random_start=False,
                     max_steps=None)
    env.reset()
    _, _, terminated, _, _ = env.step(const(SIGNAL))  # bar 6
    _, _, terminated, _, _ = env.step(const(HOLD))  # bar 7
    assert not terminated.item()
    obs, _, terminated, truncated, info = env.step(const(HOLD))  # bar 8: V = 985k < 990k
    assert terminated.item() and not truncated.item()
    assert bar_of(obs) == [5]  # auto-reset to the start of the split


def test_a_short_is_ruined_by_a_rally() -> None:
    close = np.full(30, 1000.0)
    close[8:] = 1600.0  # +60 %
    market = build_market(close, valid_from=5)
    env = BatchedEnv(market, 1, rules=ExecutionRules(fee_rate=0.0, spread_krw=0.0, allow_short=True),
                     random_start=False, max_steps=None,
                     action_scheme={"name": "target_weight", "weights": [-1.0, 0.0, 1.0]})
    env.reset()
    _, _, _, _, info = env.step(const(0))  # short 1000 USDT worth of the account
    assert info["usdt_weight"].item() == pytest.approx(-1.0)
    env.step(const(0))  # hold the short (target -1 again: no trade at a constant price)
    _, _, terminated, truncated, info = env.step(const(0))  # V = 2e6 - 1000 * 1600 = 400k
    assert info["portfolio_value_krw"].item() == pytest.approx(400_000.0)
    assert terminated.item() and not truncated.item()


def test_upbit_rules_in_the_env(walk_market) -> None:
    """Fills land on the 0.5 KRW tick, against the trader; orders under 5,000 KRW are skipped."""
    env = BatchedEnv(walk_market, 64, rules=ExecutionRules(fee_rate=0.0005, tick_size_krw=0.5, min_order_krw=5000.0),
                     initial_krw=4_000.0, max_steps=20, seed=0)
    env.reset()
    _, _, _, _, info = env.step(torch.ones(64, dtype=torch.long))
    assert not info["traded"].any()  # 4,000 KRW accounts cannot place an order
    env = BatchedEnv(walk_market, 64, rules=ExecutionRules(fee_rate=0.0005, tick_size_krw=0.5, min_order_krw=5000.0),
                     max_steps=20, seed=0)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        _, _, _, _, info = env.step(torch.randint(0, 2, (64,), generator=gen))
        price = info["fill_price"][info["traded"]]
        assert torch.equal(torch.remainder(price, 0.5), torch.zeros_like(price))
        assert torch.equal(info["fee_krw"][~info["traded"]], torch.zeros(int((~info["traded"]).sum()),
                                                                          dtype=torch.float64))


def test_short_weights_need_allow_short(walk_market) -> None:
    with pytest.raises(UserError, match="env.allow_short"):
        BatchedEnv(walk_market, 1, action_scheme={"name": "target_weight", "weights": [-1, 1]})


def test_penalties(walk_market) -> None:
    kw = dict(rules=ExecutionRules(fee_rate=0.001, spread_krw=0.0), random_start=False, max_steps=None)
    plain = BatchedEnv(walk_market, 1, **kw)
    penal = BatchedEnv(walk_market, 1, **kw, reward=RewardRule(turnover_penalty=0.01, flat_penalty=0.002))
    plain.reset(), penal.reset()
    for action, turnover, flat in [(HOLD, 0.0, 0.002), (SIGNAL, 0.01, 0.0), (HOLD, 0.0, 0.0), (SIGNAL, 0.01, 0.002)]:
        _, r0, _, _, info = plain.step(const(action))
        _, r1, _, _, _ = penal.step(const(action))
        assert (r0 - r1).item() == pytest.approx(turnover + flat, abs=1e-6)


def test_same_seed_same_trajectory_different_seed_differs(walk_market) -> None:
    def run(seed: int) -> list[torch.Tensor]:
        env = BatchedEnv(walk_market, 16, max_steps=20, seed=seed)
        out = [env.reset()["features"]]
        gen = torch.Generator().manual_seed(7)
        for _ in range(60):
            obs, reward, *_ = env.step(torch.randint(0, 2, (16,), generator=gen))
            out += [obs["features"], obs["account"], reward]
        return out

    a, b, c = run(5), run(5), run(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_reset_with_seed_reseeds(walk_market) -> None:
    env = BatchedEnv(walk_market, 16, seed=0)
    first = env.reset(seed=11)["features"]
    assert not torch.equal(env.reset()["features"], first)
    assert torch.equal(env.reset(seed=11)["features"], first)


def test_state_dict_round_trip_continues_identically(walk_market) -> None:
    env = BatchedEnv(walk_market, 32, rules=ExecutionRules(fee_rate=0.0005), max_steps=15, seed=2)
    env.reset()
    actions = torch.randint(0, 2, (80, 32), generator=torch.Generator().manual_seed(1))
    for a in actions[:30]:
        env.step(a)
    state = env.state_dict()

    def rest(e: BatchedEnv) -> list[torch.Tensor]:
        out = []
        for a in actions[30:]:
            obs, reward, terminated, truncated, info = e.step(a)
            out += [*obs.values(), reward, terminated, truncated, info["portfolio_value_krw"]]
        return out

    straight = rest(env)
    resumed = BatchedEnv(walk_market, 32, rules=ExecutionRules(fee_rate=0.0005), max_steps=15, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(straight, rest(resumed)))
    with pytest.raises(UserError, match="n_envs"):
        BatchedEnv(walk_market, 8).load_state_dict(state)


def test_envs_are_independent_of_the_batch_size(walk_market) -> None:
    """Env 0 of a batch of 64 behaves exactly like a batch of one (sequential starts)."""
    actions = torch.randint(0, 2, (120, 64), generator=torch.Generator().manual_seed(3))
    kw = dict(max_steps=40, rules=ExecutionRules(fee_rate=0.0005), random_start=False)
    one, many = BatchedEnv(walk_market, 1, **kw), BatchedEnv(walk_market, 64, **kw)
    one.reset(), many.reset()
    for a in actions:
        o1, r1, *_ = one.step(a[:1])
        o64, r64, *_ = many.step(a)
        assert torch.equal(r1, r64[:1]) and torch.equal(o1["account"], o64["account"][:1])


def test_step_never_syncs_with_the_host(walk_market, monkeypatch) -> None:
    """Every per-env decision is a tensor op: no .item(), bool(tensor), .cpu(), .tolist() in step."""
    env = BatchedEnv(walk_market, 8, reward=RewardRule(turnover_penalty=0.1, flat_penalty=0.1), max_steps=3)
    env.reset()
    actions = torch.ones(8, dtype=torch.long)

    def boom(*args, **kwargs):
        raise AssertionError("host sync inside step")

    for name in ("item", "__bool__", "cpu", "tolist", "numpy", "nonzero", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, boom)
    for _ in range(5):
        env.step(actions)


def test_bad_arguments_are_user_errors(walk_market) -> None:
    with pytest.raises(UserError, match="max_steps"):
        BatchedEnv(walk_market, 1, max_steps=0)
    with pytest.raises(UserError, match="fee_rate"):
        BatchedEnv(walk_market, 1, rules=ExecutionRules(fee_rate=1.0))
    with pytest.raises(UserError, match="action_scheme"):
        BatchedEnv(walk_market, 1, action_scheme="nope")
    with pytest.raises(UserError, match="env.action_scheme"):
        BatchedEnv(walk_market, 1, action_scheme={"name": "signal", "colour": 1})
    with pytest.raises(UserError, match="needs a name"):
        BatchedEnv(walk_market, 1, action_scheme={"sell_threshold": 0.2})
    with pytest.raises(RuntimeError, match="reset"):
        BatchedEnv(walk_market, 1).step(const(0))


def test_the_account_is_as_the_encoder_guide_describes_it(walk_market) -> None:
    """docs/write_an_encoder.md: `account` is not normalised; it is [KRW weight, USDT weight, episode log return]."""
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "write_an_encoder.md").read_text()
    assert "`account` is not normalised" in " ".join(guide.split())
    env = BatchedEnv(walk_market, 2, seed=0)
    assert torch.equal(env.reset()["account"], torch.tensor([[1.0, 0.0, 0.0]] * 2))
    for _ in range(5):
        obs, _, _, _, info = env.step(const(SIGNAL, 2))  # all in USDT, then all out, ...
    value = info["portfolio_value_krw"]
    usdt_weight = obs["account"][:, 1].double()
    assert torch.allclose(obs["account"][:, 0].double() + usdt_weight, torch.ones(2, dtype=torch.float64), atol=1e-6)
    assert ((usdt_weight == 0) | (usdt_weight > 0.99)).all()  # a weight, not a z-score
    assert torch.allclose(obs["account"][:, 2].double(), torch.log(value / 1_000_000.0), atol=1e-6)
