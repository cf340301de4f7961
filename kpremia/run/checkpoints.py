"""Which checkpoint(s) a ``ckpt=`` means: a file, a glob, a run, a sweep, or ``best`` / ``last``.

Why: the path a user has at hand is a run directory (``fit`` prints it last) or a sweep
directory, not the name of the file Lightning wrote inside it; and a shell does not expand
a glob after ``ckpt=``.  So kpremia resolves, in this order:

* an existing file: itself;
* a pattern with ``*``, ``?`` or ``[``: expanded here; it must match exactly one file;
* a run directory (it holds ``checkpoints/``; also its ``checkpoints/`` folder itself): the
  checkpoint that run kept by ``algo.monitor`` (``best-epoch*.ckpt``), or ``last.ckpt`` where the
  command continues a run (``fit``) or where ``<run>/last`` is written;
* ``best`` / ``last``: that checkpoint of the newest run under the runs directory
  (``paths.runs_dir``, ``KPREMIA_RUNS_DIR``), multirun jobs included;
* ``<run dir>/best`` / ``<run dir>/last``: that checkpoint of the run;
* any other directory (a multirun or a folder of runs): every run below it, for the commands
  that take several (``test`` and ``validate``); the others refuse it in one line.

Resolving never imports torch: a failed or ambiguous lookup is one line before any work.
"""

from __future__ import annotations

import glob
from pathlib import Path

from kpremia.core.errors import UserError

CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"
BEST_PATTERN = "best-*.ckpt"
WHICH = ("best", "last")


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
