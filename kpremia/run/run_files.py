"""The run directory: everything needed to understand and reproduce a run.

``runs/<date>_<time>_<experiment>/`` holds the resolved ``config.yaml``,
``meta.json`` (git sha, package versions, seed, device, command line), the data
manifest, ``checkpoints/``, ``metrics.csv`` and, after ``test``, ``report/``.
A ``fit`` that fails leaves no directory when it failed before writing anything
of its own, else a ``failed.json`` (the error) that ``compare`` reports.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import yaml

from kpremia.core.identity import identity_digest
from kpremia.core.io import atomic_write_json, atomic_write_text
from kpremia.core.threads import available_cores

PACKAGES = ("kpremia", "torch", "lightning", "torchmetrics", "hydra-core", "omegaconf", "pandas", "numpy",
            "ccxt", "wandb", "gymnasium")


def git_sha() -> str | None:
    """The checkout's commit (with ``-dirty`` when modified), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def describe_device(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def write_run_files(run_dir: Path, cfg: dict[str, Any], data_manifest: dict[str, Any], *,
                    resumed_from: str | None = None, resumed_at_env_steps: int | None = None) -> None:
    """Write config.yaml, meta.json and data_manifest.json into ``run_dir`` (atomically).

    A resumed run (``resumed_from``: the checkpoint) keeps its ``meta.json`` and appends the
    resume (when, from which checkpoint and env step, the command line) to its ``resumes``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    meta_path = run_dir / "meta.json"
    if resumed_from is not None and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        meta.setdefault("resumes", []).append({
            "checkpoint": resumed_from, "env_steps": resumed_at_env_steps, "git_sha": git_sha(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "resumed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        atomic_write_json(meta_path, meta)
        atomic_write_json(run_dir / "data_manifest.json", data_manifest)
        return
    meta = {
        "experiment": cfg.get("experiment_name"),
        "identity": identity_digest(cfg),
        "seed": cfg.get("seed"),
        "git_sha": git_sha(),
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "device": describe_device(str(cfg.get("trainer", {}).get("accelerator", "cpu"))),
        # results are reproducible at a given thread count (kpremia.core.threads): the count this run used
        "torch_threads": torch.get_num_threads(), "torch_threads_setting": cfg.get("torch_threads"),
        "cpu_cores_available": available_cores(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(run_dir / "meta.json", meta)
    atomic_write_json(run_dir / "data_manifest.json", data_manifest)


FAILED = "failed.json"
# What Hydra puts in a run directory before the command runs: nothing a user needs once it failed.
_HYDRA_FILES = frozenset({".hydra", "cli.log"})


def mark_failed(run_dir: Path, error: BaseException) -> Path | None:
    """After a failed ``fit``: remove a directory holding only Hydra's files, else write ``failed.json``.

    Returns the directory if it was kept.  Only the global rank 0 acts (DDP children
    share the directory).  Without this, every mistake caught after Hydra started
    (a bad data file, a crash) left a ``runs/`` entry indistinguishable from a run.
    """
    if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) != 0 or not run_dir.is_dir():
        return None
    if {p.name for p in run_dir.iterdir()} <= _HYDRA_FILES:
        shutil.rmtree(run_dir, ignore_errors=True)
        return None
    atomic_write_json(run_dir / FAILED, {
        "error": " ".join(str(error).split()) or type(error).__name__,
        "type": type(error).__name__,
        "failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return run_dir


def failure_of(run_dir: Path) -> str | None:
    """The recorded error of a failed run, or None for a run that did not fail."""
    path = run_dir / FAILED
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text()).get("error") or "failed")
    except (OSError, ValueError):
        return "failed"
