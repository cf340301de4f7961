"""Storage that fails while a session runs: recognised, announced once, and the session stopped cleanly.

A disk that fills (or a file-size limit, a directory turned read-only) after the start checks
shows up in many shapes: ``OSError`` with ``ENOSPC``/``EFBIG``/``EROFS``..., SQLite's "database or
disk is full" or "disk I/O error", torch's "PytorchStreamWriter failed writing file" (or an
"unexpected pos" from its zip writer).  :func:`storage_error_text` names them; where the
exception itself does not say (torch), :func:`probe` asks the disk directly by writing and
syncing a small file beside the state.

A :class:`StorageAlarm` is shared by the runner and the control API: the first storage failure
(a journal commit of the runner, a ``/save`` of the API) trips it; from then on the API answers
503 to every request and the runner ends before its next bar with one line and exit code 4
(:class:`~kpremia.core.errors.StorageFailed`).  SQLite rolls the failed transaction back, so the
journal keeps its last commit and a start after freeing space resumes from it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
import threading
from pathlib import Path

STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG,
                            errno.EIO})
SQLITE_STORAGE = ("disk is full", "readonly database", "unable to open database file", "disk i/o error")
_TORCH_WRITE = ("failed writing file", "file write failed", "unexpected pos")
PROBE_BYTES = 1 << 20  # a 1 MiB probe: a disk (or a file-size limit) that cannot take it cannot take a commit


def storage_error_text(exc: BaseException) -> str | None:
    """A short description when ``exc`` (or one of its causes) is a storage failure, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.OperationalError) and any(s in str(current).lower() for s in SQLITE_STORAGE):
            return f"SQLite: {current}"
        if isinstance(current, OSError) and current.errno in STORAGE_ERRNOS:
            where = f"{current.filename}: " if current.filename else ""
            return f"{where}{current.strerror or os.strerror(current.errno)}"
        current = current.__cause__ or current.__context__
    return None


def probe(folder: str | Path) -> str | None:
    """Write and sync :data:`PROBE_BYTES` in ``folder`` (then remove it); the storage error, or None if it took it."""
    path = None
    try:
        fd, path = tempfile.mkstemp(prefix=".kpremia-probe-", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return storage_error_text(exc) or f"{exc.strerror or exc}"
    finally:
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass
    return None


def classify(exc: BaseException, folder: str | Path | None) -> str | None:
    """:func:`storage_error_text`, else (a write that failed without saying why) :func:`probe` of ``folder``."""
    text = storage_error_text(exc)
    if text is None and folder is not None and any(s in str(exc).lower() for s in _TORCH_WRITE):
        text = probe(folder)
    return text


class StorageAlarm:
    """Tripped once by the first storage failure of a session; read by the API (503) and the runner (stop)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.message = ""

    @property
    def tripped(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Block until tripped or ``timeout_s`` passed; whether it is tripped."""
        return self._event.wait(timeout_s)

    def trip(self, message: str) -> None:
        if not self._event.is_set():
            self.message = message
            self._event.set()
