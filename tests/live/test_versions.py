"""Model versions: numbering, manifests, and rollback restoring the weights bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from kpremia.core.errors import UserError
from kpremia.live.learning.versions import VersionStore, next_version, parse_version


def _weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(8, 4, generator=g), "a.bias": torch.randn(8, generator=g),
            "b.weight": torch.randn(3, 8, generator=g, dtype=torch.float64)}


class _History:
    """Names each save after the last one issued, as the host does."""

    def __init__(self, store):
        self.store, self.issued = store, None

    def save(self, weights, kind, **kw):
        v = self.store.save(weights, name=next_version(self.issued, kind), kind=kind, **kw)
        self.issued = v.number
        return v


def test_numbering_parents_and_manifest(tmp_path):
    store = VersionStore(tmp_path / "versions")
    h = _History(store)
    v0 = h.save(_weights(0), "checkpoint", parent=None, source="best.ckpt")
    v1 = h.save(_weights(1), "update", parent=v0.name, bars_seen=40, transitions_seen=39, updates=1,
                figures={"anchor_distance": 0.01})
    v2 = h.save(_weights(2), "update", parent=v1.name, bars_seen=43, updates=2)
    p = h.save(_weights(2), "promotion", parent=v2.name)
    v3 = h.save(_weights(3), "update", parent=p.name)
    m = h.save(_weights(4), "checkpoint", parent=v3.name, source="other.ckpt")
    assert [v.name for v in store.list()] == ["v1_0_0", "v1_0_1", "v1_0_2", "v1_1_0", "v1_1_1", "v2_0_0"]
    assert store.get("v1_1_1").parent == "v1_1_0" and m.parent == "v1_1_1"
    manifest = json.loads((tmp_path / "versions" / v1.folder / "manifest.json").read_text())
    assert manifest["parent"] == "v1_0_0" and manifest["bars_seen"] == 40
    assert manifest["figures"] == {"anchor_distance": 0.01}
    assert v1.folder == "v1_0_1" and manifest["created_utc"].endswith("Z")
    # a fresh store (another process) reads the same history
    assert [(v.name, v.weights_sha256) for v in VersionStore(tmp_path / "versions").list()] == \
        [(v.name, v.weights_sha256) for v in store.list()]


def test_a_redone_save_reuses_or_replaces_the_folder_of_its_name(tmp_path):
    """A restart redoes the versions written after the last journal commit under the same names."""
    store = VersionStore(tmp_path / "versions")
    first = store.save(_weights(0), name="v1_0_0", kind="checkpoint", parent=None)
    mtime = (tmp_path / "versions" / "v1_0_0" / "weights.pt").stat().st_mtime_ns
    again = VersionStore(tmp_path / "versions").save(_weights(0), name="v1_0_0", kind="checkpoint", parent=None)
    assert again.weights_sha256 == first.weights_sha256
    assert (tmp_path / "versions" / "v1_0_0" / "weights.pt").stat().st_mtime_ns == mtime  # reused, not rewritten
    other = VersionStore(tmp_path / "versions").save(_weights(1), name="v1_0_0", kind="checkpoint", parent=None)
    assert other.weights_sha256 != first.weights_sha256
    fresh = VersionStore(tmp_path / "versions")
    assert [v.name for v in fresh.list()] == ["v1_0_0"] and fresh.get("v1_0_0").weights_sha256 == other.weights_sha256
    assert all(torch.equal(a, b) for a, b in zip(fresh.load("v1_0_0")[1].values(), _weights(1).values()))


def test_orphans_are_cleaned_and_legacy_folders_still_read(tmp_path):
    root = tmp_path / "versions"
    store = VersionStore(root)
    store.save(_weights(0), name="v1_0_0", kind="checkpoint", parent=None)
    (root / ".v1_0_1.123.tmp").mkdir()  # a kill while the folder was staged
    (root / ".v1_0_1.123.tmp" / "weights.pt").write_bytes(b"half")
    (root / "v1_0_2").mkdir()  # a folder without a manifest
    (root / "v1_0_0" / ".weights.pt.abc.tmp").write_bytes(b"x")  # a stray temporary file
    legacy = root / "v1_0_3-20261201T143000Z"  # the folder name of earlier releases
    legacy.mkdir()
    (legacy / "weights.pt").write_bytes((root / "v1_0_0" / "weights.pt").read_bytes())
    manifest = json.loads((root / "v1_0_0" / "manifest.json").read_text())
    (legacy / "manifest.json").write_text(json.dumps({**manifest, "name": "v1_0_3", "kind": "update"}))
    fresh = VersionStore(root)
    assert sorted(fresh.clean()) == [".v1_0_1.123.tmp", "v1_0_0/.weights.pt.abc.tmp", "v1_0_2"]
    assert sorted(p.name for p in root.iterdir()) == ["v1_0_0", "v1_0_3-20261201T143000Z"]
    assert [v.name for v in fresh.list()] == ["v1_0_0", "v1_0_3"] and fresh.load("v1_0_3")[0].kind == "update"


def test_retention_keeps_checkpoints_promotions_protected_and_the_last_n(tmp_path):
    store = VersionStore(tmp_path / "versions")
    h = _History(store)
    h.save(_weights(0), "checkpoint", parent=None)
    for i in range(6):
        h.save(_weights(i + 1), "update", parent=None)
    h.save(_weights(9), "promotion", parent="v1_0_6")
    for i in range(5):
        h.save(_weights(20 + i), "update", parent=None)
    removed = store.prune(3, protect={"v1_0_2"})
    kept = [v.name for v in VersionStore(tmp_path / "versions").list()]
    assert kept == ["v1_0_0", "v1_0_2", "v1_1_0", "v1_1_3", "v1_1_4", "v1_1_5"]
    assert sorted(removed) == sorted(["v1_0_1", "v1_0_3", "v1_0_4", "v1_0_5", "v1_0_6", "v1_1_1", "v1_1_2"])
    assert store.prune(None, set()) == [] and store.prune(3, {"v1_0_2"}) == []


def test_rollback_restores_a_version_bit_for_bit(tmp_path):
    store = VersionStore(tmp_path / "versions")
    saved = _weights(7)
    saved["a.weight"][0, 0] = float("nan")  # bit patterns, not just values: NaN and -0.0 too
    saved["a.bias"][0] = -0.0
    v = store.save(saved, name="v1_0_0", kind="checkpoint", parent=None)
    for i in range(3):
        store.save(_weights(10 + i), name=f"v1_0_{i + 1}", kind="update", parent=v.name)
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
    v = store.save(_weights(0), name="v1_0_0", kind="checkpoint", parent=None)
    (tmp_path / "versions" / "v1_0_1").mkdir()  # weights written, manifest not yet
    assert [x.name for x in store.list()] == ["v1_0_0"]
    with open(tmp_path / "versions" / v.folder / "weights.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(UserError, match="sha256.*live.rollback=<version>"):
        store.load("v1_0_0")
    with pytest.raises(UserError, match="not found.*known"):
        store.get("v9_0_0")
    with pytest.raises(UserError, match="look like v1_0_3"):
        parse_version("latest")
