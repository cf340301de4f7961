"""How many CPU threads torch uses: chosen from the cores available unless the config says.

Why: ``torch_threads: 1`` left every core but one idle (the main job on a laptop used 1 of 8).
``auto`` (the default) takes the cores this process may run on (its CPU affinity, so a container
or ``taskset`` limit counts), shared out when several jobs or DDP ranks run side by side on one
machine; a number is taken as given.  The count is fixed for a machine (not from its load), so a
seeded run repeats on the same machine, and it is recorded in the run's ``meta.json``: a result is
reproducible at a given thread count (``torch_threads=N`` pins it).  The environment variable
``KPREMIA_TORCH_THREADS`` sets the default (the test suite pins 1 there).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

AUTO = "auto"


def available_cores() -> int:
    """The cores this process may run on (CPU affinity where the OS has it, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _ranks_per_machine(cfg: Mapping[str, Any]) -> int:
    """DDP processes sharing this machine's cores (CPU ranks of ``trainer.devices``); 1 otherwise."""
    trainer = cfg.get("trainer") or {}
    if "ddp" not in str(trainer.get("strategy") or "") or str(trainer.get("accelerator", "cpu")) != "cpu":
        return 1
    devices = trainer.get("devices")
    return int(devices) if isinstance(devices, int) and devices > 0 else 1


def resolve_threads(cfg: Mapping[str, Any], *, jobs: int = 1, auto: int | None = None) -> int | None:
    """The thread count ``cfg["torch_threads"]`` stands for; None keeps torch's own default.

    ``auto``: the available cores divided among ``jobs`` parallel jobs and the DDP ranks of this
    machine (at least 1), or ``auto`` when the caller fixes it (the live runner: one thread, for latency).
    """
    setting = cfg.get("torch_threads", AUTO)
    if setting is None:
        return None
    if setting != AUTO:
        return int(setting)
    if auto is not None:
        return auto
    return max(1, available_cores() // (max(1, jobs) * _ranks_per_machine(cfg)))


def check_threads_setting(value: Any) -> bool:
    """``torch_threads`` is ``auto``, null or a whole number >= 1."""
    return value is None or value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def apply_threads(cfg: Mapping[str, Any], *, auto: int | None = None) -> int:
    """Set torch's intra-op threads from ``torch_threads`` (:func:`resolve_threads`); return the count in use."""
    import torch

    threads = resolve_threads(cfg, auto=auto)
    if threads:
        torch.set_num_threads(threads)
        log.info("torch threads: %d (torch_threads=%s; %d core(s) available)", threads,
                 cfg.get("torch_threads", AUTO), available_cores())
    return torch.get_num_threads()
