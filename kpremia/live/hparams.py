"""The settings a running session lets an operator change, and the ranges it accepts them in.

``POST /set_hparams`` (and :meth:`kpremia.live.host.ModelHost.set_hparams`) change
them between bars.  Each must be a finite JSON number (``true`` is not a number,
``"0.1"`` is not one either) inside the range below, or the whole request is
refused with the field's name and nothing changes.  The ranges are wide enough
for any sensible online run and narrow enough that no accepted value can break
the learner: ``lr=1e308`` overflows Adam, a temperature of ``1e-320`` divides
the logits into infinities, an infinite entropy weight turns the weights to NaN.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from kpremia.errors import UserError


class Range(NamedTuple):
    """``low < value <= high`` (``low_open``) or ``low <= value <= high``."""

    low: float
    high: float
    low_open: bool
    meaning: str

    def describe(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


RUNTIME_RANGES: dict[str, Range] = {
    "temperature": Range(0.01, 100.0, False, "softmax temperature of sampled actions (eval.deterministic=false)"),
    "lr": Range(0.0, 0.01, True, "Adam learning rate of the online update"),
    "clip_epsilon": Range(0.0, 0.5, True, "PPO clip"),
    "entropy_coef": Range(0.0, 1.0, False, "entropy bonus weight"),
    "value_coef": Range(0.0, 10.0, False, "value loss weight"),
    "anchor": Range(0.0, 100.0, False, "L2 pull towards the loaded weights"),
}


def check_hparam(name: str, value: Any) -> float:
    """``value`` as a float when it is a finite number inside ``name``'s range; a UserError naming it otherwise."""
    if name not in RUNTIME_RANGES:
        raise UserError(f"{name} cannot be changed at run time; use one of {', '.join(RUNTIME_RANGES)}")
    allowed = RUNTIME_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name}={value!r:.40} must be a number in {allowed.describe()}")
    number = float(value)
    if not math.isfinite(number) or not allowed.contains(number):
        raise UserError(f"{name}={number:g} is outside {allowed.describe()} ({allowed.meaning})")
    return number
