"""Algorithms (LightningModules), registered in ``kpremia.registry.ALGOS``.

Kept import-light: the registry imports ``kpremia.algos.ppo`` / ``dqn`` on first
lookup, so the pure math modules (``gae``, ``ppo_loss``) import without Lightning.
"""
