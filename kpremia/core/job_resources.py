"""One trial per device: the torch threads and the GPU of one job of a parallel sweep.

Why: Hydra's launcher plug-ins start trials side by side but know nothing of torch.  Under
joblib every trial would take the whole machine's threads (two trials on two cores run slower
than one after the other), and with ``trainer=gpu`` every trial would land on GPU 0.  So each
job, before it trains, works out:

* **its share of the CPU**: ``cores // trials at once`` torch threads under joblib (``n_jobs``
  trials at once), or the ``cpus_per_task`` a submitit launcher reserved for it (1 when unset);
  ``torch_threads=N`` given on the command line wins.  The basic launcher runs one trial at a
  time and leaves ``torch_threads`` as configured.
* **its own GPU**, under a launcher that runs trials side by side, when ``trainer.accelerator=gpu``
  asks for one device and more than one is visible: starting at ``job number % devices``, the
  first device no other job of the sweep holds, claimed for the job's life by a lock file under
  ``<sweep dir>/.devices/``.  A job that starts because another ended so takes the freed device,
  not a busy one.  A launcher that already gave the job its own GPU (SLURM's allocation,
  ``CUDA_VISIBLE_DEVICES``) leaves one visible device: nothing to pick.

The choices are pure functions (:func:`trials_at_once`, :func:`threads_per_trial`,
:func:`device_order`, :func:`pick_device`), so they are tested without a GPU.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kpremia.core.threads import available_cores

log = logging.getLogger(__name__)

DEVICE_LOCKS = ".devices"


def launcher_kind(launcher: Mapping[str, Any]) -> str:
    """``basic``, ``joblib``, ``submitit`` or ``other``, from the launcher config's ``_target_``."""
    target = str(launcher.get("_target_", ""))
    if target.endswith("BasicLauncher"):
        return "basic"
    if "joblib" in target.lower():
        return "joblib"
    if "submitit" in target.lower():
        return "submitit"
    return "other"


def trials_at_once(launcher: Mapping[str, Any], cores: int) -> int:
    """How many trials the launcher runs side by side on this machine (joblib's ``n_jobs`` rule).

    ``n_jobs=-1`` is one per core, ``-2`` all cores but one, and so on (joblib's convention).
    A submitit job is its own allocation: 1 here, its CPUs come from ``cpus_per_task``.
    """
    if launcher_kind(launcher) != "joblib":
        return 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    return max(1, cores + 1 + n_jobs) if n_jobs < 0 else n_jobs


def threads_per_trial(launcher: Mapping[str, Any], cores: int, env: Mapping[str, str] | None = None) -> int | None:
    """torch threads for one trial, or None to keep ``torch_threads`` (one trial at a time)."""
    kind = launcher_kind(launcher)
    if kind == "joblib":
        return max(1, cores // trials_at_once(launcher, cores))
    if kind == "submitit":
        given = launcher.get("cpus_per_task") or (env or {}).get("SLURM_CPUS_PER_TASK")
        return max(1, int(given)) if given else 1
    return None


def device_order(job_num: int, n_devices: int) -> list[int]:
    """The devices a job tries, in order: its own (``job_num % n``) first, then the next ones round."""
    return [(job_num + k) % n_devices for k in range(n_devices)]


def pick_device(job_num: int, n_devices: int, busy: Collection[int] = ()) -> int:
    """The first device of :func:`device_order` that no running job holds (its own when all are busy)."""
    order = device_order(job_num, n_devices)
    return next((i for i in order if i not in busy), order[0])


@dataclass
class DeviceClaim:
    """A device held for the life of a job (an ``flock`` on its lock file); :meth:`release` lets it go."""

    index: int
    handle: IO[str] | None

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file drops the lock
            self.handle = None


def claim_device(lock_dir: Path, job_num: int, n_devices: int) -> DeviceClaim:
    """Lock the first free device of :func:`device_order` (per host); share the job's own when none is free."""
    import fcntl

    lock_dir.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for index in device_order(job_num, n_devices):
        handle = (lock_dir / f"{host}-gpu{index}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return DeviceClaim(index, handle)
    index = pick_device(job_num, n_devices, busy=range(n_devices))
    log.warning("all %d GPUs are held by other jobs of this sweep; job %d shares GPU %d (run fewer trials at once)",
                n_devices, job_num, index)
    return DeviceClaim(index, None)


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _one_device(devices: Any) -> bool:
    """``trainer.devices=1`` (a count, not a chosen index: ``[2]`` or ``2`` is the user's own choice)."""
    return str(devices).strip() == "1"


def plan_job(cfg: dict[str, Any], launcher: Mapping[str, Any], *, job_num: int, sweep_dir: Path,
             threads_given: bool, cores: int | None = None,
             n_gpus: int | None = None) -> tuple[dict[str, Any], DeviceClaim | None]:
    """``cfg`` with this job's ``torch_threads`` and (GPU) ``trainer.devices``; the device claim to release.

    ``threads_given``: ``torch_threads`` was on the command line (it is kept).
    """
    cores = available_cores() if cores is None else cores
    out = copy.deepcopy(cfg)
    threads = None if threads_given else threads_per_trial(launcher, cores, os.environ)
    if threads is not None:
        out["torch_threads"] = threads
    trainer = out.get("trainer") or {}
    claim = None
    parallel = launcher_kind(launcher) != "basic"  # one trial at a time: GPU 0 as always
    gpu = str(trainer.get("accelerator", "cpu")) in ("gpu", "cuda")
    if parallel and gpu and _one_device(trainer.get("devices", 1)):
        n_gpus = visible_gpus() if n_gpus is None else n_gpus
        if n_gpus > 1:
            claim = claim_device(sweep_dir / DEVICE_LOCKS, job_num, n_gpus)
            out["trainer"] = {**trainer, "devices": [claim.index]}
    where = f"GPU {claim.index}" if claim else str(trainer.get("accelerator", "cpu"))
    log.info("job %d: %s, %s torch thread(s) (%d cores, %d trial(s) at once under the %s launcher)", job_num, where,
             out.get("torch_threads"), cores, trials_at_once(launcher, cores), launcher_kind(launcher))
    return out, claim
