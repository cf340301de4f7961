"""Command line: ``python -m kpremia <command> [hydra overrides]``.

The commands and what each needs are one table (:mod:`kpremia.app.command_table`), which
the Python API dispatches through too.  ``fit``, ``validate``, ``test``, ``backtest``, ``live``
and ``serve`` are real ``@hydra.main`` applications (``--cfg job``, ``-m``/``--multirun`` and
sweeper plug-ins work; ``--help`` is kpremia's own, :mod:`kpremia.app.cli_help`); the others
are plain commands on their words (:mod:`kpremia.app.plain_commands`).

User mistakes end in one line on stderr naming the problem and the fix, and
exit code 2 — never a traceback.  Overrides are checked with Hydra's compose API
before the application runs, so a typo is reported in our format instead of
Hydra's multi-line one.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from kpremia.app.command_table import COMMANDS, HYDRA_COMMANDS, Command, command_list
from kpremia.app.command_table import command as command_of
from kpremia.app.plain_commands import hydra_message, run_plain
from kpremia.core.errors import SessionHalted, SessionStopped, StorageFailed, UserError

USAGE = f"""usage: python -m kpremia <command> [options or hydra overrides]

commands:
{command_list()}

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
    """Hydra's exception text squeezed into one line with a fix, pointing to the running command's help."""
    return hydra_message(exc, _command)


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
    """``test <dir>`` / ``validate <dir>``: a directory before the overrides means ``ckpt=<dir>``.

    So for every command that needs a checkpoint (the table's ``checkpoint="needed"``).
    """
    if command_of(command).checkpoint != "needed":
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
    if command_of(_command).marks_failures:
        from kpremia.run.run_files import mark_failed

        kept = mark_failed(run_dir, exc)
        if kept is not None:
            logging.getLogger(__name__).warning("run %s marked failed (%s)", kept, kept / "failed.json")


class _Finished(Exception):
    """``fit ckpt=<a finished run>``: the one line that says so (exit 0, nothing run)."""


def _hydra_run_dir_args(spec: Command, resolved: dict[str, Any] | None, args: list[str]) -> list[str]:
    """Where Hydra puts the command's run: a new ``<date>_<time>_<label>`` directory, or none at all.

    A new run directory is claimed here, before Hydra starts (:func:`kpremia.core.run_dirs.new_run_dir`
    creates it, with a ``_<n>`` suffix when a run of the same second has it), so two ``fit`` s started
    in the same second never write into one directory; a ``hydra.run.dir=`` of the user's is kept,
    and a multirun (Hydra's sweep directory) or Hydra's own flags keep config.yaml's pattern.  The other commands
    write beside their checkpoint (validate / test) or into ``live.state_dir``.
    """
    if spec.run_dir == "new":
        from kpremia.core.run_dirs import hydra_run_dir, new_run_dir

        if any(a.startswith("hydra.run.dir=") for a in args):  # the user's own directory
            return []
        multirun = any(a in ("-m", "--multirun") for a in args)
        if resolved is not None and not multirun:
            return [f"hydra.run.dir={_override_value(str(new_run_dir(resolved, spec.label)))}"]
        return [] if spec.label is None else [f"hydra.run.dir={hydra_run_dir(spec.label)}"]
    return ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=stdout", "hydra/hydra_logging=none"]


def _override_value(text: str) -> str:
    """``text`` as one Hydra override value: quoted when it holds characters the grammar would parse."""
    if re.fullmatch(r"[\w./+@-]+", text):
        return text
    # Hydra's quoted strings: a quote is escaped, and so are backslashes just before one (or at the end)
    quoted = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    trailing = len(quoted) - len(quoted.rstrip("\\"))
    return "'" + quoted + "\\" * trailing + "'"


def _run_hydra(command: str, args: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig

    from kpremia.core.compose import plain

    global _command
    _command = command
    spec = command_of(command)
    os.environ["KPREMIA_COMMAND"] = command  # Lightning's ddp re-launches `python -m kpremia <overrides>`
    _add_plugin_config_search_path()
    if "--hydra-help" in args:  # Hydra's own generated help (every config group), as `--help` used to be
        args = ["--help" if a == "--hydra-help" else a for a in args]
    passthrough = any(a.split("=")[0] in _HYDRA_FLAGS for a in args)
    args = _positional_run_dir(command, args)
    if not passthrough:
        resuming = spec.checkpoint == "resume" and any(a.startswith("ckpt=") and a != "ckpt=" for a in args)
        resolved = _precheck(args, validate=not resuming)  # a resume checks the checkpoint's config instead
        if resuming:
            try:
                args = _resume_args(args, resolved)
            except _Finished as finished:
                print(finished, flush=True)
                return 0
    extra = _hydra_run_dir_args(spec, None if passthrough else resolved, args)

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
        if command_of(_command).checkpoint == "resume" and resolved.get("ckpt"):
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
    if os.environ.get("LOCAL_RANK") and os.environ.get("KPREMIA_COMMAND") and (not argv or argv[0] not in COMMANDS):
        argv = [os.environ["KPREMIA_COMMAND"], *argv]
    if not argv or argv[0] in _HELP_FLAGS:
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command in _VERSION_FLAGS or (command in HYDRA_COMMANDS and any(a in _VERSION_FLAGS[:2] for a in rest)):
        from kpremia.app.cli_help import version_line

        print(version_line())
        return 0
    if any(a in _HELP_FLAGS[:2] for a in rest):
        from kpremia.app.cli_help import command_help, has_help

        if has_help(command):  # data, compare and study answer --help with their own argparse help
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
    return _run(command, rest)


def _run(command: str, rest: list[str]) -> int:
    """The command through the table: a Hydra application, or a plain command on its words."""
    global _command
    try:
        if command_of(command).hydra:
            return _run_hydra(command, rest)
        _command = command  # a Hydra error in live-report's / live-resolve's overrides points to its own --help
        return run_plain(command, rest)
    except UserError as exc:
        return _error(str(exc))
