"""The ``api`` live callback: its own switch (live.api.enabled), the model callback's host, refusals in one line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kpremia.core.errors import UserError
from kpremia.core.registry import LIVE_CALLBACKS
from kpremia.run.live_config import DEFAULT_CALLBACKS, ApiConfig, LiveConfig
from kpremia.live.http.callback import ApiCallback
from kpremia.live.learning.learning import ModelCallback


def test_registered_and_listed_after_the_model_callback():
    assert LIVE_CALLBACKS.get("api") is ApiCallback
    names = list(DEFAULT_CALLBACKS)
    assert names.index("model") < names.index("api")
    live = LiveConfig.from_dict({"api": {"enabled": True}})
    assert ApiCallback.from_config({}, live).config.enabled
    assert ModelCallback.from_config({}, live).api_on  # the model callback hosts a model for it
    with pytest.raises(UserError, match="live.callbacks.api takes no options"):
        ApiCallback.from_config({"port": 1}, live)


def test_off_unless_live_api_enabled():
    off = ApiCallback(ApiConfig())
    off.setup(SimpleNamespace(callbacks=[off], config={}))  # no model callback needed when off
    assert off.server is None


def test_refuses_without_a_model_callback_before_it():
    api = ApiCallback(ApiConfig(enabled=True))
    with pytest.raises(UserError, match="needs the `model` callback before `api`"):
        api.setup(SimpleNamespace(callbacks=[api], config={}))
    with pytest.raises(UserError, match="needs the `model` callback before `api`"):
        api.setup(SimpleNamespace(callbacks=[api, ModelCallback(serve=True)], config={}))
    with pytest.raises(UserError, match="hosts none"):  # a model callback whose setup hosted nothing
        api.setup(SimpleNamespace(callbacks=[ModelCallback(), api], config={}))


def test_a_reachable_bind_without_a_token_is_refused_when_built(monkeypatch):
    monkeypatch.delenv("KPREMIA_API_TOKEN", raising=False)
    with pytest.raises(UserError, match="no token is set"):
        ApiCallback(ApiConfig(enabled=True, host="0.0.0.0"))
    ApiCallback(ApiConfig(enabled=False, host="0.0.0.0"))  # off: nothing to check
