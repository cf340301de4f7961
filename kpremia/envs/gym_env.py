"""KPremiaGymEnv: a gymnasium.Env over one environment of the batched simulator.

For interop with libraries that speak gymnasium (Stable-Baselines3, RLlib,
their wrappers and checkers).  It is :class:`~kpremia.envs.batched.BatchedEnv`
with ``n_envs=1`` built from an experiment's env config and train split
(:mod:`kpremia.envs.experiment`), so a policy sees exactly the market, fills,
fees, decision interval and rewards ``fit`` trains that experiment on; it is
not the fast path (use BatchedEnv or the VecEnvs for that).

Gymnasium expects the caller to ``reset()`` after an episode ends, so where the
batched env has already auto-reset, :meth:`KPremiaGymEnv.step` returns the
observation the episode ended on (``info["final_obs"]`` of the batch), not the
first one of the next episode.  Registered as ``kpremia/KPremia-v0`` on
``import kpremia``: ``gymnasium.make("kpremia/KPremia-v0", experiment="mlp_ppo")``
trains on ``fit experiment=mlp_ppo``'s market and rules; without ``experiment``
it is the main job's (:data:`~kpremia.envs.experiment.DEFAULT_EXPERIMENT`,
``gru_attn_ppo``: hold/buy/sell, a decision every 16 bars, the fx-hedged reward).

Rendering follows gymnasium: the mode is fixed at construction, listed in
``metadata["render_modes"]``; ``"rgb_array"`` draws the episode so far (price,
premium, position, equity: :mod:`kpremia.envs.render`) and ``"ansi"`` returns a
text line.  Stable-Baselines3's ``make_vec_env`` asks for ``"rgb_array"``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from kpremia.data.tensors import MarketTensors
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.config import EnvConfig
from kpremia.envs.experiment import DEFAULT_EXPERIMENT, adapter_setup
from kpremia.envs.numpy_batched import RENDER_FPS, RENDER_MODES, check_render_mode, observation_space
from kpremia.envs.render import EpisodeHistory, render

log = logging.getLogger(__name__)


class KPremiaGymEnv(gym.Env):
    """One kimchi-premium trading env with gymnasium's API.

    Args:
        market: the split to trade; ``None``: the experiment's train split (as ``fit``).
        render_mode: ``None`` (no rendering), ``"rgb_array"`` (an ``[H, W, 3]`` uint8
            picture of the episode so far) or ``"ansi"`` (a text line).
        experiment: the experiment whose market model ``fit`` trains on (default
            :data:`~kpremia.envs.experiment.DEFAULT_EXPERIMENT`, the main job's).
        overrides: Hydra overrides on top of it (``["env.fee_rate=0.0005"]``).
        env: an :class:`EnvConfig` (or ``env`` node) instead of the experiment's.
        seed: seed of the episode-start generator (``reset(seed=...)`` re-seeds it).
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(self, market: MarketTensors | None = None, render_mode: str | None = None, *,
                 experiment: str | None = DEFAULT_EXPERIMENT, overrides: Sequence[str] = (),
                 env: EnvConfig | Mapping[str, Any] | None = None, seed: int = 0) -> None:
        check_render_mode(render_mode, "KPremiaGymEnv")
        self.render_mode = render_mode
        config, market = adapter_setup(experiment, overrides, env, market)
        self.config = config
        self.env = BatchedEnv.from_config(market, config, n_envs=1, seed=seed)
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
            ended_at = (min(t_before + self.env.clock.bars_per_decision, self.env.market.n_bars - 1)
                        if done else int(self.env.t[0]))
            self._history.append(ended_at, out["usdt_weight"], out["portfolio_value_krw"])
        return obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), out

    def render(self) -> np.ndarray | str | None:
        """The episode so far in the env's ``render_mode`` (``None`` when it has none)."""
        return render(self.render_mode, self.env.market, self._history)


def _numpy(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Row 0 of a batched obs as fresh float32 numpy arrays (never shared between calls)."""
    return {k: v[0].detach().cpu().numpy().astype(np.float32, copy=True) for k, v in obs.items()}
