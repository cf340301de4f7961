"""The HTTP control API (FastAPI) and its server (uvicorn).

Endpoints (JSON; see docs/live.md for bodies and answers)::

    GET  /health        liveness, model version (no token needed)
    POST /act           {"obs": {name: nested list}, "deterministic": bool?} -> action, probabilities
    POST /learn         {"transitions": [...]} feeds the learner; {"update": true} updates now
    POST /save          {"note": str?} -> a new version of the acting weights
    POST /load          {"version": "v1_0_3"} -> roll back to it, bit for bit
    POST /set_hparams   {"temperature", "lr", "clip_epsilon", "entropy_coef", "value_coef", "anchor"}
    GET  /status        what the status page shows (equity, buy-and-hold, position, premium, decisions, ...)
    GET  /              the status page (updates itself every few seconds)

Security: the server binds 127.0.0.1 by default (in a live session the front door process binds
``live.api.host:live.api.port`` and forwards to uvicorn on 127.0.0.1: :mod:`kpremia.live.http.front_door`).  Any other bind refuses to start
unless a token of at least :data:`MIN_TOKEN_CHARS` characters is set in the
environment variable ``live.api.token_env`` (``KPREMIA_API_TOKEN``); with a token
every endpoint but ``/health`` and the page itself wants ``Authorization: Bearer
<token>``, compared in constant time.  The token and the body size (at most
:data:`~kpremia.live.http.refusals.DEFAULT_MAX_BODY_BYTES`, 1 MiB) are checked by
:class:`~kpremia.live.http.api_guard.RequestGuard` from the headers alone, before any
of the body is read: an unauthenticated or
oversized upload costs the server a header parse, not a JSON parse on the thread
that shares the GIL with the trading loop.  A malformed body, an unknown key or a
value out of range is answered 400 with one line naming the field and changes
nothing.  Refusals are counted (``/status`` ``requests``), not journaled one row
each; the model journal (:mod:`kpremia.live.learning.control_log`) records the requests that
changed something (``/learn``, ``/save``, ``/load``, ``/set_hparams``), written under
a lock so concurrent requests lose none.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from typing import Any

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, field_validator

from kpremia.core.errors import UserError
from kpremia.run.live_config import ApiConfig
from kpremia.live.http.api_guard import RequestCounters, RequestGuard
from kpremia.live.http.refusals import DEFAULT_MAX_BODY_BYTES
from kpremia.live.http.status import StatusSource
from kpremia.live.http.status_page import STATUS_PAGE
from kpremia.live.learning.host import ModelHost
from kpremia.run.live_hparams import RUNTIME_RANGES
from kpremia.live.learning.online_ppo import Transition, check_transition
from kpremia.live.learning.versions import VERSION_FORMAT, is_version
from kpremia.live.loop.storage import StorageAlarm, classify

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 32
MIN_LOOPBACK_TOKEN_CHARS = 16  # a token set on 127.0.0.1 guards against other local users: not a guessable one
TOKEN_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(config: ApiConfig) -> str | None:
    """The token for this bind; a UserError when a non-loopback bind has none, or a short one (< 16 even locally)."""
    token = config.token()
    if is_loopback(config.host):
        if token is not None and len(token) < MIN_LOOPBACK_TOKEN_CHARS:
            raise UserError(f"{config.token_env} has {len(token)} characters: a token that short is guessed in "
                            f"seconds, even on {config.host}; use at least {MIN_LOOPBACK_TOKEN_CHARS} (export "
                            f"{config.token_env}=$({TOKEN_HINT})) or unset it")
        return token
    if token is None:
        raise UserError(f"live.api.host={config.host} is reachable from other machines and no token is set: export "
                        f"{config.token_env}=$({TOKEN_HINT}) (or bind 127.0.0.1, the default)")
    if len(token) < MIN_TOKEN_CHARS:
        raise UserError(f"{config.token_env} has {len(token)} characters; live.api.host={config.host} needs at least "
                        f"{MIN_TOKEN_CHARS}: export {config.token_env}=$({TOKEN_HINT})")
    return token


# ----------------------------------------------------------------- request bodies (unknown keys are errors)
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActBody(_Body):
    obs: dict[str, list[Any]]
    deterministic: bool | None = None


class TransitionBody(_Body):
    obs: dict[str, list[Any]]
    action: int = Field(ge=0)
    reward: float = Field(allow_inf_nan=False)
    next_obs: dict[str, list[Any]]
    logprob: float | None = Field(default=None, allow_inf_nan=False)
    terminated: bool = False
    truncated: bool = False


class LearnBody(_Body):
    transitions: list[TransitionBody] = Field(default_factory=list, max_length=1024)
    update: bool = False


class SaveBody(_Body):
    note: str | None = Field(default=None, max_length=500)


class LoadBody(_Body):
    version: str = Field(max_length=24)

    @field_validator("version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if not is_version(value):
            raise ValueError(f"not a model version; versions look like {VERSION_FORMAT}")
        return value


def _hparam(name: str) -> Any:
    """A finite JSON number (not a bool, not a string) inside ``RUNTIME_RANGES[name]``."""
    allowed = RUNTIME_RANGES[name]
    bounds = {"gt" if allowed.low_open else "ge": allowed.low, "le": allowed.high}
    return Field(default=None, allow_inf_nan=False, description=allowed.meaning, **bounds)


class HparamsBody(_Body):
    temperature: StrictFloat | None = _hparam("temperature")
    lr: StrictFloat | None = _hparam("lr")
    clip_epsilon: StrictFloat | None = _hparam("clip_epsilon")
    entropy_coef: StrictFloat | None = _hparam("entropy_coef")
    value_coef: StrictFloat | None = _hparam("value_coef")
    anchor: StrictFloat | None = _hparam("anchor")


def create_app(host: ModelHost, status: StatusSource, token: str | None = None, read_only: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, alarm: StorageAlarm | None = None,
               save_every_s: float = 10.0) -> FastAPI:
    """The FastAPI application over ``host`` (model) and ``status`` (journal figures).

    ``read_only``: a reason; when set, /learn, /save, /load and /set_hparams answer 409 with it
    (``serve`` over the state_dir of a live session: that session owns its model).
    ``app.state.counters`` counts the answers (:class:`~kpremia.live.http.api_guard.RequestCounters`).
    ``alarm``: the session's :class:`~kpremia.live.loop.storage.StorageAlarm` (the runner's): a write that fails for
    lack of storage answers 503 and trips it, so the runner stops before its next bar; once tripped, every
    request is answered 503.  ``save_every_s``: ``/save`` at most once per that many seconds (429 with
    ``Retry-After`` in between): each save writes the whole model, so a loop of them would fill the disk.
    """
    alarm = alarm or StorageAlarm()
    app = FastAPI(title="kpremia live control", version="1", docs_url=None, redoc_url=None)
    counters = RequestCounters(lambda refused: host.log.write("api", "refused", refused, model_version=host.version,
                                                              ok=False))
    app.state.counters = counters
    app.state.alarm = alarm
    app.add_middleware(RequestGuard, token=token, max_body_bytes=max_body_bytes, counters=counters, alarm=alarm)
    _write_lock = threading.Lock()  # one mutating request at a time: all-or-nothing changes

    class _Writes:
        def __enter__(self) -> None:
            if read_only:
                raise HTTPException(status_code=409, detail=f"{read_only}; nothing was changed")
            _write_lock.acquire()

        def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
            _write_lock.release()
            _storage_failure(exc)

    def _storage_failure(exc: BaseException | None) -> None:
        """A write that failed for lack of storage: trip the alarm, answer 503 (never a 500 and a traceback)."""
        if exc is None or isinstance(exc, (HTTPException, UserError)):
            return
        text = classify(exc, host.state_dir)
        if text is not None:
            alarm.trip(text)
            raise HTTPException(status_code=503, detail=f"storage failed ({text}): the session is stopping; "
                                                        "start it again once the disk has space") from None

    write_lock = _Writes()

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        message = f"malformed request body at {where}: {first.get('msg', 'invalid')}; nothing was changed"
        return JSONResponse(status_code=400, content={"detail": message})

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": f"{exc}; nothing was changed"})

    def journal(kind: str, detail: dict[str, Any]) -> None:
        try:
            host.log.write("api", kind, detail, model_version=host.version)
        except Exception as exc:
            _storage_failure(exc)
            raise

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_version": host.version, "uptime_s": round(time.time() - host.started, 3)}

    @app.post("/act")
    def act(body: ActBody) -> dict[str, Any]:
        obs = _obs_tensors(host, body.obs)
        action, probs = host.act(obs, body.deterministic)
        return {"action": action, "action_name": host.module.action_names[action],
                "probs": [round(float(p), 6) for p in probs], "model_version": host.version}

    @app.post("/learn")
    def learn(body: LearnBody) -> dict[str, Any]:
        if read_only:
            raise HTTPException(status_code=409, detail=f"{read_only}; nothing was changed")
        learner = host.require_learner()
        items = [(_obs_tensors(host, t.obs), _obs_tensors(host, t.next_obs), t) for t in body.transitions]
        for obs, next_obs, t in items:  # all checked before any is learned from: a request is all or nothing
            if t.action >= host.module.n_actions:
                raise UserError(f"action {t.action} is out of range; this policy has {host.module.n_actions} actions")
            check_transition(Transition(obs, t.action, t.logprob if t.logprob is not None else 0.0, t.reward,
                                        next_obs))
        if not items and not body.update:
            raise UserError("learn needs transitions or \"update\": true")
        updates = []
        with write_lock:
            for obs, next_obs, t in items:
                logprob = t.logprob if t.logprob is not None else host.logprob(obs, t.action)
                if host.add_transition(Transition(obs, t.action, logprob, t.reward, next_obs, t.terminated,
                                                  t.truncated)):
                    updates.append(host.update()._asdict())
            if body.update and not updates:
                if len(learner.window) < 2:
                    raise UserError("no transitions to learn from yet; send some first")
                updates.append(host.update()._asdict())
        journal("learn", {"transitions": len(items), "updates": len(updates)})
        return {"added": len(items), "updates": updates, "model_version": host.version,
                "learning": host.learning_status()}

    last_save = [-math.inf]

    @app.post("/save")
    def save(body: SaveBody) -> Any:
        with write_lock:
            wait = last_save[0] + save_every_s - time.monotonic()
            if wait > 0:
                return JSONResponse(status_code=429, headers={"Retry-After": str(math.ceil(wait))},
                                    content={"detail": f"one save every {save_every_s:g} s: try again in "
                                                       f"{math.ceil(wait)} s; nothing was changed"})
            version = host.save(body.note)
            last_save[0] = time.monotonic()
        journal("save", {"version": version.name, "note": body.note})
        return {"version": version.name, "folder": version.folder, "parent": version.parent}

    @app.post("/load")
    def load(body: LoadBody) -> dict[str, Any]:
        with write_lock:
            before = host.version
            version = host.load(body.version)
        journal("load", {"from": before, "to": version.name})
        return {"version": version.name, "previous": before, "weights_sha256": version.weights_sha256}

    @app.post("/set_hparams")
    def set_hparams(body: HparamsBody) -> dict[str, Any]:
        changes = body.model_dump(exclude_none=True)
        with write_lock:
            hparams = host.set_hparams(**changes)
        journal("set_hparams", changes)
        return {"hparams": hparams}

    @app.get("/status")
    def get_status() -> dict[str, Any]:
        return {**status.figures(), "model_version": host.version, "learning": host.learning_status(),
                "hparams": host.hparams(), "requests": counters.snapshot()}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return STATUS_PAGE

    return app


def _obs_tensors(host: ModelHost, obs: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
    """A JSON observation as ``[1, ...]`` float tensors of the policy's shapes; UserError naming a mismatch."""
    shapes = {k: tuple(int(d) for d in v) for k, v in host.module.spec.shapes.items()}
    missing = sorted(set(shapes) - set(obs))
    extra = sorted(set(obs) - set(shapes))
    if missing or extra:
        raise UserError(f"observation keys must be {sorted(shapes)}; missing {missing}, unexpected {extra}")
    out = {}
    for key, shape in shapes.items():
        try:
            t = torch.tensor(obs[key], dtype=torch.float32)
        except (TypeError, ValueError) as exc:
            raise UserError(f"observation {key!r} is not a numeric array ({exc})") from None
        if t.dim() == len(shape):
            t = t.unsqueeze(0)
        if tuple(t.shape[1:]) != tuple(shape) or t.shape[0] != 1:
            raise UserError(f"observation {key!r} has shape {list(t.shape)}, expected {[1, *shape]} or {list(shape)}")
        if not torch.isfinite(t).all():
            raise UserError(f"observation {key!r} has NaN or infinite values")
        out[key] = t
    return out


class ApiServer:
    """uvicorn in a background thread, or in the foreground (``serve``).

    In a live session (``live ... live.api.enabled=true``) this is the backend on 127.0.0.1 behind the
    front door process (:class:`~kpremia.live.http.front_process.FrontedApi`), which keeps floods of
    requests out of the session's interpreter.  ``serve`` runs it alone on the public address: a process
    with no trading loop has no bars for a flood to make late.
    """

    def __init__(self, app: FastAPI, config: ApiConfig, name: str = "control API"):
        import uvicorn

        self.config = config
        self.name = name
        self.counters: RequestCounters | None = getattr(app.state, "counters", None)
        # Bounded work per client: connections (and requests) at once, a short keep-alive, small headers, a short
        # listen backlog; the body limit is RequestGuard's.  Beyond max_connections uvicorn answers 503 at once.
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=config.host, port=int(config.port), log_level="warning", access_log=False, lifespan="off",
            limit_concurrency=int(config.max_connections), backlog=4 * int(config.max_connections),
            timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        servers = getattr(self._server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._server.run, name="kpremia-api", daemon=True)
        self._thread.start()
        end = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > end:
                raise UserError(f"the {self.name} could not start on {self.config.host}:{self.config.port} "
                                "(port in use?); pick another live.api.port")
            time.sleep(0.02)
        log.info("%s on http://%s:%d/", self.name, self.config.host, self.port)

    def run(self) -> None:
        try:
            self._server.run()
        finally:
            self._flush()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._flush()

    def _flush(self) -> None:
        if self.counters is not None:
            self.counters.flush()
