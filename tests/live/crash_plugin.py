"""Test plug-in (loaded through KPREMIA_PLUGINS): kill -9 the runner at chosen protocol points.

* broker ``crashy_paper``: the paper broker, killed right before the k-th send
  reaches it (the intent is journaled, the order was never sent) or right after
  it accepted the k-th order (sent, but the answer and fill are not journaled);
* callback ``crash_in_commit``: kills the process when the journal's k-th
  ``COMMIT`` after start begins executing;
* model version writes (:class:`~kpremia.live.learning.versions.VersionStore`, patched on
  import): ``stage`` (the k-th version's weights are written in its temporary
  folder, its manifest not yet), ``staged`` (the temporary folder is complete,
  not renamed into place), ``published`` (the k-th version exists, the journal
  does not know it yet), ``promotion`` (right after the k-th promotion was saved).

``KPREMIA_TEST_CRASH=<point>:<k>`` picks the point (before_send, after_send, commit, stage, staged,
published, promotion); counts start at each process start.
"""

from __future__ import annotations

import os
import signal

from kpremia.core.registry import LIVE_BROKERS, LIVE_CALLBACKS
from kpremia.live.learning.versions import VersionStore
from kpremia.live.loop.callback import LiveCallback
from kpremia.live.venues.paper import PaperBroker


def _target() -> tuple[str, int]:
    point, _, k = os.environ.get("KPREMIA_TEST_CRASH", ":0").partition(":")
    return point, int(k or 0)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@LIVE_BROKERS.register("crashy_paper")
class CrashyPaperBroker(PaperBroker):
    sends = 0

    def submit(self, order):
        point, k = _target()
        type(self).sends += 1
        if point == "before_send" and self.sends == k:
            _die()
        report = super().submit(order)
        if point == "after_send" and self.sends == k:
            _die()
        return report


@LIVE_CALLBACKS.register("crash_in_commit")
class CrashInCommit(LiveCallback):
    def on_start(self, runner):
        point, k = _target()
        if point != "commit":
            return
        count = [0]

        def trace(statement: str) -> None:
            if statement.strip().upper() == "COMMIT":
                count[0] += 1
                if count[0] == k:
                    _die()

        runner.journal.conn.set_trace_callback(trace)


_counts: dict[str, int] = {}


def _hit(point: str) -> bool:
    """Whether this is the k-th time ``point`` is reached in this process and the test aims at it."""
    aimed, k = _target()
    if aimed != point:
        return False
    _counts[point] = _counts.get(point, 0) + 1
    return _counts[point] == k


_stage, _publish, _save = VersionStore._stage, VersionStore._publish, VersionStore.save


def _crashy_stage(self, tmp, data, manifest):
    if _hit("stage"):
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "weights.pt").write_bytes(data)
        _die()
    _stage(self, tmp, data, manifest)
    if _hit("staged"):
        _die()


def _crashy_publish(self, tmp, name, replaced):
    _publish(self, tmp, name, replaced)
    if _hit("published"):
        _die()


def _crashy_save(self, weights, *, kind, **kw):
    version = _save(self, weights, kind=kind, **kw)
    if kind == "promotion" and _hit("promotion"):
        _die()
    return version


VersionStore._stage, VersionStore._publish, VersionStore.save = _crashy_stage, _crashy_publish, _crashy_save
