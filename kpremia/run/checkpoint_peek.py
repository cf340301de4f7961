"""Read a checkpoint's config and kpremia header without torch.

Why: ``test ckpt=README.md``, a truncated download or a checkpoint whose encoder plug-in is not
installed should be refused in a second, not after torch, Lightning and the market are loaded.
A checkpoint torch writes is a zip archive whose ``*/data.pkl`` pickles the dict; read with an
unpickler that turns every class into an inert stub and every tensor storage into ``None``, it
yields the plain parts (``hyper_parameters["cfg"]``, ``kpremia["bar_minutes"]``,
``kpremia["plugins"]``) in about a millisecond.  Nothing in the file is executed: only
``collections.OrderedDict`` and plain builtins are real, everything else is a stub.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from kpremia.core.errors import UserError

_REAL = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
         ("builtins", "complex"), ("builtins", "bytearray"), ("builtins", "range")}


class _Stub(dict):  # type: ignore[type-arg]
    """Stands for any class in the pickle (a tensor, a Lightning dict, a NumPy scalar): absorbs what it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


class _Reader(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _REAL:
            return super().find_class(module, name)
        return _Stub

    def persistent_load(self, pid: Any) -> None:  # tensor storages live in other archive members
        return None


def not_a_checkpoint(path: Path | str, why: str) -> UserError:
    """The one-line refusal of a file that is not a kpremia checkpoint."""
    return UserError(f"{str(path)!r} is not a kpremia checkpoint ({why}); pass a .ckpt file written by "
                     "`python -m kpremia fit`")


def peek_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict with tensors as ``None``; a :class:`UserError` if it is not a kpremia checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} not found; pass ckpt=<run dir> (its best checkpoint), "
                        "ckpt=best / ckpt=last or a .ckpt file")
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not pickled:
                raise not_a_checkpoint(path, "a zip archive without data.pkl")
            with archive.open(pickled[0]) as handle:
                saved = _Reader(handle).load()
    except zipfile.BadZipFile:
        raise not_a_checkpoint(path, "not a torch checkpoint archive") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise not_a_checkpoint(path, f"unreadable: {type(exc).__name__}") from None
    hparams = saved.get("hyper_parameters") if isinstance(saved, dict) else None
    if not isinstance(hparams, dict) or not isinstance(hparams.get("cfg"), dict):
        raise not_a_checkpoint(path, "no kpremia config in it")
    return saved
