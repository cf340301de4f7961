"""The live runner: host a trained policy (or a rule) on new bars, paper by default.

``python -m kpremia live ckpt=<path> live.state_dir=<dir>`` builds a
:class:`~kpremia.live.loop.runner.LiveRunner` from ``configs/live/`` with a feed
(``replay``, ``ccxt``), a broker (``paper``, ``ccxt``), a policy
(``checkpoint``, ``premium_threshold``) and callbacks (``risk``, ``logging``,
``metrics``, ``checkpoints`` and any registered third-party one).  The SQLite
journal makes it crash-safe; docs/live.md describes the journal schema, the
risk state machine and the recovery rules.
"""
