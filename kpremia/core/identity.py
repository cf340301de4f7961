"""A run's identity: what ran, so that runs are averaged only when they ran the same thing.

Why one definition: run directories, ``meta.json``, test reports, ``compare`` and the Python
API all need to say whether two runs are "the same variant over another seed".  A name cannot
say it (a base-config sweep over ``encoder=gru_attn`` and ``experiment=gru_attn_ppo`` share an
encoder but differ in seven keys that change what is learned), so the identity is the resolved
config itself, minus the keys that say *how* a run ran rather than *what* it learned:

* the seed (``seed``, and ``data.seed``, which follows it: seeds are what a mean is over),
* names (``experiment_name``, ``experiment``, ``tags``),
* how it ran (``trainer``, ``logger``, ``paths``, ``torch_threads``, ``hydra``, ``ckpt``),
* test-time and live options (``eval``, ``live``) -- except ``eval.val_draws``, which decides
  which checkpoint is kept as best.

:func:`what_ran` gives the remaining leaves, :func:`identity_digest` a short stable hash of them
(stored in ``meta.json`` and each report's ``summary.json``), and :func:`differing_keys` the few
keys that tell a set of identities apart (what ``compare`` prints as a label).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

# Top-level config keys that say how a run ran (or how it is named or tested), not what it learned.
HOW_KEYS = ("seed", "experiment_name", "experiment", "ckpt", "paths", "trainer", "logger", "tags", "torch_threads",
            "hydra", "live", "eval")
# ... except these leaves, which change what is trained or which checkpoint is kept.
WHAT_RAN_EXCEPTIONS = ("eval.val_draws",)
# ... and these leaves below a what-key, which follow the seed.
SEED_LEAVES = ("data.seed",)

Identity = tuple[tuple[str, str], ...]


def what_ran(cfg: Mapping[str, Any] | None) -> Identity | None:
    """The leaves of a resolved run config that define what was trained, sorted; None without a config."""
    if not cfg:
        return None
    leaves: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            leaves[prefix.rstrip(".")] = json.dumps(node, sort_keys=True, default=str)

    walk(cfg, "")
    return tuple(sorted((k, v) for k, v in leaves.items()
                        if k in WHAT_RAN_EXCEPTIONS or (k.split(".")[0] not in HOW_KEYS and k not in SEED_LEAVES)))


def identity_digest(cfg: Mapping[str, Any] | None) -> str | None:
    """Twelve hex digits naming :func:`what_ran` of ``cfg`` (equal digests: the same variant)."""
    leaves = what_ran(cfg)
    if leaves is None:
        return None
    return hashlib.sha256(json.dumps(leaves).encode()).hexdigest()[:12]


# Keys a person looks for first when two variants differ.
LABEL_FIRST = ("encoder.name", "algo.name", "env.reward", "env.action_scheme.name", "env.decision_every",
               "data.name", "data.path")


def differing_keys(identities: Iterable[Identity]) -> list[str]:
    """The keys whose value is not the same in every one of ``identities``, most telling first."""
    maps = [dict(i) for i in identities]
    if len(maps) < 2:
        return []
    keys = set().union(*maps)
    differing = {k for k in keys if len({m.get(k) for m in maps}) > 1}
    return sorted(differing, key=lambda k: (LABEL_FIRST.index(k) if k in LABEL_FIRST else len(LABEL_FIRST), k))


def show_value(identity: Identity, key: str) -> str:
    """``key=value`` as a person reads it (``(unset)`` when the identity has no such key)."""
    raw = dict(identity).get(key)
    return f"{key}={json.loads(raw) if raw is not None else '(unset)'}"
