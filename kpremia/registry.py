"""Plug-in registries.

One small :class:`Registry` class, many instances (``ENCODERS``, ``ALGOS``,
``ACTION_SCHEMES``, ``DATA_SOURCES``, ``BASELINES`` and the live runner's ``LIVE_FEEDS``,
``LIVE_BROKERS``, ``LIVE_POLICIES``, ``LIVE_CALLBACKS``).  Modelled on timm's
``register_model`` / ``list_models`` / ``create_model`` but stricter: a duplicate
name is an error, and an unknown name fails with one line listing the known
names and the nearest match.

Third-party packages add plug-ins through the entry-point group
``kpremia.plugins``: each entry point names a module (or a callable) that, when
imported/called, registers its objects.  Entry points are loaded lazily, the
first time any registry is queried, so ``import kpremia`` stays cheap.  A package
that ships config files (e.g. ``configs/encoder/<name>.yaml``) declares their
package in the group ``kpremia.configs``; the CLI adds it to Hydra's search path.
Modules that are not installed (a local ``my_encoder.py``) are named in the
environment variable ``KPREMIA_PLUGINS`` (comma-separated) and imported the same way.
See ``docs/write_an_encoder.md``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from kpremia.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUP = "kpremia.plugins"
CONFIG_ENTRY_POINT_GROUP = "kpremia.configs"
PLUGINS_ENV_VAR = "KPREMIA_PLUGINS"

# Modules of kpremia that register the built-in plug-ins.  Imported lazily on
# first lookup so that registries are complete no matter which module a user
# imported first.
_BUILTIN_MODULES = (
    "kpremia.data.sources",
    "kpremia.envs.action_schemes",
    "kpremia.encoders",
    "kpremia.algos.ppo",
    "kpremia.algos.dqn",
    "kpremia.eval.baselines",
    "kpremia.live.plugins",
)

_loaded = False
_loading = False


def load_plugins() -> None:
    """Import built-in plug-in modules and third-party entry points (once)."""
    global _loaded, _loading
    if _loaded or _loading:
        return
    _loading = True
    try:
        for module in _BUILTIN_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:  # a part not built yet
                if exc.name != module:
                    raise
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plug-in must not break kpremia
                log.warning("kpremia plug-in %r (%s) failed to load: %s", ep.name, ep.value, exc)
                continue
            if callable(obj) and not isinstance(obj, type):
                obj()
        _loaded = True
        _import_env_plugins()
    finally:
        _loading = False


def _import_env_plugins() -> None:
    """Import the modules named in ``KPREMIA_PLUGINS`` (comma-separated), so a local file registers.

    Unlike a broken entry point (an installed package the user may not even know about),
    a module the user named on purpose that fails to import is an error, not a warning.
    """
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV_VAR, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UserError(
                f"{PLUGINS_ENV_VAR} names {module!r}, which cannot be imported ({exc}); "
                "put its directory on PYTHONPATH or fix the name"
            ) from None


def plugin_config_modules() -> list[str]:
    """Packages named in the entry-point group ``kpremia.configs`` that can be found.

    Each holds a config tree like ``kpremia/configs`` (e.g. ``encoder/<name>.yaml``), so
    ``encoder=<name>`` works for an installed plug-in.  Finding a package imports its
    parent package; one that cannot be found or raises is skipped with a warning naming it.
    """
    modules: list[str] = []
    for ep in entry_points(group=CONFIG_ENTRY_POINT_GROUP):
        try:
            found = importlib.util.find_spec(ep.value) is not None
        except Exception as exc:  # a broken plug-in must not break kpremia
            found, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            reason = "no such module"
        if found:
            modules.append(ep.value)
        else:
            log.warning("kpremia plug-in configs %r (%s) skipped: %s", ep.name, ep.value, reason)
    return modules


class Registry(Generic[T]):
    """A named collection of plug-ins of one kind.

    >>> ENCODERS = Registry("encoder")
    >>> @ENCODERS.register("mlp")
    ... class MLPEncoder(nn.Module): ...
    >>> ENCODERS.get("mlp")
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name``; a duplicate name is an error."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                existing = self._entries[name]
                raise ValueError(
                    f"{self.kind} {name!r} is already registered by "
                    f"{getattr(existing, '__module__', '?')}.{getattr(existing, '__qualname__', existing)}; "
                    "choose another name"
                )
            self._entries[name] = obj
            return obj

        return decorator

    def _ensure_loaded(self) -> None:
        load_plugins()

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        self._ensure_loaded()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def items(self) -> list[tuple[str, T]]:
        self._ensure_loaded()
        return sorted(self._entries.items())

    def get(self, name: str) -> T:
        """The plug-in registered as ``name``; a :class:`UserError` naming the known ones otherwise."""
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UserError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(known) or '(none)'}.{hint}"
            ) from None

    def build(self, name_or_cfg: str | Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Instantiate a plug-in from a name or a config mapping with a ``name`` key.

        Other keys of the mapping become keyword arguments (explicit ``kwargs`` win).
        """
        if isinstance(name_or_cfg, str):
            name, cfg = name_or_cfg, {}
        else:
            cfg = dict(name_or_cfg)
            if "name" not in cfg:
                raise UserError(f"{self.kind} config has no 'name' key; set {self.kind}.name to one of: "
                                f"{', '.join(self.names())}")
            name = cfg.pop("name")
        cls = self.get(name)
        return cls(*args, **{**cfg, **kwargs})

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"


ENCODERS: Registry[Any] = Registry("encoder")
ALGOS: Registry[Any] = Registry("algo")
ACTION_SCHEMES: Registry[Any] = Registry("action_scheme")
DATA_SOURCES: Registry[Any] = Registry("data_source")
BASELINES: Registry[Any] = Registry("baseline")
LIVE_FEEDS: Registry[Any] = Registry("live feed")
LIVE_BROKERS: Registry[Any] = Registry("live broker")
LIVE_POLICIES: Registry[Any] = Registry("live policy")
LIVE_CALLBACKS: Registry[Any] = Registry("live callback")

REGISTRIES: dict[str, Registry[Any]] = {
    "encoders": ENCODERS,
    "algos": ALGOS,
    "action_schemes": ACTION_SCHEMES,
    "data_sources": DATA_SOURCES,
    "baselines": BASELINES,
    "live_feeds": LIVE_FEEDS,
    "live_brokers": LIVE_BROKERS,
    "live_policies": LIVE_POLICIES,
    "live_callbacks": LIVE_CALLBACKS,
}
