"""kpremia.envs: the batched torch simulator, its fill rules, action schemes and library adapters.

Names are exported lazily so that ``import kpremia.envs.spec`` (which encoders and
the data layer need) does not import the simulator.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BatchedEnv": "kpremia.envs.batched",
    "KPremiaGymEnv": "kpremia.envs.gym_env",
    "KPremiaVectorEnv": "kpremia.envs.vector_env",
    "KPremiaVecEnv": "kpremia.envs.sb3",
    "Fill": "kpremia.envs.execution",
    "rebalance": "kpremia.envs.execution",
    "ObsSpec": "kpremia.envs.spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kpremia.envs' has no attribute {name!r}")
