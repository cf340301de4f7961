"""The settings a running session lets an operator change, and the ranges it accepts them in.

One table for both doors: the command line's ``live.learn.*`` keys
(:class:`~kpremia.run.live_config.OnlineLearnConfig`, through :func:`in_range`)
and ``POST /set_hparams`` (and :meth:`kpremia.live.learning.host.ModelHost.set_hparams`) change
them between bars.  Each must be a finite JSON number (``true`` is not a number,
``"0.1"`` is not one either) inside the range below, or the whole request is
refused with the field's name and nothing changes.  The ranges are wide enough
for any sensible online run and narrow enough that no accepted value can break
the learner: ``lr=1e308`` overflows Adam, a temperature of ``1e-320`` divides
the logits into infinities, an infinite entropy weight turns the weights to NaN.
A non-zero value smaller than float32's smallest normal number (``lr=1e-320``,
a subnormal) is refused too: the learner computes in float32, where it is 0 or
denormal arithmetic.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from kpremia.core.errors import UserError


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
        return math.isfinite(value) and above and value <= self.high and not 0 < abs(value) < FLOAT32_TINY


FLOAT32_TINY = 1.1754943508222875e-38  # float32's smallest normal number (torch.finfo(torch.float32).tiny)


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
    if not allowed.contains(number):
        raise UserError(f"{name}={number:g} is outside {allowed.describe()} ({allowed.meaning}"
                        f"{'; subnormal values are refused' if 0 < abs(number) < FLOAT32_TINY else ''})")
    return number


def in_range(name: str) -> tuple[str, Any]:
    """``name``'s range as a config rule (``knob(default, in_range("lr"))``): the same bounds as the API's."""
    allowed = RUNTIME_RANGES[name]
    return (f"in {allowed.describe()}, normal (not subnormal) ({allowed.meaning})",
            lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and allowed.contains(float(v)))
