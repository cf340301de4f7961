"""``python -m kpremia study``: one experiment over N training seeds, each tested, then compared.

Why: one seed decides nothing (docs/results_notes.md), and a study by hand is a dozen commands
that an interruption leaves half done.  A study is the public commands in a row, so it picks up
whatever ``fit``, ``test`` and ``compare`` do:

1. ``fit -m seed=<the seeds not fit yet>`` through the chosen Hydra launcher
   (``hydra/launcher=cores`` for trials side by side), every seed in ``<study dir>/seed<k>/``;
   a seed whose fit was killed part-way resumes from its ``last.ckpt`` in its own directory
   (``fit -m ... ckpt=<study dir>/seed${seed}``, also through the launcher);
2. ``test ckpt=<study dir>/seed<k> [overrides]`` for every seed fit and every test pass
   (``--test``) not yet done;
3. ``compare <study dir>``.

It is resumable by construction: what is done is read from disk (a seed's fit is done when its
sweep job record says completed, ``<study dir>/.jobs/seed<k>.json``; a test pass when
``study.json`` lists it), so rerunning the same command after a kill redoes only what is missing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from kpremia.core.errors import UserError
from kpremia.core.io import atomic_write_json
from kpremia.run.sweep_record import read_job_records

STATE = "study.json"
SUBDIR = "seed${seed}"


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"0,1,2"``, ``"0 1 2"`` or ``"7"`` -> seeds (sorted, unique)."""
    seeds: set[int] = set()
    try:
        for part in text.replace(",", " ").split():
            low, sep, high = part.partition("-")
            seeds.update(range(int(low), int(high) + 1) if sep else [int(low)])
    except ValueError:
        raise UserError(f"--seeds {text!r} is not a list of seeds; write e.g. --seeds 0-19 or --seeds 0,3,7") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds {text!r} names no seed >= 0; write e.g. --seeds 0-19")
    return sorted(seeds)


def seed_dir(study_dir: Path, seed: int) -> Path:
    return study_dir / f"seed{seed}"


def fit_status(study_dir: Path, seeds: list[int]) -> dict[int, str]:
    """``done`` (its fit job completed), ``partial`` (a ``last.ckpt`` of a fit that did not finish) or ``new``."""
    completed = {Path(r["run_dir"]).name for r in read_job_records(study_dir) if r.get("status") == "completed"}
    out = {}
    for seed in seeds:
        run = seed_dir(study_dir, seed)
        has_ckpt = (run / "checkpoints" / "last.ckpt").is_file()
        out[seed] = "done" if run.name in completed and has_ckpt else "partial" if has_ckpt else "new"
    return out


def _seed_list(seeds: list[int]) -> str:
    return ",".join(str(s) for s in seeds)


def fit_commands(study_dir: Path, status: dict[int, str], overrides: list[str]) -> list[list[str]]:
    """The multiruns that bring every seed to a finished fit: the resumes first, then the new seeds."""
    where = [f"hydra.sweep.dir={study_dir}", f"hydra.sweep.subdir={SUBDIR}"]
    commands = []
    partial = [s for s, st in status.items() if st == "partial"]
    new = [s for s, st in status.items() if st == "new"]
    if partial:  # the first start's .hydra/ files are kept (as `fit ckpt=<run>` does)
        commands.append(["fit", "-m", f"seed={_seed_list(partial)}", f"ckpt={study_dir}/{SUBDIR}", *overrides,
                         *where, "hydra.output_subdir=null"])
    if new:
        commands.append(["fit", "-m", f"seed={_seed_list(new)}", *overrides, *where])
    return commands


def _read_state(study_dir: Path) -> dict[str, Any]:
    path = study_dir / STATE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{path} is not readable JSON; remove it to redo the tests of this study") from None


def _what_ran(overrides: list[str]) -> list[str]:
    """The overrides that decide what a fit learns (not where or how it runs: launcher, threads, logger)."""
    how = ("hydra.", "hydra/", "torch_threads=", "trainer.", "trainer=", "logger", "tags=", "paths.")
    return sorted(o for o in overrides if not o.lstrip("+~").startswith(how))


class Study:
    """One study directory: its seeds, its fit overrides, its test passes (see the module docstring)."""

    def __init__(self, study_dir: Path, seeds: list[int], overrides: list[str], test_passes: list[str], *,
                 compare: bool = True, dry_run: bool = False) -> None:
        self.dir, self.seeds, self.overrides = study_dir, seeds, overrides
        self.test_passes, self.compare, self.dry_run = test_passes, compare, dry_run
        self.failures: list[str] = []

    def run_command(self, args: list[str]) -> int:
        print("+ python -m kpremia " + " ".join(shlex.quote(a) for a in args), flush=True)
        if self.dry_run:
            return 0
        return subprocess.run([sys.executable, "-m", "kpremia", *args], check=False).returncode

    def check_same_study(self) -> dict[str, Any]:
        state = _read_state(self.dir)
        asked = _what_ran(self.overrides)
        if state and state.get("overrides") != asked:
            raise UserError(f"{self.dir} holds a study of other overrides ({' '.join(state.get('overrides') or [])}); "
                            f"rerun it with those, or pass another --dir for {' '.join(asked) or 'the defaults'}")
        return {"overrides": asked, "tested": {}, **state}

    def save(self, state: dict[str, Any]) -> None:
        if not self.dry_run:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.dir / STATE, state)

    def fit(self) -> list[int]:
        """Fit every seed not fit yet; the seeds whose fit is done."""
        status = fit_status(self.dir, self.seeds)
        kept = [s for s, st in status.items() if st == "done"]
        if kept:
            print(f"study {self.dir}: seed(s) {_seed_list(kept)} already fit, kept", flush=True)
        stale = [seed_dir(self.dir, s) for s, st in status.items() if st == "new"]
        if stale and not self.dry_run and any(run.is_dir() for run in stale):
            from kpremia.run.run_files import FAILED  # (imports torch: only when a seed's directory is there to clean)

            for run in stale:
                (run / FAILED).unlink(missing_ok=True)  # an earlier failure of the seed this fit starts over
        for args in fit_commands(self.dir, status, self.overrides):
            self.run_command(args)  # a failed seed is listed by fit_status below; the others go on
        if self.dry_run:
            return self.seeds
        after = fit_status(self.dir, self.seeds)
        self.failures += [f"seed {s}: its fit did not finish (see {seed_dir(self.dir, s)} and {self.dir}/.jobs/)"
                          for s, st in after.items() if st != "done"]
        return [s for s, st in after.items() if st == "done"]

    def test(self, seeds: list[int], state: dict[str, Any]) -> None:
        for seed in seeds:
            done = state["tested"].setdefault(str(seed), [])
            for test_pass in self.test_passes:
                if test_pass in done:
                    continue
                code = self.run_command(["test", f"ckpt={seed_dir(self.dir, seed)}", *shlex.split(test_pass)])
                if code == 0:
                    done.append(test_pass)
                    self.save(state)
                else:
                    self.failures.append(f"seed {seed}: `test {test_pass}` failed (exit code {code})")

    def run(self) -> int:
        state = self.check_same_study()
        self.save(state)
        fitted = self.fit()
        self.test(fitted, state)
        if self.compare and self.test_passes and fitted:
            if self.run_command(["compare", str(self.dir)]) != 0:
                self.failures.append("compare failed")
        if self.dry_run:
            return 0
        tested = sum(1 for s in fitted if set(self.test_passes) <= set(state["tested"].get(str(s), [])))
        print(f"study {self.dir}: {len(fitted)} of {len(self.seeds)} seed(s) fit, {tested} tested", flush=True)
        for line in self.failures:
            print(f"failed: {line}", file=sys.stderr, flush=True)
        if self.failures:
            print(f"{len(self.failures)} step(s) failed; rerun the same command to retry them (what is done is kept)",
                  file=sys.stderr, flush=True)
        return 1 if self.failures else 0


USAGE_EPILOG = """examples:
  python -m kpremia study --seeds 0-19 experiment=gru_attn_ppo hydra/launcher=cores
  python -m kpremia study --seeds 0-4 --test "" --test "data.seed=100" experiment=mlp_ppo

Rerun the same command after an interruption: finished seeds are kept, a killed fit resumes from
its last.ckpt, and only the missing tests run.
"""


def study_main(argv: list[str]) -> int:
    """Entry point of ``python -m kpremia study``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m kpremia study", epilog=USAGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fit an experiment over training seeds (through the Hydra launcher given), test each seed, "
                    "compare them; resumable.")
    parser.add_argument("--seeds", default="0-4", help="training seeds: 0-19, 0,3,7 or 7 (one seed); default 0-4")
    parser.add_argument("--dir", type=Path, default=None,
                        help="the study directory (default: <runs dir>/studies/<experiment name>)")
    parser.add_argument("--test", action="append", dest="tests", default=None, metavar="OVERRIDES",
                        help='one test pass per seed with these overrides ("" for the plain test; repeatable; '
                             'default: one plain pass)')
    parser.add_argument("--no-test", action="store_true", help="fit only (no test, no compare)")
    parser.add_argument("--no-compare", dest="compare", action="store_false", help="test, but do not compare")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("overrides", nargs="*", help="fit overrides for every seed, e.g. experiment=mlp_ppo")
    try:
        args = parser.parse_intermixed_args(argv)  # options and overrides in any order
    except SystemExit as exc:  # argparse already printed its usage line
        return 0 if exc.code in (0, None) else UserError.exit_code
    seeds = parse_seeds(args.seeds)
    if any(o.split("=", 1)[0] in ("seed", "ckpt", "hydra.sweep.dir", "hydra.sweep.subdir") for o in args.overrides):
        raise UserError("the study sets seed, ckpt and the sweep directory itself; use --seeds and --dir")
    if any(o in ("-m", "--multirun") for o in args.overrides):
        raise UserError("the study runs its fits as a multirun itself; drop -m")
    study_dir = args.dir or default_dir(args.overrides)
    tests = [] if args.no_test else (args.tests if args.tests is not None else [""])
    return Study(study_dir, seeds, args.overrides, tests, compare=args.compare, dry_run=args.dry_run).run()


def default_dir(overrides: list[str]) -> Path:
    """``<runs dir>/studies/<experiment name>``, from the composed config (a bad override is one line here)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from kpremia.core.compose import compose_config
    from kpremia.core.run_dirs import study_dir as runs_study_dir

    try:
        cfg = compose_config([o for o in overrides if not o.startswith(("hydra.", "hydra/"))])
    except (HydraException, OmegaConfBaseException) as exc:
        text = " ".join(str(exc).split()).split(" Config search path:")[0]  # Hydra's search path is not a fix
        raise UserError(f"{text} — check the fit overrides of the study (`python -m kpremia fit --help`)") from None
    return runs_study_dir(cfg)
