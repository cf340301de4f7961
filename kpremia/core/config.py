"""Typed config parts: one dataclass per part of the run config, checked in one place.

Hydra composes the YAML tree into a dict; each part that code reads (``env``,
``algo``, ``eval``) is turned once into a frozen dataclass by
:meth:`ConfigPart.from_dict`, which

* refuses keys the part does not have (a knob added to the YAML but not to the
  dataclass fails loudly instead of being ignored);
* converts values to the field's type and checks every field's rule, then the
  part's cross-field rules (:meth:`ConfigPart.check_together`), raising a
  one-line :class:`UserError` that names the key and the fix.

A part also reads like a mapping (``part["n_envs"]``, ``part.get(...)``,
``dict(part)``).  A field whose type is itself a part (``live.risk``) is built
from its sub-node with that part's own checks.

A knob is one line in its dataclass (type, default, rule) plus one line in its
YAML file; ``tests/cli/test_typed_configs.py`` checks the YAML defaults equal the
dataclass defaults, so the two cannot drift.  Where one value object owns a
knob (:class:`~kpremia.envs.execution.ExecutionRules` owns ``fee_rate``), the
config part declares it with :func:`knob_of`, so the default and the rule have
one home.  A plug-in algorithm declares its own part (``config_class`` on the
registered class) and so brings its own checks.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

from kpremia.core.errors import UserError

Rule = tuple[str, Callable[[Any], bool]]  # (what the value must be, in words; the test)
P = TypeVar("P", bound="ConfigPart")


def knob(default: Any, rule: Rule | None = None) -> Any:
    """A config field: its default and, optionally, the rule its value must keep."""
    meta = {"rule": rule}
    if isinstance(default, (list, dict, ConfigPart)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def knob_of(part: type[ConfigPart], name: str) -> Any:
    """The knob ``name`` of another part, with its default and rule: one home for both.

    ``EnvConfig.fee_rate = knob_of(ExecutionRules, "fee_rate")`` declares the env
    config's key with the very default and rule of the value object that uses it.
    """
    f = part.__dataclass_fields__[name]
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return knob(default, f.metadata.get("rule"))


def default_of(part: type[ConfigPart], name: str) -> Any:
    """The default of field ``name`` of ``part`` (for a signature that must agree with the config)."""
    f = part.__dataclass_fields__[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def at_least(low: float) -> Rule:
    return f">= {low}", lambda v: v >= low


def positive() -> Rule:
    return "> 0", lambda v: v > 0


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False, note: str = "") -> Rule:
    """``low <= v <= high`` (``low_open`` / ``high_open`` make that end strict)."""
    text = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}{note}"

    def ok(v: Any) -> bool:
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return text, ok


def optional(rule: Rule) -> Rule:
    """The rule, or null."""
    text, ok = rule
    return f"{text} or null", lambda v: v is None or ok(v)


@dataclasses.dataclass(frozen=True)
class ConfigPart(Mapping[str, Any]):
    """Base of the typed parts; subclasses are frozen dataclasses of :func:`knob` fields."""

    section: ClassVar[str] = ""  # where the part sits in the run config ("env", "algo", "eval", "live.risk")

    # ------------------------------------------------------------ read like the dict it replaces
    def __getitem__(self, key: str) -> Any:
        if key not in self.field_names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.field_names())

    def __len__(self) -> int:
        return len(self.field_names())

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The part's knobs (its dataclass fields; class-level settings such as ``section`` excluded)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    # ------------------------------------------------------------ building and checking
    @classmethod
    def normalise(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The node in the form the fields take (override in a part, e.g. a scheme name into its node)."""
        return raw

    @classmethod
    def from_dict(cls: type[P], raw: Mapping[str, Any]) -> P:
        """The typed part of ``raw`` (the resolved config node), checked; :class:`UserError` if invalid."""
        values = cls.normalise(dict(raw))
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise UserError(f"{cls.section}.{unknown[0]} is not a setting of `{cls.section}` "
                            f"({cls.__name__}); remove it, or use one of: {', '.join(names)}")
        hints = typing.get_type_hints(cls)
        part = cls(**{k: _coerce(f"{cls.section}.{k}", v, hints[k]) for k, v in values.items()})
        part.check()
        return part

    @classmethod
    def of(cls: type[P], cfg: Mapping[str, Any]) -> P:
        """``cfg`` itself when it is already this part, else :meth:`from_dict` of it."""
        return cfg if isinstance(cfg, cls) else cls.from_dict(cfg)

    def check(self) -> None:
        """Every field's rule, then :meth:`check_together`."""
        type(self).check_fields(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        self.check_together()

    @classmethod
    def check_fields(cls, **values: Any) -> None:
        """The rules of the named fields only (for code that takes the values as arguments)."""
        rules = {f.name: f.metadata.get("rule") for f in dataclasses.fields(cls)}
        for key, value in values.items():
            rule = rules[key]
            if rule is not None and not rule[1](value):
                raise UserError(f"{cls.section}.{key}={value!r} is invalid: it must be {rule[0]}; "
                                "fix the override or the config file")

    def check_together(self) -> None:
        """Rules that involve several fields (override in a part)."""

    def fail(self, key: str, rule: str) -> None:
        """Raise the one-line error for ``key`` (a field name of this part)."""
        value = getattr(self, key, None)
        raise UserError(f"{self.section}.{key}={value!r} is invalid: it must be {rule}; "
                        "fix the override or the config file")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the part (lists for tuples), as the YAML would hold it."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default of every field, as :meth:`to_dict` would write it."""
        out = {}
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            out[f.name] = _plain(default)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigPart):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def bars_or_duration(*, allow_none: bool = False) -> Rule:
    """A whole number of bars >= 1, or a duration such as ``"4h"`` (turned into bars of the run's bar size)."""
    def ok(v: Any) -> bool:
        if v is None:
            return allow_none
        from kpremia.core.bars import is_duration_text  # pandas: loaded when a value is checked, not on import

        return (isinstance(v, int) and not isinstance(v, bool) and v >= 1) or is_duration_text(v)

    text = "a whole number of bars >= 1 or a duration such as '4h' or '7d'"
    return (text + (" or null" if allow_none else ""), ok)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the field type ``hint`` (int, float, bool, str, tuple, dict, X | None, or X | Y: the first that fits)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:
            try:
                return _coerce(key, value, option)
            except UserError:
                continue
        hint = options[-1]
    base = typing.get_origin(hint) or hint

    def bad(kind: str) -> UserError:
        return UserError(f"{key}={value!r} is invalid: it must be {kind}; fix the override or the config file")

    if base is Any:
        return value
    if isinstance(base, type) and issubclass(base, ConfigPart):
        if isinstance(value, base):
            return value
        if isinstance(value, Mapping):
            return base.from_dict(value)
        raise bad("a mapping")
    if base is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if base is int:
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise bad("an integer") from None
            if number.is_integer():
                return int(number)
        raise bad("an integer")
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise bad("a number")
    if base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad("a string")
    if base is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(value)
        raise bad("a list")
    if base is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise bad("a mapping")
    return value


def checkpoint_of(cfg: Mapping[str, Any]) -> str | None:
    """The run config's checkpoint (``ckpt``), or None."""
    return str(cfg["ckpt"]) if cfg.get("ckpt") else None


def runs_root(cfg: Mapping[str, Any]) -> str:
    """Where the config's runs go (``paths.runs_dir``: ``$KPREMIA_RUNS_DIR`` or ``runs``)."""
    return str((cfg.get("paths") or {}).get("runs_dir") or "runs")
