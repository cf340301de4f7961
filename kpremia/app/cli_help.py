"""kpremia's own ``--help`` for each command, and ``--version``.

Why: ``fit``, ``test``, ``backtest`` ... are Hydra applications, and Hydra's generated help is a
200-line dump of every config group (the live keys included) that says nothing about what the
command does.  A newcomer needs the command's purpose, its few main keys with examples and
where the full reference is; ``<command> --hydra-help`` still prints Hydra's full help.
Plain text only: answering ``--help`` imports nothing heavy.
"""

from __future__ import annotations

import sys

_KEYS = """main keys (Hydra overrides, key=value):
  experiment=NAME     a preset: gru_attn_ppo (the main job), mlp_ppo, lstm_ppo, dnn_lstm_ppo, *_dqn
  encoder=NAME        the network: gru_attn, lstm, dnn_lstm, mlp (or a plug-in; `python -m kpremia list`)
  algo=NAME           ppo or dqn; any algo.* key, e.g. algo.lr=0.0003
  data=NAME           synthetic (default, no file), csv or parquet (with data.path=FILE), ccxt
  algo.total_env_steps=N   the budget in env steps (debug=fast: a seconds-long smoke run)
  seed=N              one seed for everything (market, envs, weights)
  quote a value with ( ) [ ] { } , = or spaces: 'data.path="my file (1).csv"'
"""

_FOOTER = """
Full reference: `python -m kpremia {command} --hydra-help` (every config group and the composed config),
`python -m kpremia {command} --cfg job` (the config this command would run), README.md and docs/.
"""

COMMAND_HELP: dict[str, str] = {
    "fit": """usage: python -m kpremia fit [key=value ...] [-m]

Train an agent on a market simulator; validation keeps the best checkpoint. The run directory
(runs/<date>_<time>_<experiment>/, with config.yaml, meta.json, metrics.csv, checkpoints/) is
printed as the last line.

""" + _KEYS + """  ckpt=RUN             continue a run (a finished one: raise algo.total_env_steps to extend it)
  torch_threads=N     CPU threads (default: chosen from the cores available)

examples:
  python -m kpremia fit experiment=mlp_ppo algo.total_env_steps=65536    # about a minute
  python -m kpremia fit experiment=gru_attn_ppo                          # the main job (minutes)
  python -m kpremia fit debug=fast                                       # seconds-long smoke run
  python -m kpremia fit data=csv data.path=prices.csv experiment=mlp_ppo
  python -m kpremia fit -m seed=0,1,2 experiment=mlp_ppo                 # a sweep (multirun)
""",
    "validate": """usage: python -m kpremia validate ckpt=RUN [key=value ...]

Evaluate a checkpoint on the validation split beside the baselines (nothing written).

main keys:
  ckpt=RUN            a run directory (its best checkpoint), best / last (the newest run), a .ckpt file,
                      or a sweep directory (every run)
  data.*, env.*, eval.*   evaluate on another market or with other evaluation options

examples:
  python -m kpremia validate ckpt=runs/<run>
  python -m kpremia validate runs/<run>
""",
    "test": """usage: python -m kpremia test ckpt=RUN [key=value ...]

Evaluate a checkpoint on the test split (the only command that reads it) beside the baselines
(band rule, z-score band, buy-and-hold, cash, random, oracle) and write a report: trace.csv,
summary.json and plots.

main keys:
  ckpt=RUN            a run directory (its best checkpoint), best / last (the newest run), a .ckpt file,
                      or a sweep directory (every run, one line each)
  data=NAME, data.path=FILE, data.seed=N   test on another market (unseen data)
  eval.plots=false    no PNG plots

examples:
  python -m kpremia test ckpt=runs/<run>
  python -m kpremia test ckpt=best
  python -m kpremia test runs/multirun/<stamp>
""",
    "backtest": """usage: python -m kpremia backtest [key=value ...]

The rules alone on a market, no checkpoint: band rule, z-score band, buy-and-hold, cash, random
and the hindsight oracle (rules fit on the train split), the same report as `test`, in
runs/<date>_<time>_backtest/report/.

main keys:
  data=NAME           synthetic (default), csv or parquet with data.path=FILE
  data.columns=FILE   your column names -> kpremia's, from a small YAML file (see docs/data.md)
  env.*               fee, spread, decision interval (e.g. env.fee_rate=0.0005)
  seed=N              the synthetic market's seed and the random trader's
  quote a value with ( ) [ ] { } , = or spaces: 'data.path="my file (1).csv"'

examples:
  python -m kpremia backtest debug=fast
  python -m kpremia backtest data=csv data.path=prices.csv
""",
    "live": """usage: python -m kpremia live ckpt=RUN live.state_dir=DIR [key=value ...]

Run a checkpoint (or a rule) on new bars: paper trading by default, crash-safe journal, risk
limits, online learning. See docs/live.md.

main keys:
  ckpt=RUN            the policy (or live.policy.name=premium_threshold for the band rule)
  live.state_dir=DIR  where the session's journal and state live
  live.feed.name, live.broker.name   replay / ccxt feed, paper / ccxt broker

examples:
  python -m kpremia live ckpt=runs/<run> live.state_dir=live_state
""",
    "serve": """usage: python -m kpremia serve ckpt=RUN [key=value ...]

The control API and status page over a checkpoint. See docs/live.md.

examples:
  python -m kpremia serve ckpt=runs/<run>
""",
}

OTHER_HELP: dict[str, str] = {
    "list": """usage: python -m kpremia list

Every registered plug-in: encoders (with their parameter count), algos, action schemes, data
sources, baselines and the live runner's parts.
""",
    "live-report": """usage: python -m kpremia live-report state_dir=DIR [env.* overrides]

Replay a live session's journal through the simulator: fill, fee and PnL gaps. See docs/live.md.
""",
    "live-resolve": """usage: python -m kpremia live-resolve state_dir=DIR adopt=broker|journal reason="..."

Settle a HALTED session's book mismatch by adopting one side, journaled. See docs/live.md.
""",
}


def has_help(command: str) -> bool:
    """Whether kpremia writes ``command``'s ``--help`` (``data``, ``compare``, ``study`` have argparse's)."""
    return command in COMMAND_HELP or command in OTHER_HELP


def command_help(command: str) -> str:
    """The help text of ``command`` (a Hydra command gets the footer naming ``--hydra-help``)."""
    if command in COMMAND_HELP:
        return COMMAND_HELP[command] + _FOOTER.format(command=command)
    return OTHER_HELP[command]


def version_line() -> str:
    """``kpremia <version> (python <x.y.z>)``: no torch import, so it answers at once."""
    from kpremia.core.version import __version__

    return f"kpremia {__version__} (python {sys.version.split()[0]})"
