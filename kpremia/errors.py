"""User-facing errors and the exit codes of ``python -m kpremia``.

A :class:`UserError` is a mistake the user can fix (bad override, missing file,
bad data, unknown plug-in).  The CLI prints its message as one line and exits
with code 2 instead of showing a traceback, so every message must name both the
problem and the fix.

Exit codes (a supervisor such as systemd, docker or Kubernetes acts on them):

====  =====================================================================
0     finished (``live``: the feed ended or ``live.max_bars`` was reached)
1     an unexpected error (a bug: the traceback is printed)
2     bad input or a start-up fault (one line on stderr; nothing was changed)
3     ``live`` ended HALTED (one line on stderr with the cause; a person must act)
====  =====================================================================
"""

from __future__ import annotations


EXIT_USER_ERROR = 2
EXIT_HALTED = 3


class UserError(Exception):
    """A mistake in the user's input; printed as one line, exit code 2."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class SessionHalted(Exception):
    """A live session that ended in the HALTED risk state; printed as one line, exit code 3."""

    exit_code = EXIT_HALTED

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
