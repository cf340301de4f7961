"""The commands that are not Hydra applications: ``list``, ``data``, ``compare``, ``study``, ``live-report``, ``live-resolve``.

Each runner takes the words after the command and returns the exit code; the table
(:data:`kpremia.app.command_table.COMMANDS`) names it.  ``live-report`` and ``live-resolve``
compose the run config from their ``key=value`` words (:func:`compose_or_refuse`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kpremia.app.command_table import HYDRA_COMMANDS, command
from kpremia.core.errors import UserError


def run_plain(name: str, argv: list[str]) -> int:
    """Run the plain command ``name`` on its words; its exit code."""
    spec = command(name)
    if spec.hydra:
        raise UserError(f"`{name}` is a Hydra command; run it through kpremia.app.cli")
    return RUNNERS[spec.runner](argv)


def hydra_message(exc: BaseException, command: str) -> str:
    """Hydra's exception text squeezed into one line with a fix (the help named is ``command``'s)."""
    text = " ".join(str(exc).split())
    text = text.split(" Config search path:")[0]  # Hydra appends its search path; not a fix
    low = text.lower()
    command = command if command in (*HYDRA_COMMANDS, "live-report", "live-resolve") else "fit"
    if "could not override" in low or "key '" in low and "not in struct" in low:
        return (f"{text} — check the key with `python -m kpremia {command} --cfg job` or add a new one with "
                "+key=value")
    if "could not find" in low or "in list of" in low:
        return f"{text} — pick one of the listed options (see `python -m kpremia {command} --help`)"
    return (f"{text} — quote a value holding ( ) [ ] {{ }} , = or spaces, e.g. 'data.path=\"my file (1).csv\"' "
            f"(see `python -m kpremia {command} --help`)")


def compose_or_refuse(overrides: list[str], command: str) -> dict[str, Any]:
    """The composed config (no app run) for commands that read a state_dir; a Hydra error as one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from kpremia.core.compose import compose_config

    try:
        return compose_config(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(hydra_message(exc, command)) from None


def list_plugins_main(argv: list[str]) -> int:
    """``list``: every registry's plug-ins."""
    print(list_plugins(), end="")
    return 0


def compare(argv: list[str]) -> int:
    """``compare <runs or multirun dirs> [--out DIR] [--no-plot]``."""
    from kpremia.run.compare import compare_main

    return compare_main(argv)


def study(argv: list[str]) -> int:
    """``study --seeds ... <overrides>`` (:mod:`kpremia.run.study`)."""
    from kpremia.run.study import study_main

    return study_main(argv)


def live_resolve(rest: list[str]) -> int:
    """``live-resolve state_dir=<dir> adopt=broker|journal reason="..." [live.broker / live.paper overrides]``."""
    from kpremia.live.ops.preflight import storage_errors
    from kpremia.live.ops.resolve import format_resolution, resolve

    own: dict[str, str] = {}
    overrides = []
    for arg in rest:
        key, _, value = arg.partition("=")
        if key in ("state_dir", "live.state_dir", "adopt", "reason"):
            own[key.replace("live.", "")] = value
        else:
            overrides.append(arg)
    missing = [k for k in ("state_dir", "adopt", "reason") if not own.get(k)]
    if missing:
        raise UserError(f"`live-resolve` needs {' and '.join(missing)}: live-resolve state_dir=<dir> "
                        'adopt=broker|journal reason="<why>"')
    cfg = compose_or_refuse([*overrides, f"live.state_dir={own['state_dir']}"], "live-resolve")
    with storage_errors(own["state_dir"]):
        result = resolve(cfg, own["state_dir"], own["adopt"], own["reason"])
    print(format_resolution(own["state_dir"], result), end="", flush=True)
    return 0


def live_report(rest: list[str]) -> int:
    """``live-report state_dir=<dir> [env overrides]``: the journal replayed through the simulator."""
    from kpremia.live.ops.gap_report import live_report_main
    from kpremia.live.ops.preflight import check_report_journal, storage_errors

    state_dir = None
    overrides = []
    for arg in rest:
        key, _, value = arg.partition("=")
        if key in ("state_dir", "live.state_dir"):
            state_dir = value
        else:
            overrides.append(arg)
    if not state_dir:
        raise UserError("`live-report` needs state_dir=<the live.state_dir of a session>")
    check_report_journal(Path(state_dir))  # a damaged or empty journal: one line, before pandas reads it
    cfg = compose_or_refuse(overrides, "live-report")
    cfg["state_dir"] = state_dir
    cfg["_env_overridden"] = any(o.lstrip("+").startswith("env") for o in overrides)
    with storage_errors(Path(state_dir) / "live_report"):
        live_report_main(cfg)
    return 0


DATA_USAGE = """usage: python -m kpremia data <subcommand> [options]

subcommands:
  fetch     download exchange candles through ccxt into the cache (resumable) and build the MarketFrame
            (`data fetch --start 2024-06-01 --end 2025-10-31 [--exchange upbit --symbol USDT/KRW --timeframe 15m]`)
  inspect   coverage and premium statistics of a cached dataset or of a file read with fit's data.* options
            (`data inspect upbit:USDT/KRW:15m`, `data inspect <file> [data.KEY=VALUE ...]`)

`python -m kpremia data fetch --help` and `python -m kpremia data inspect --help` list their options.
"""


def data(rest: list[str]) -> int:
    from kpremia.data import cli as data_cli

    if rest and rest[0] in ("-h", "--help", "help"):
        print(DATA_USAGE, end="")
        return 0
    if not rest or rest[0] not in ("fetch", "inspect"):
        raise UserError("`data` needs a subcommand: `data fetch ...` or `data inspect <path>` "
                        "(`python -m kpremia data --help`)")
    if rest[0] == "fetch":
        return data_cli.fetch_main(rest[1:])
    return data_cli.inspect_main(rest[1:])


def list_plugins() -> str:
    """A text listing of every registry; encoders with their parameter count for the default spec.

    Only the encoders are imported (to count their parameters); every other
    plug-in is described from its source, so ``list`` does not import Lightning,
    the web server or ccxt.
    """
    from kpremia.core.registry import REGISTRIES

    lines: list[str] = []
    for title, registry in REGISTRIES.items():
        lines.append(f"{title}:")
        for name in registry.names():
            extra = ""
            if title == "encoders":
                try:
                    from kpremia.encoders import param_count

                    extra = f"  ({param_count(name):,} parameters)"
                except Exception as exc:  # a broken third-party encoder must not break `list`
                    extra = f"  (cannot build with the default spec: {type(exc).__name__})"
            summary = registry.summary(name)
            lines.append(f"  {name:<20}{extra}  {summary}".rstrip())
        lines.append("")
    return "\n".join(lines)


RUNNERS: dict[str, Callable[[list[str]], int]] = {
    f.__name__: f for f in (list_plugins_main, data, compare, study, live_report, live_resolve)}  # the table's names
