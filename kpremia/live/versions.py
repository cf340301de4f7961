"""Model versions: every kept weight change is a folder with a manifest, and any can be rolled back to.

Layout under ``<state_dir>/versions/``::

    v1_0_0-20261201T143000Z/   weights.pt  manifest.json
    v1_0_1-20261201T144500Z/   ...

``v<major>_<minor>_<patch>``: *major* counts checkpoints loaded from outside the
run (the first ``ckpt=`` is ``v1_0_0``; ``/load`` of another file starts
``v2_0_0``), *minor* counts promotions of a challenger to the trading policy,
*patch* counts kept online updates on top of that.  The folder name carries the
UTC time it was written; the version name alone identifies it.

The manifest holds the parent version, the bars and transitions seen, the
update counter, free-form validation figures (the update's losses and anchor
distance, the challenger's window returns) and the sha256 of ``weights.pt``:
:meth:`VersionStore.load` checks it, so a rollback restores exactly the bytes
that were saved, or refuses.  Writes are atomic (:mod:`kpremia.io`): a folder
without a readable manifest is an interrupted write and is ignored.
"""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from kpremia.errors import UserError
from kpremia.io import atomic_write_bytes, atomic_write_json, sha256_file

VERSION_FORMAT = "v1_0_3 (v<major>_<minor>_<patch>, up to 6 digits each)"
_NAME = re.compile(r"v(\d{1,6})_(\d{1,6})_(\d{1,6})")
_FOLDER = re.compile(r"(v\d{1,6}_\d{1,6}_\d{1,6})-(\d{8}T\d{6}Z)")


@dataclass(frozen=True)
class Version:
    """One saved version (what its manifest says)."""

    name: str
    parent: str | None
    created_utc: str
    kind: str  # "checkpoint" | "update" | "promotion" | "rollback"
    bars_seen: int = 0
    transitions_seen: int = 0
    updates: int = 0
    source: str | None = None  # the checkpoint file a major version came from
    figures: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    folder: str = ""

    @property
    def number(self) -> tuple[int, int, int]:
        return parse_version(self.name)


def is_version(name: object) -> bool:
    """Whether ``name`` is exactly a version name (``v1_0_3``): nothing before, nothing after."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def parse_version(name: object) -> tuple[int, int, int]:
    """``"v1_2_3"`` -> ``(1, 2, 3)``; a UserError naming the format otherwise (a folder suffix or a path is not a
    version: the name selects a folder under ``versions/`` and must never reach outside it)."""
    m = _NAME.fullmatch(name) if isinstance(name, str) else None
    if not m:
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
        raise UserError(f"{shown} is not a model version; versions look like {VERSION_FORMAT} "
                        "(see `ls <state_dir>/versions`)")
    return int(m[1]), int(m[2]), int(m[3])


def format_version(number: tuple[int, int, int]) -> str:
    return "v{}_{}_{}".format(*number)


class VersionStore:
    """Saves, lists and loads the versions under ``root`` (``<state_dir>/versions``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ----------------------------------------------------------------- reading
    def list(self) -> list[Version]:
        """Every complete version, oldest first (by version number)."""
        out = []
        if not self.root.is_dir():
            return out
        for folder in self.root.iterdir():
            if not _FOLDER.fullmatch(folder.name) or not (folder / "manifest.json").is_file():
                continue
            try:
                data = json.loads((folder / "manifest.json").read_text())
                out.append(Version(**{**data, "folder": folder.name}))
            except (json.JSONDecodeError, TypeError):
                continue
        return sorted(out, key=lambda v: v.number)

    def get(self, name: str) -> Version:
        parse_version(name)
        for v in self.list():
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.list()[-8:]) or "none yet"
        raise UserError(f"model version {name} not found under {self.root}; known (latest): {known}")

    def latest(self) -> Version | None:
        versions = self.list()
        return versions[-1] if versions else None

    def load(self, name: str) -> tuple[Version, dict[str, torch.Tensor]]:
        """The version's weights, checked against the sha256 in its manifest."""
        version = self.get(name)
        path = self.root / version.folder / "weights.pt"
        if not path.is_file() or sha256_file(path) != version.weights_sha256:
            raise UserError(f"model version {version.name}: {path} is missing or does not match its manifest's "
                            "sha256; roll back to another version")
        return version, torch.load(path, map_location="cpu", weights_only=True)

    # ----------------------------------------------------------------- writing
    def next_name(self, kind: str, parent: str | None) -> str:
        """The name a new version of ``kind`` gets after the newest existing one."""
        latest = self.latest()
        major, minor, patch = latest.number if latest else (0, 0, 0)
        if kind == "checkpoint":
            return format_version((major + 1, 0, 0))
        if kind == "promotion":
            return format_version((major, minor + 1, 0))
        if kind in ("update", "rollback"):
            return format_version((major, minor, patch + 1))
        raise ValueError(f"unknown version kind {kind!r}")

    def save(self, weights: dict[str, torch.Tensor], *, kind: str, parent: str | None, bars_seen: int = 0,
             transitions_seen: int = 0, updates: int = 0, source: str | None = None,
             figures: dict[str, Any] | None = None) -> Version:
        """Write a new version folder (weights first, manifest last: the manifest marks it complete)."""
        name = self.next_name(kind, parent)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = self.root / f"{name}-{stamp}"
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().clone() for k, v in weights.items()}, buf)
        atomic_write_bytes(folder / "weights.pt", buf.getvalue())
        version = Version(name=name, parent=parent, created_utc=stamp, kind=kind, bars_seen=int(bars_seen),
                          transitions_seen=int(transitions_seen), updates=int(updates), source=source,
                          figures=dict(figures or {}), weights_sha256=sha256_file(folder / "weights.pt"),
                          folder=folder.name)
        manifest = {k: v for k, v in asdict(version).items() if k != "folder"}
        atomic_write_json(folder / "manifest.json", manifest)
        return version
