"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (bad override, missing file,
bad data, unknown plug-in).  The CLI prints its message as one line and exits
with code 2 instead of showing a traceback, so every message must name both the
problem and the fix.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; printed as one line, exit code 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
