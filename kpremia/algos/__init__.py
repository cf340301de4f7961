"""Algorithms (LightningModules), registered in ``kpremia.core.registry.ALGOS``.

Kept import-light: the registry imports ``kpremia.algos.ppo`` / ``dqn`` when one
is asked for, so the pure math modules (``gae``, ``ppo_loss``) and the typed
configs (``config``) import without Lightning.
"""
