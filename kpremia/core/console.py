"""What a kpremia command prints: each line once, no adverts, progress that suits the terminal.

Why a module of its own: a research run's output is read twice, live in a terminal and
later in a log file (``nohup ... > fit.log``, a scheduler's capture).  Both readers want
the same things:

* **Each line once.**  Lightning puts its own console handler on the ``lightning`` logger
  *and* lets records propagate to the root logger, where the CLI (and Hydra's job
  logging) has one too, so every Lightning INFO line appeared twice.  When the root logger
  has a handler, Lightning's own is removed and its lines go through the root's format.
* **No third-party noise.**  Lightning's "Tip: ... try installing litlogger" advert on every
  ``Trainer`` and torch's pytree ``FutureWarning`` raised from inside Lightning's own code
  (nothing a kpremia user can act on) are dropped; everything else stays.
* **Progress without flooding.**  On a terminal, long loops show a tqdm bar that redraws in
  place; when stdout is not a terminal (a log file, a pipe, CI) a redrawn bar becomes
  thousands of lines, so the same loop logs one line when it starts and one when it ends.
  :func:`progress_bars_wanted` tells ``fit`` which of the two to use for Lightning's bar.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

# Lightning's adverts start with this (logger_connector: litlogger; callback_connector: litmodels).
_ADVERT_PREFIX = "💡 Tip:"
_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                      "lightning.fabric.utilities.rank_zero")


class _DropAdverts(logging.Filter):
    """Drops Lightning's product tips; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_ADVERT_PREFIX)


_ADVERTS = _DropAdverts()


def ignore_third_party_noise() -> None:
    """Filter warnings raised inside Lightning that a user cannot act on (idempotent).

    torch 2.13 deprecates ``LeafSpec``; Lightning 2.6's ``utilities/_pytree.py`` still builds
    one on every ``Trainer.fit``, so every run printed a FutureWarning about Lightning's code.
    """
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)


def tame_lightning_logging() -> None:
    """Each Lightning log line once, without adverts (idempotent; call after importing Lightning).

    With a handler on the root logger (the CLI, Hydra, a notebook's ``logging.basicConfig``)
    Lightning's own console handlers are removed so its records print once, in the root's
    format (and reach Hydra's ``cli.log``).  Without one, Lightning keeps its handler, the only
    place its lines would show.
    """
    ignore_third_party_noise()
    root_has_handler = bool(logging.getLogger().handlers)
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _ADVERTS not in logger.filters:
            logger.addFilter(_ADVERTS)
        if root_has_handler:
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:
                    logger.removeHandler(handler)
            logger.propagate = True


def stdout_is_terminal() -> bool:
    """Whether stdout is an interactive terminal (a redrawn progress bar is readable there)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def progress_bars_wanted() -> bool:
    """Redrawn progress bars: on a terminal, or when ``KPREMIA_PROGRESS=bar`` asks for them anyway.

    ``KPREMIA_PROGRESS=lines`` forces the log-friendly form on a terminal too.
    """
    forced = os.environ.get("KPREMIA_PROGRESS", "").strip().lower()
    if forced in ("bar", "bars"):
        return True
    if forced in ("line", "lines"):
        return False
    return stdout_is_terminal()


class Progress:
    """A loop's progress: a tqdm bar on a terminal, else a start line and an end line in the log."""

    def __init__(self, total: int, description: str, unit: str, bar: Any | None):
        self.total, self.description, self.unit, self._bar = total, description, unit, bar
        self.started = time.perf_counter()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        if self._bar is not None:
            self._bar.update(n)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


@contextlib.contextmanager
def progress(total: int, description: str, *, unit: str = "bar", logger: logging.Logger | None = None
             ) -> Iterator[Progress]:
    """Report a loop of ``total`` units (see the module docstring for the two forms)."""
    logger = logger or log
    bar = None
    if progress_bars_wanted():
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=description, unit=unit, leave=False, dynamic_ncols=True, mininterval=0.25)
    else:
        logger.info("%s: %s %s(s) ...", description, f"{total:,}", unit)
    state = Progress(total, description, unit, bar)
    try:
        yield state
    finally:
        if bar is not None:
            bar.close()
    logger.info("%s: %s %s(s) in %.1f s", description, f"{total:,}", unit, state.elapsed_s())
