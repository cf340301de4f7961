"""The files a command will read, checked before anything heavy is loaded.

Why: a missing data file, ``data=csv`` without ``data.path``, or a checkpoint that is not one
(or whose plug-in is not installed) used to be found after torch, Lightning and the market
were loaded: 5 to 17 s for a one-line answer.  These checks need only the composed config, the
file system and :mod:`kpremia.run.checkpoint`, so the CLI runs them right after the config
checks and a mistake is answered in about a second.  The readers keep their own checks (the
Python API and the tests call them directly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kpremia.core.config import checkpoint_of, runs_root
from kpremia.core.errors import UserError
from kpremia.core.io import existing_file
from kpremia.run.checkpoint import checked_checkpoint, resolve_checkpoints

FILE_SOURCES = ("csv", "parquet")
_MISSING = (None, "", "???")


def check_data_files(data: Mapping[str, Any], command: str = "fit") -> None:
    """``data=csv|parquet``: ``data.path`` given and a file; ``data.fx_path`` and a columns file exist."""
    name = data.get("name")
    if name not in FILE_SOURCES:
        return
    if data.get("path") in _MISSING:
        raise UserError(f"data.path is required with data={name}: add data.path=<your .{name} file>, e.g. "
                        f"`python -m kpremia {command} data={name} data.path=prices.{name}`")
    existing_file(data["path"], "data.path")
    fx_path = data.get("fx_path")
    if fx_path not in _MISSING and str(fx_path).lower() != "ecb":
        existing_file(fx_path, "data.fx_path")
    for key in ("columns", "fx_columns"):
        if isinstance(data.get(key), str):
            existing_file(data[key], f"data.{key}")


def needs_checkpoint(command: str) -> UserError:
    """The refusal of ``validate`` / ``test`` without ``ckpt=``."""
    return UserError(f"`{command}` needs a checkpoint: ckpt=<run dir> (its best checkpoint), ckpt=best "
                     f"(the newest run), ckpt=<.ckpt file>, or a sweep directory: `{command} runs/multirun/<stamp>`")


def check_checkpoint(cfg: Mapping[str, Any], command: str) -> None:
    """The checkpoint a command will load: found, a kpremia checkpoint, its plug-ins available."""
    ckpt = checkpoint_of(cfg)
    if not ckpt:
        if command in ("validate", "test"):
            raise needs_checkpoint(command)
        return
    many = command in ("validate", "test")
    paths = resolve_checkpoints(ckpt, runs_dir=runs_root(cfg), which="last" if command == "fit" else "best",
                                many=many)
    if len(paths) == 1:  # a sweep's runs are checked one by one when evaluated (a bad one is listed, not fatal)
        checked_checkpoint(paths[0])


def check_inputs(command: str, cfg: Mapping[str, Any], overrides: Sequence[str] = ()) -> None:
    """Every file-level mistake of ``command`` as one :class:`UserError` line, without torch.

    ``validate`` / ``test`` read the checkpoint's own data unless ``overrides`` name another (``data...``).
    """
    reads_data = command in ("fit", "backtest") or (
        command in ("validate", "test") and any(o.lstrip("+~").startswith("data") for o in overrides))
    if reads_data:
        check_data_files(cfg.get("data") or {}, command)
    if command in ("validate", "test", "live", "serve"):
        check_checkpoint(cfg, command)
