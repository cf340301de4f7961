"""Command line: ``python -m kpremia <command> [hydra overrides]``.

``fit``, ``validate``, ``test`` and ``live`` are real ``@hydra.main`` applications
(``--help``, ``--cfg job``, ``-m``/``--multirun`` and sweeper plug-ins work);
``list``, ``data`` and ``compare`` are plain argparse commands.

User mistakes end in one line on stderr naming the problem and the fix, and
exit code 2 — never a traceback.  Overrides are checked with Hydra's compose API
before the application runs, so a typo is reported in our format instead of
Hydra's multi-line one.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any

from kpremia.core.errors import SessionHalted, SessionStopped, StorageFailed, UserError

HYDRA_COMMANDS = ("fit", "validate", "test", "backtest", "live", "serve")
OTHER_COMMANDS = ("list", "data", "compare", "study", "live-report", "live-resolve")
USAGE = """usage: python -m kpremia <command> [options or hydra overrides]

commands:
  fit        train an agent (e.g. `fit experiment=gru_attn_ppo`); prints the run directory last
  validate   evaluate a checkpoint on the validation split (`validate ckpt=<path>`)
  test       evaluate a checkpoint on the test split and write report/ (`test ckpt=<path>`)
  backtest   the rules on a data file, no checkpoint: band rule, z-score band, buy-and-hold, cash,
             random, oracle (`backtest data=csv data.path=<file>`; writes runs/<time>_backtest/report/)
  live       run a checkpoint (or a rule) on new bars: paper by default, crash-safe
             (`live ckpt=<path> live.state_dir=<dir>`; see docs/live.md)
  serve      the control API and status page over a checkpoint (`serve ckpt=<path>`; see docs/live.md)
  live-report  replay a live session's journal through the simulator: fill, fee and PnL gaps
             (`live-report state_dir=<dir>`)
  live-resolve  settle a HALTED session's book mismatch by adopting one side, journaled
             (`live-resolve state_dir=<dir> adopt=broker|journal reason="..."`; see docs/live.md)
  list       list the registered plug-ins (encoders, algos, action schemes, data sources, baselines)
  data       `data fetch ...` real history through ccxt, `data inspect <path> [data.* options]` coverage and
             premium stats
  compare    one table of test metrics across run directories or a multirun directory
  study      fit an experiment over seeds (through a Hydra launcher), test each, compare; resumable
             (`study --seeds 0-19 experiment=gru_attn_ppo hydra/launcher=cores`; see docs/scale.md)

`python -m kpremia <command> --help` says what a command does, its main keys and examples;
`python -m kpremia fit --hydra-help` is Hydra's full help (every config group); `--cfg job` prints the
composed config; `python -m kpremia --version` the version.
"""
_HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc",
                "--resolve", "--package", "-p")
_HELP_FLAGS = ("-h", "--help", "help")
_VERSION_FLAGS = ("-V", "--version", "version")
_command: str = "fit"


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _hydra_message(exc: BaseException) -> str:
    """Hydra's exception text squeezed into one line with a fix."""
    text = " ".join(str(exc).split())
    text = text.split(" Config search path:")[0]  # Hydra appends its search path; not a fix
    low = text.lower()
    command = _command if _command in (*HYDRA_COMMANDS, "live-report", "live-resolve") else "fit"
    if "could not override" in low or "key '" in low and "not in struct" in low:
        return (f"{text} — check the key with `python -m kpremia {command} --cfg job` or add a new one with "
                "+key=value")
    if "could not find" in low or "in list of" in low:
        return f"{text} — pick one of the listed options (see `python -m kpremia {command} --help`)"
    return (f"{text} — quote a value holding ( ) [ ] {{ }} , = or spaces, e.g. 'data.path=\"my file (1).csv\"' "
            f"(see `python -m kpremia {command} --help`)")


def _first_combination(overrides: list[str]) -> list[str]:
    """For a multirun, the overrides of its first job (sweeps replaced by their first value)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    out: list[str] = []
    for raw, ov in zip(overrides, parsed, strict=True):
        if ov.is_sweep_override():
            first = next(iter(ov.sweep_string_iterator()), None)
            if first is None:
                continue
            out.append(f"{ov.get_key_element()}={first}")
        else:
            out.append(raw)
    return out


def _precheck(args: list[str], *, validate: bool = True) -> dict[str, Any] | None:
    """Compose the config the way the app will and validate it; UserError on any mistake.

    Imports only what composing and checking need (Hydra, the typed config parts,
    torch for the action scheme): a mistake is answered before Lightning loads.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from kpremia.core.compose import compose_config

    # hydra.searchpath changes which config files exist (e.g. a local encoder/<name>.yaml), so it
    # must reach the pre-check; the other hydra.* keys only matter to the running app.
    overrides = [a for a in args if not a.startswith("-") and (
        a.startswith("hydra.searchpath=") or not a.startswith(("hydra.", "hydra/")))]
    multirun = any(a in ("-m", "--multirun") for a in args)
    try:
        if multirun:
            overrides = _first_combination(overrides)
        resolved = compose_config(overrides)  # a typo'd group option (encoder=grux) fails here, before any import
        _check_launcher(args, resolved)
        if validate and not multirun and not any(o.startswith("hparams_search=") for o in overrides):
            from kpremia.run.input_checks import check_inputs

            check_inputs(_command, resolved, overrides)  # files and checkpoints: no import beyond the file system
            from kpremia.app.config_checks import validate_config

            validate_config(resolved)
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(_hydra_message(exc)) from None
    return None if multirun else resolved


# hydra/launcher choices -> the plug-in package they need (all in the `launchers` extra)
_LAUNCHER_PLUGINS = {
    "cores": "hydra_joblib_launcher", "gpus": "hydra_joblib_launcher", "joblib": "hydra_joblib_launcher",
    "local": "hydra_submitit_launcher", "slurm": "hydra_submitit_launcher",
    "submitit_local": "hydra_submitit_launcher", "submitit_slurm": "hydra_submitit_launcher",
}


def _check_launcher(args: list[str], resolved: dict[str, Any]) -> None:
    """``hydra/launcher=...``: its plug-in installed, and ``gpus`` only with a GPU trainer on a GPU machine."""
    import importlib.util

    choice = next((a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("hydra/launcher=")), None)
    if choice is None:
        return
    plugin = _LAUNCHER_PLUGINS.get(choice)
    if plugin and importlib.util.find_spec(f"hydra_plugins.{plugin}") is None:
        raise UserError(f"hydra/launcher={choice} needs the {plugin.replace('_', '-')} plug-in: "
                        "pip install -c constraints.txt -e \".[launchers]\"")
    if choice == "gpus":
        from kpremia.configs import gpus

        if str(resolved.get("trainer", {}).get("accelerator")) not in ("gpu", "cuda"):
            raise UserError("hydra/launcher=gpus runs one trial per GPU: add trainer=gpu (or use hydra/launcher=cores "
                            "for trials on the CPU)")
        if gpus() == 0:
            raise UserError("hydra/launcher=gpus found no CUDA GPU; use hydra/launcher=cores on this machine")


def _positional_run_dir(command: str, args: list[str]) -> list[str]:
    """``test <dir>`` / ``validate <dir>``: a directory before the overrides means ``ckpt=<dir>``."""
    if command not in ("test", "validate"):
        return args
    bare = [a for a in args if "=" not in a and not a.startswith("-")]
    if not bare:
        return args
    if len(bare) > 1 or any(a.startswith("ckpt=") for a in args):
        raise UserError(f"`{command}` takes one run or sweep directory (or ckpt=...); got {' '.join(bare)}")
    return [f"ckpt={a}" if a == bare[0] else a for a in args]


def _resume_args(args: list[str], resolved: dict[str, Any] | None) -> list[str]:
    """``fit ckpt=...``: the checkpoint file, and Hydra's run dir set to that run's own directory.

    So a resumed run continues where it was written (no new, empty run folder); Hydra's own
    ``.hydra/`` files of the first start are left as they were.
    """
    from kpremia.core.config import runs_root
    from kpremia.run.checkpoint import resolve_checkpoints, run_dir_of
    from kpremia.run.resume import finished_line, resume_config

    given = next((a for a in args if a.startswith("ckpt=")), None)
    if given is None or resolved is None or not given.split("=", 1)[1]:
        return args
    ckpt = resolve_checkpoints(given.split("=", 1)[1], runs_dir=runs_root(resolved), which="last")[0].resolve()
    out = [f"ckpt={ckpt}" if a == given else a for a in args]
    # An override that would change the run is refused here, before Hydra touches the run's directory.
    from kpremia.app.config_checks import validate_config

    asked = [a for a in args if "=" in a and not a.startswith(("-", "hydra.", "ckpt="))]
    resumed = resume_config(resolved, ckpt, asked)
    validate_config(resumed)
    done = finished_line(resumed, ckpt)
    if done is not None:  # nothing to train: say so and how to extend it, before anything loads
        raise _Finished(done)
    run_dir = run_dir_of(ckpt)
    if run_dir is not None and not any(a.startswith("hydra.run.dir=") for a in args):
        out += [f"hydra.run.dir={run_dir}", "hydra.output_subdir=null"]
    return out


@functools.cache
def _add_plugin_config_search_path() -> None:
    """Put the config packages of installed plug-ins on Hydra's search path (once per process).

    A plug-in declares ``<name> = "<its package>.configs"`` in the entry-point group
    ``kpremia.configs``; registering a SearchPathPlugin here makes both the pre-check's
    compose and ``@hydra.main`` see e.g. its ``encoder/<name>.yaml``, so ``encoder=<name>``
    works without the plug-in knowing about Hydra's plug-in machinery.  Appended after
    kpremia's own configs, so a plug-in cannot shadow a built-in file.
    """
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    from kpremia.core.registry import plugin_config_modules

    modules = plugin_config_modules()
    if not modules:
        return

    class KpremiaPluginConfigs(SearchPathPlugin):
        def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
            for module in modules:
                search_path.append(provider="kpremia-plugin", path=f"pkg://{module}")

    Plugins.instance().register(KpremiaPluginConfigs)


def _failed(run_dir: Path, exc: BaseException) -> None:
    """A failed ``fit`` or ``backtest`` leaves no bare run directory (see :func:`kpremia.run.run_files.mark_failed`)."""
    if _command in ("fit", "backtest"):
        from kpremia.run.run_files import mark_failed

        kept = mark_failed(run_dir, exc)
        if kept is not None:
            logging.getLogger(__name__).warning("run %s marked failed (%s)", kept, kept / "failed.json")


class _Finished(Exception):
    """``fit ckpt=<a finished run>``: the one line that says so (exit 0, nothing run)."""


def _run_hydra(command: str, args: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig

    from kpremia.core.compose import plain

    global _command
    _command = command
    os.environ["KPREMIA_COMMAND"] = command  # Lightning's ddp re-launches `python -m kpremia <overrides>`
    _add_plugin_config_search_path()
    if "--hydra-help" in args:  # Hydra's own generated help (every config group), as `--help` used to be
        args = ["--help" if a == "--hydra-help" else a for a in args]
    passthrough = any(a.split("=")[0] in _HYDRA_FLAGS for a in args)
    args = _positional_run_dir(command, args)
    if not passthrough:
        resuming = command == "fit" and any(a.startswith("ckpt=") and a != "ckpt=" for a in args)
        resolved = _precheck(args, validate=not resuming)  # a resume checks the checkpoint's config instead
        if resuming:
            try:
                args = _resume_args(args, resolved)
            except _Finished as finished:
                print(finished, flush=True)
                return 0
    extra: list[str] = []
    if command == "backtest":  # its own run directory: runs/<date>_<time>_backtest/
        extra = ["hydra.run.dir=${paths.runs_dir}/${now:%Y-%m-%d}_${now:%H-%M-%S}_backtest"]
    elif command != "fit":
        # validate / test write into the checkpoint's run directory, live into live.state_dir.
        extra = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=stdout", "hydra/hydra_logging=none"]

    @hydra.main(config_path="pkg://kpremia.configs", config_name="config", version_base="1.3")
    def app(cfg: DictConfig) -> Any:
        hc = HydraConfig.get()
        run_dir = Path(hc.runtime.output_dir)
        if hc.mode == RunMode.MULTIRUN:  # one trial of a sweep: recorded, and its failure ends only itself
            from kpremia.run.sweep_record import recorded_job

            return recorded_job(lambda: _run_job(cfg, run_dir), sweep_dir=Path(hc.sweep.dir), output_dir=run_dir,
                                job=int(hc.job.num), overrides=list(hc.overrides.task),
                                on_failure=lambda exc: _failed(run_dir, exc))
        from kpremia.app import commands

        try:
            resolved = plain(cfg)
            return commands.run(_command, resolved, run_dir, overrides=list(hc.overrides.task))
        except UserError as exc:
            _failed(run_dir, exc)
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except SessionHalted as exc:
            print(f"halted: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except StorageFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except SessionStopped as exc:
            print(f"stopped: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except Exception as exc:
            _failed(run_dir, exc)
            raise

    saved = sys.argv
    sys.argv = [saved[0], *args, *extra]
    try:
        app()
    except SystemExit:  # Hydra ended a multirun on an error of its own: still say what became of each job
        _sweep_outcome()
        raise
    finally:
        sys.argv = saved
    return _sweep_outcome()


def _run_job(cfg: Any, run_dir: Path) -> Any:
    """One job of a multirun: its share of the machine (kpremia.core.job_resources), then the command."""
    from hydra.core.hydra_config import HydraConfig

    from kpremia.app import commands
    from kpremia.core.compose import plain
    from kpremia.core.job_resources import plan_job

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    resolved = plain(cfg)
    launcher = plain(hc.launcher)
    threads_given = any(o.lstrip("+~").split("=", 1)[0] == "torch_threads" for o in overrides)
    resolved, claim = plan_job(resolved, launcher, job_num=int(hc.job.num), sweep_dir=Path(hc.sweep.dir),
                               threads_given=threads_given)
    try:
        if _command == "fit" and resolved.get("ckpt"):
            _check_resume_dir(str(resolved["ckpt"]), run_dir)
        return commands.run(_command, resolved, run_dir, overrides=overrides)
    finally:
        if claim is not None:
            claim.release()


def _check_resume_dir(ckpt: str, run_dir: Path) -> None:
    """A multirun job resumes a run only in that run's own directory (its sweep subdir must be the run's)."""
    from kpremia.run.checkpoint import resolve_checkpoints, run_dir_of

    own = run_dir_of(resolve_checkpoints(ckpt, which="last")[0])
    if own is not None and own.resolve() != run_dir.resolve():
        raise UserError(f"this job would resume {own} in another directory ({run_dir}); a multirun resumes a run "
                        "only in its own directory: set hydra.sweep.dir and hydra.sweep.subdir to the run's "
                        "(as `python -m kpremia study` does), or resume it alone with `fit ckpt=<run dir>`")


def _sweep_outcome() -> int:
    """After a multirun: list its failed jobs last (from ``sweep.json``) and give the exit code."""
    from kpremia.run.sweep_record import exit_code, failure_lines, summarise, take_started_sweep

    started = take_started_sweep()
    if started is None:
        return 0
    summary = summarise(*started)
    code = exit_code(summary)
    if code:
        for line in failure_lines(summary):
            print(line, file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A DDP child re-launched by Lightning carries the command in the environment.
    if os.environ.get("LOCAL_RANK") and os.environ.get("KPREMIA_COMMAND") and (not argv or argv[0] not in (
            *HYDRA_COMMANDS, *OTHER_COMMANDS)):
        argv = [os.environ["KPREMIA_COMMAND"], *argv]
    if not argv or argv[0] in _HELP_FLAGS:
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command in _VERSION_FLAGS or (command in HYDRA_COMMANDS and any(a in _VERSION_FLAGS[:2] for a in rest)):
        from kpremia.app.cli_help import version_line

        print(version_line())
        return 0
    if command in (*HYDRA_COMMANDS, "list", "live-report", "live-resolve") and any(a in _HELP_FLAGS[:2] for a in rest):
        from kpremia.app.cli_help import command_help

        print(command_help(command), end="")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if command == "live":  # Ctrl-C or SIGTERM before the session runs: one line, not a traceback
        from kpremia.live.loop.stopping import interrupted_line, terminate_as_interrupt

        terminate_as_interrupt()
        try:
            return _run_hydra(command, rest)
        except KeyboardInterrupt as exc:
            code, line = interrupted_line(exc)
            print(f"stopped: {line}", file=sys.stderr)
            return code
        except UserError as exc:
            return _error(str(exc))
    try:
        if command in HYDRA_COMMANDS:
            return _run_hydra(command, rest)
        if command == "list":
            from kpremia.app.commands import list_plugins

            print(list_plugins(), end="")
            return 0
        if command == "data":
            return _data(rest)
        if command == "compare":
            from kpremia.run.compare import compare_main

            return compare_main(rest)
        if command == "study":
            from kpremia.run.study import study_main

            return study_main(rest)
        if command in ("live-report", "live-resolve"):
            global _command
            _command = command  # a Hydra error in its overrides points to its own --help
            return _live_report(rest) if command == "live-report" else _live_resolve(rest)
        raise UserError(f"unknown command {command!r}; use one of: {', '.join(HYDRA_COMMANDS + OTHER_COMMANDS)}")
    except UserError as exc:
        return _error(str(exc))


def _compose(overrides: list[str]) -> dict[str, Any]:
    """The composed config (no app run) for commands that read a state_dir."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from kpremia.core.compose import compose_config

    try:
        return compose_config(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(_hydra_message(exc)) from None


def _live_resolve(rest: list[str]) -> int:
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
    cfg = _compose([*overrides, f"live.state_dir={own['state_dir']}"])
    with storage_errors(own["state_dir"]):
        result = resolve(cfg, own["state_dir"], own["adopt"], own["reason"])
    print(format_resolution(own["state_dir"], result), end="", flush=True)
    return 0


def _live_report(rest: list[str]) -> int:
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
    cfg = _compose(overrides)
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


def _data(rest: list[str]) -> int:
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
