"""Actor-critic and Q networks: an encoder plus small heads.

The heads live with the algorithm (the encoder contract knows nothing about
actions); they are sized from ``encoder.out_dim`` alone, as SB3's policies are
sized from ``features_dim``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _mlp_head(in_dim: int, hidden: int, out_dim: int, out_gain: float) -> nn.Sequential:
    head = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))
    for layer in head:
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=2**0.5)
            nn.init.zeros_(layer.bias)
    nn.init.orthogonal_(head[-1].weight, gain=out_gain)
    return head


CRITICS = ("shared", "detached", "separate")


class ActorCritic(nn.Module):
    """Encoder -> (policy logits, state value).

    ``critic`` says what the value head reads, i.e. whether the value loss shapes the
    policy's features:

    * ``"shared"``: the policy's encoder output (CleanRL's and SB3's default);
    * ``"detached"``: the same features with the gradient stopped, so only the policy
      loss trains the encoder (the critic is a head on the policy's features);
    * ``"separate"``: its own encoder (``critic_encoder``, same architecture), so the two
      losses never share parameters (SB3's ``share_features_extractor=False``) -- twice
      the encoder's compute.

    Why it matters here: in the shared trunk the value loss's gradient was measured 19x
    the policy's, and the one gradient clip rescales both, so the value head shaped the
    features the policy had to read the premium from (docs/results.md).

    ``min_action_prob`` mixes the softmax with a uniform distribution so that
    every action keeps at least that probability (an optional guard against
    policy collapse; 0 disables it).
    """

    def __init__(self, encoder: nn.Module, n_actions: int, head_hidden: int = 64, min_action_prob: float = 0.0,
                 init_probs: list[float] | None = None, critic: str = "shared",
                 critic_encoder: nn.Module | None = None):
        super().__init__()
        if not 0.0 <= min_action_prob * n_actions < 1.0:
            raise ValueError(f"min_action_prob={min_action_prob} is too large for {n_actions} actions")
        if critic not in CRITICS:
            raise ValueError(f"critic={critic!r}; use one of {CRITICS}")
        if (critic == "separate") != (critic_encoder is not None):
            raise ValueError("critic='separate' needs a critic_encoder (and only it takes one)")
        self.encoder = encoder
        self.critic = critic
        self.critic_encoder = critic_encoder
        self.n_actions = n_actions
        self.min_action_prob = float(min_action_prob)
        self.policy_head = _mlp_head(encoder.out_dim, head_hidden, n_actions, out_gain=0.01)
        value_in = critic_encoder.out_dim if critic_encoder is not None else encoder.out_dim
        self.value_head = _mlp_head(value_in, head_hidden, 1, out_gain=1.0)
        if init_probs is not None:
            # Start from a chosen action distribution (e.g. mostly "hold"): with near-zero
            # output weights the initial policy is softmax(bias) for every observation.
            probs = torch.as_tensor(init_probs, dtype=torch.float32)
            if probs.shape != (n_actions,) or (probs <= 0).any():
                raise ValueError(f"init_probs {init_probs} must be {n_actions} positive probabilities")
            with torch.no_grad():
                self.policy_head[-1].bias.copy_(torch.log(probs / probs.sum()))

    def forward(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities ``[B, A]`` and values ``[B]``."""
        z = self.encoder(obs)
        if self.critic == "separate":
            z_value = self.critic_encoder(obs)
        else:
            z_value = z.detach() if self.critic == "detached" else z
        return self._log_probs(z), self.value_head(z_value).squeeze(-1)

    def log_probs(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Log-probabilities ``[B, A]`` alone (acting and behaviour cloning skip a separate critic)."""
        return self._log_probs(self.encoder(obs))

    def _log_probs(self, z: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.policy_head(z), dim=-1)
        if self.min_action_prob > 0.0:
            # p' = (1 - eps) * p + eps / A with eps = A * min_action_prob, in log space.
            eps = self.min_action_prob * self.n_actions
            logp = torch.logaddexp(logp + math.log1p(-eps), torch.full_like(logp, math.log(self.min_action_prob)))
        return logp

    def evaluate_actions(self, obs: dict[str, torch.Tensor],
                         actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_prob, entropy, value)`` of taken ``actions`` ``[B]`` under the current policy (SB3's name).

        What the PPO update needs per minibatch: the new log-probability of each
        rollout action for the ratio, the policy entropy for the bonus, the value
        for the critic loss.
        """
        logp, value = self(obs)
        return (*action_stats(logp, actions), value)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True, temperature: float = 1.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions ``[B]`` for acting (validation, test, live): argmax, or sampled at ``temperature``."""
        logp = self.log_probs(obs)
        if deterministic:
            return logp.argmax(dim=-1)
        return sample_categorical(logp / temperature, generator)


class QNetwork(nn.Module):
    """Shared encoder -> Q-values ``[B, A]`` (DQN)."""

    def __init__(self, encoder: nn.Module, n_actions: int, head_hidden: int = 64):
        super().__init__()
        self.encoder = encoder
        self.n_actions = n_actions
        self.q_head = _mlp_head(encoder.out_dim, head_hidden, n_actions, out_gain=1.0)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.q_head(self.encoder(obs))

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool = True, temperature: float = 1.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
        q = self(obs)
        if deterministic:
            return q.argmax(dim=-1)
        return sample_categorical(torch.log_softmax(q / temperature, dim=-1), generator)


def action_stats(logp: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log_prob, entropy)`` of taken ``actions`` ``[B]`` under log-probabilities ``logp`` ``[B, A]``."""
    return logp.gather(1, actions[:, None]).squeeze(1), -(logp.exp() * logp).sum(-1)


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample ``[B]`` actions from logits with the Gumbel-max trick.

    Unlike ``Categorical.sample`` it takes a dedicated generator, so a run's
    action noise is part of its checkpoint (exact resume) and never touches the
    global RNG; it makes no host sync.
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
    return (logits + gumbel).argmax(dim=-1)
