"""Plug-in registries.

One small :class:`Registry` class, many instances (``ENCODERS``, ``ALGOS``,
``ACTION_SCHEMES``, ``DATA_SOURCES``, ``BASELINES`` and the live runner's ``LIVE_FEEDS``,
``LIVE_BROKERS``, ``LIVE_POLICIES``, ``LIVE_CALLBACKS``).  Modelled on timm's
``register_model`` / ``list_models`` / ``create_model`` but stricter: a duplicate
name is an error, and an unknown name fails with one line listing the known
names and the nearest match.

Loading is lazy and per registry: each registry names its built-in plug-ins and
the module that registers each one (``builtins={name: module}``), and imports a
module only when that name is asked for (``get``, ``build``) or when every
plug-in is listed (``items``).  So ``ACTION_SCHEMES.get("signal")`` (what
``BatchedEnv`` does) imports the action schemes and nothing else: not
Lightning, not the web server, not ccxt.  ``names()`` and ``in`` answer from
the declarations without importing anything built in.

Third-party packages add plug-ins through the entry-point group
``kpremia.plugins``: each entry point names a module (or a callable) that, when
imported/called, registers its objects.  Entry points are loaded the first time
any registry is queried (a plug-in module may register in any registry).  A package
that ships config files (e.g. ``configs/encoder/<name>.yaml``) declares their
package in the group ``kpremia.configs``; the CLI adds it to Hydra's search path.
Modules that are not installed (a local ``my_encoder.py``) are named in the
environment variable ``KPREMIA_PLUGINS`` (comma-separated) and imported the same way.
See ``docs/write_an_encoder.md``.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from kpremia.core.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_POINT_GROUP = "kpremia.plugins"
CONFIG_ENTRY_POINT_GROUP = "kpremia.configs"
PLUGINS_ENV_VAR = "KPREMIA_PLUGINS"

_entry_points_loaded = False
_loading = False


def load_entry_points() -> None:
    """Import third-party plug-ins (entry points and ``KPREMIA_PLUGINS``), once per process."""
    global _entry_points_loaded, _loading
    if _entry_points_loaded or _loading:
        return
    _loading = True
    try:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plug-in must not break kpremia
                log.warning("kpremia plug-in %r (%s) failed to load: %s", ep.name, ep.value, exc)
                continue
            if callable(obj) and not isinstance(obj, type):
                obj()
        _entry_points_loaded = True
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

    >>> ENCODERS = Registry("encoder", builtins={"mlp": "kpremia.encoders.mlp"})
    >>> @ENCODERS.register("mlp")
    ... class MLPEncoder(nn.Module): ...
    >>> ENCODERS.get("mlp")        # imports kpremia.encoders.mlp on first use

    Args:
        kind: what the plug-ins are, for messages ("encoder").
        builtins: ``{name: module}`` of kpremia's own plug-ins; a module is imported
            when one of its names is needed (a test keeps the map equal to what the
            modules register).
    """

    def __init__(self, kind: str, builtins: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.builtins: dict[str, str] = dict(builtins or {})
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

    def _load(self, name: str | None = None) -> None:
        """Third-party plug-ins, then the built-in module of ``name`` (every one for None)."""
        load_entry_points()
        wanted = self.builtins.values() if name is None else [self.builtins[name]] if name in self.builtins else []
        for module in dict.fromkeys(wanted):
            importlib.import_module(module)

    def __contains__(self, name: object) -> bool:
        load_entry_points()
        return name in self.builtins or name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted (built-ins are not imported)."""
        load_entry_points()
        return sorted(n for n in {*self.builtins, *self._entries} if fnmatch.fnmatchcase(n, pattern))

    def items(self) -> list[tuple[str, T]]:
        """Every plug-in, imported (what ``list`` shows)."""
        self._load()
        return sorted(self._entries.items())

    def summary(self, name: str) -> str:
        """The first line of the plug-in's docstring, without importing a built-in that is not loaded yet.

        ``list`` shows every plug-in; importing them all would import Lightning, the
        web server and ccxt just to print a line each, so a built-in's docstring is
        read from its module's source.
        """
        if name not in self._entries and name in self.builtins:
            doc = _registered_docstring(self.builtins[name], name)
        else:
            doc = getattr(self.get(name), "__doc__", None)
        lines = (doc or "").strip().splitlines()
        return lines[0] if lines else ""

    def get(self, name: str) -> T:
        """The plug-in registered as ``name``; a :class:`UserError` naming the known ones otherwise."""
        self._load(name)
        try:
            return self._entries[name]
        except KeyError:
            known = self.names()
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
        return f"Registry({self.kind!r}, {self.names()})"


def _registered_docstring(module: str, name: str) -> str | None:
    """The docstring of the class or function registered as ``name`` in ``module``'s source (not imported)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            continue
        for deco in node.decorator_list:
            if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "register"
                    and deco.args and isinstance(deco.args[0], ast.Constant) and deco.args[0].value == name):
                return ast.get_docstring(node)
    return None


def _same(module: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, module)


ENCODERS: Registry[Any] = Registry("encoder", {
    "gru_attn": "kpremia.encoders.gru_attn", "lstm": "kpremia.encoders.lstm",
    "dnn_lstm": "kpremia.encoders.dnn_lstm", "mlp": "kpremia.encoders.mlp"})
ALGOS: Registry[Any] = Registry("algo", {"ppo": "kpremia.algos.ppo", "dqn": "kpremia.algos.dqn"})
ACTION_SCHEMES: Registry[Any] = Registry("action_scheme", _same("kpremia.envs.action_schemes", "signal",
                                                                "hold_buy_sell", "target_weight"))
DATA_SOURCES: Registry[Any] = Registry("data_source", {
    "synthetic": "kpremia.data.synthetic", "csv": "kpremia.data.files", "parquet": "kpremia.data.files",
    "ccxt": "kpremia.data.ccxt_source"})
BASELINES: Registry[Any] = Registry("baseline", {
    **_same("kpremia.eval.baselines", "cash", "buy_and_hold", "random", "premium_threshold", "premium_zscore",
            "oracle"),
    "model_based": "kpremia.eval.model_based"})
LIVE_FEEDS: Registry[Any] = Registry("live feed", {"replay": "kpremia.live.venues.feeds", "ccxt": "kpremia.live.venues.ccxt_feed"})
LIVE_BROKERS: Registry[Any] = Registry("live broker", {"paper": "kpremia.live.venues.paper",
                                                       "ccxt": "kpremia.live.venues.ccxt_broker"})
LIVE_POLICIES: Registry[Any] = Registry("live policy", _same("kpremia.live.loop.policy", "checkpoint", "premium_threshold"))
LIVE_CALLBACKS: Registry[Any] = Registry("live callback", {
    "logging": "kpremia.live.loop.monitoring", "metrics": "kpremia.live.loop.monitoring",
    "checkpoints": "kpremia.live.loop.snapshots", "model": "kpremia.live.learning.learning", "api": "kpremia.live.http.callback",
    "alerts": "kpremia.live.loop.alerts"})

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
