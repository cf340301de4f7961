"""KPremiaGymEnv: a gymnasium.Env over one environment of the batched simulator.

For interop with libraries that speak gymnasium (Stable-Baselines3, RLlib,
their wrappers and checkers).  It is :class:`~kpremia.envs.batched.BatchedEnv`
with ``n_envs=1``, so a policy sees exactly the fills, fees and rewards it
would see in training; it is not the fast path (use BatchedEnv for that).

Gymnasium expects the caller to ``reset()`` after an episode ends, so where the
batched env has already auto-reset, :meth:`KPremiaGymEnv.step` returns the
observation the episode ended on (``info["final_obs"]`` of the batch), not the
first one of the next episode.  Registered as ``kpremia/KPremia-v0`` on
``import kpremia``; ``gymnasium.make("kpremia/KPremia-v0")`` builds it over the
train split of the default synthetic market.

Rendering follows gymnasium: the mode is fixed at construction, listed in
``metadata["render_modes"]``; ``"rgb_array"`` draws the episode so far (price,
premium, position, equity: :mod:`kpremia.envs.render`) and ``"ansi"`` returns a
text line.  Stable-Baselines3's ``make_vec_env`` asks for ``"rgb_array"``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from kpremia.data.tensors import MarketTensors
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.numpy_batched import RENDER_FPS, RENDER_MODES, check_render_mode, observation_space
from kpremia.envs.render import EpisodeHistory, render
from kpremia.errors import UserError

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def default_market_data() -> Any:
    """The default synthetic market (seed 0), train and val splits, built once per process."""
    try:
        from kpremia.data.market import build_market
    except ModuleNotFoundError as exc:
        raise UserError(f"the default market needs the data layer ({exc.name} is missing); "
                        "pass KPremiaGymEnv(market=...) with a MarketTensors") from None
    from kpremia.registry import DATA_SOURCES

    frame, _ = DATA_SOURCES.get("synthetic")(seed=0).load()
    return build_market(frame, split_cfg={}, window_15m=15, window_1d=10, window_premium=10,
                        splits=("train", "val"), device="cpu")


def default_market() -> MarketTensors:
    """Train split of the default synthetic market (what ``gymnasium.make`` trades)."""
    return default_market_data().tensors["train"]


class KPremiaGymEnv(gym.Env):
    """One kimchi-premium trading env with gymnasium's API.

    Args:
        market: the split to trade; ``None`` builds the default synthetic train split.
        render_mode: ``None`` (no rendering), ``"rgb_array"`` (an ``[H, W, 3]`` uint8
            picture of the episode so far) or ``"ansi"`` (a text line).
        **env_kwargs: :class:`BatchedEnv` keyword arguments (``fee_rate``,
            ``action_scheme``, ``max_steps``, ``seed``, ...); ``n_envs`` is always 1.
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(self, market: MarketTensors | None = None, render_mode: str | None = None,
                 **env_kwargs: Any) -> None:
        check_render_mode(render_mode, "KPremiaGymEnv")
        if "n_envs" in env_kwargs:
            raise UserError("KPremiaGymEnv is one env; drop n_envs (use BatchedEnv for many)")
        self.render_mode = render_mode
        self.env = BatchedEnv(market if market is not None else default_market(), 1, **env_kwargs)
        self.observation_space = observation_space(self.env.spec)
        self.action_space = spaces.Discrete(self.env.n_actions)
        self._history = EpisodeHistory()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode; ``seed`` re-seeds the episode-start generator."""
        super().reset(seed=seed)
        obs = self.env.reset(seed=seed)
        env = self.env
        if self.render_mode is not None:
            self._history.start(int(env.t[0]), float(env.value[0]))
        info = {
            "portfolio_value_krw": float(env.value[0]),
            "usdt_weight": 0.0,
            "t": int(env.t[0]),
        }
        return _numpy(obs), info

    def step(self, action: int | np.integer) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """One bar: act at the close, fill at the next open, reward at the next close."""
        actions = torch.full((1,), int(action), dtype=torch.long, device=self.env.device)
        t_before = int(self.env.t[0]) if self.render_mode is not None else 0
        _, reward, terminated, truncated, info = self.env.step(actions)
        # The batch has already auto-reset; gymnasium wants the last obs of the episode.
        obs = _numpy(info["final_obs"])
        traded = bool(info["traded"][0])
        out = {
            "portfolio_value_krw": float(info["portfolio_value_krw"][0]),
            "usdt_weight": float(info["usdt_weight"][0]),
            "fee_krw": float(info["fee_krw"][0]),
            "traded": traded,
            # 0.0 rather than the batch's NaN when nothing traded: gymnasium compares infos with ==
            "fill_price": float(info["fill_price"][0]) if traded else 0.0,
            "episode_return": float(info["episode_return"][0]),
            "episode_length": int(info["episode_length"][0]),
        }
        if self.render_mode is not None:
            done = bool(terminated[0]) or bool(truncated[0])
            # the bar the step ended on: the env's own t while it runs on; after an auto-reset the
            # step's span (a decision may cover several bars), at most the split's last bar
            ended_at = (min(t_before + getattr(self.env, "decision_every", 1), self.env.market.n_bars - 1)
                        if done else int(self.env.t[0]))
            self._history.append(ended_at, out["usdt_weight"], out["portfolio_value_krw"])
        return obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), out

    def render(self) -> np.ndarray | str | None:
        """The episode so far in the env's ``render_mode`` (``None`` when it has none)."""
        return render(self.render_mode, self.env.market, self._history)


def _numpy(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Row 0 of a batched obs as fresh float32 numpy arrays (never shared between calls)."""
    return {k: v[0].detach().cpu().numpy().astype(np.float32, copy=True) for k, v in obs.items()}
