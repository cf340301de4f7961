"""A kpremia checkpoint, in one module: its files, finding one, reading it, checking it, building its module.

Why one home: reading a checkpoint, checking its bar size, rebuilding its module, applying the
test-time overrides and naming its files used to live in four modules (training, resume,
evaluate, the path resolver), with ``torch.load`` at five sites and the "not a kpremia
checkpoint" refusal written twice; ``live/`` imported the training entry just to load a policy.
Everything a command does with a checkpoint file goes through here:

* **files**: ``<run>/checkpoints/best-epochNNN.ckpt`` (the one ``algo.monitor`` kept) and
  ``<run>/checkpoints/last.ckpt`` (the newest state): :data:`BEST_NAME`, :data:`LAST_NAME`;
* **which file** a ``ckpt=`` means (:func:`resolve_checkpoints`): an existing file; a pattern with
  ``*``, ``?`` or ``[`` (exactly one match); a run directory (its best checkpoint, or ``last.ckpt``
  where a command continues a run); ``best`` / ``last`` (of the newest run under ``paths.runs_dir``,
  ``KPREMIA_RUNS_DIR``); ``<run dir>/best`` / ``<run dir>/last``; any other directory (every run
  below it, for ``test`` and ``validate``; the other commands refuse it in one line);
* **peeking** (:func:`peek_checkpoint`): the plain parts (config, kpremia header) without torch, so
  a file that is not a checkpoint, one written before the per-bar names, or one whose plug-in is
  missing is refused in a second, before torch, Lightning and the market load;
* **loading** (:func:`read_checkpoint`, :func:`load_checkpoint`): through the one ``torch.load`` of
  kpremia (:func:`kpremia.core.io.load_torch_file`), the module rebuilt from the saved config and
  spec, the saved normaliser and bar size;
* **checking** the data's bar size against the checkpoint's (:func:`check_bar_size`);
* **the run config** it carries (:func:`saved_run_config`) and the command line's explicit
  overrides of it for ``validate`` / ``test`` / ``live`` (:func:`apply_overrides`).

torch is imported inside the functions that need it: resolving and peeking never load it.
"""

from __future__ import annotations

import copy
import glob
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kpremia.core.errors import UserError
from kpremia.core.io import load_torch_file

if TYPE_CHECKING:
    from kpremia.algos.base import RLModule
    from kpremia.core.spec import ObsSpec
    from kpremia.data.market import MarketData, Normalizer
    from kpremia.run.run_config import RunConfig

# ---------------------------------------------------------------------------------------------- files

CHECKPOINTS = "checkpoints"  # the folder of a run directory that holds its checkpoints
BEST_NAME = "best-epoch{epoch:03d}"  # Lightning's filename template of the checkpoint algo.monitor kept
LAST_NAME = "last"  # the newest state, written after every epoch
SUFFIX = ".ckpt"
LAST = LAST_NAME + SUFFIX
BEST_PATTERN = "best-*" + SUFFIX
WHICH = ("best", "last")

# The release that reads checkpoints written before the per-bar names (env.window_bars, price_bars).
PER_BAR_RELEASE = "kpremia 0.1.0 (git 7133b19)"
_OLD_NAMES = ("window_15m", "price_15m")


def last_checkpoint(run_dir: str | Path) -> Path:
    """``<run>/checkpoints/last.ckpt``: where a run's newest state is written."""
    return Path(run_dir) / CHECKPOINTS / LAST


def run_dir_of(ckpt: str | Path) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/x.ckpt`` with ``<run>/config.yaml``)."""
    path = Path(ckpt).resolve()
    run = path.parent.parent
    return run if path.parent.name == CHECKPOINTS and (run / "config.yaml").is_file() else None


def is_run_dir(path: Path) -> bool:
    """A ``fit`` run directory: it holds a ``checkpoints/`` folder."""
    return (path / CHECKPOINTS).is_dir()


def runs_below(path: Path) -> list[Path]:
    """Every run directory at or below ``path`` (sorted; a multirun's jobs, a folder of runs)."""
    if is_run_dir(path):
        return [path]
    return sorted({p.parent for p in path.rglob(CHECKPOINTS) if p.is_dir() and is_run_dir(p.parent)})


def checkpoint_of_run(run_dir: Path, which: str = "best") -> Path:
    """The run's best checkpoint (the one ``algo.monitor`` kept) or its ``last.ckpt``.

    ``best`` falls back to ``last.ckpt`` only when the run has no best file (no validation
    ran yet), and says so in the error otherwise.
    """
    folder = run_dir / CHECKPOINTS
    last = folder / LAST
    if which == "last":
        if not last.is_file():
            raise UserError(f"run {run_dir} has no {CHECKPOINTS}/{LAST} (did its fit start?); pass a .ckpt file")
        return last
    best = sorted(folder.glob(BEST_PATTERN))
    if len(best) == 1:
        return best[0]
    if len(best) > 1:  # resumed runs keep one best file; older layouts may hold several
        return max(best, key=lambda p: p.stat().st_mtime)
    if last.is_file():
        return last
    raise UserError(f"run {run_dir} has no checkpoint in {folder}; did its fit fail? (see its failed.json)")


def newest_run(runs_dir: Path) -> Path:
    """The run under ``runs_dir`` (multirun jobs included) whose ``last.ckpt`` was written last."""
    candidates = [p for p in runs_below(runs_dir) if (p / CHECKPOINTS / LAST).is_file()] if runs_dir.is_dir() else []
    if not candidates:
        raise UserError(f"no runs with checkpoints under {runs_dir} (paths.runs_dir / KPREMIA_RUNS_DIR); "
                        "train one with `python -m kpremia fit`, or pass ckpt=<run dir or .ckpt file>")
    return max(candidates, key=lambda p: (p / CHECKPOINTS / LAST).stat().st_mtime)


def resolve_checkpoints(spec: str, *, runs_dir: str | Path = "runs", which: str = "best",
                        many: bool = False) -> list[Path]:
    """The checkpoint file(s) ``spec`` names (see the module docstring); ``which`` for run directories.

    ``many=False`` (every command but ``test`` / ``validate``): exactly one, else a one-line error.
    """
    text = str(spec).strip()
    if not text:
        raise UserError("ckpt is empty; pass ckpt=<run dir>, ckpt=best, ckpt=last or a .ckpt file")
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if text in WHICH:
        run = newest_run(Path(runs_dir))
        return [checkpoint_of_run(run, text)]
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(m) for m in glob.glob(str(path)) if Path(m).is_file())
        if len(matches) == 1:
            return matches
        if not matches:
            raise UserError(f"no checkpoint matches {text!r}; pass a run directory (ckpt=runs/<run>), "
                            "ckpt=best / ckpt=last, or an existing .ckpt file")
        shown = ", ".join(str(m) for m in matches[:4]) + (" ..." if len(matches) > 4 else "")
        raise UserError(f"{text!r} matches {len(matches)} checkpoints ({shown}); pass one of them, or the run "
                        "directory (its best checkpoint)")
    if path.name in WHICH and path.parent.is_dir() and is_run_dir(path.parent):
        return [checkpoint_of_run(path.parent, path.name)]
    if path.is_dir():
        if path.name == CHECKPOINTS and is_run_dir(path.parent):
            path = path.parent
        if is_run_dir(path):
            return [checkpoint_of_run(path, which)]
        runs = runs_below(path)
        if not runs:
            raise UserError(f"{path} holds no runs (no {CHECKPOINTS}/ folder below it); pass a run directory or "
                            "a .ckpt file")
        if not many:
            raise UserError(f"{path} holds {len(runs)} runs; pass one of them (e.g. ckpt={runs[0]}), or test them "
                            f"all with `python -m kpremia test {path}`")
        out = []
        for run in runs:
            try:
                out.append(checkpoint_of_run(run, which))
            except UserError:
                continue  # a failed job of a sweep: reported by the caller from what is missing
        if not out:
            raise UserError(f"no run under {path} has a checkpoint (did every fit fail?)")
        return out
    raise UserError(f"checkpoint {text!r} not found; pass ckpt=<run dir> (its best checkpoint), "
                    "ckpt=<run dir>/checkpoints/last.ckpt, ckpt=best or ckpt=last (the newest run)")


# ------------------------------------------------------------------------------------ reading, torch-free

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
    """A checkpoint torch writes is a zip archive whose ``*/data.pkl`` pickles the dict: this reads the
    plain parts (only ``collections.OrderedDict`` and plain builtins are real, every other class an inert
    stub, every tensor storage ``None``), in about a millisecond, executing nothing of the file."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _REAL:
            return super().find_class(module, name)
        return _Stub

    def persistent_load(self, pid: Any) -> None:  # tensor storages live in other archive members
        return None


def not_a_checkpoint(path: Path | str, why: str) -> UserError:
    """The one-line refusal of a file that is not a kpremia checkpoint (the only place it is written)."""
    return UserError(f"{str(path)!r} is not a kpremia checkpoint ({why}); pass a .ckpt file written by "
                     "`python -m kpremia fit`")


def _missing(path: Path) -> UserError:
    return UserError(f"checkpoint {str(path)!r} not found; pass ckpt=<run dir> (its best checkpoint), "
                     "ckpt=best / ckpt=last or a .ckpt file")


def _old_names(saved: dict[str, Any]) -> list[str]:
    """The pre-per-bar names a checkpoint's saved config or spec still uses (``window_15m``, ``price_15m``)."""
    hparams = saved["hyper_parameters"]
    env = hparams["cfg"].get("env")
    spec = hparams.get("spec")
    shapes = spec.get("shapes") if isinstance(spec, dict) else None
    found = [name for name in _OLD_NAMES if (isinstance(env, dict) and name in env)
             or (isinstance(shapes, dict) and name in shapes)]
    return found


def peek_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict with tensors as ``None``, read without torch; one :class:`UserError` line if it is
    not a kpremia checkpoint or one this release cannot read (written before the per-bar names)."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
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
    old = _old_names(saved)
    if old:
        raise UserError(f"{str(path)!r} was written by kpremia 0.1.0 before the per-bar names ({', '.join(old)}, "
                        f"now window_bars / price_bars); re-train it, or read it with {PER_BAR_RELEASE}")
    return saved


def checked_checkpoint(path: str | Path) -> dict[str, Any]:
    """:func:`peek_checkpoint`, and its plug-ins made available (or one line naming what to install)."""
    from kpremia.core.plugin_origins import require_plugins

    saved = peek_checkpoint(path)
    require_plugins(saved, Path(path))
    return saved


def saved_run_config(saved: dict[str, Any]) -> dict[str, Any]:
    """The run config a checkpoint carries (``hyper_parameters["cfg"]``; written by ``RLModule.__init__``)."""
    return saved["hyper_parameters"]["cfg"]


def saved_bar_minutes(saved: dict[str, Any], path: str | Path) -> float:
    """The bar size (minutes) the checkpoint was trained on: every checkpoint ``fit`` writes records it."""
    value = (saved.get("kpremia") or {}).get("bar_minutes")
    if value is None:
        raise not_a_checkpoint(path, "no bar size recorded in it")
    return float(value)


def saved_env_steps(saved: dict[str, Any]) -> int:
    """The env steps the checkpoint had trained (0 when not recorded)."""
    return int((saved.get("kpremia") or {}).get("env_steps") or 0)


# ------------------------------------------------------------------------------------- reading, with torch

def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The whole checkpoint dict (tensors included), after :func:`checked_checkpoint`'s one-line refusals."""
    path = Path(path)
    checked_checkpoint(path)
    try:
        saved = load_torch_file(path)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError, RuntimeError, EOFError,
            OSError) as exc:  # a truncated download, another framework's checkpoint
        raise not_a_checkpoint(path, type(exc).__name__) from None
    if "spec" not in saved["hyper_parameters"] or "state_dict" not in saved:
        raise not_a_checkpoint(path, "no observation spec or weights in it")
    return saved


def check_bar_size(trained_minutes: float, market: MarketData, what: str) -> None:
    """Refuse to act on bars of another size than the checkpoint's, in one line.

    A policy's windows, features' look-backs (in bars), decision interval and normaliser
    statistics are all at its training bar size; on other bars it would see another market.
    """
    from kpremia.core.bars import bar_of_minutes, timeframe_label

    if abs(trained_minutes - market.bar_minutes) > 1e-9:
        trained = timeframe_label(bar_of_minutes(trained_minutes))
        got = timeframe_label(market.bar)
        raise UserError(f"the checkpoint was trained on {trained} bars but the data gives {got} bars; {what} it on "
                        f"{trained} bars (data.timeframe={trained}, or a file of {trained} bars or finer with "
                        f"data.timeframe={trained})")


def build_module(cfg: dict[str, Any], spec: ObsSpec, market: MarketData | None) -> RLModule:
    """The run's algorithm module (``algo.name``), for ``fit`` (with its market) or to act (``market=None``)."""
    from kpremia.core.registry import ALGOS

    return ALGOS.get(cfg["algo"]["name"])(cfg, spec, market)


class LoadedCheckpoint(NamedTuple):
    """A checkpoint's module (eval mode) with the normaliser, run config (parsed once) and bar size it was trained
    with."""

    module: RLModule
    normalizer: Normalizer | None
    cfg: RunConfig
    bar_minutes: float


def load_checkpoint(ckpt_path: str | os.PathLike) -> LoadedCheckpoint:
    """Rebuild a module from a checkpoint alone, with its saved normaliser (None where none was saved).

    The normaliser is the one fitted on the run's train split; ``validate``, ``test`` and
    ``live`` scale every observation with it, whatever data they run on.
    """
    from kpremia.core.spec import ObsSpec
    from kpremia.data.market import Normalizer
    from kpremia.run.run_config import RunConfig

    path = Path(ckpt_path)
    saved = read_checkpoint(path)
    cfg = RunConfig.from_dict(saved_run_config(saved))
    bar_minutes = saved_bar_minutes(saved, path)
    module = build_module(cfg.raw, ObsSpec.from_dict(saved["hyper_parameters"]["spec"]), market=None)
    module.load_state_dict(saved["state_dict"])
    module.eval()
    normalizer_state = (saved.get("kpremia") or {}).get("normalizer")
    normalizer = Normalizer.from_state_dict(normalizer_state) if normalizer_state else None
    return LoadedCheckpoint(module, normalizer, cfg, bar_minutes)


def load_module(ckpt_path: str | os.PathLike) -> RLModule:
    """Rebuild a module from a checkpoint alone (config and spec are saved in it)."""
    return load_checkpoint(ckpt_path).module


# ------------------------------------------------------------------------------------ test-time overrides

# Groups never taken from the command line into a checkpoint's config (eval is always the command line's).
_NOT_FROM_CLI = ("ckpt", "hydra", "eval", "experiment", "logger", "paths", "live")


def apply_overrides(run_cfg: Mapping[str, Any], cli_cfg: Mapping[str, Any], overrides: list[str]) -> RunConfig:
    """The checkpoint's config with the user's explicit overrides (values taken from the composed CLI config),
    parsed once into the :class:`~kpremia.run.run_config.RunConfig` the command runs with.

    ``validate``, ``test`` and ``live`` evaluate a checkpoint with its own config; the command
    line may change ``eval.*`` and, explicitly, data or env keys (e.g. to test on another file).
    """
    from kpremia.run.run_config import RunConfig

    cfg = copy.deepcopy(dict(run_cfg))
    cfg["eval"] = cli_cfg["eval"]
    for raw in overrides:
        key = raw.split("=", 1)[0].lstrip("+~").replace("/", ".")  # env/action_scheme=x is a node too
        if not key or key.split(".")[0].split("/")[0] in _NOT_FROM_CLI:
            continue
        if key.split(".")[0] not in cli_cfg:  # a preset writing other keys (debug=fast, hparams_search=...)
            raise UserError(f"`{raw}` cannot be applied when evaluating a checkpoint: it is a training preset that "
                            "changes several keys of the run, and validate/test use the checkpoint's own config; "
                            "drop it (override single keys such as eval.* or data.path instead)")
        if "." not in key and isinstance(cli_cfg.get(key), dict):  # a whole group, e.g. data=csv
            cfg[key] = copy.deepcopy(cli_cfg[key])
            continue
        node_src, node_dst = cli_cfg, cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node_src, node_dst = node_src[part], node_dst.setdefault(part, {})
        node_dst[parts[-1]] = copy.deepcopy(node_src[parts[-1]])
    return RunConfig.from_dict(cfg)
