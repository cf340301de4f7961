"""Typed ``algo`` parts: what every algorithm shares, and PPO's and DQN's own knobs.

An algorithm class names its part with ``config_class``; the run config's
``algo`` node is checked by that part alone (its field rules, then
:meth:`AlgoConfig.check_with_env` for rules that involve the env), so a plug-in
algorithm brings its own checks and the built-in ones need no branch on the name.
:func:`algo_config_class` finds the part of a built-in algorithm without
importing it (and so without Lightning): a config mistake is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kpremia.core.config import ConfigPart, at_least, between, knob, optional, positive
from kpremia.core.errors import UserError
from kpremia.core.registry import ALGOS
from kpremia.envs.config import EnvConfig


@dataclass(frozen=True)
class WarmStartConfig(ConfigPart):
    """``algo.warm_start``: behaviour cloning of a rule before PPO (null = off)."""

    section: ClassVar[str] = "algo.warm_start"

    rule: str = knob("premium_threshold")  # a registered baseline, fit on train: the teacher
    steps: int = knob(300, at_least(0))  # cross-entropy steps before PPO
    batch_size: int = knob(1024, at_least(1))
    lr: float = knob(1.0e-3, positive())
    label_smoothing: float = knob(0.1, between(0, 1, high_open=True))
    collect_steps: int = knob(512, at_least(1))  # demonstration decisions per env (env.n_envs envs)
    explore: float = knob(0.3, between(0, 1))  # share of random behaviour actions while collecting
    holdout: float = knob(0.1, between(0, 1, high_open=True))  # share of demonstrations kept to score accuracy
    kl_coef: float = knob(0.0, at_least(0))  # weight of the teacher term in PPO's loss at the start
    kl_decay_fraction: float = knob(0.5, between(0, 1, low_open=True))  # ... decaying to 0 at this share of the budget

    def kl_weight(self, env_steps: int, total_env_steps: int) -> float:
        """The teacher term's weight after ``env_steps``: linear decay to 0."""
        if self.kl_coef == 0.0:
            return 0.0
        frac = env_steps / max(1.0, self.kl_decay_fraction * total_env_steps)
        return self.kl_coef * max(0.0, 1.0 - frac)


@dataclass(frozen=True)
class AlgoConfig(ConfigPart):
    """``algo``: the knobs every kpremia algorithm has."""

    section: ClassVar[str] = "algo"

    @classmethod
    def normalise(cls, raw: dict) -> dict:
        """Drop the knobs of other algorithms: a preset (``debug=fast``) may size both PPO and DQN."""
        mine = set(cls.__dataclass_fields__)
        others: set[str] = set()
        todo = list(AlgoConfig.__subclasses__())
        while todo:
            part = todo.pop()
            todo += part.__subclasses__()
            others |= set(getattr(part, "__dataclass_fields__", {}))
        return {k: v for k, v in raw.items() if k in mine or k not in others}

    name: str = knob("ppo")
    total_env_steps: int = knob(786_432, at_least(1))  # env steps over all ranks
    # Collection rounds per Lightning epoch (PPO: rollouts; DQN: collect rounds).  One name for
    # both, so a preset or a sweep sizes an epoch (validation runs per epoch) for either algorithm.
    rollouts_per_epoch: int = knob(16, at_least(1))
    lr: float = knob(3.0e-4, positive())
    gamma: float = knob(0.99, between(0, 1, low_open=True))
    reward_scale: float = knob(100.0, positive())  # rewards (log returns, ~1e-3) x this for the learner
    head_hidden: int = knob(64, at_least(1))  # hidden units of the heads over the encoder
    monitor: str = knob("val/excess_return")  # validation return minus the band rule's: the best checkpoint is kept by it
    monitor_mode: str = knob("max", ("'max' or 'min'", lambda v: v in ("max", "min")))

    def check_with_env(self, env: EnvConfig) -> None:
        """Rules that involve the env config (e.g. sizes in env steps of all envs)."""

    def env_steps_per_round(self, n_envs: int) -> int:
        """Env steps one collection round takes on one rank (the smallest budget that trains)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def check_budget(self, env: EnvConfig, what: str, key: str) -> None:
        """A budget below one round of collection would train nothing."""
        smallest = self.env_steps_per_round(env.n_envs)
        if self.total_env_steps < smallest:
            self.fail("total_env_steps", f"at least one {what} ({key} * env.n_envs = {smallest} env steps)")


@dataclass(frozen=True)
class PPOConfig(AlgoConfig):
    """``algo`` of PPO (``configs/algo/ppo.yaml`` documents each knob)."""

    n_steps: int = knob(128, at_least(1))  # rollout length per env
    lr_anneal: bool = knob(True)
    adam_eps: float = knob(1.0e-5, positive())
    gae_lambda: float = knob(0.95, between(0, 1))
    clip_epsilon: float = knob(0.2, positive())
    entropy_coef: float = knob(0.01, at_least(0))
    value_coef: float = knob(0.5, at_least(0))
    value_clip: float | None = knob(None, optional(positive()))
    update_epochs: int = knob(4, at_least(1))
    n_minibatches: int = knob(4, at_least(1))
    max_grad_norm: float = knob(0.5, positive())
    normalize_advantages: bool = knob(True)
    target_kl: float | None = knob(None, optional(positive()))
    init_hold_prob: float | None = knob(None, optional(between(0, 1, low_open=True, high_open=True)))
    min_action_prob: float = knob(0.0, between(0, 1, high_open=True))
    collapse_threshold: float = knob(0.98, between(0, 1))
    # What the value head reads: the policy's features (shared), the same features without their
    # gradient (detached), or its own encoder (separate); see kpremia.algos.networks.ActorCritic.
    critic: str = knob("shared", ("shared, detached or separate", lambda v: v in ("shared", "detached", "separate")))
    # Behaviour cloning of a train-fit rule before PPO (WarmStartConfig below); null = off.
    warm_start: dict[str, Any] | None = knob(None)

    def warm_start_config(self) -> WarmStartConfig | None:
        """The typed ``warm_start`` node (its defaults filled in), or ``None`` when off."""
        if self.warm_start is None:  # off: the check loads nothing (warm_start imports torch)
            return None
    
        return WarmStartConfig.from_dict(self.warm_start)

    def check_together(self) -> None:
        self.warm_start_config()  # its own one-line errors, named algo.warm_start.<key>

    def env_steps_per_round(self, n_envs: int) -> int:
        return self.n_steps * n_envs

    def check_with_env(self, env: EnvConfig) -> None:
        batch = self.n_steps * env.n_envs
        if self.n_minibatches > batch:
            self.fail("n_minibatches", f"between 1 and algo.n_steps * env.n_envs = {batch}")
        self.check_budget(env, "rollout", "algo.n_steps")


@dataclass(frozen=True)
class DQNConfig(AlgoConfig):
    """``algo`` of DQN (``configs/algo/dqn.yaml`` documents each knob)."""

    name: str = knob("dqn")
    total_env_steps: int = knob(1_000_000, at_least(1))
    lr: float = knob(1.0e-4, positive())
    collect_steps: int = knob(4, at_least(1))  # env steps of all envs per collect round
    gradient_steps: int = knob(4, at_least(1))  # updates after each collect round
    rollouts_per_epoch: int = knob(256, at_least(1))  # collect rounds per Lightning epoch
    buffer_size: int = knob(100_000, at_least(1))  # transitions per rank
    batch_size: int = knob(256, at_least(1))  # transitions per update, per rank
    learning_starts: int = knob(10_000, at_least(0))  # env steps (all ranks) before the first update
    target_update_interval: int = knob(500, at_least(1))
    tau: float = knob(1.0, between(0, 1, low_open=True, note=" (1 = hard target copy)"))
    double_dqn: bool = knob(True)
    n_step: int = knob(1, at_least(1))
    epsilon_start: float = knob(1.0, between(0, 1))
    epsilon_end: float = knob(0.05, between(0, 1))
    epsilon_decay_fraction: float = knob(0.1, between(0, 1))
    max_grad_norm: float = knob(10.0, positive())

    @classmethod
    def normalise(cls, raw: dict) -> dict:
        """Refuse PPO's warm start by name (other algorithms' knobs are otherwise dropped silently)."""
        if raw.get("warm_start") is not None:
            raise UserError("algo.warm_start is PPO's (behaviour cloning, then PPO); DQN has no warm start: "
                            "remove algo.warm_start or train with algo=ppo")
        return super().normalise(raw)

    def env_steps_per_round(self, n_envs: int) -> int:
        return self.collect_steps * n_envs

    def check_with_env(self, env: EnvConfig) -> None:
        steps = -(-self.buffer_size // env.n_envs)  # the buffer holds whole env steps of all envs
        if steps < self.n_step:
            self.fail("buffer_size", f"at least algo.n_step * env.n_envs = {self.n_step * env.n_envs}")
        self.check_budget(env, "collect round", "algo.collect_steps")


# The parts of the built-in algorithms (each algorithm class names the same one as its
# ``config_class``; a test keeps them equal).
BUILTIN_CONFIGS: dict[str, type[AlgoConfig]] = {"ppo": PPOConfig, "dqn": DQNConfig}


def algo_config_class(name: str) -> type[AlgoConfig] | None:
    """The config part of algorithm ``name``: a built-in's without importing it, a plug-in's from its class."""
    if name in BUILTIN_CONFIGS:
        return BUILTIN_CONFIGS[name]
    return getattr(ALGOS.get(name), "config_class", None)
