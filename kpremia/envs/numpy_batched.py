"""NumpyBatchedEnv: the batched simulator with NumPy arrays at its boundary.

Other RL libraries (Stable-Baselines3, CleanRL-style gymnasium code) hand the
environment NumPy actions and expect NumPy observations.  This is the one place
that converts: the simulator still steps all N envs in one tensor step (on any
device), and only the results cross to NumPy, once per step, as whole arrays.
:mod:`kpremia.envs.sb3` (an SB3 ``VecEnv``) and :mod:`kpremia.envs.vector_env`
(a gymnasium ``VectorEnv``) are thin adapters over it that only differ in how
their library wants the auto-reset reported.

Auto-reset is the simulator's own ("same step"): the observation returned by
:meth:`NumpyBatchedEnv.step` is already the next episode's first where an env
finished, and :attr:`StepResult.final_obs` holds what the simulator returned as
``info["final_obs"]`` (the observation the episode ended on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from kpremia.core.errors import UserError
from kpremia.core.spec import ObsSpec
from kpremia.data.tensors import MarketTensors
from kpremia.envs.batched import BatchedEnv
from kpremia.envs.config import EnvConfig
from kpremia.envs.experiment import DEFAULT_EXPERIMENT, adapter_setup
from kpremia.envs.render import EpisodeHistory, render

RENDER_MODES = ("rgb_array", "ansi")
RENDER_FPS = 30
# Finite bounds (gymnasium's checker warns on infinite ones); observations are
# normalised, so any real value is far inside.
OBS_BOUND = float(np.finfo(np.float32).max)
# Per-env info keys handed to the libraries (the batch's other keys are tensors of obs).
INFO_KEYS = ("portfolio_value_krw", "usdt_weight", "fee_krw", "traded", "fill_price",
             "episode_return", "episode_length")

NumpyObs = dict[str, np.ndarray]


class StepResult(NamedTuple):
    """One batched step in NumPy: everything ``[N]`` or ``[N, ...]``."""

    obs: NumpyObs
    reward: np.ndarray  # float32
    terminated: np.ndarray  # bool
    truncated: np.ndarray  # bool
    final_obs: NumpyObs  # the observation each env ended this step on (== obs where not done)
    info: dict[str, np.ndarray]  # INFO_KEYS, pre-reset values


def observation_space(spec: ObsSpec) -> spaces.Dict:
    """The gymnasium space of one env's observation (float32 boxes shaped by the spec)."""
    return spaces.Dict({k: spaces.Box(-OBS_BOUND, OBS_BOUND, shape=tuple(shape), dtype=np.float32)
                        for k, shape in spec.shapes.items()})


def to_numpy(obs: dict[str, torch.Tensor]) -> NumpyObs:
    """A batched obs dict as fresh contiguous float32 arrays on the host."""
    return {k: np.ascontiguousarray(v.detach().cpu().numpy(), dtype=np.float32) for k, v in obs.items()}


def check_render_mode(render_mode: str | None, owner: str) -> None:
    """Refuse a render mode the env does not list (gymnasium's rule), naming the ones it has."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise UserError(f"{owner} has no render mode {render_mode!r}; use one of {list(RENDER_MODES)} or None")


class NumpyBatchedEnv:
    """A :class:`BatchedEnv` of ``n_envs`` envs stepped with NumPy actions.

    Args:
        n_envs: number of environments in the batch.
        market: the split to trade; ``None``: the experiment's train split (as ``fit``).
        experiment: the experiment whose market model and data ``fit`` trains on
            (default :data:`~kpremia.envs.experiment.DEFAULT_EXPERIMENT`).
        overrides: Hydra overrides on top of it (``["env.fee_rate=0.0005"]``).
        env: an :class:`EnvConfig` (or ``env`` node) instead of the experiment's.
        device: move the market (and so the simulator) there, e.g. ``"cuda"``;
            ``None`` keeps the market's device.
        render_mode: ``None``, ``"rgb_array"`` or ``"ansi"``; only env 0 is
            recorded and drawn (a picture per env would cost more than the step).
        seed: seed of the episode-start generator.
    """

    def __init__(self, n_envs: int, market: MarketTensors | None = None, *,
                 experiment: str | None = DEFAULT_EXPERIMENT, overrides: Sequence[str] = (),
                 env: EnvConfig | Mapping[str, Any] | None = None, device: str | None = None,
                 render_mode: str | None = None, seed: int = 0) -> None:
        check_render_mode(render_mode, type(self).__name__)
        config, market = adapter_setup(experiment, overrides, env, market)
        if device is not None:
            market = market.to(device)
        self.config = config
        self.env = BatchedEnv.from_config(market, config, n_envs=int(n_envs), seed=seed)
        self.n_envs = self.env.n_envs
        self.render_mode = render_mode
        self.single_observation_space = observation_space(self.env.spec)
        self.single_action_space = spaces.Discrete(self.env.n_actions)
        self._history = EpisodeHistory()

    def reset(self, seed: int | None = None) -> NumpyObs:
        """Start every env over; ``seed`` re-seeds the simulator's one episode-start generator."""
        obs = self.env.reset(seed=None if seed is None else int(seed))
        if self.render_mode is not None:
            self._history.start(int(self.env.t[0]), float(self.env.value[0]))
        return to_numpy(obs)

    def step(self, actions: np.ndarray | torch.Tensor) -> StepResult:
        """Step every env with ``actions`` (``[N]`` integers)."""
        acts = torch.as_tensor(np.asarray(actions) if not isinstance(actions, torch.Tensor) else actions)
        acts = acts.reshape(-1)
        if acts.shape[0] != self.n_envs:
            raise UserError(f"got {acts.shape[0]} actions for {self.n_envs} envs; pass one action per env")
        obs, reward, terminated, truncated, info = self.env.step(acts.to(self.env.device, torch.long))
        host = {k: info[k].detach().cpu().numpy() for k in INFO_KEYS}
        result = StepResult(
            obs=to_numpy(obs),
            reward=reward.detach().cpu().numpy().astype(np.float32, copy=False),
            terminated=terminated.detach().cpu().numpy(),
            truncated=truncated.detach().cpu().numpy(),
            final_obs=to_numpy(info["final_obs"]),
            info=host,
        )
        if self.render_mode is not None:
            if result.terminated[0] or result.truncated[0]:  # env 0 has auto-reset: draw its new episode
                self._history.start(int(self.env.t[0]), float(self.env.value[0]))
            else:
                self._history.append(int(self.env.t[0]), host["usdt_weight"][0], host["portfolio_value_krw"][0])
        return result

    def render(self) -> np.ndarray | str | None:
        """Env 0's episode so far in the ``render_mode`` (``None`` when there is none)."""
        return render(self.render_mode, self.env.market, self._history)
