"""Plug-ins travel with their checkpoints: where a run's encoder and algorithm came from.

Why: a checkpoint trained with a third-party encoder used to fail elsewhere with "unknown encoder
'premium_mlp'" and no hint.  ``fit`` now records, for each part that is not built in, the module
that registered it, its entry point and the distribution (and version) that ships it; loading
the checkpoint then imports that module by itself when it can be imported (no environment
variable needed), and otherwise says in one line what to install or set.  All of it without
torch, so the refusal comes before anything heavy loads.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, entry_points, packages_distributions, version
from pathlib import Path
from typing import Any

from kpremia.core.errors import UserError
from kpremia.core.registry import ALGOS, ENCODERS, ENTRY_POINT_GROUP, PLUGINS_ENV_VAR, Registry

# The parts of a run a checkpoint cannot be rebuilt without: (config section, registry).
PARTS: tuple[tuple[str, Registry[Any]], ...] = (("encoder", ENCODERS), ("algo", ALGOS))


def plugin_origin(registry: Registry[Any], name: str) -> dict[str, Any] | None:
    """``{kind, name, module, entry_point, distribution, version}`` of a plug-in; None for a built-in."""
    if name in registry.builtins:
        return None
    module = str(getattr(registry.get(name), "__module__", "") or "")
    top = module.split(".")[0]
    dists = packages_distributions().get(top, []) if top else []
    dist = dists[0] if dists else None
    try:
        dist_version = version(dist) if dist else None
    except PackageNotFoundError:
        dist_version = None
    entry = next((f"{ep.name} = {ep.value}" for ep in entry_points(group=ENTRY_POINT_GROUP)
                  if ep.value.split(":")[0].split(".")[0] == top), None)
    return {"kind": registry.kind, "name": name, "module": module, "entry_point": entry,
            "distribution": dist, "version": dist_version}


def plugin_origins(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The origins of the run's non-built-in encoder and algorithm (what ``fit`` writes into a checkpoint)."""
    found = []
    for section, registry in PARTS:
        name = (cfg.get(section) or {}).get("name")
        origin = plugin_origin(registry, str(name)) if name else None
        if origin is not None:
            found.append(origin)
    return found


def _importable(module: str) -> bool:
    try:
        return bool(module) and importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_plugin_hint(origin: Mapping[str, Any], ckpt: str | Path) -> str:
    """One line: which plug-in the checkpoint needs and exactly what to install or set."""
    kind, name, module = origin.get("kind"), origin.get("name"), origin.get("module")
    where = f"checkpoint {str(ckpt)!r} needs the {kind} {name!r}"
    if origin.get("distribution"):
        pin = f"=={origin['version']}" if origin.get("version") else ""
        return (f"{where} from the package {origin['distribution']} (module {module}), which is not installed "
                f"here: pip install '{origin['distribution']}{pin}'")
    return (f"{where} from the module {module!r}, which cannot be imported here: run from the directory holding "
            f"it or put that directory on PYTHONPATH (and, for `fit` and `list`, set {PLUGINS_ENV_VAR}={module})")


def require_plugins(saved: Mapping[str, Any], ckpt: str | Path) -> None:
    """Make the checkpoint's plug-ins available (importing a recorded module), or one :class:`UserError` line.

    ``saved`` is the checkpoint dict (as :func:`kpremia.run.checkpoint.peek_checkpoint` reads it).
    A checkpoint written before origins were recorded names only the plug-in.
    """
    cfg = saved["hyper_parameters"]["cfg"]
    recorded = {(o.get("kind"), o.get("name")): o for o in ((saved.get("kpremia") or {}).get("plugins") or [])
                if isinstance(o, Mapping)}
    for section, registry in PARTS:
        name = (cfg.get(section) or {}).get("name")
        if not name or name in registry:
            continue
        origin = recorded.get((registry.kind, name))
        if origin is None:
            raise UserError(f"checkpoint {str(ckpt)!r} needs the {registry.kind} {name!r}, which is not registered "
                            f"here (known: {', '.join(registry.names())}); install the plug-in that provides it, or "
                            f"set {PLUGINS_ENV_VAR}=<its module> with its directory on PYTHONPATH")
        module = str(origin.get("module") or "")
        if _importable(module):
            importlib.import_module(module)  # registers it, as an entry point or KPREMIA_PLUGINS would
            if name in registry:
                continue
        raise UserError(missing_plugin_hint(origin, ckpt))
