"""What a new run's directory is called: ``<paths.runs_dir>/<date>_<time>_<label>``, the one rule.

Also where a sweep (``multirun/<date>_<time>``) and a study (``studies/<experiment>``) go.

Why one place: the CLI's run directories are named by Hydra (``hydra.run.dir`` in
``configs/config.yaml``, and ``backtest``'s own pattern), the Python API's by
:func:`new_run_dir`; ``compare``, ``study`` and users find runs by that shape.  The Hydra
patterns are built here too (:func:`hydra_run_dir`, :func:`hydra_sweep_dir`), and a test
checks that the YAML spells exactly these, so the two entries cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from kpremia.core.config import runs_root

STAMP = "%Y-%m-%d_%H-%M-%S"  # local time, as Hydra's ${now:...} writes it
MULTIRUN = "multirun"  # the folder of the sweeps under the runs directory
STUDIES = "studies"  # the folder of the studies (`python -m kpremia study`) under the runs directory


def run_dir_name(label: str, when: datetime | None = None) -> str:
    """``<date>_<time>_<label>``: the name of a run directory started at ``when`` (default now)."""
    return f"{(when or datetime.now()):{STAMP}}_{label}"


def run_label(cfg: Mapping[str, Any], label: str | None = None) -> str:
    """The last part of a run's name: ``label`` (``backtest``) or the config's ``experiment_name``."""
    return str(label or cfg.get("experiment_name") or "run")


def new_run_dir(cfg: Mapping[str, Any], label: str | None = None) -> Path:
    """Claim a fresh, empty run directory under ``paths.runs_dir``: ``<date>_<time>_<label>``, with a
    ``_<n>`` suffix when one of that name exists.

    Claimed by creating it (``mkdir`` fails on a directory that exists), so two runs started in
    the same second -- a shell loop, two terminals, a job array -- never share a directory.
    """
    root = Path(runs_root(cfg))
    root.mkdir(parents=True, exist_ok=True)
    stem = run_dir_name(run_label(cfg, label))
    candidate, n = root / stem, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            candidate, n = root / f"{stem}_{n}", n + 1


def study_dir(cfg: Mapping[str, Any]) -> Path:
    """A study's default directory: ``<paths.runs_dir>/studies/<experiment_name>`` (resumable, so no stamp)."""
    return Path(runs_root(cfg)) / STUDIES / run_label(cfg)


def hydra_run_dir(label: str = "${experiment_name}") -> str:
    """The same name as a ``hydra.run.dir`` pattern (Hydra's ``${now:...}`` clock, ``paths.runs_dir``)."""
    return "${paths.runs_dir}/${now:" + STAMP + "}_" + label


def hydra_sweep_dir() -> str:
    """``hydra.sweep.dir``: ``<paths.runs_dir>/multirun/<date>_<time>`` (its jobs in numbered subdirs)."""
    return "${paths.runs_dir}/" + MULTIRUN + "/${now:" + STAMP + "}"
