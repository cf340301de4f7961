"""kpremia.envs: the batched torch simulator, its fill rules, action schemes and library adapters.

Import what you need from its modules (``kpremia.envs.batched.BatchedEnv``,
``kpremia.envs.execution.rebalance``, ``kpremia.envs.sb3.KPremiaVecEnv``, ...);
this package imports nothing, so the fill rules load without the simulator and
the optional adapters' libraries are imported only by who uses them.
"""
