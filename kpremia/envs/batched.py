"""BatchedEnv: N trading environments held in tensors, stepped together.

Why a batched simulator instead of N gymnasium envs: an env step here is a few
gathers from precomputed market tables plus the fill arithmetic, so thousands of
envs cost about as much as one when they live in the same tensors, and rollouts
stay on the training device with no numpy round-trip.

Rules the implementation keeps (they are what make it fast and exact):

* no Python loop over envs and no host sync inside :meth:`BatchedEnv.step`
  (no ``.item()``, ``.cpu()``, ``bool(tensor)``, ``nonzero()``): every
  per-env choice is a ``torch.where``;
* random episode starts come from a dedicated ``torch.Generator`` that draws
  ``N`` starts every step, used only where an env resets, so the random
  stream never depends on the data and a state dict resumes bit-exactly;
* money in float64 (:mod:`kpremia.envs.execution` owns every fill rule),
  observations in float32;
* *terminated* (ruin) and *truncated* (``max_steps`` or the split's last bar)
  stay separate flags; an env is never both (ruin wins).

Observations: each call gathers all keys of all envs in one ``index_select``
from a fused ``[bars, D]`` table, so the tensors of an obs dict are column
views of one fresh buffer (new memory every call, safe to keep; not
contiguous: use ``reshape``/``flatten``, not ``view``).

Timing: the observation at bar ``t`` describes the close of ``t``; the action
taken on it fills at the open of ``t + 1`` (which has moved away from the close
the agent saw, and every fill crosses half the bid/ask spread) under the env's
:class:`~kpremia.envs.execution.ExecutionRules`; the reward of each bar is
:meth:`kpremia.envs.reward.RewardRule.bar` (``log(V_{t+1} / V_t)`` with ``V``
marked at the closes, ``fx_hedged`` and the penalties as configured).

Decision interval: with a :class:`~kpremia.envs.clock.DecisionClock` of ``k``
bars, one :meth:`BatchedEnv.step` is one decision that spans ``k`` bars: the
action's order fills at the next open, the position is held for the ``k`` bars,
and the reward is the sum of the ``k`` per-bar rewards.  An episode that ends
inside the ``k`` bars ends there.  A learner's ``gamma`` is then a discount per
decision.  A negative action means "no order" in every scheme (the sequential
backtests use it to hold between decisions).

Defaults: every argument's default is the run config's (``configs/env/default.yaml``,
:class:`~kpremia.envs.config.EnvConfig`); :meth:`BatchedEnv.from_config` builds
the training env of a config.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from kpremia.core.bars import bar_of_minutes, bars_setting
from kpremia.core.errors import UserError
from kpremia.core.spec import (
    ACCOUNT,
    FEATURES,
    MARKET_KEYS,
    N_ACCOUNT,
    OBS_KEYS,
    PREMIUM,
    PRICE_1D,
    PRICE_BARS,
    ObsSpec,
    account_obs,
)
from kpremia.data.tensors import MarketTensors
from kpremia.envs import execution
from kpremia.envs.action_schemes import build_action_scheme
from kpremia.envs.clock import DecisionClock
from kpremia.envs.config import EnvConfig
from kpremia.envs.execution import ExecutionRules
from kpremia.envs.reward import RewardRule

log = logging.getLogger(__name__)

_STATE_KEYS = ("t", "krw", "usdt", "value", "log_value", "weight", "step_count")
_MIN_VALUE = 1e-9  # KRW; log() of a wiped-out (or negative, short) account stays finite
_DEFAULTS = EnvConfig()  # the config's defaults are the simulator's: one default per knob


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


class BatchedEnv:
    """``n_envs`` trading environments over one split of the market.

    Args:
        market: the split to trade (its tensors' device is the env's device).
        n_envs: number of environments.
        rules: fee, spread, slippage, tick, minimum order, shorting (:class:`ExecutionRules`).
        clock: bars per decision (:class:`DecisionClock`; see the module docstring).
        reward: the reward of a bar and its penalties (:class:`RewardRule`).
        action_scheme: a name in ``ACTION_SCHEMES``, a config node ``{name: ..., **options}``
            or a built scheme (see :func:`kpremia.envs.action_schemes.build_action_scheme`);
            ``None``: the config's default scheme.
        initial_krw: cash each episode starts with (all KRW, no USDT).
        ruin_fraction: an account is ruined when ``V < ruin_fraction * initial_krw``.
        max_steps: episode length limit in decisions (truncation), or a duration such as ``"1000h"``
            (in bars of the market's bar size); ``None`` = until the split ends.
        ruin_terminates: a ruined episode terminates (training); ``False`` lets it
            run on (backtests report the ruin but cover the whole split).
        random_start: episodes start at random bars in ``[valid_from, n_bars - 2]``;
            ``False`` starts every env at ``valid_from`` and runs to the split's end
            (validation, test, backtests).
        starts: with ``random_start=False``, the bar each env starts at (default: ``valid_from``
            for all): markets stacked by :func:`kpremia.data.tensors.concat_markets` are played side
            by side, each env from its own market's first valid row.
        seed: seed of the env's generator (episode starts).
    """

    def __init__(
        self,
        market: MarketTensors,
        n_envs: int,
        *,
        rules: ExecutionRules = _DEFAULTS.execution,
        clock: DecisionClock = _DEFAULTS.clock,
        reward: RewardRule = _DEFAULTS.reward_rule,
        action_scheme: str | Mapping[str, Any] | Any = None,
        initial_krw: float = _DEFAULTS.initial_krw,
        ruin_fraction: float = _DEFAULTS.ruin_fraction,
        max_steps: int | str | None = _DEFAULTS.max_steps,
        ruin_terminates: bool = True,
        random_start: bool = True,
        seed: int = 0,
        starts: Sequence[int] | Tensor | None = None,
    ) -> None:
        # The config's rules for the knobs that come in as plain values (the rest are checked objects).
        EnvConfig.check_fields(n_envs=n_envs, max_steps=max_steps, initial_krw=initial_krw,
                               ruin_fraction=ruin_fraction)
        for name, value, kind in (("rules", rules, ExecutionRules), ("clock", clock, DecisionClock),
                                  ("reward", reward, RewardRule)):
            _check(isinstance(value, kind), f"BatchedEnv({name}=...) takes a {kind.__name__}, not "
                                            f"{type(value).__name__}; build one, e.g. {kind.__name__}()")
        missing = [k for k in MARKET_KEYS if k not in market.obs]
        _check(not missing, f"market split {market.name!r} has no obs tables {missing}; "
                            "build it with kpremia.data.market.build_market")
        _check(market.n_bars - 2 >= market.valid_from,
               f"market split {market.name!r} has {market.n_bars} bars but windows need {market.valid_from}; "
               "use a longer split or smaller windows")

        self.market = market
        self.n_envs = int(n_envs)
        self.rules = rules
        # numbers are bars; a duration ("4h") is bars of this market's bar size (kpremia.core.bars.bars_setting)
        self.clock = clock.at(market.bar_minutes)
        self.reward_rule = reward
        self.max_steps = bars_setting(max_steps, bar_of_minutes(market.bar_minutes), "env.max_steps")
        self.initial_krw = float(initial_krw)
        self.ruin_fraction = float(ruin_fraction)
        self.ruin_terminates = bool(ruin_terminates)
        self.random_start = bool(random_start)
        self.seed = int(seed)
        if action_scheme is None:
            action_scheme = _DEFAULTS.action_scheme
        self.scheme = build_action_scheme(action_scheme, allow_short=rules.allow_short)
        self.action_scheme = action_scheme if isinstance(action_scheme, str) else (
            action_scheme.get("name") if isinstance(action_scheme, Mapping) else type(action_scheme).__name__)

        dev = market.device
        self.device = dev
        money = execution.MONEY_DTYPE
        # Open and close side by side: one gather per step gives both prices of bar t + 1.
        # (+ the USD/KRW log return over each bar for the fx-hedged reward).
        fx = market.fx.to(dev, money)
        fx_ret = torch.zeros_like(fx)
        fx_ret[1:] = torch.log(fx[1:] / fx[:-1])
        self._prices = torch.stack((market.open, market.close), dim=1).to(dev, money)
        self._prices = torch.cat((self._prices, fx_ret[:, None]), dim=1).contiguous()
        # All market obs tables side by side plus zero account columns: one gather per
        # observation fills every key, and the account is written into its columns.
        tables = [market.obs[k].to(dev, torch.float32).reshape(market.n_bars, -1) for k in MARKET_KEYS]
        width = {k: int(market.obs[k].shape[1]) for k in MARKET_KEYS}
        self.spec = ObsSpec.default(window_bars=width[PRICE_BARS], window_1d=width[PRICE_1D],
                                    window_premium=width[PREMIUM], n_features=width[FEATURES],
                                    feature_names=market.feature_names)
        shapes = dict(self.spec.shapes)
        widths = {k: math.prod(shapes[k]) for k in OBS_KEYS}
        self._table = torch.cat([tables[MARKET_KEYS.index(k)] if k != ACCOUNT
                                 else torch.zeros(market.n_bars, N_ACCOUNT, device=dev) for k in OBS_KEYS], dim=1)
        self._table = self._table.contiguous()
        self._obs_widths = [widths[k] for k in OBS_KEYS]
        col = 0
        for k in OBS_KEYS:
            if k == ACCOUNT:
                self._account_cols = slice(col, col + N_ACCOUNT)
            col += widths[k]
        self._n_bars = market.n_bars
        self._last_bar = market.n_bars - 1  # an episode must end here: no next open to fill at
        self._valid_from = int(market.valid_from)
        self._log_initial = math.log(self.initial_krw)
        self._ruin_value = self.ruin_fraction * self.initial_krw
        self._max_steps = self.max_steps if self.max_steps is not None else market.n_bars + 1
        self._account_reset = torch.tensor([1.0, 0.0, 0.0], device=dev)  # all KRW, no return yet

        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(self.seed)
        n = self.n_envs
        self._fixed_starts = torch.full((n,), self._valid_from, dtype=torch.long, device=dev)
        if starts is not None:
            _check(not self.random_start, "BatchedEnv(starts=...) is for random_start=False (sequential envs)")
            fixed = torch.as_tensor(starts, dtype=torch.long).to(dev).reshape(-1)
            _check(fixed.numel() == n and bool(((fixed >= 0) & (fixed < self._last_bar)).all()),
                   f"BatchedEnv(starts=...) needs {n} bars in [0, {self._last_bar - 1}], one per env")
            self._fixed_starts = fixed
        self.t = self._fixed_starts.clone()
        self.krw = torch.full((n,), self.initial_krw, dtype=money, device=dev)
        self.usdt = torch.zeros(n, dtype=money, device=dev)
        self.value = self.krw.clone()  # V at the close of bar t
        self.log_value = torch.full((n,), self._log_initial, dtype=money, device=dev)
        self.weight = torch.zeros(n, dtype=money, device=dev)  # USDT weight at the close of bar t
        self.step_count = torch.zeros(n, dtype=torch.long, device=dev)
        self._is_reset = False

    @classmethod
    def from_config(cls, market: MarketTensors, env: EnvConfig | Mapping[str, Any], *, n_envs: int | None = None,
                    seed: int = 0) -> BatchedEnv:
        """The training env of an ``env`` config: ``env.n_envs`` (or ``n_envs``) episodes of
        ``env.max_steps`` decisions from random starts, with the config's market model.

        Sequential envs over a whole split (validation, test, backtests) are built by
        :func:`kpremia.eval.backtest.make_sequential_env` from the same config.
        """
        env = EnvConfig.of(env).in_bars(market.bar_minutes)  # durations as bars of this market (EnvConfig.in_bars)
        return cls(market, env.n_envs if n_envs is None else n_envs, rules=env.execution, clock=env.clock,
                   reward=env.reward_rule, action_scheme=env.action_scheme, initial_krw=env.initial_krw,
                   ruin_fraction=env.ruin_fraction, max_steps=env.max_steps, random_start=True, seed=seed)

    # ------------------------------------------------------------------ public API
    @property
    def n_actions(self) -> int:
        return int(self.scheme.n_actions)

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(self.scheme.action_names)

    def reset(self, seed: int | None = None) -> dict[str, Tensor]:
        """Start a new episode in every env; ``seed`` re-seeds the generator first."""
        if seed is not None:
            self.seed = int(seed)
            self.generator.manual_seed(self.seed)
        self.t = self._draw_starts()
        self.krw = torch.full_like(self.krw, self.initial_krw)
        self.usdt = torch.zeros_like(self.usdt)
        self.value = self.krw.clone()
        self.log_value = torch.full_like(self.value, self._log_initial)
        self.weight = torch.zeros_like(self.weight)
        self.step_count = torch.zeros_like(self.step_count)
        self._is_reset = True
        rows = self._table.index_select(0, self.t)
        rows[:, self._account_cols] = self._account_reset
        return self._split(rows)

    def step(self, actions: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Act in every env; returns ``(obs, reward, terminated, truncated, info)``.

        ``obs`` is the next observation, already the first of a new episode where
        the old one ended; ``info["final_obs"]`` holds the observation each env
        was in after this step before any reset (equal to ``obs`` where not done).
        """
        if not self._is_reset:
            raise RuntimeError("BatchedEnv.step() called before reset(); call env.reset() first")
        n = self.n_envs
        actions = actions.to(device=self.device, dtype=torch.long)
        no_order = actions < 0
        target = self.scheme.target_weight(actions.clamp_min(0), self.weight)
        target = torch.where(no_order, torch.full_like(target, float("nan")), target)

        state = (self.t, self.krw, self.usdt, self.value, self.log_value, self.step_count)
        bar = self._bar(state, target)
        state, reward, terminated, truncated, fill = bar[:5]
        fee_krw, traded, ruined = fill.fee_krw, fill.traded, bar[5]
        if self.clock.decision_every > 1:
            state, reward, terminated, truncated, ruined = self._hold(state, reward, terminated, truncated, ruined)
        t1, krw1, usdt1, value1, log_value1, steps = state
        done = terminated | truncated
        weight1 = (value1 - krw1) / value1  # USDT weight at the close (exactly 0 without USDT)
        episode_return = log_value1 - self._log_initial

        # Auto-reset: envs that are done start over; the others carry on.
        new_t = torch.where(done, self._draw_starts(), t1)
        account = account_obs(krw1, value1, weight1, episode_return)
        rows = self._table.index_select(0, torch.cat((t1, new_t)))  # final obs rows, then next obs rows
        rows[:n, self._account_cols] = account
        rows[n:, self._account_cols] = torch.where(done[:, None], self._account_reset, account)
        final_obs, obs = self._split(rows[:n]), self._split(rows[n:])

        self.t = new_t
        self.krw = torch.where(done, self.initial_krw, krw1)
        self.usdt = torch.where(done, 0.0, usdt1)
        self.value = torch.where(done, self.initial_krw, value1)
        self.log_value = torch.where(done, self._log_initial, log_value1)
        self.weight = torch.where(done, 0.0, weight1)
        self.step_count = torch.where(done, 0, steps)

        info = {
            "final_obs": final_obs,
            "portfolio_value_krw": value1,
            "usdt_weight": weight1,
            "fee_krw": fee_krw,
            "traded": traded,
            "ruined": ruined,
            "fill_price": fill.fill_price,
            "episode_return": episode_return,
            "episode_length": steps,
            "t": new_t,
        }
        return obs, reward.float(), terminated, truncated, info

    def _bar(self, state: tuple[Tensor, ...], target: Tensor) -> tuple[Any, ...]:
        """One bar for every env from ``state`` = (t, krw, usdt, value, log_value, step_count).

        Returns ``(next_state, reward, terminated, truncated, fill, ruined)``; nothing is
        reset and no attribute changes (the caller decides what to keep).
        """
        t, krw, usdt, value, log_value, step_count = state
        t1 = (t + 1).clamp_max(self._last_bar)  # an env that already ended stays in range
        open1, close1, fx_ret1 = self._prices.index_select(0, t1).unbind(1)
        fill = execution.rebalance(krw, usdt, target, open1, self.rules)
        usdt_value = fill.usdt * close1
        value1 = fill.krw + usdt_value
        log_value1 = torch.log(value1.clamp_min(_MIN_VALUE))
        rule = self.reward_rule
        reward = rule.bar(log_value, log_value1, usdt_value / value1 if rule.reward == "fx_hedged" else None,
                          fx_ret1, fill.usdt == 0 if rule.flat_penalty else None, fill.notional_krw, value)
        steps = step_count + 1
        ruined = value1 < self._ruin_value
        terminated = ruined if self.ruin_terminates else torch.zeros_like(ruined)
        truncated = ((steps >= self._max_steps) | (t1 >= self._last_bar)) & ~terminated
        return (t1, fill.krw, fill.usdt, value1, log_value1, steps), reward, terminated, truncated, fill, ruined

    def _hold(self, state: tuple[Tensor, ...], reward: Tensor, terminated: Tensor, truncated: Tensor,
              ruined: Tensor) -> tuple[Any, ...]:
        """The ``decision_every - 1`` bars after a decision's fill, all at once.

        No order is sent while holding, so the account (KRW, USDT) is fixed and each
        bar's value, reward and end flags are a function of that bar's close alone:
        one gather of ``[N, k - 1]`` rows instead of ``k - 1`` simulator steps.  An env
        whose episode ends at bar ``j`` keeps bar ``j``'s state and the rewards up to
        it; an env that ended on the fill bar keeps that bar's state.
        """
        t1, krw, usdt, value1, log_value1, steps1 = state
        k = self.clock.decision_every
        j = torch.arange(1, k, device=self.device)
        t = (t1[:, None] + j).clamp_max(self._last_bar)  # [N, k-1]
        prices = self._prices[t]  # [N, k-1, 3]: open, close, fx log return
        close, fx_ret = prices[..., 1], prices[..., 2]
        usdt_value = usdt[:, None] * close
        value = krw[:, None] + usdt_value
        log_value = torch.log(value.clamp_min(_MIN_VALUE))
        rule = self.reward_rule
        r = rule.bar(torch.cat((log_value1[:, None], log_value[:, :-1]), dim=1), log_value,
                     usdt_value / value if rule.reward == "fx_hedged" else None, fx_ret,
                     (usdt == 0)[:, None] if rule.flat_penalty else None)
        steps = steps1[:, None] + j
        ruin = value < self._ruin_value
        term = ruin if self.ruin_terminates else torch.zeros_like(ruin)
        trunc = ((steps >= self._max_steps) | (t >= self._last_bar)) & ~term
        ends = term | trunc
        # Bars that happen: all of them for an env still running after the fill bar, up to and
        # including the first bar that ends its episode; none for an env that already ended.
        ended_before = torch.cumsum(ends.int(), dim=1) - ends.int() > 0
        happens = ~ended_before & ~(terminated | truncated)[:, None]
        last = (happens.int().sum(dim=1) - 1).clamp_min(0)  # index of the last bar that happened
        moved = happens.any(dim=1)
        pick = lambda x: x.gather(1, last[:, None]).squeeze(1)  # noqa: E731
        reward = reward + (r * happens).sum(dim=1)
        terminated = terminated | (moved & pick(term))
        truncated = truncated | (moved & pick(trunc))
        ruined = ruined | (ruin & happens).any(dim=1)
        new_state = (torch.where(moved, pick(t), t1), krw, usdt, torch.where(moved, pick(value), value1),
                     torch.where(moved, pick(log_value), log_value1), torch.where(moved, pick(steps), steps1))
        return new_state, reward, terminated, truncated, ruined

    def state_dict(self) -> dict[str, Any]:
        """Every state tensor and the generator state: loading it resumes bit-exactly."""
        sd: dict[str, Any] = {k: getattr(self, k).clone() for k in _STATE_KEYS}
        sd["generator"] = self.generator.get_state()
        sd["seed"] = self.seed
        sd["n_envs"] = self.n_envs
        sd["n_bars"] = self._n_bars
        sd["is_reset"] = self._is_reset
        return sd

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from an env of the same size over the same split."""
        _check(int(state["n_envs"]) == self.n_envs,
               f"env state has n_envs={state['n_envs']} but this env has {self.n_envs}; "
               "resume with the same env.n_envs")
        _check(int(state["n_bars"]) == self._n_bars,
               f"env state was taken on a split of {state['n_bars']} bars, this one has {self._n_bars}; "
               "resume on the same data split")
        for k in _STATE_KEYS:
            setattr(self, k, state[k].to(self.device).clone())
        self.generator.set_state(state["generator"])
        self.seed = int(state["seed"])
        self._is_reset = bool(state["is_reset"])

    def __repr__(self) -> str:
        return (f"BatchedEnv(n_envs={self.n_envs}, split={self.market.name!r}, bars={self._n_bars}, "
                f"scheme={self.action_scheme!r}, {self.rules!r}, {self.clock!r}, device={self.device})")

    # ------------------------------------------------------------------ internals
    def _draw_starts(self) -> Tensor:
        """Start bars for every env (drawn every call so the stream is data-independent)."""
        if not self.random_start:
            return self._fixed_starts
        return torch.randint(self._valid_from, self._last_bar, (self.n_envs,), generator=self.generator,
                             device=self.device)

    def _split(self, rows: Tensor) -> dict[str, Tensor]:
        """Per-key views of gathered rows ``[N, D]`` (column slices, shaped as the spec says)."""
        parts = rows.split(self._obs_widths, dim=1)
        return {k: part if len(self.spec.shapes[k]) == 1 else part.reshape(-1, *self.spec.shapes[k])
                for k, part in zip(OBS_KEYS, parts)}

