"""KPremiaVectorEnv: a gymnasium ``VectorEnv`` backed by the batched simulator.

For gymnasium-native code (CleanRL-style scripts, gymnasium's vector wrappers):
``num_envs`` envs inside one :class:`BatchedEnv`, stepped in one tensor op, with
NumPy at the boundary.  It is the vector entry point of ``kpremia/KPremia-v0``::

    envs = gymnasium.make_vec("kpremia/KPremia-v0", num_envs=256, experiment="mlp_ppo")
    obs, info = envs.reset(seed=0)
    obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())

(``vectorization_mode="sync"`` still gives gymnasium's ``SyncVectorEnv`` of single envs.)

Auto-reset is gymnasium's ``AutoresetMode.SAME_STEP`` (``metadata["autoreset_mode"]``),
which is how the simulator works: where an env finished, ``step`` returns the next
episode's first observation, ``infos["final_obs"]`` (an object array, the finished
env's observation dict where ``infos["_final_obs"]`` is True, ``None`` elsewhere)
is the observation the episode ended on, and ``infos["final_info"]`` its info.
``NEXT_STEP`` would need the simulator to skip a step per env; it is not offered.

Seeding: the batch has one episode-start generator; ``reset(seed=s)`` seeds it
with ``s`` (with a list, its first element).  Rendering draws env 0 only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from kpremia.data.tensors import MarketTensors
from kpremia.envs.config import EnvConfig
from kpremia.envs.experiment import DEFAULT_EXPERIMENT
from kpremia.envs.numpy_batched import RENDER_FPS, RENDER_MODES, NumpyBatchedEnv


class KPremiaVectorEnv(VectorEnv):
    """``num_envs`` kimchi-premium envs as one gymnasium ``VectorEnv``.

    Args:
        num_envs: number of environments.
        market: the split to trade; ``None``: the experiment's train split (as ``fit``).
        experiment, overrides, env: the market model, as for
            :class:`~kpremia.envs.numpy_batched.NumpyBatchedEnv` (default: the main experiment's).
        device: run the simulator there (``"cuda"``); arrays still arrive as NumPy.
        render_mode: ``None``, ``"rgb_array"`` or ``"ansi"`` (env 0's episode).
        seed: seed of the episode-start generator (``reset(seed=...)`` re-seeds it).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": list(RENDER_MODES),
                                "render_fps": RENDER_FPS}

    def __init__(self, num_envs: int = 1, market: MarketTensors | None = None, *,
                 experiment: str | None = DEFAULT_EXPERIMENT, overrides: Sequence[str] = (),
                 env: EnvConfig | Mapping[str, Any] | None = None, device: str | None = None,
                 render_mode: str | None = None, seed: int = 0) -> None:
        self.core = NumpyBatchedEnv(num_envs, market, experiment=experiment, overrides=overrides, env=env,
                                    device=device, render_mode=render_mode, seed=seed)
        self.num_envs = self.core.n_envs
        self.render_mode = render_mode
        self.single_observation_space = self.core.single_observation_space
        self.single_action_space = self.core.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    @property
    def env(self) -> Any:
        """The :class:`BatchedEnv` all envs live in."""
        return self.core.env

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start every env over; ``seed`` (or its first element) seeds the episode-start generator."""
        if isinstance(seed, (list, tuple)):
            seed = seed[0] if seed else None
        if seed is not None:
            self._np_random_seed = int(seed)
        obs = self.core.reset(seed)
        env = self.core.env
        info = {"portfolio_value_krw": env.value.detach().cpu().numpy().copy(),
                "t": env.t.detach().cpu().numpy().copy()}
        return obs, info

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray,
                                                  dict[str, Any]]:
        """One tensor step of every env: ``(obs, rewards, terminations, truncations, infos)``."""
        r = self.core.step(actions)
        done = r.terminated | r.truncated
        infos: dict[str, Any] = dict(r.info)
        if done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = {k: v[i] for k, v in r.final_obs.items()}
            final_info = dict(r.info)
            final_info.update({f"_{k}": done.copy() for k in r.info})
            infos.update(final_obs=final_obs, _final_obs=done.copy(), final_info=final_info,
                         _final_info=done.copy())
        return r.obs, r.reward.astype(np.float64), r.terminated, r.truncated, infos

    def render(self) -> tuple[Any, ...] | None:
        """Env 0's episode so far (a one-element tuple, as vector envs return one frame per env drawn)."""
        frame = self.core.render()
        return None if frame is None else (frame,)

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release (the simulator is tensors in this process)."""
