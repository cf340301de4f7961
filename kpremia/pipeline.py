"""Deprecated alias of :mod:`kpremia.training` (the training entry was renamed)."""

from __future__ import annotations

import warnings

from kpremia.training import (  # noqa: F401
    ALL_SPLITS, TRAIN_SPLITS, apply_threads, build_module, build_trainer, fit, load_market, load_module,
)

warnings.warn("kpremia.pipeline is deprecated; use kpremia.training", DeprecationWarning, stacklevel=2)
