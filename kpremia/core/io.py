"""Atomic file writes and file hashes: the one place kpremia writes files safely.

Write to a temporary file in the same directory, flush and fsync, ``os.replace``
it over the target (atomic on POSIX and Windows), then fsync the directory so the
rename itself survives a crash.  A reader sees the old file or the complete new
one, never a torn write, even if the process is killed mid-write.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from kpremia.core.errors import UserError


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically with ``write(file_handle)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (streamed, so large files are fine)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def existing_file(path: str | Path, option: str) -> Path:
    """``path`` if it is a file, else one line naming the key to set (relative paths start at the cwd)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"data file not found: {p} (relative paths start at {Path.cwd()}); set {option} "
                        "to an existing file")
    return p


def load_torch_file(source: str | os.PathLike | bytes, *, weights_only: bool = False) -> Any:
    """The one ``torch.load`` of kpremia, onto the CPU: a checkpoint (:mod:`kpremia.run.checkpoint`), a sealed
    live snapshot (bytes), a weight version; torch is imported here, not when this module is.

    ``weights_only=True`` for files that hold tensors only (weight versions): nothing else is unpickled.
    """
    import torch

    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    return torch.load(handle, map_location="cpu", weights_only=weights_only)
