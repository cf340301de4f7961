"""kpremia: reinforcement-learning trading agents on the Korean kimchi premium.

The Python API (``kpremia.fit``, ``kpremia.test``, ``kpremia.validate``, ``kpremia.backtest``,
``kpremia.compare``, ``kpremia.inspect``, ``kpremia.load_policy``;
see :mod:`kpremia.app.api` and docs/api.md) is imported on first use, so ``import kpremia`` does not
load Lightning.  Importing the package registers the gymnasium environment
``kpremia/KPremia-v0`` (the env module itself is imported lazily by gymnasium on
``gymnasium.make``); ``gymnasium.make_vec`` of that id builds the batched ``KPremiaVectorEnv``.
"""

from __future__ import annotations

from typing import Any

from kpremia.core.version import __version__

_API = ("fit", "test", "validate", "backtest", "compare", "inspect", "load_policy", "FitResult", "Policy")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """``kpremia.fit`` and the rest of the API, from :mod:`kpremia.app.api` on first use."""
    if name in _API:
        from kpremia.app import api

        return getattr(api, name)
    raise AttributeError(f"module 'kpremia' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


def _register_gym_env() -> None:
    try:
        import gymnasium
    except ImportError:  # gymnasium is a dependency; tolerate a partial install
        return
    if "kpremia/KPremia-v0" not in gymnasium.registry:
        gymnasium.register(id="kpremia/KPremia-v0", entry_point="kpremia.envs.gym_env:KPremiaGymEnv",
                           vector_entry_point="kpremia.envs.vector_env:KPremiaVectorEnv")


_register_gym_env()
