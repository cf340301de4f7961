"""Online learning inside real paper sessions: versions, exact resume after kill -9, challenger, rollback."""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from kpremia.live.learning.control_log import read_events
from kpremia.live.learning.versions import VersionStore
from kpremia.live.loop.build import run_live
from kpremia.live.loop.journal import read_table
from kpremia.live.loop.sealed import read_snapshot

LEARN = ["live.learn.enabled=true", "live.learn.every=2", "live.learn.batch_size=8", "live.learn.lr=0.003",
         "live.learn.max_distance=0.5", "live.journal.synchronous=NORMAL"]


def _session(live_cfg, checkpoint, state_dir, max_bars, **learn):
    cli = copy.deepcopy(live_cfg)
    cli["ckpt"] = str(checkpoint)
    cli["live"].update(state_dir=str(state_dir), journal={"synchronous": "NORMAL"}, max_bars=max_bars)
    cli["live"]["learn"].update(enabled=True, every=2, batch_size=8, lr=0.003, max_distance=0.5, **learn)
    return run_live(cli, overrides=[])


def _snapshot(state_dir):
    blob = read_table(state_dir / "journal.sqlite", "state")["snapshot"].iloc[0]
    return read_snapshot(blob)["callbacks"]["ModelCallback"]


def _net_weights(state_dir):
    return _snapshot(state_dir)["host"]["learner"]["net"]


def test_direct_mode_learns_versions_and_stays_anchored(live_cfg, checkpoint, tmp_path):
    state_dir = tmp_path / "direct"
    _session(live_cfg, checkpoint, state_dir, 60, challenger={"enabled": False})
    versions = VersionStore(state_dir / "versions").list()
    updates = [e for e in read_events(state_dir / "model_journal.sqlite", source="learner") if e["kind"] == "update"]
    snap = _snapshot(state_dir)
    learner = snap["host"]["learner"]
    assert learner["updates"] == len(updates) >= 15
    assert [v.name for v in versions][:3] == ["v1_0_0", "v1_0_1", "v1_0_2"] and len(versions) == len(updates) + 1
    assert versions[1].parent == "v1_0_0" and versions[-1].updates == learner["updates"]
    # the trading weights are the latest version, and they moved but stay inside the radius
    _, latest = VersionStore(state_dir / "versions").load(snap["host"]["version"])
    _, first = VersionStore(state_dir / "versions").load("v1_0_0")
    assert snap["host"]["version"] == versions[-1].name
    assert all(torch.equal(latest[k], learner["net"][k]) for k in latest)
    drift = torch.cat([(latest[k].double() - first[k].double()).flatten() for k in first]).norm()
    assert 0 < float(drift) <= 0.5 + 1e-6
    steps = [e["detail"]["trades_from_step"] for e in updates]
    assert steps == sorted(steps) and all(s > 0 for s in steps)


def _kill_when(proc, journal, n_decisions, timeout=240):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as conn:
                n = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        except sqlite3.Error:
            n = 0
        if n >= n_decisions:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.005)
    raise AssertionError(f"the session ended before {n_decisions} decisions (rc {proc.poll()})")


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_weights_of_an_uninterrupted_run(live_cfg, checkpoint, tmp_path):
    total = 70
    straight = tmp_path / "straight"
    _session(live_cfg, checkpoint, straight, total, challenger={"enabled": False})
    killed = tmp_path / "killed"
    base = [sys.executable, "-m", "kpremia", "live", f"ckpt={checkpoint}", f"live.state_dir={killed}",
            "live.learn.challenger.enabled=false", *LEARN, "data.days=40", "env.window_bars=8", "env.window_1d=5",
            "env.window_premium=5"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for at in (25, 41):  # kills land anywhere in the bar: mid-update, mid-commit, between bars
        proc = subprocess.Popen([*base, f"live.max_bars={total}"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _kill_when(proc, killed / "journal.sqlite", at)
    done = len(read_table(killed / "journal.sqlite", "decisions"))
    proc = subprocess.run([*base, f"live.max_bars={total - done}"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_table(killed / "journal.sqlite", "decisions")) == total
    a, b = _snapshot(straight), _snapshot(killed)
    assert a["host"]["learner"]["updates"] == b["host"]["learner"]["updates"] > 15
    assert all(torch.equal(a["host"]["learner"]["net"][k], b["host"]["learner"]["net"][k])
               for k in a["host"]["learner"]["net"])
    assert a["host"]["version"] == b["host"]["version"]
    _, wa = VersionStore(straight / "versions").load(a["host"]["version"])
    _, wb = VersionStore(killed / "versions").load(b["host"]["version"])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the model journal's rows of bar processing too (a kill after a bar's row, before its commit, replays it)
    assert _bar_rows(killed) == _bar_rows(straight)


def _bar_rows(state_dir):
    """The model journal's rows that carry a step, without their wall-clock time."""
    return [(e["bar"], e["source"], e["kind"], e["model_version"], e["ok"], e["detail"])
            for e in read_events(state_dir / "model_journal.sqlite") if e["bar"] is not None]


def test_challenger_decisions_are_journaled_and_follow_the_rule(live_cfg, checkpoint, tmp_path):
    state_dir = tmp_path / "challenger"
    _session(live_cfg, checkpoint, state_dir, 80, challenger={"enabled": True, "window": 10, "margin": 0.0005})
    events = read_events(state_dir / "model_journal.sqlite", source="challenger")
    assert len(events) >= 5
    for e in events:
        d = e["detail"]
        wins = d["challenger_return"] - d["incumbent_return"] >= 0.0005
        assert e["kind"] == ("promote" if wins and d["risk_state"] == "ACTIVE" else "refuse"), d
    promotions = [e for e in events if e["kind"] == "promote"]
    names = [v.name for v in VersionStore(state_dir / "versions").list()]
    # every promotion is a minor version; without one the incumbent is still v1_0_0
    assert sum(1 for n in names if n.endswith("_0") and not n.endswith("_0_0")) == len(promotions)
    if not promotions:
        assert _snapshot(state_dir)["host"]["version"] == "v1_0_0"


def test_rollback_on_start_restores_a_version_bit_for_bit(live_cfg, checkpoint, tmp_path, live_cli):
    state_dir = tmp_path / "rb"
    _session(live_cfg, checkpoint, state_dir, 40, challenger={"enabled": False})
    store = VersionStore(state_dir / "versions")
    target = store.list()[3].name
    proc = live_cli(f"ckpt={checkpoint}", f"live.state_dir={state_dir}", "live.max_bars=1", f"live.rollback={target}",
                    "live.learn.challenger.enabled=false", *LEARN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rollbacks = [e for e in read_events(state_dir / "model_journal.sqlite") if e["kind"] == "rollback"]
    assert rollbacks and rollbacks[-1]["detail"]["to"] == target
    # the bar after the rollback was decided by exactly the saved bytes: the learner restarted from them
    _, saved = store.load(target)
    snap = _snapshot(state_dir)
    assert snap["host"]["version"] == target
    learner = snap["host"]["learner"]
    assert all(torch.equal(a, saved_p) for a, saved_p in zip(learner["anchor"], [
        saved[k] for k in saved if not k.endswith(("num_batches_tracked",))], strict=False))


def test_learning_refuses_rules_and_bad_versions(live_cli, checkpoint, tmp_path):
    proc = live_cli("live.policy=premium_threshold", "live.rule.buy_threshold=0.0", "live.rule.sell_threshold=0.03",
                    f"live.state_dir={tmp_path / 's'}", "live.learn.enabled=true", "live.max_bars=5")
    assert proc.returncode == 2 and "checkpoint policy" in proc.stderr and "Traceback" not in proc.stderr
    proc = live_cli(f"ckpt={checkpoint}", f"live.state_dir={tmp_path / 't'}", "live.rollback=latest", "live.max_bars=5")
    assert proc.returncode == 2 and "v1_0_3" in proc.stderr and "Traceback" not in proc.stderr


def test_learning_with_real_orders_needs_its_own_flag(checkpoint, tmp_path):
    from types import SimpleNamespace

    from kpremia.core.errors import UserError
    from kpremia.run.live_config import LearnConfig
    from kpremia.live.learning.learning import ModelCallback
    from kpremia.live.loop.policy import CheckpointPolicy

    # what a broker is, it says (is_paper), whatever its name: a paper broker called "ccxt" is still paper
    policy = CheckpointPolicy(checkpoint)
    real = SimpleNamespace(policy=policy, broker=SimpleNamespace(name="paper", is_paper=False),
                           config={"state_dir": str(tmp_path / "real")})
    with pytest.raises(UserError, match="allow_real_orders=true"):
        ModelCallback(LearnConfig(enabled=True)).setup(real)
    callback = ModelCallback(LearnConfig(enabled=True, allow_real_orders=True))  # knowingly: accepted
    callback.setup(real)
    assert callback.host.lock is policy.lock  # the policy acts and the host swaps weights under one lock
    paper = SimpleNamespace(policy=CheckpointPolicy(checkpoint), broker=SimpleNamespace(name="ccxt", is_paper=True),
                            config={"state_dir": str(tmp_path / "paper")})
    ModelCallback(LearnConfig(enabled=True)).setup(paper)
