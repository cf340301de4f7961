"""Import every data source module so each registers itself in ``DATA_SOURCES``.

The registry imports this module lazily on first lookup.  The exchange source
(``ccxt_source``) is imported only if it exists, and a failure to import it (for
example ccxt missing from a minimal install) is logged instead of breaking the
offline sources.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

from kpremia.data import files, synthetic  # noqa: F401  (register csv, parquet, synthetic)

log = logging.getLogger(__name__)

_OPTIONAL = ("kpremia.data.ccxt_source",)

for _module in _OPTIONAL:
    if importlib.util.find_spec(_module) is not None:
        try:
            importlib.import_module(_module)
        except ImportError as exc:
            log.warning("data source module %s not available: %s", _module, exc)
