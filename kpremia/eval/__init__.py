"""kpremia.eval: honest evaluation of trading policies.

* :mod:`~kpremia.eval.formulas`  the metric formulas (pure tensor functions, one place)
* :mod:`~kpremia.eval.metrics`   torchmetrics classes (DDP-safe) and ``compute_metrics``
* :mod:`~kpremia.eval.oracle`    hindsight oracle: best achievable value, by dynamic programming
* :mod:`~kpremia.eval.baselines` registered baselines (cash, buy_and_hold, random, premium_threshold, oracle)
* :mod:`~kpremia.eval.model_based` the model-based trader (baseline ``model_based``): :mod:`~kpremia.eval.premium_model`,
  :mod:`~kpremia.eval.regime_filter` and :mod:`~kpremia.eval.model_dp`
* :mod:`~kpremia.eval.backtest`  run a policy / baseline over a split through BatchedEnv -> trace
* :mod:`~kpremia.eval.report`    trace.csv, trades.csv, summary.json, plots; ``format_table``
* :mod:`~kpremia.eval.layout`    where a test report goes (per checkpoint, data, split) and its stamp
* :mod:`~kpremia.eval.paired`    paired differences to a rule: mean, median, IQM, win rate, interval, verdict
* :mod:`~kpremia.eval.trades`    the trade list of a trace (``trades.csv``)
* :mod:`~kpremia.eval.curves`    a run's validation curve from ``metrics.csv``
* :mod:`~kpremia.run.compare`   ``python -m kpremia compare``: groups by what ran, paired against the band rule

Submodules are imported on use (matplotlib and the simulator are not loaded by ``import kpremia.eval``).
"""
