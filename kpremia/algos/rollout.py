"""Preallocated on-device storage of one PPO rollout and its minibatches.

As in Stable-Baselines3 the buffer owns the storage and minibatching, while
GAE stays a pure function (``kpremia.algos.gae``).  Everything is a tensor on
the env's device; nothing goes through NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from kpremia.core.spec import ObsSpec


class RolloutBatch(NamedTuple):
    """A flat minibatch of transitions (``mb_`` tensors in CleanRL's naming)."""

    obs: dict[str, torch.Tensor]
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    teacher: torch.Tensor  # the warm-start teacher's action per step (-1 without a teacher)


class RolloutBuffer:
    """``[T, N]`` storage for observations, actions, rewards, done flags and values."""

    def __init__(self, spec: ObsSpec, n_steps: int, n_envs: int, device: torch.device):
        self.n_steps, self.n_envs = n_steps, n_envs
        shape = (n_steps, n_envs)
        self.obs = {k: torch.zeros((*shape, *s), device=device) for k, s in spec.shapes.items()}
        # Observation each step ended in when that step ended an episode (for bootstrapping).
        self.final_obs = {k: torch.zeros((*shape, *s), device=device) for k, s in spec.shapes.items()}
        self.actions = torch.zeros(shape, dtype=torch.long, device=device)
        self.logprobs = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.next_values = torch.zeros(shape, device=device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.truncated = torch.zeros(shape, dtype=torch.bool, device=device)
        self.advantages = torch.zeros(shape, device=device)
        self.returns = torch.zeros(shape, device=device)
        self.teacher = torch.full(shape, -1, dtype=torch.long, device=device)

    @property
    def size(self) -> int:
        return self.n_steps * self.n_envs

    def flat(self) -> RolloutBatch:
        """The whole rollout flattened to ``[T * N, ...]`` (views, no copy)."""
        b = self.size
        return RolloutBatch(
            obs={k: v.reshape(b, *v.shape[2:]) for k, v in self.obs.items()},
            actions=self.actions.reshape(b),
            logprobs=self.logprobs.reshape(b),
            values=self.values.reshape(b),
            advantages=self.advantages.reshape(b),
            returns=self.returns.reshape(b),
            teacher=self.teacher.reshape(b),
        )

    @staticmethod
    def take(batch: RolloutBatch, idx: torch.Tensor) -> RolloutBatch:
        """Rows ``idx`` of a flat batch."""
        return RolloutBatch(
            obs={k: v[idx] for k, v in batch.obs.items()},
            actions=batch.actions[idx], logprobs=batch.logprobs[idx], values=batch.values[idx],
            advantages=batch.advantages[idx], returns=batch.returns[idx], teacher=batch.teacher[idx],
        )


@dataclass
class RolloutState:
    """One rollout between its collection and its last update tick.

    Lightning calls ``training_step`` once per minibatch, so what an update needs
    across its ticks lives here, made whole when the rollout is collected and
    dropped after its last tick (it is never part of a checkpoint: checkpoints are
    taken at rollout boundaries).
    """

    batch: RolloutBatch  # the rollout flattened to [T * N, ...] (views of the buffer)
    perms: torch.Tensor  # [update_epochs, n_minibatches, minibatch size] row indices
    collect_stats: dict[str, torch.Tensor]  # episode return, episodes, reward mean, action shares
    collect_seconds: float
    update_started: float  # perf_counter() when the updates began
    loss_sums: dict[str, torch.Tensor] = field(default_factory=dict)  # summed over minibatches, by name
    minibatches: int = 0  # minibatch updates done
    stopped: bool = False  # algo.target_kl stopped the update early
    first_ratio: torch.Tensor | None = None  # mean ratio of the first minibatch (exactly 1: see ppo.py)

    def add_losses(self, **values: torch.Tensor) -> None:
        """Add one minibatch's loss statistics (detached, on the device: no host sync)."""
        for name, value in values.items():
            total = self.loss_sums.get(name)
            self.loss_sums[name] = value.detach() if total is None else total + value.detach()
        self.minibatches += 1

    def mean_losses(self) -> dict[str, torch.Tensor]:
        """The loss statistics averaged over the minibatches done."""
        return {name: total / max(self.minibatches, 1) for name, total in self.loss_sums.items()}
