"""Deprecated alias of :mod:`kpremia.spec` (the observation spec moved there).

Kept so plug-ins written against ``kpremia.envs.spec`` keep importing; import
from :mod:`kpremia.spec` instead.
"""

from __future__ import annotations

import warnings

from kpremia.spec import (  # noqa: F401  (re-exported names)
    ACCOUNT, FEATURES, MARKET_KEYS, N_ACCOUNT, OBS_KEYS, PREMIUM, PRICE_1D, PRICE_15M, SERIES_KEYS, ObsSpec,
)

warnings.warn("kpremia.envs.spec is deprecated; import ObsSpec and the key names from kpremia.spec",
              DeprecationWarning, stacklevel=2)
