"""Algorithms (LightningModules), registered in ``kpremia.registry.ALGOS``."""

from kpremia.algos import ppo  # noqa: F401  (registers "ppo")

try:  # DQN is optional until its module exists
    from kpremia.algos import dqn  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover
    if exc.name != "kpremia.algos.dqn":
        raise
