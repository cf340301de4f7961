"""Deprecated alias of :mod:`kpremia.algos.networks` (the networks module was renamed)."""

from __future__ import annotations

import warnings

from kpremia.algos.networks import ActorCritic, QNetwork, sample_categorical  # noqa: F401

warnings.warn("kpremia.algos.policy is deprecated; use kpremia.algos.networks", DeprecationWarning, stacklevel=2)
