"""DQN's replay buffer: preallocated circular tensors on the training device.

Why this layout: the batched simulator produces ``N`` transitions per env step,
one per env, so the storage is ``[steps, N, ...]`` -- row ``i`` holds the
``i``-th step of every env.  Consecutive rows of one column are consecutive
steps of one env, which makes n-step windows a gather (``rows i .. i+n-1`` of
column ``e``) instead of a per-env queue, and writing a step is one row copy
with no Python loop over envs.

* Capacity is given in transitions and rounded up to whole rows
  (``ceil(capacity / n_envs)`` steps); when full, the oldest row is overwritten.
* Each row stores the observation, action, reward, the flags ``terminated`` and
  ``truncated`` (kept apart), and the observation the step ended in *before*
  the env's auto-reset (``info["final_obs"]``), which is what a truncated
  episode bootstraps from.
* Sampling draws from a dedicated ``torch.Generator``; with ``n_step > 1`` only
  rows whose whole window is already stored are drawn (the newest ``n - 1``
  rows wait for the steps that follow them), and windows stop at episode ends
  (:func:`kpremia.algos.dqn_math.n_step_returns`).
* :meth:`state_dict` holds the contents, the write position and the
  generator's state, so a resumed run samples exactly what it would have.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from kpremia.algos.dqn_math import n_step_returns
from kpremia.core.errors import UserError
from kpremia.core.spec import ObsSpec


class ReplaySample(NamedTuple):
    """A batch of (n-step) transitions, ready for :func:`kpremia.algos.dqn_math.td_target`."""

    obs: dict[str, torch.Tensor]
    actions: torch.Tensor  # long [B]
    returns: torch.Tensor  # discounted reward sum over the window [B]
    discounts: torch.Tensor  # gamma ** steps in the window [B]
    terminated: torch.Tensor  # bool [B]: the window ended in a termination (no bootstrap)
    next_obs: dict[str, torch.Tensor]  # observation to bootstrap from


class ReplayBuffer:
    """Circular ``[steps, n_envs]`` storage of transitions with n-step sampling.

    Args:
        spec: observation shapes.
        capacity: number of transitions kept (rounded up to a multiple of ``n_envs``).
        n_envs: transitions per :meth:`add` (one per env).
        device: where the storage lives (the training device).
        n_step: length of the return window (1 = one-step TD).
        gamma: discount per step.
        seed: seed of the sampling generator.
    """

    _FIELDS = ("actions", "rewards", "terminated", "truncated")

    def __init__(self, spec: ObsSpec, capacity: int, n_envs: int, device: torch.device | str, *,
                 n_step: int = 1, gamma: float = 0.99, seed: int = 0):
        self.n_envs = int(n_envs)
        self.steps_capacity = max(1, math.ceil(int(capacity) / self.n_envs))
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        if self.n_step < 1 or self.steps_capacity < self.n_step:
            raise UserError(f"algo.buffer_size={capacity} holds {self.steps_capacity} steps of {n_envs} envs, "
                            f"fewer than algo.n_step={n_step}; raise algo.buffer_size or lower algo.n_step")
        self.device = torch.device(device)
        shape = (self.steps_capacity, self.n_envs)
        self.obs = {k: torch.zeros((*shape, *s), device=self.device) for k, s in spec.shapes.items()}
        self.next_obs = {k: torch.zeros((*shape, *s), device=self.device) for k, s in spec.shapes.items()}
        self.actions = torch.zeros(shape, dtype=torch.long, device=self.device)
        self.rewards = torch.zeros(shape, device=self.device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.pos = 0  # next row to write
        self.size = 0  # rows holding data (<= steps_capacity)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    # ----------------------------------------------------------------- writing
    def add(self, obs: dict[str, torch.Tensor], actions: torch.Tensor, rewards: torch.Tensor,
            next_obs: dict[str, torch.Tensor], terminated: torch.Tensor, truncated: torch.Tensor) -> None:
        """Store one env step of every env (each argument has leading dimension ``n_envs``)."""
        row = self.pos
        for k, v in obs.items():
            self.obs[k][row].copy_(v)
        for k, v in next_obs.items():
            self.next_obs[k][row].copy_(v)
        self.actions[row].copy_(actions)
        self.rewards[row].copy_(rewards)
        self.terminated[row].copy_(terminated)
        self.truncated[row].copy_(truncated)
        self.pos = (row + 1) % self.steps_capacity
        self.size = min(self.size + 1, self.steps_capacity)

    # ----------------------------------------------------------------- reading
    @property
    def n_transitions(self) -> int:
        return self.size * self.n_envs

    @property
    def sampleable_rows(self) -> int:
        """Rows whose whole n-step window is stored (the newest ``n_step - 1`` wait)."""
        return max(0, self.size - self.n_step + 1)

    def can_sample(self) -> bool:
        return self.sampleable_rows > 0

    def sample(self, batch_size: int) -> ReplaySample:
        """``batch_size`` transitions drawn uniformly (with replacement) from the sampleable ones."""
        if not self.can_sample():
            raise RuntimeError("ReplayBuffer.sample() called before n_step steps were stored")
        b = int(batch_size)
        age = torch.randint(0, self.sampleable_rows, (b,), generator=self.generator, device=self.device)
        envs = torch.randint(0, self.n_envs, (b,), generator=self.generator, device=self.device)
        oldest = (self.pos - self.size) % self.steps_capacity
        offsets = torch.arange(self.n_step, device=self.device)
        window = (oldest + age[:, None] + offsets) % self.steps_capacity  # [B, n] physical rows
        cols = envs[:, None].expand_as(window)
        nstep = n_step_returns(self.rewards[window, cols], self.terminated[window, cols],
                               self.truncated[window, cols], gamma=self.gamma)
        first = window[:, 0]
        last = window.gather(1, nstep.last[:, None]).squeeze(1)
        return ReplaySample(
            obs={k: v[first, envs] for k, v in self.obs.items()},
            actions=self.actions[first, envs],
            returns=nstep.returns,
            discounts=nstep.discounts,
            terminated=nstep.terminated,
            next_obs={k: v[last, envs] for k, v in self.next_obs.items()},
        )

    # ----------------------------------------------------------------- exact resume
    def state_dict(self) -> dict[str, Any]:
        """Contents (only the filled rows while not yet full), position and generator state."""
        rows = slice(0, self.size)  # while filling, rows [0, size) hold data; when full, all of them
        return {
            "steps_capacity": self.steps_capacity, "n_envs": self.n_envs, "pos": self.pos, "size": self.size,
            "obs": {k: v[rows].clone() for k, v in self.obs.items()},
            "next_obs": {k: v[rows].clone() for k, v in self.next_obs.items()},
            **{name: getattr(self, name)[rows].clone() for name in self._FIELDS},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` from a buffer of the same capacity and ``n_envs``."""
        if int(state["steps_capacity"]) != self.steps_capacity or int(state["n_envs"]) != self.n_envs:
            raise UserError(f"the checkpoint's replay buffer holds {state['steps_capacity']} steps of "
                            f"{state['n_envs']} envs, this run's {self.steps_capacity} of {self.n_envs}; "
                            "resume with the same algo.buffer_size and env.n_envs")
        size = int(state["size"])
        for k, v in state["obs"].items():
            self.obs[k][:size].copy_(v)
        for k, v in state["next_obs"].items():
            self.next_obs[k][:size].copy_(v)
        for name in self._FIELDS:
            getattr(self, name)[:size].copy_(state[name])
        self.pos, self.size = int(state["pos"]), size
        self.generator.set_state(state["generator"].cpu())  # a generator's state is a CPU byte tensor
