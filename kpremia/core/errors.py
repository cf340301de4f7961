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
4     ``live`` stopped because its storage failed while running (disk full, read-only, a file-size
      limit): one line; the journal keeps its last commit, a start after freeing space resumes
130   ``live`` stopped by Ctrl-C (SIGINT), 143 by SIGTERM: one line; the bar in progress was
      finished or abandoned atomically, a start resumes
====  =====================================================================
"""

from __future__ import annotations

EXIT_USER_ERROR = 2
EXIT_HALTED = 3
EXIT_STORAGE = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class UserError(Exception):
    """A mistake in the user's input; printed as one line, exit code 2."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class StorageFailed(Exception):
    """A live session whose storage failed while it ran; printed as one line, exit code 4."""

    exit_code = EXIT_STORAGE

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class SessionStopped(Exception):
    """A live session stopped by a signal (Ctrl-C: exit 130, SIGTERM: 143) after a clean stop; one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code


class SessionHalted(Exception):
    """A live session that ended in the HALTED risk state; printed as one line, exit code 3."""

    exit_code = EXIT_HALTED

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
