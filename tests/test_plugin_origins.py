"""Where a checkpoint's plug-ins came from: recorded by fit, imported or named on load."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kpremia.core.errors import UserError
from kpremia.core.plugin_origins import plugin_origins, require_plugins
from kpremia.core.registry import ENCODERS

MODULE = '''
from torch import nn
from kpremia.core.registry import ENCODERS

@ENCODERS.register("{name}")
class Local(nn.Module):
    """A local encoder."""
'''


def _saved(name: str, origin: dict | None) -> dict:
    return {"hyper_parameters": {"cfg": {"encoder": {"name": name}, "algo": {"name": "ppo"}}},
            "kpremia": {"plugins": [origin] if origin else []}}


@pytest.fixture
def restore_encoders(monkeypatch):
    ENCODERS.names()
    monkeypatch.setattr(ENCODERS, "_entries", dict(ENCODERS._entries))


def test_built_ins_record_nothing():
    assert plugin_origins({"encoder": {"name": "gru_attn"}, "algo": {"name": "ppo"}}) == []


def test_a_local_module_is_recorded_and_imported_on_load(tmp_path: Path, monkeypatch, restore_encoders):
    (tmp_path / "origin_local_enc.py").write_text(MODULE.format(name="origin_local"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import origin_local_enc  # noqa: F401 - registers, as KPREMIA_PLUGINS would at fit time

    (origin,) = plugin_origins({"encoder": {"name": "origin_local"}, "algo": {"name": "ppo"}})
    assert origin["module"] == "origin_local_enc" and origin["distribution"] is None

    # A fresh process: the module is not imported and the name not registered; loading imports it.
    monkeypatch.delitem(sys.modules, "origin_local_enc")
    ENCODERS._entries.pop("origin_local")
    require_plugins(_saved("origin_local", origin), "x.ckpt")
    assert "origin_local" in ENCODERS

    # Not importable here: one line naming the module and what to set.
    ENCODERS._entries.pop("origin_local")
    monkeypatch.delitem(sys.modules, "origin_local_enc")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    with pytest.raises(UserError, match=r"needs the encoder 'origin_local' from the module 'origin_local_enc'.*"
                                        r"PYTHONPATH.*KPREMIA_PLUGINS=origin_local_enc"):
        require_plugins(_saved("origin_local", origin), "x.ckpt")


def test_a_distribution_is_named_with_its_version():
    origin = {"kind": "encoder", "name": "far_away", "module": "far_away_pkg.enc", "entry_point": "x = far_away_pkg",
              "distribution": "kpremia-far-away", "version": "1.2.3"}
    with pytest.raises(UserError, match=r"pip install 'kpremia-far-away==1\.2\.3'"):
        require_plugins(_saved("far_away", origin), "x.ckpt")


def test_an_old_checkpoint_without_origins_names_the_plugin():
    with pytest.raises(UserError, match=r"needs the encoder 'never_seen'.*known: .*gru_attn"):
        require_plugins(_saved("never_seen", None), "x.ckpt")
