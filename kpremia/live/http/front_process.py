"""The live session's side of its front door: start it, feed its counts in, tell it of the alarm, stop it.

:mod:`kpremia.live.http.front_door` runs in a child process (``sys.executable -m
kpremia.live.http.front_door``) so that the work of turning away a flood of requests is not done in the
session's interpreter, where it would take the GIL from the bars.  :class:`FrontedApi` is what the
``api`` live callback runs: uvicorn (:class:`~kpremia.live.http.api.ApiServer`) on ``127.0.0.1``, a free
port, and the front door on the public ``live.api.host:live.api.port`` forwarding to it.

The child gets its configuration, token included, as the first line on its stdin (never argv: other
users of the machine can read a process's arguments).  It dies with the session: :meth:`FrontDoorProcess.stop`
closes its stdin and waits (terminating it if it does not go), and a session killed outright (``kill -9``)
closes that pipe too, so the child sees the end of its stdin and exits: no orphan keeps the port.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from fastapi import FastAPI

import kpremia
from kpremia.core.errors import UserError
from kpremia.live.http.api import ApiServer
from kpremia.live.http.api_guard import RequestCounters
from kpremia.live.http.refusals import DEFAULT_MAX_BODY_BYTES
from kpremia.live.loop.storage import StorageAlarm
from kpremia.run.live_config import ApiConfig

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class FrontDoorProcess:
    """The front door child: its pipes, the thread that counts its refusals, the one that relays the alarm."""

    def __init__(self, config: ApiConfig, token: str | None, counters: RequestCounters, alarm: StorageAlarm,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.config = config
        self.token = token
        self.counters = counters
        self.alarm = alarm
        self.max_body_bytes = int(max_body_bytes)
        self.port = int(config.port)
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._stdin_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, backend_port: int, timeout_s: float = START_TIMEOUT_S) -> None:
        """Spawn the child and wait until it listens; a UserError (one line) when it cannot bind."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(  # the child runs this checkout's code, not another's
            filter(None, [str(Path(kpremia.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen([sys.executable, "-m", "kpremia.live.http.front_door"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=env)
        config = {"host": self.config.host, "port": int(self.config.port), "backend_port": int(backend_port),
                  "token": self.token, "max_body_bytes": self.max_body_bytes,
                  "max_connections": int(self.config.max_connections)}
        self._send(config)
        first: queue.Queue[dict[str, Any] | None] = queue.Queue()
        reader = threading.Thread(target=self._read, args=(self._proc.stdout, first), name="kpremia-front-counts",
                                  daemon=True)
        reader.start()
        self._threads.append(reader)
        try:
            said = first.get(timeout=timeout_s)
        except queue.Empty:
            said = {"error": f"no answer in {timeout_s:g} s"}
        if said is None or "listening" not in said:
            why = (said or {}).get("error", f"exit code {self._proc.poll()}")
            self.stop()
            raise UserError(f"the control API could not start on {self.config.host}:{self.config.port} ({why}); "
                            "pick another live.api.port")
        self.port = int(said["listening"])
        watcher = threading.Thread(target=self._relay_alarm, name="kpremia-front-alarm", daemon=True)
        watcher.start()
        self._threads.append(watcher)

    def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        with self._stdin_lock:
            try:
                self._proc.stdin.write(json.dumps(message) + "\n")
                self._proc.stdin.flush()
            except (OSError, ValueError):
                pass  # the child is gone (or stopped): nothing to tell it

    def _read(self, out: IO[str], first: queue.Queue[dict[str, Any] | None]) -> None:
        """The child's stdout: its first line to ``first``, then its counts into the session's counters."""
        told = False
        for line in out:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not told:
                first.put(message)
                told = True
                continue
            for status, times in message.get("counts", {}).items():
                self.counters.count(int(status), int(times))
        if not told:
            first.put(None)

    def _relay_alarm(self) -> None:
        while not self._stopping.is_set():
            if self.alarm.wait(0.2):
                self._send({"alarm": self.alarm.message})
                return

    def stop(self) -> None:
        """Close the child's stdin (it stops listening, reports its last counts, exits); wait, then make sure."""
        self._stopping.set()
        proc = self._proc
        if proc is None:
            return
        with self._stdin_lock:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(STOP_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()


class FrontedApi:
    """uvicorn on 127.0.0.1 (a free port) behind the front door on the public address: the live session's API."""

    def __init__(self, app: FastAPI, config: ApiConfig, token: str | None, alarm: StorageAlarm) -> None:
        self.config = config
        self.counters: RequestCounters = app.state.counters
        self.backend = ApiServer(app, ApiConfig(host="127.0.0.1", port=0, max_connections=config.max_connections),
                                 name="control API backend")
        self.front = FrontDoorProcess(config, token, self.counters, alarm)

    @property
    def port(self) -> int:
        """The public port (the one the front door bound)."""
        return self.front.port

    def start(self) -> None:
        self.backend.start()
        try:
            self.front.start(self.backend.port)
        except BaseException:
            self.backend.stop()
            raise
        log.info("control API on http://%s:%d/ (front door pid %d)", self.config.host, self.port, self.front.pid)

    def stop(self) -> None:
        self.front.stop()  # first: its last counts reach the counters before the backend writes the summary
        self.backend.stop()
