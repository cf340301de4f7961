"""kpremia: reinforcement-learning trading agents on the Korean kimchi premium.

Importing the package registers the gymnasium environment ``kpremia/KPremia-v0``
(the env module itself is imported lazily by gymnasium on ``gymnasium.make``);
``gymnasium.make_vec`` of that id builds the batched ``KPremiaVectorEnv``.
"""

from __future__ import annotations

__version__ = "0.1.0"


def _register_gym_env() -> None:
    try:
        import gymnasium
    except ImportError:  # gymnasium is a dependency; tolerate a partial install
        return
    if "kpremia/KPremia-v0" not in gymnasium.registry:
        gymnasium.register(id="kpremia/KPremia-v0", entry_point="kpremia.envs.gym_env:KPremiaGymEnv",
                           vector_entry_point="kpremia.envs.vector_env:KPremiaVectorEnv")


_register_gym_env()
