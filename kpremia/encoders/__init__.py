"""Observation encoders (registry ``ENCODERS``), one module per plug-in.

The built-in encoders ``gru_attn``, ``lstm``, ``dnn_lstm`` and ``mlp`` are
declared in ``ENCODERS`` (``kpremia.core.registry``) and imported when first asked for.
Each is an ``nn.Module`` with ``__init__(spec, **cfg)``, ``out_dim`` and
``forward(obs) -> Tensor[B, out_dim]``; heads live with the algorithm.  A new
built-in encoder is one file with a decorated module, one line in ``ENCODERS``'
built-ins and one YAML in ``configs/encoder/``.
"""

from __future__ import annotations

from kpremia.core.registry import ENCODERS
from kpremia.core.spec import ObsSpec


def param_count(name: str, spec: ObsSpec | None = None) -> int:
    """Number of parameters of encoder ``name`` built with default settings for ``spec``.

    ``spec`` defaults to :meth:`ObsSpec.default`; used by the CLI's ``list`` command.
    """
    encoder = ENCODERS.build(name, spec if spec is not None else ObsSpec.default())
    return sum(p.numel() for p in encoder.parameters())


__all__ = ["param_count"]
