"""Model versions: numbering, manifests, and rollback restoring the weights bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from kpremia.errors import UserError
from kpremia.live.versions import VersionStore, parse_version


def _weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(8, 4, generator=g), "a.bias": torch.randn(8, generator=g),
            "b.weight": torch.randn(3, 8, generator=g, dtype=torch.float64)}


def test_numbering_parents_and_manifest(tmp_path):
    store = VersionStore(tmp_path / "versions")
    v0 = store.save(_weights(0), kind="checkpoint", parent=None, source="best.ckpt")
    v1 = store.save(_weights(1), kind="update", parent=v0.name, bars_seen=40, transitions_seen=39, updates=1,
                    figures={"anchor_distance": 0.01})
    v2 = store.save(_weights(2), kind="update", parent=v1.name, bars_seen=43, updates=2)
    p = store.save(_weights(2), kind="promotion", parent=v2.name)
    v3 = store.save(_weights(3), kind="update", parent=p.name)
    m = store.save(_weights(4), kind="checkpoint", parent=v3.name, source="other.ckpt")
    assert [v.name for v in store.list()] == ["v1_0_0", "v1_0_1", "v1_0_2", "v1_1_0", "v1_1_1", "v2_0_0"]
    assert store.get("v1_1_1").parent == "v1_1_0" and m.parent == "v1_1_1"
    manifest = json.loads((tmp_path / "versions" / v1.folder / "manifest.json").read_text())
    assert manifest["parent"] == "v1_0_0" and manifest["bars_seen"] == 40
    assert manifest["figures"] == {"anchor_distance": 0.01}
    assert v1.folder.startswith("v1_0_1-") and v1.folder.endswith("Z")


def test_rollback_restores_a_version_bit_for_bit(tmp_path):
    store = VersionStore(tmp_path / "versions")
    saved = _weights(7)
    saved["a.weight"][0, 0] = float("nan")  # bit patterns, not just values: NaN and -0.0 too
    saved["a.bias"][0] = -0.0
    v = store.save(saved, kind="checkpoint", parent=None)
    for i in range(3):
        store.save(_weights(10 + i), kind="update", parent=v.name)
    version, loaded = store.load("v1_0_0")
    assert version.name == "v1_0_0"
    for k, t in saved.items():
        assert loaded[k].dtype == t.dtype
        assert loaded[k].view(torch.uint8 if t.dtype == torch.float32 else torch.uint8).numpy().tobytes() == \
            t.contiguous().view(torch.uint8).numpy().tobytes()
    # a net loaded from it equals the saved one bit for bit
    net = torch.nn.Linear(4, 8)
    net.load_state_dict({"weight": loaded["a.weight"], "bias": loaded["a.bias"]})
    assert net.weight.view(torch.int32).equal(saved["a.weight"].view(torch.int32))


def test_tampered_or_interrupted_versions_are_refused_or_ignored(tmp_path):
    store = VersionStore(tmp_path / "versions")
    v = store.save(_weights(0), kind="checkpoint", parent=None)
    (tmp_path / "versions" / "v1_0_1-20990101T000000Z").mkdir()  # weights written, manifest not yet
    assert [x.name for x in store.list()] == ["v1_0_0"]
    with open(tmp_path / "versions" / v.folder / "weights.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(UserError, match="sha256"):
        store.load("v1_0_0")
    with pytest.raises(UserError, match="not found.*known"):
        store.get("v9_0_0")
    with pytest.raises(UserError, match="look like v1_0_3"):
        parse_version("latest")
