"""Read what an offline wandb run wrote, without a server.

wandb >= 0.18 writes offline runs only as a ``run-<id>.wandb`` transaction log
(no ``files/config.yaml`` or ``wandb-summary.json`` until synced).  The log is a
LevelDB-style record stream of ``wandb_internal_pb2.Record`` protobufs: a 7-byte
header (``:W&B``, magic, version), then 32 KiB blocks of chunks, each with a
7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last).  This
reader is for tests only; if wandb changes the format, the tests that use it
fail loudly at the header check rather than passing on empty data.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 32768
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """Every protobuf record in a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", data[:7])
    if ident != b":W&B":
        raise ValueError(f"{path} is not a wandb transaction log (header {ident!r})")
    pos, pending = 7, b""
    while pos + _CHUNK_HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + _CHUNK_HEADER])
        pos += _CHUNK_HEADER
        chunk, pos = data[pos:pos + length], pos + length
        if kind == 0:
            continue
        pending += chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """The parts of an offline run the tests look at."""

    run_id: str = ""
    name: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    record_types: set[str] = field(default_factory=set)


def read_offline_run(run_dir: Path) -> OfflineRun:
    """Parse ``<wandb dir>/offline-run-*/run-<id>.wandb`` into an :class:`OfflineRun`."""
    (log_file,) = sorted(run_dir.glob("run-*.wandb"))
    out = OfflineRun()
    for record in records(log_file):
        kind = record.WhichOneof("record_type")
        out.record_types.add(kind)
        if kind == "run":
            run = record.run
            out.run_id, out.name, out.project = run.run_id, run.display_name, run.project
            out.group, out.job_type, out.tags = run.run_group, run.job_type, list(run.tags)
            out.config.update({_key(i): json.loads(i.value_json) for i in run.config.update})
        elif kind == "config":
            out.config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            out.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out.summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "artifact":
            out.artifacts.append(record.artifact.name)
    return out
