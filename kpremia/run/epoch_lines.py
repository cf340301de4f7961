"""One log line per epoch: ``fit``'s progress when stdout is not a terminal.

Lightning's progress bar redraws itself several times a second; in a log file (``fit ... >
fit.log``, a scheduler, CI) every redraw is a line, and a default run wrote tens of
thousands of them.  Off a terminal ``fit`` switches the bar off and adds this callback
instead: after each validation (once per epoch) one line with how far the budget is, the
validation figures the best checkpoint is chosen by, and the speed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lightning.pytorch.callbacks import Callback

log = logging.getLogger("kpremia.fit")

# Validation figures worth a glance, in this order (percent for returns).
_SHOWN = (("val/return", "val return", True), ("val/band_return", "band rule", True),
          ("val/excess_return", "excess", True), ("val/n_trades", "trades", False))


class EpochLines(Callback):
    """Logs ``epoch i/n: env steps, validation figures, env steps/s, elapsed`` after each epoch."""

    def __init__(self) -> None:
        self.total_env_steps = 0
        self._started = 0.0
        self._steps_at_start = 0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._started = time.perf_counter()
        self._steps_at_start = int(getattr(pl_module, "env_steps", 0))
        self.total_env_steps = int(pl_module.total_rounds() * pl_module.env_steps_per_round())

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        parts = []
        for key, label, percent in _SHOWN:
            if key in metrics:
                value = float(metrics[key])
                parts.append(f"{label} {100 * value:+.2f} %" if percent else f"{label} {value:,.0f}")
        elapsed = time.perf_counter() - self._started
        steps = int(getattr(pl_module, "env_steps", 0))
        rate = (steps - self._steps_at_start) / elapsed if elapsed > 0 else 0.0
        epochs = pl_module.max_epochs() if hasattr(pl_module, "max_epochs") else trainer.max_epochs  # the budget's
        log.info("epoch %d/%d: %s / %s env steps; %s; %s env steps/s, %.0f s", trainer.current_epoch + 1, epochs, f"{steps:,}", f"{self.total_env_steps:,}", ", ".join(parts) or "no validation",
                 f"{rate:,.0f}", elapsed)
