"""KPremiaVecEnv: a Stable-Baselines3 ``VecEnv`` backed by the batched simulator.

``make_vec_env("kpremia/KPremia-v0", n_envs=8)`` gives SB3 eight gymnasium envs
stepped one after another in Python (``DummyVecEnv``).  This class gives SB3 the
same market and rules as ``n_envs`` envs inside one :class:`BatchedEnv`, stepped
in one tensor op, so an SB3 user's own algorithms get the simulator's speed::

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor
    from kpremia.envs.sb3 import KPremiaVecEnv

    env = VecMonitor(KPremiaVecEnv(n_envs=64, experiment="mlp_ppo"))
    PPO("MultiInputPolicy", env, n_steps=128).learn(100_000)

SB3's conventions: ``step`` returns ``done = terminated or truncated``, the next
episode's first observation where an env finished, and in that env's info
``terminal_observation`` (the simulator's ``final_obs``: the observation the
episode ended on) and ``TimeLimit.truncated`` (so PPO bootstraps a truncated
episode from it).  Wrap in SB3's ``VecMonitor`` for episode statistics.

All envs share one simulator: ``get_attr``/``set_attr``/``env_method`` act on
the :class:`BatchedEnv` (the same value for every index), and seeding sets its
one episode-start generator.  Stable-Baselines3 is an optional dependency (the
``bench`` extra); importing this module without it raises a one-line error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kpremia.core.optional import import_optional
from kpremia.data.tensors import MarketTensors
from kpremia.envs.config import EnvConfig
from kpremia.envs.experiment import DEFAULT_EXPERIMENT
from kpremia.envs.numpy_batched import INFO_KEYS, RENDER_FPS, NumpyBatchedEnv

_vec_env = import_optional("stable_baselines3.common.vec_env", purpose="kpremia.envs.sb3",
                           package="stable-baselines3")
VecEnv = _vec_env.VecEnv


class KPremiaVecEnv(VecEnv):
    """``n_envs`` kimchi-premium envs as one SB3 ``VecEnv`` (one :class:`BatchedEnv` inside).

    Args:
        n_envs: number of environments.
        market: the split to trade; ``None``: the experiment's train split (as ``fit``).
        experiment, overrides, env: the market model, as for
            :class:`~kpremia.envs.numpy_batched.NumpyBatchedEnv` (default: the main experiment's).
        device: run the simulator there (``"cuda"``); observations still arrive as NumPy.
        render_mode: ``None``, ``"rgb_array"`` (env 0's episode as an image, for
            ``VecVideoRecorder``) or ``"ansi"``.
        seed: seed of the episode-start generator (SB3's ``seed()`` re-seeds it).
    """

    def __init__(self, n_envs: int, market: MarketTensors | None = None, *,
                 experiment: str | None = DEFAULT_EXPERIMENT, overrides: Sequence[str] = (),
                 env: EnvConfig | Mapping[str, Any] | None = None, device: str | None = None,
                 render_mode: str | None = None, seed: int = 0) -> None:
        self.core = NumpyBatchedEnv(n_envs, market, experiment=experiment, overrides=overrides, env=env,
                                    device=device, render_mode=render_mode, seed=seed)
        self._render_mode = render_mode
        self._actions: np.ndarray | None = None
        super().__init__(self.core.n_envs, self.core.single_observation_space, self.core.single_action_space)
        self.metadata["render_fps"] = RENDER_FPS

    @property
    def env(self) -> Any:
        """The :class:`BatchedEnv` all envs live in."""
        return self.core.env

    # ------------------------------------------------------------------ stepping
    def reset(self) -> dict[str, np.ndarray]:
        """Start every env over (with the seed given to :meth:`seed`, if any)."""
        seed = next((s for s in self._seeds if s is not None), None)
        obs = self.core.reset(seed)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One tensor step of every env; SB3's ``(obs, rewards, dones, infos)``."""
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        r = self.core.step(self._actions)
        self._actions = None
        dones = r.terminated | r.truncated
        columns = [r.info[k].tolist() for k in INFO_KEYS]
        time_limit = (r.truncated & ~r.terminated).tolist()
        infos = [dict(zip(INFO_KEYS, values), **{"TimeLimit.truncated": tl})
                 for *values, tl in zip(*columns, time_limit)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = {k: v[i] for k, v in r.final_obs.items()}
        return r.obs, r.reward, dones, infos

    def close(self) -> None:
        """Nothing to release (the simulator is tensors in this process)."""

    # ------------------------------------------------------------------ rendering
    def get_images(self) -> Sequence[np.ndarray | None]:
        """Env 0's picture (only env 0 is drawn), for SB3's ``render``/``VecVideoRecorder``."""
        return [self.core.render()] if self.render_mode == "rgb_array" else [None]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """Env 0's episode so far as an ``[H, W, 3]`` uint8 image (``render_mode="rgb_array"``)."""
        if self.render_mode == "ansi" and mode in (None, "ansi"):
            return self.core.render()  # type: ignore[return-value]
        return super().render(mode)

    # ------------------------------------------------------------------ attributes
    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The attribute of the shared simulator, once per index."""
        value = self._render_mode if attr_name == "render_mode" else getattr(self.core.env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute of the shared simulator (it is set for every env)."""
        setattr(self.core.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        """Call a method of the shared simulator once; its result is repeated per index."""
        result = getattr(self.core.env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """No gymnasium wrappers are inside (use SB3's Vec* wrappers around this)."""
        return [False for _ in self._get_indices(indices)]
