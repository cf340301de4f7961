"""Model versions: every kept weight change is a folder with a manifest, and any can be rolled back to.

Layout under ``<state_dir>/versions/``::

    v1_0_0/   weights.pt  manifest.json
    v1_0_1/   ...

``v<major>_<minor>_<patch>``: *major* counts checkpoints loaded from outside the
run (the first ``ckpt=`` is ``v1_0_0``; ``/load`` of another file starts
``v2_0_0``), *minor* counts promotions of a challenger to the trading policy,
*patch* counts kept online updates on top of that.

A name is a pure function of the model's history, never of the folders on disk:
the host numbers each new version after the last one *it* issued
(:func:`next_version`), and that counter is part of the journal's snapshot.  A
restart after a kill therefore redoes the versions written after the last
journal commit under the same names; :meth:`VersionStore.save` reuses a folder
that already holds those exact weights and replaces one that holds others (an
abandoned write of the killed run).

The manifest holds the parent version, the bars and transitions seen, the
update counter, free-form validation figures (the update's losses and anchor
distance, the challenger's window returns), the UTC time it was written and the
sha256 of ``weights.pt``: :meth:`VersionStore.load` checks it, so a rollback
restores exactly the bytes that were saved, or refuses.  A folder is written
complete under a temporary name and renamed into place, so a version folder
always has both files; anything else under ``versions/`` (a temporary folder or
file left by a kill) is an orphan that :meth:`VersionStore.clean` removes at
start.  Folders named ``<version>-<UTC time>`` (earlier releases) are still read.

Retention (:meth:`VersionStore.prune`): the acting, the challenger, every
checkpoint and promotion version and the last ``keep_last`` others are kept.
Saving costs the same whatever the number of versions: it writes one folder and
deletes at most a few, from an index built once when the store is opened.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from kpremia.core.errors import UserError
from kpremia.core.io import fsync_dir, load_torch_file, sha256_file

VERSION_FORMAT = "v1_0_3 (v<major>_<minor>_<patch>, up to 6 digits each)"
_NAME = re.compile(r"v(\d{1,6})_(\d{1,6})_(\d{1,6})")
_LEGACY_FOLDER = re.compile(r"(v\d{1,6}_\d{1,6}_\d{1,6})-(\d{8}T\d{6}Z)")
KEPT_KINDS = ("checkpoint", "promotion")  # never pruned: where each major and minor line starts


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


def next_version(issued: tuple[int, int, int] | None, kind: str) -> str:
    """The name of a new version of ``kind`` after the last one issued in this history (None: none yet)."""
    major, minor, patch = issued or (0, 0, 0)
    if kind == "checkpoint":
        return format_version((major + 1, 0, 0))
    if kind == "promotion":
        return format_version((major, minor + 1, 0))
    if kind in ("update", "rollback"):
        return format_version((major, minor, patch + 1))
    raise ValueError(f"unknown version kind {kind!r}")


def _version_of(folder: Path) -> str | None:
    """The version a folder holds by its name (``v1_0_3`` or the older ``v1_0_3-<UTC time>``), else None."""
    if _NAME.fullmatch(folder.name):
        return folder.name
    m = _LEGACY_FOLDER.fullmatch(folder.name)
    return m[1] if m else None


def _read_manifest(folder: Path) -> Version | None:
    try:
        data = json.loads((folder / "manifest.json").read_text())
        return Version(**{**data, "folder": folder.name})
    except (OSError, json.JSONDecodeError, TypeError, UnicodeDecodeError):
        return None


class VersionStore:
    """Saves, lists, loads and prunes the versions under ``root`` (``<state_dir>/versions``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._index: dict[str, Version] | None = None  # name -> version, built on first need

    # ----------------------------------------------------------------- reading
    def _scan(self) -> dict[str, Version]:
        out: dict[str, Version] = {}
        if not self.root.is_dir():
            return out
        for folder in self.root.iterdir():
            name = _version_of(folder)
            if name is None or not folder.is_dir():
                continue
            version = _read_manifest(folder)
            if version is not None and version.name == name and (name not in out or folder.name == name):
                out[name] = version
        return out

    @property
    def index(self) -> dict[str, Version]:
        if self._index is None:
            self._index = self._scan()
        return self._index

    def list(self) -> list[Version]:
        """Every complete version, oldest first (by version number)."""
        return sorted(self.index.values(), key=lambda v: v.number)

    def get(self, name: str) -> Version:
        parse_version(name)
        version = self.index.get(name)
        if version is not None:
            return version
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
                            "sha256; roll back to another version with live.rollback=<version> (see "
                            f"`ls {self.root}`)")
        return version, load_torch_file(path, weights_only=True)

    # ----------------------------------------------------------------- writing
    def save(self, weights: dict[str, torch.Tensor], *, name: str, kind: str, parent: str | None,
             bars_seen: int = 0, transitions_seen: int = 0, updates: int = 0, source: str | None = None,
             figures: dict[str, Any] | None = None) -> Version:
        """Write version ``name`` (a complete folder renamed into place); reuse it if it already holds these weights.

        A folder of that name holding other weights is an abandoned write (a killed run's version
        after its last journal commit): it is replaced.
        """
        parse_version(name)
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().clone() for k, v in weights.items()}, buf)
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        existing = self.index.get(name)
        if existing is not None and existing.weights_sha256 == digest and existing.kind == kind \
                and existing.parent == parent:
            return existing
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        version = Version(name=name, parent=parent, created_utc=stamp, kind=kind, bars_seen=int(bars_seen),
                          transitions_seen=int(transitions_seen), updates=int(updates), source=source,
                          figures=dict(figures or {}), weights_sha256=digest, folder=name)
        manifest = {k: v for k, v in asdict(version).items() if k != "folder"}
        tmp = self.root / f".{name}.{os.getpid()}.tmp"
        self._stage(tmp, data, manifest)
        self._publish(tmp, name, existing)
        self.index[name] = version
        return version

    def _stage(self, tmp: Path, data: bytes, manifest: dict[str, Any]) -> None:
        """Write the folder's two files under a temporary name (weights first, manifest last)."""
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for file, content in (("weights.pt", data),
                              ("manifest.json", (json.dumps(manifest, indent=2, sort_keys=True, default=str)
                                                 + "\n").encode())):
            with open(tmp / file, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())

    def _publish(self, tmp: Path, name: str, replaced: Version | None) -> None:
        """Rename the staged folder into place (the one step that makes the version exist)."""
        if replaced is not None:
            self._remove(replaced)
        final = self.root / name
        if final.exists():  # a folder of that name without a readable manifest: an orphan
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(self.root)

    def _remove(self, version: Version) -> None:
        shutil.rmtree(self.root / version.folder, ignore_errors=True)
        if self._index is not None and self._index.get(version.name) is version:
            del self._index[version.name]

    # ----------------------------------------------------------------- housekeeping
    def clean(self) -> list[str]:
        """Remove what is not a complete version (temporary folders and files a kill left); what was removed."""
        if not self.root.is_dir():
            return []
        complete = {v.folder for v in self.index.values()}
        removed = []
        for entry in sorted(self.root.iterdir()):
            if entry.name in complete:
                strays = [f for f in entry.iterdir() if f.name not in ("weights.pt", "manifest.json")]
                for f in strays:
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
                    removed.append(f"{entry.name}/{f.name}")
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            removed.append(entry.name)
        if removed:
            fsync_dir(self.root)
        return removed

    def prune(self, keep_last: int | None, protect: set[str | None]) -> list[str]:
        """Delete the oldest versions beyond the last ``keep_last`` (never a checkpoint, a promotion or ``protect``).

        Works on the in-memory index (no folder is listed or manifest read), so its cost is bounded by the
        number kept, and a save that adds one version deletes at most one.
        """
        if keep_last is None:
            return []
        prunable = [name for name, v in self.index.items() if v.kind not in KEPT_KINDS and name not in protect]
        excess = len(prunable) - int(keep_last)
        if excess <= 0:
            return []
        doomed = sorted(prunable, key=parse_version)[:excess]
        for name in doomed:
            self._remove(self.index[name])
        return doomed
