"""``python -m kpremia serve ckpt=<path>``: the control API and status page over a checkpoint.

Without a live runner the API acts on observations it is sent (``/act``),
learns from transitions it is sent (``/learn``) and versions the weights in
``live.state_dir`` (default: ``<checkpoint's run dir>/serve``).  Pointed at the
``live.state_dir`` of a ``live`` session, its status page shows that session's
journal and every changing request answers 409: the session owns its model
(control it with ``live.api.enabled=true``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kpremia.core.config import checkpoint_of
from kpremia.core.errors import UserError
from kpremia.live.http.api import ApiServer, check_bind, create_app
from kpremia.live.http.status import StatusSource
from kpremia.live.learning.host import ModelHost
from kpremia.run.live_config import LearnConfig
from kpremia.run.run_config import RunConfig

log = logging.getLogger(__name__)


def build_host(ckpt: str, state_dir: Path, learn: LearnConfig, eval_cfg: dict[str, Any] | None = None) -> ModelHost:
    from kpremia.core.bars import bar_of_minutes
    from kpremia.run.checkpoint import load_checkpoint

    loaded = load_checkpoint(ckpt)
    module = loaded.module  # OnlinePPO refuses a network that is not an actor-critic (DQN)
    eval_cfg = dict(eval_cfg or {})
    return ModelHost(module, state_dir, learn=learn.learner(module.algo_cfg) if learn.enabled else None,
                     challenger=learn.challenger, source=str(Path(ckpt).resolve()),
                     deterministic=bool(eval_cfg.get("deterministic", True)),
                     temperature=float(eval_cfg.get("temperature", 1.0) or 1.0), keep_versions=learn.keep_versions,
                     bar=bar_of_minutes(loaded.bar_minutes))  # the challenger's window is a duration of these bars


def serve(cfg: RunConfig) -> None:
    """Run the API in the foreground until interrupted (``cfg``: the run config the entry parsed)."""
    ckpt = checkpoint_of(cfg)
    if not ckpt:
        raise UserError("`serve` needs a checkpoint: add ckpt=<run dir>/checkpoints/last.ckpt")
    live = cfg.live
    api = live.api
    token = check_bind(api)  # before anything is loaded: a refused bind changes nothing
    state_dir = Path(live.state_dir or Path(ckpt).resolve().parent.parent / "serve")
    read_only = None
    if (state_dir / "journal.sqlite").is_file():
        read_only = (f"{state_dir} belongs to a live session: serve shows it read-only; control that session with "
                     "live.api.enabled=true")
    host = build_host(str(ckpt), state_dir, live.learn, cfg.get("eval"))
    server = ApiServer(create_app(host, StatusSource(state_dir), token, read_only=read_only,
                                  save_every_s=api.save_every_s), api)
    print(f"kpremia control API on http://{api.host}:{api.port}/ (model {host.version}, state {state_dir}"
          f"{', token required' if token else ''})", flush=True)
    try:
        server.run()
    finally:
        host.close()
