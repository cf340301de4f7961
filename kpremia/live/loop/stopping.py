"""Ctrl-C and SIGTERM stop a live session cleanly: the bar in progress is finished, then one line.

A supervisor stops a service with SIGTERM, a person with Ctrl-C (SIGINT).  The first signal
asks for a clean stop: a bar being processed is finished (its decision, order and answer
journaled), no new bar is started, the callbacks' ``on_stop`` run (a checkpoint is written),
and ``live`` ends with one line and exit code 130 (SIGINT) or 143 (SIGTERM) -- the shell's
convention for "ended by this signal".  Between bars (waiting for the feed) the stop is
immediate.  A second signal abandons the bar in progress: its journal transaction is rolled
back or committed whole (the crash-safety protocol), and the next start resumes as after a
crash.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class StopNow(BaseException):
    """Raised by the signal handler to leave a wait for the feed (or to abandon a bar on a second signal)."""


@contextmanager
def stop_on_signals(runner: Any) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM set ``runner.stop_signal`` and stop the runner cleanly."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        first = runner.stop_signal is None
        runner.stop_signal = signum
        runner.should_stop = True
        if first and runner.in_bar:
            log.warning("%s: stopping after this bar (send it again to abandon the bar)", SIGNAL_NAMES[signum])
            return
        raise StopNow()

    previous = {s: signal.signal(s, handler) for s in SIGNAL_NAMES}
    try:
        yield
    except StopNow:
        pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def stopped_line(runner: Any, state_dir: str) -> str:
    """The one line of a session stopped by a signal."""
    state = runner.state
    return (f"{SIGNAL_NAMES.get(runner.stop_signal, 'a signal')} received: the session stopped cleanly after bar "
            f"{state.last_bar_time} (step {state.step}, {runner.bars_this_session} bar(s) this session), every "
            f"decision up to it journaled; start again with live.state_dir={state_dir} to resume")


class Terminated(KeyboardInterrupt):
    """SIGTERM before the session runs (or after it stopped), raised like Ctrl-C's KeyboardInterrupt."""


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (until the runner installs its clean stop)."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def interrupted_line(exc: KeyboardInterrupt) -> tuple[int, str]:
    """Exit code and one line for a signal that arrived while the session was starting (or stopping)."""
    signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    return 128 + int(signum), (f"{SIGNAL_NAMES[signum]} received before the session ran a bar: nothing was "
                               "traded; start again with the same live.state_dir to run it")
