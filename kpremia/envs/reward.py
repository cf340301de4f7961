"""RewardRule: the reward of one bar, the same function in training, backtests and online learning.

The simulator (:class:`~kpremia.envs.batched.BatchedEnv`) calls :meth:`RewardRule.bar`
for the bar a decision fills on and for every bar it is held; the live online
learner calls it on the bars it trades, so a transition learned live carries the
reward the policy was trained on (a test checks the two agree bar by bar).

Per bar ``s`` (value ``V`` marked at the closes, after the bar's fill if any)::

    r_s = log(V_s / V_{s-1})
          - w_s * log(fx_s / fx_{s-1})          if reward == "fx_hedged"  (w_s: USDT weight at the close)
          - turnover_penalty * notional / V_{s-1}   on the bar an order fills
          - flat_penalty                         if no USDT is held after the bar

A decision's reward is the sum over the bars it spans (``log(V_{t+k} / V_t)``
for the plain log-return reward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # the rule's config is checked before torch is loaded
    from torch import Tensor

from kpremia.core.config import ConfigPart, at_least, knob

REWARDS = ("log_return", "fx_hedged")


@dataclass(frozen=True)
class RewardRule(ConfigPart):
    """Which reward a bar pays (``env.reward``) and the penalties taken from it."""

    section: ClassVar[str] = "env"

    reward: str = knob("log_return", ("log_return or fx_hedged", lambda v: v in REWARDS))
    turnover_penalty: float = knob(0.0, at_least(0))  # reward -= penalty * traded notional / value
    flat_penalty: float = knob(0.0, at_least(0))  # reward -= penalty when holding only KRW

    def __post_init__(self) -> None:
        self.check()

    def bar(self, log_value_before: Tensor, log_value: Tensor, usdt_weight: Tensor | None,
            fx_log_return: Tensor | None, flat: Tensor | None, notional_krw: Tensor | None = None,
            value_before: Tensor | None = None) -> Tensor:
        """The reward of one bar (element-wise; float64 money in, float64 out).

        Args:
            log_value_before: ``log V`` at the previous close.
            log_value: ``log V`` at this bar's close (after its fill, if any).
            usdt_weight: USDT weight at this close (``usdt * close / V``; read by ``fx_hedged`` only).
            fx_log_return: ``log(fx / fx_before)`` over the bar (read by ``fx_hedged`` only).
            flat: bool, no USDT held after the bar (read when ``flat_penalty`` is set).
            notional_krw: traded notional of the bar's fill (the fill bar only; None: no fill).
            value_before: ``V`` at the previous close (with ``notional_krw``).
        """
        reward = log_value - log_value_before
        if self.reward == "fx_hedged":
            # The USD/KRW part of the bar's return on the USDT held through it: what is left
            # is the premium's part (and the fills), the part a premium trader can predict.
            reward = reward - usdt_weight * fx_log_return
        if self.turnover_penalty and notional_krw is not None:
            reward = reward - self.turnover_penalty * notional_krw / value_before
        if self.flat_penalty:
            reward = reward - self.flat_penalty * flat
        return reward
