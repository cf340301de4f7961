"""What became of each job of a sweep: one record per job, a summary at the end, failures listed.

Why: Hydra's sweepers stop at a failed job (the basic sweeper re-raises it after its batch and a
user mistake's ``sys.exit`` ends the whole multirun at once), and nothing on disk tells a job
that finished from one that never ran.  So in a multirun kpremia's task function runs each job
through :func:`recorded_job`: a failure is caught, logged in the job's own log, and written to
``<sweep dir>/.jobs/<job dir>.json`` like a success is (a hidden folder, like submitit's
``.submitit/``, so every folder a sweep directory shows is still a job).  The sweeper gets no value
back (None: Optuna marks the trial failed and samples on -- NaN would not do, its sweeper then
fails on its own bookkeeping; the basic sweeper ignores it), so the other trials go on under every
launcher.  :class:`SweepRecord`, a Hydra callback in the root config, notes where and when the
sweep started and writes ``<sweep dir>/sweep.json`` (every job of this sweep: status, overrides,
run directory, value or error) when it ends; the CLI then lists the failed jobs last and exits
non-zero.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from kpremia.core.errors import UserError
from kpremia.core.io import atomic_write_json

log = logging.getLogger(__name__)

JOBS = ".jobs"
SUMMARY = "sweep.json"

# (sweep dir, start time) of the multirun this process launched; set by the callback in the launching process
_started: tuple[Path, float] | None = None


def job_name(sweep_dir: Path, output_dir: Path) -> str:
    """The job's directory below the sweep directory, as one file name."""
    try:
        rel = output_dir.resolve().relative_to(sweep_dir.resolve())
    except ValueError:
        rel = Path(output_dir.name)
    return str(rel).replace("/", "__") or "job"


def write_job_record(sweep_dir: Path, output_dir: Path, record: dict[str, Any]) -> Path:
    path = sweep_dir / JOBS / f"{job_name(sweep_dir, output_dir)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**record, "run_dir": str(output_dir), "finished_at": time.time()})
    return path


def read_job_records(sweep_dir: Path, since: float | None = None) -> list[dict[str, Any]]:
    """The jobs' records (those finished at or after ``since``), in job-number order."""
    records = []
    for path in sorted((sweep_dir / JOBS).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if since is None or float(record.get("finished_at", 0)) >= since:
            records.append(record)
    return sorted(records, key=lambda r: (int(r.get("job", 0)), str(r.get("run_dir"))))


def _json_value(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def recorded_job(fn: Callable[[], Any], *, sweep_dir: Path, output_dir: Path, job: int, overrides: list[str],
                 on_failure: Callable[[BaseException], None] | None = None) -> Any:
    """Run one job of a sweep; record how it ended; a failure returns None instead of ending the sweep."""
    base = {"job": job, "overrides": list(overrides)}
    try:
        value = fn()
    except Exception as exc:  # a trial's failure must not take its siblings down: recorded, then no value
        if on_failure is not None:
            on_failure(exc)
        user = isinstance(exc, UserError)
        message = " ".join(str(exc).split()) or type(exc).__name__
        if user:
            log.error("job %d failed: %s", job, message)
        else:
            log.exception("job %d failed", job)  # the traceback goes to the job's own log
        print(f"error: job #{job} ({' '.join(overrides)}): {message}", file=sys.stderr, flush=True)
        write_job_record(sweep_dir, output_dir, {**base, "status": "failed", "error": message,
                                                 "type": type(exc).__name__, "user_error": user})
        return None
    write_job_record(sweep_dir, output_dir, {**base, "status": "completed", "value": _json_value(value)})
    return value


def summarise(sweep_dir: Path, since: float | None = None) -> dict[str, Any]:
    """``sweep.json``: every job of the sweep (since its start) with its status; written atomically."""
    jobs = read_job_records(sweep_dir, since)
    failed = [j for j in jobs if j.get("status") != "completed"]
    summary = {"sweep_dir": str(sweep_dir), "jobs": jobs, "completed": len(jobs) - len(failed), "failed": len(failed)}
    atomic_write_json(sweep_dir / SUMMARY, summary)
    return summary


def failure_lines(summary: dict[str, Any]) -> list[str]:
    """The lines the CLI prints last: each failed job, then the count and where the record is."""
    failed = [j for j in summary["jobs"] if j.get("status") != "completed"]
    total = len(summary["jobs"])
    # only what tells the jobs apart (the swept values), unless the sweep had a single job
    common = set.intersection(*(set(j.get("overrides") or []) for j in summary["jobs"])) if total > 1 else set()
    lines = [f"failed: job #{j['job']} ({' '.join(o for o in j.get('overrides') or [] if o not in common)}): "
             f"{j.get('error')}" for j in failed]
    where = Path(summary["sweep_dir"]) / SUMMARY
    lines.append(f"{len(failed)} of {total} job(s) failed, the other {total - len(failed)} completed; see {where}")
    return lines


def exit_code(summary: dict[str, Any]) -> int:
    """0 when every job completed; 2 when only user mistakes failed (bad overrides); else 1."""
    failed = [j for j in summary["jobs"] if j.get("status") != "completed"]
    if not failed:
        return 0
    return 2 if all(j.get("user_error") for j in failed) else 1


def take_started_sweep() -> tuple[Path, float] | None:
    """The sweep directory and start time of the multirun this process launched, once (None if none)."""
    global _started
    started, _started = _started, None
    return started


class SweepRecord(Callback):
    """Hydra callback: where and when the multirun started; ``sweep.json`` when it ends."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _started
        _started = (Path(str(config.hydra.sweep.dir)), time.time() - 1.0)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _started is not None:
            summarise(*_started)
