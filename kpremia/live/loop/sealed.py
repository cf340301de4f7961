"""The journal's snapshot blob with its own sha256: damaged bytes are refused, never resumed from.

A snapshot (:meth:`kpremia.live.loop.runner.LiveRunner.snapshot`) is a ``torch.save``
of the observation builder, policy and callback states -- the online learner's
weights, anchor, Adam moments and transition window among them.  torch's loader
reads most byte damage inside tensor data without complaint (weights of 1e37,
NaN), so the blob carries a checksum::

    b"KPSNAP1\\n" + sha256(payload) (32 bytes) + payload

:func:`unseal` checks it (a blob without the header is one of an earlier
release and is read as it is).
"""

from __future__ import annotations

import hashlib
from typing import Any

from kpremia.core.errors import UserError
from kpremia.core.io import load_torch_file

MAGIC = b"KPSNAP1\n"
_DIGEST = 32


def seal(payload: bytes) -> bytes:
    """``payload`` behind its header and sha256."""
    return MAGIC + hashlib.sha256(payload).digest() + payload


def unseal(blob: bytes, where: str = "the journal") -> bytes:
    """The payload of a sealed blob; a UserError naming ``where`` when its sha256 does not match."""
    blob = bytes(blob)
    if not blob.startswith(MAGIC):
        return blob
    digest, payload = blob[len(MAGIC):len(MAGIC) + _DIGEST], blob[len(MAGIC) + _DIGEST:]
    if hashlib.sha256(payload).digest() != digest:
        raise UserError(f"the snapshot in {where} is damaged (its sha256 does not match): restore the journal from "
                        "a backup, or start over in a new live.state_dir; nothing was changed")
    return payload


def read_snapshot(blob: bytes, where: str = "the journal") -> dict[str, Any]:
    """The snapshot's state dict (checked)."""
    return load_torch_file(unseal(blob, where))
