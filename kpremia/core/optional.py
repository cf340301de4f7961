"""Optional dependencies: imported by name, with a one-line fix when missing.

A few modules (the Stable-Baselines3 adapter) serve users of another library and
need that library, which kpremia does not install for everyone.  They import it
through :func:`import_optional`, so that a user without it gets a
:class:`~kpremia.core.errors.UserError` naming the package and the extra that brings
it, instead of a bare ``ModuleNotFoundError``.  The runtime dependencies of
``pyproject.toml`` are never imported this way.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kpremia.core.errors import UserError


def import_optional(module: str, *, purpose: str, package: str, extra: str = "bench") -> ModuleType:
    """Import ``module``, or raise a UserError saying to install ``package`` (or the ``extra``)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is None or exc.name.split(".")[0] != top:
            raise  # the package is there but broken: show the real error
        raise UserError(f"{purpose} needs {package}, which is not installed; "
                        f"run `pip install {package}` or `pip install 'kpremia[{extra}]'`") from None
