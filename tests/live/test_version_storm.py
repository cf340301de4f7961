"""A kill -9 storm with learning on: the model's versions do not depend on the crash history.

Over the same replayed bars, an uninterrupted session and one killed 30+ times
(at the model's version writes -- a staged folder, a half-staged one, a version
published but not journaled, a promotion just saved --, at journal commits and
at random moments) end with the same version names, the same weights under each
name (sha256), the same acting and challenger versions, nothing else under
``versions/`` (no folder without a manifest, no temporary file anywhere), and
the same model-journal rows of bar processing (the learner's, the challenger's
and the host's start: no row twice, none missing).  A second, short test aims
every kill at a journal commit with a challenger verdict on every bar, so each
kill leaves a row of an uncommitted bar behind: the restart must roll it back.

Each session is a child forked by a fork server that imported kpremia once (a
start then costs no imports; a plain fork of this process could inherit torch's
thread pool and hang); the aimed kills come from the crash plug-in
(:mod:`crash_plugin`), the random ones from this process.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import torch

from kpremia.core.registry import DATA_SOURCES
from kpremia.live.learning.control_log import read_events
from kpremia.live.learning.versions import VersionStore
from kpremia.live.loop.journal import read_table
from kpremia.live.loop.sealed import read_snapshot

HERE = Path(__file__).resolve().parent
N_BARS = 100
AIMED = ("stage", "staged", "published", "promotion", "commit")


def _config(live_cfg, checkpoint, state_dir: Path, n_bars: int = N_BARS, window: int = 4) -> dict:
    frame, _ = DATA_SOURCES.build({k: v for k, v in live_cfg["data"].items() if k != "split"}).load()
    cfg = copy.deepcopy(live_cfg)
    cfg["ckpt"] = str(checkpoint)
    cfg["live"].update(state_dir=str(state_dir), journal={"synchronous": "NORMAL"},
                       replay={"start": frame.index[-n_bars].isoformat(), "end": frame.index[-1].isoformat()})
    cfg["live"]["callbacks"] = {**cfg["live"]["callbacks"], "logging": None, "crash_in_commit": {}}
    cfg["live"]["learn"].update(enabled=True, every=2, batch_size=8, lr=0.003, max_distance=0.5, keep_versions=12,
                                challenger={"enabled": True, "window": window, "margin": 0.0})
    return cfg


def _session(cfg: dict, crash: str) -> None:
    """The child: a live session with the crash plug-in aimed at ``crash`` (it may kill itself)."""
    os.environ["KPREMIA_TEST_CRASH"] = crash
    sys.path.insert(0, str(HERE))
    import crash_plugin  # noqa: F401 - registers crash_in_commit, patches the version writes

    from kpremia.live.loop.build import run_live

    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the child's summary is not needed
    run_live(cfg, overrides=[])


_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["torch", "kpremia.run.training", "kpremia.run.evaluate", "kpremia.live.loop.build", "kpremia.live.learning.learning"])


def _start(cfg: dict, crash: str = "") -> multiprocessing.Process:
    proc = _CTX.Process(target=_session, args=(cfg, crash), daemon=True)
    proc.start()
    return proc


def _decided(state_dir: Path) -> int:
    journal = state_dir / "journal.sqlite"
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    except sqlite3.Error:
        return 0


def _history(state_dir: Path) -> dict:
    snapshot = read_table(state_dir / "journal.sqlite", "state")["snapshot"].iloc[0]
    host = read_snapshot(snapshot)["callbacks"]["ModelCallback"]["host"]
    versions = VersionStore(state_dir / "versions").list()
    return {"names": {v.name: (v.weights_sha256, v.parent, v.kind) for v in versions}, "acting": host["version"],
            "challenger": host["challenger_version"], "decisions": _decided(state_dir)}


def _bar_rows(state_dir: Path) -> list[tuple]:
    """The model journal's rows of bar processing, in order, with their step, without wall-clock time (and ids).

    Chosen by what wrote them (the learner, the challenger, the host's start), and each must carry its step: a
    row of bar processing without one would never be rolled back.
    """
    events = read_events(state_dir / "model_journal.sqlite")
    rows = [(e["bar"], e["source"], e["kind"], e["model_version"], e["ok"], e["detail"]) for e in events
            if e["source"] in ("learner", "challenger") or (e["source"], e["kind"]) == ("host", "start")]
    assert all(row[0] is not None for row in rows)
    assert len(rows) == sum(e["bar"] is not None for e in events)
    return rows


def _orphans(state_dir: Path) -> list[str]:
    complete = {v.folder for v in VersionStore(state_dir / "versions").list()}
    out = [p.name for p in (state_dir / "versions").iterdir() if p.name not in complete]
    out += [f"{p.parent.name}/{p.name}" for folder in complete for p in (state_dir / "versions" / folder).iterdir()
            if p.name not in ("weights.pt", "manifest.json")]
    return out + [str(p.relative_to(state_dir)) for p in state_dir.rglob("*.tmp")]


@pytest.mark.slow
def test_a_kill_storm_leaves_the_versions_of_an_uninterrupted_run(live_cfg, checkpoint, tmp_path):
    straight = tmp_path / "straight"
    proc = _start(_config(live_cfg, checkpoint, straight))
    proc.join(300)
    assert proc.exitcode == 0
    reference = _history(straight)
    kinds = [kind for _, _, kind in reference["names"].values()]
    assert reference["decisions"] == N_BARS and kinds.count("promotion") >= 5  # the storm has promotions to hit
    reference_rows = _bar_rows(straight)
    assert sum(row[1:3] == ("learner", "update") for row in reference_rows) >= 10

    stormed = tmp_path / "stormed"
    cfg = _config(live_cfg, checkpoint, stormed)
    rng = random.Random(31)
    kills, aimed_kills, starts = 0, 0, 0
    while kills < 36 and starts < 80:
        point = rng.choice((*AIMED, "random"))
        k = rng.randint(3, 12) if point == "commit" else rng.randint(1, 3)
        seen = _decided(stormed)
        proc = _start(cfg, f"{point}:{k}" if point != "random" else "")
        starts += 1
        budget = rng.randint(2, 6)  # new decisions before this process kills it (an aimed point may come first)
        deadline = time.monotonic() + 120
        while proc.is_alive() and time.monotonic() < deadline and _decided(stormed) < seen + budget:
            time.sleep(0.002)
        if proc.is_alive():
            time.sleep(rng.uniform(0.0, 0.03))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        else:
            aimed_kills += proc.exitcode == -signal.SIGKILL
        proc.join()
        if proc.exitcode == 0:  # it reached the end of the window: lengthen it
            break
        assert proc.exitcode == -signal.SIGKILL, f"start {starts} ({point}:{k}) ended with {proc.exitcode}"
        kills += 1
    assert kills >= 30 and aimed_kills >= 10, (kills, aimed_kills)
    final = _start(cfg)  # the final start: finishes the window (or finds it finished) and cleans up
    final.join(300)
    assert final.exitcode == 0
    got = _history(stormed)
    assert got["decisions"] == N_BARS
    assert got["names"] == reference["names"]
    assert (got["acting"], got["challenger"]) == (reference["acting"], reference["challenger"])
    assert _orphans(stormed) == []
    rows = _bar_rows(stormed)
    assert len(rows) == len(reference_rows), (len(rows), len(reference_rows))
    assert rows == reference_rows


def test_kills_at_commits_leave_the_model_journal_of_an_uninterrupted_run(live_cfg, checkpoint, tmp_path):
    """Each kill lands on a journal commit; with a challenger verdict every bar, the bar being committed has
    written its rows already: the restart replays that bar and must not write them twice."""
    n_bars = 30
    straight = tmp_path / "straight"
    proc = _start(_config(live_cfg, checkpoint, straight, n_bars, window=1))
    proc.join(300)
    assert proc.exitcode == 0
    reference_rows = _bar_rows(straight)
    assert sum(row[1] == "challenger" for row in reference_rows) >= n_bars - 2
    killed = tmp_path / "killed"
    cfg = _config(live_cfg, checkpoint, killed, n_bars, window=1)
    for k in (1, 6, 9, 5, 12):  # the first start dies at its first commit (the run's state row): before any bar
        proc = _start(cfg, f"commit:{k}")
        proc.join(300)
        assert proc.exitcode == -signal.SIGKILL, (k, proc.exitcode)
    final = _start(cfg)
    final.join(300)
    assert final.exitcode == 0 and _decided(killed) == n_bars
    assert _bar_rows(killed) == reference_rows
    assert _history(killed)["names"] == _history(straight)["names"]
