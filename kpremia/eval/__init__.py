"""kpremia.eval: honest evaluation of trading policies.

* :mod:`~kpremia.eval.formulas`  the metric formulas (pure tensor functions, one place)
* :mod:`~kpremia.eval.metrics`   torchmetrics classes (DDP-safe) and ``compute_metrics``
* :mod:`~kpremia.eval.oracle`    hindsight oracle: best achievable value, by dynamic programming
* :mod:`~kpremia.eval.baselines` registered baselines (cash, buy_and_hold, random, premium_threshold, oracle)
* :mod:`~kpremia.eval.model_based` the model-based trader (baseline ``model_based``): :mod:`~kpremia.eval.premium_model`,
  :mod:`~kpremia.eval.regime_filter` and :mod:`~kpremia.eval.model_dp`
* :mod:`~kpremia.eval.backtest`  run a policy / baseline over a split through BatchedEnv -> trace
* :mod:`~kpremia.eval.report`    trace.csv, summary.json, plots; ``format_table``
* :mod:`~kpremia.eval.paired`    paired differences against a rule: mean, median, IQM, win rate, bootstrap interval, verdict
* :mod:`~kpremia.eval.compare`   ``python -m kpremia compare``: mean ± std over seeds

Submodules are imported on use (matplotlib and the simulator are not loaded by ``import kpremia.eval``).
"""
