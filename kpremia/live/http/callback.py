"""The ``api`` live callback: the HTTP control API and status page beside the runner.

Switched on by ``live.api.enabled=true`` (its settings are ``live.api.*``).  It
serves the model the ``model`` callback hosts (:class:`~kpremia.live.learning.host.ModelHost`:
versions, online learning, the challenger) and the session's journal as the
status page; it owns nothing else, so the HTTP server's life -- bound at the
start, stopped at the end -- is this callback's and the model's life is the
``model`` callback's.

The bind is checked when the callback is built (a non-loopback bind without a
long token is one line before anything is opened or written); the server starts
in ``on_start``, after every refusal of the start, and stops in ``on_stop``.

The server is :class:`~kpremia.live.http.front_process.FrontedApi`: uvicorn on 127.0.0.1 behind a front
door process on the public ``live.api.host:live.api.port``, so the requests it refuses (a flood of
them) cost the session's interpreter nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kpremia.core.errors import UserError
from kpremia.core.registry import LIVE_CALLBACKS
from kpremia.run.live_config import ApiConfig, LiveConfig
from kpremia.live.http.api import check_bind, create_app
from kpremia.live.http.front_process import FrontedApi
from kpremia.live.http.status import StatusSource
from kpremia.live.learning.learning import ModelCallback
from kpremia.live.loop.callback import LiveCallback


@LIVE_CALLBACKS.register("api")
class ApiCallback(LiveCallback):
    """Serves the ``model`` callback's host and the journal over HTTP while the runner trades."""

    def __init__(self, api: ApiConfig = ApiConfig()) -> None:
        self.config = api
        self.token = check_bind(api) if api.enabled else None  # a refused bind: one line, nothing opened
        self.server: FrontedApi | None = None

    @classmethod
    def from_config(cls, options: Mapping[str, Any], live: LiveConfig) -> ApiCallback:
        """``live.api`` (its one address)."""
        if options:
            raise UserError(f"live.callbacks.api takes no options ({sorted(options)}); its settings are live.api.*")
        return cls(live.api)

    def setup(self, runner: Any) -> None:
        if not self.config.enabled:
            return
        model = _model_callback(runner, self)
        if model.host is None:
            raise UserError("live.api.enabled=true serves the model of the `model` callback, which hosts none here; "
                            "set live.api.enabled=false")
        state_dir = Path(runner.config.get("state_dir", "."))
        app = create_app(model.host, StatusSource(state_dir), self.token, alarm=runner.storage,
                         save_every_s=self.config.save_every_s)
        self.server = FrontedApi(app, self.config, self.token, runner.storage)

    def on_start(self, runner: Any) -> None:
        if self.server is not None:
            self.server.start()

    def on_stop(self, runner: Any) -> None:
        if self.server is not None:
            self.server.stop()


def _model_callback(runner: Any, api: ApiCallback) -> ModelCallback:
    """The ``model`` callback listed before ``api`` (it builds the host in its own setup, which runs first)."""
    for cb in runner.callbacks:
        if cb is api:
            break
        if isinstance(cb, ModelCallback):
            return cb
    raise UserError("live.api.enabled=true needs the `model` callback before `api` in live.callbacks (it hosts the "
                    "model the API serves): keep live.callbacks.model={} listed before live.callbacks.api")
