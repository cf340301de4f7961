"""Every command README.md and docs/*.md print runs as printed, and prints what they show.

The commands are read from the documents themselves (:mod:`tests.docs.doc_commands`), so a new
command in the docs is either run here or skipped by :data:`SKIPPED` with the reason (a network,
a GPU, hours of training, a long-running server, or another test that runs it already); one
that is neither fails :func:`test_every_printed_command_is_run_or_skipped_with_a_reason`.

They run in a fresh working directory per document, as a reader would run them in a checkout
(``README.md``, ``examples/``, ``tests/``, ``scripts/``, ``sweeps/`` linked in; ``runs/`` the
runs directory), in document order, so a later command sees what an earlier one wrote.  Where a
document names a run it trained earlier (``runs/<run>``, or a dated run directory), the run the
document's own ``fit`` printed is used.  Printed output is checked line by line
(:func:`tests.docs.doc_commands.missing_lines`) unless its block is marked as an example.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .doc_commands import Command, commands_of, missing_lines

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = ("README.md", "examples", "tests", "scripts", "sweeps", "configs", "benchmarks")

# (pattern of the command as printed, why it is not run here).  First match wins.
SKIPPED: list[tuple[str, str]] = [
    (r"^bash \.ci/run$", "CI itself"),
    (r"^python3 -m venv \.venv && \. \.venv/bin/activate && pip install -c constraints\.txt -e \.$",
     "the quick start's install: .ci/run runs the same install line on a fresh clone"),
    (r"^pip install .*\[(optuna|launchers)\]", "an install into the reader's environment; .ci/run installs the "
                                                "dev extra, which holds the Optuna sweeper and the launchers"),
    (r"^python -m kpremia fit trainer\.accelerator=gpu(\s|$)", "the refusal it shows is for a machine without a "
                                                                 "GPU; run only there"),
    (r"data inspect upbit:USDT/KRW", "a cached 17-month fetch; tests/data/test_ccxt_cli.py inspects a replayed one"),
    (r"data fetch", "the network; tests/data/test_ccxt_cli.py fetches through a replayed exchange"),
    (r"data inspect (frame\.parquet|bars\.csv)", "a listing of forms with files of the reader's own"),
    (r"KPREMIA_API_KEY=", "real orders on an exchange"),
    (r"live\.api\.enabled=true|kpremia serve|^curl ", "a long-running API server; tests/live/test_api.py "
                                                       "drives these endpoints"),
    (r"live\.rollback=", "needs a session with model versions; tests/live/test_versions.py rolls back"),
    (r"live-report state_dir=paper1", "a session with online learning; tests/live/test_gap_report.py"),
    (r"live\.learn\.enabled=true", "online learning over 300 bars; tests/live/test_online_live.py"),
    (r"ckpt=\.\.\.", "elided arguments (a form, not a command)"),
    (r"live-resolve", "needs a HALTED session with a book mismatch; tests/live/test_resolve.py"),
    (r"^uptime$|benchmarks/", "benchmarks: measured on a quiet machine, not in tests"),
    (r"fit -m |hparams_search=|hydra/launcher=", "multiruns and searches: tests/sweeps/test_multirun.py runs a "
                                                  "4-job multirun, test and compare, and a 2-trial Optuna search"),
    (r"(compare|test) runs/multirun/", "a multirun's directory (tests/sweeps/test_multirun.py)"),
    (r"optimization_results\.yaml", "an Optuna search's output (tests/sweeps/test_multirun.py)"),
    (r"wandb |logger=wandb|WANDB_MODE=offline", "wandb: tests/sweeps/test_loggers.py runs it offline"),
    (r"trainer=ddp|torchrun|'ranks'", "DDP processes: tests/sweeps/test_ddp_cli.py and tests/algos/*ddp*"),
    (r"KPREMIA_PLUGINS=|pip install \./examples|kpremia list .*my_tcn|encoder=my_tcn",
     "the encoder guide: tests/plugins/ runs its marked blocks (with a shorter budget)"),
    (r"scripts/results\.sh", "hours of training (the results page)"),
    (r"scripts/model_based_ceiling\.py", "60 market draws take minutes (measured on a quiet machine, docs/model_based.md); "
     "tests/eval/test_model_based.py checks the trader and its fills"),
    (r"^python -m kpremia fit experiment=mlp_ppo debug=fast$|eval\.test_markets=2 eval\.plots=false$|"
     r"^python -m kpremia compare runs/$", "docs/compare.md's walk-through: tests/eval/test_report_layout.py "
     "fits, tests on further markets and compares in-process"),
    (r"kpremia study ", "seed studies: tests/sweeps/test_study.py runs one (2 seeds, killed and resumed)"),
    (r"algo\.warm_start\.steps=2000|test <its run directory>", "the model-based teacher at full budget, tested on 101 "
     "markets (minutes each, docs/results.md); tests/algos/test_warm_start.py clones the model-based trader"),
    (r"data\.timeframe=1[hd] algo\.total_env_steps=65536|best-epoch000\.ckpt", "65,536-step trainings at 1h / 1d; "
     "tests/cli/test_real_data_runs.py trains and tests on these files with a small budget"),
    (r"data\.path=short\.csv", "needs a 14-day file; tests/data/test_real_formats.py checks the too-short error"),
    (r"data\.path=<file>|data\.path=upbit_krw_usdt_days\.csv|data\.path=frame\.parquet", "a form with the reader's "
     "own file"),
]


# The install line is .ci/run's to run verbatim on a fresh clone (tests/cli/test_readme_commands.py keeps
# them in step); here its main job runs at the debug budget, the run the README's later commands use.
INSTALL_LINE = r"^python3 -m venv \.venv && .* && (?P<fit>python -m kpremia fit [^&]*)$"


# The quick start's commands run as printed (its training at its own small budget, not debug=fast). Its
# stated time ("under a minute on 2 CPU cores") is a hang guard here, five times over, not a timing
# assertion: a shared CI machine is slower; benchmarks are the place for timings.
QUICK_START = "## Quick start"
QUICK_START_STATED_S = 60
QUICK_START_TIMEOUT_S = 5 * QUICK_START_STATED_S


def quick_start_commands() -> list[Command]:
    """The commands of the README's quick start block, in order."""
    readme = ROOT / "README.md"
    start = readme.read_text().split(QUICK_START, 1)[0].count("\n") + 1
    end = start + readme.read_text().split(QUICK_START, 1)[1].split("\n## ", 1)[0].count("\n")
    return [c for c in commands_of(readme, ROOT) if start <= c.line <= end]


def runnable_form(command: str) -> str:
    """The command as run here: as printed, but the install line's main job at the debug budget."""
    install = re.match(INSTALL_LINE, command)
    return f"{install.group('fit').strip()} debug=fast" if install else command


def skip_reason(command: str) -> str | None:
    for pattern, reason in SKIPPED:
        if re.search(pattern, command):
            if pattern.startswith("^python -m kpremia fit trainer") and not _has_gpu():
                return None  # the documented refusal, on this machine without a GPU
            return reason
    return None


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def all_commands() -> list[Command]:
    return [c for doc in DOCS for c in commands_of(doc, ROOT)]


def test_every_printed_command_is_run_or_skipped_with_a_reason() -> None:
    commands = all_commands()
    assert len(commands) > 40, "the extractor lost the documents' commands"
    runnable = [c for c in commands if skip_reason(c.text) is None]
    kpremia_runs = [c for c in runnable if "python -m kpremia" in c.text]
    assert len(kpremia_runs) >= 15, [c.where() for c in runnable]
    # every command that is run must be one this test knows how to run (no placeholders left)
    leftovers = [f"{c.where()}: {c.text}" for c in runnable if re.search(r"<(?!run>)[a-z ]+>", c.text)]
    assert not leftovers, "commands with placeholders: skip them with a reason or write them runnable:\n" + \
        "\n".join(leftovers)


# --------------------------------------------------------------------------- running them


def _sandbox(tmp: Path) -> Path:
    work = tmp / "work"
    work.mkdir()
    for name in LINKED:
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name)
    # Files the documents assume a reader has at hand, made as the documents say:
    # the researcher-layout fixtures (`python tests/fixtures/real_formats/formats.py data`) and the
    # README's bad.csv (its first time value is not a time).
    subprocess.run([sys.executable, "tests/fixtures/real_formats/formats.py", "data"], cwd=work, check=True,
                   capture_output=True)
    (work / "bad.csv").write_text("time,close,fx\nnot-a-time,1390.0,1380.0\n")
    return work


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KPREMIA_RUNS_DIR", "PYTHONWARNINGS")}
    env.update(KPREMIA_DATA_DIR=str(work / "cache"), WANDB_MODE="disabled", KPREMIA_PROGRESS="lines",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


_LOG_PREFIX = re.compile(r"^\[[^\]]+\]\[[^\]]+\]\[(\w+)\] - ")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d")


def normalised(text: str, work: Path | None = None) -> list[str]:
    """Output lines as the docs print them: Hydra's log prefix down to its level, run stamps neutral,
    paths relative to the working directory."""
    if work is not None:
        text = text.replace(f"{work}/", "")
    return [_STAMP.sub("<stamp>", _LOG_PREFIX.sub(r"\1 ", line)) for line in text.splitlines()]


def _substitute(command: str, run: str | None) -> str:
    if run is None:
        return command
    command = re.sub(r"runs/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_gru_attn_ppo", run, command)
    return command.replace("runs/<run>", run).replace("<run>", run)


def run_document(doc: Path, tmp: Path) -> list[str]:
    """Run a document's runnable commands in order; return what went wrong (empty: all as printed)."""
    work = _sandbox(tmp)
    env = _env(work)
    problems: list[str] = []
    run: str | None = None
    last_rc = 0
    trained: dict[str, tuple[str, int]] = {}  # a training command printed twice is one run (they are seeded)
    quick_lines = {c.line for c in quick_start_commands()} if doc.name == "README.md" else set()
    for command in commands_of(doc, ROOT):
        if skip_reason(command.text) is not None:
            continue
        text = _substitute(runnable_form(command.text), run)
        if text.strip() == "echo $?":  # each command runs in its own shell: $? is the previous one's
            output, rc = f"{last_rc}\n", 0
        elif text in trained:
            output, rc = trained[text]
        else:
            limit = QUICK_START_TIMEOUT_S if command.line in quick_lines else 600
            proc = subprocess.run(["bash", "-c", text], cwd=work, env=env, capture_output=True, text=True,
                                  timeout=limit)
            output, rc = proc.stdout + proc.stderr, proc.returncode
            if " kpremia fit " in f" {text} ":
                trained[text] = (output, rc)
        expected_rc = _expected_rc(command)
        if rc != expected_rc:
            problems.append(f"{command.where()}: `{text}` exited {rc} (expected {expected_rc}):\n{output[-2000:]}")
        if rc == 0 and re.match(r"python -m kpremia fit experiment=gru_attn_ppo debug=fast$", text.strip()):
            run = os.path.relpath(output.strip().splitlines()[-1], work)  # the run the document trained
        last_rc = rc
        if command.expected and not command.example:
            want = [_STAMP.sub("<stamp>", line) for line in command.expected]
            missing = missing_lines(want, normalised(output, work), command.tolerance)
            if missing:
                problems.append(f"{command.where()}: `{text}` did not print, as the docs show:\n  "
                                + "\n  ".join(missing) + "\n--- it printed:\n" + "\n".join(normalised(output))[-3000:])
    return problems


def _expected_rc(command: Command) -> int:
    """2 for the documented one-line errors, 3 for a documented HALT, else 0."""
    shown = "\n".join(command.expected)
    if shown.startswith("error:") or "\nerror:" in shown:
        return 2
    if shown.startswith("halted:") or "\nhalted:" in shown:
        return 3
    return 0


@pytest.mark.parametrize("doc", ["README.md", "docs/data.md"])
def test_the_documents_commands_run_as_printed(doc: str, tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    problems = run_document(ROOT / doc, tmp_path)
    assert not problems, "\n\n".join(problems)


def test_the_quick_start_is_run_as_printed() -> None:
    """Install, a small training, `test` and a look at the results: all run by the README's test, as printed."""
    commands = quick_start_commands()
    assert [c.text.split()[:4] for c in commands] == [
        ["python3", "-m", "venv", ".venv"], ["python", "-m", "kpremia", "fit"], ["python", "-m", "kpremia", "test"],
        ["python", "-m", "kpremia", "compare"]]
    install, fit, *rest = commands
    assert skip_reason(install.text) is not None  # .ci/run runs the install
    for command in (fit, *rest):
        assert skip_reason(command.text) is None and runnable_form(command.text) == command.text, command.text
    assert "algo.total_env_steps=" in fit.text and "under a minute" in fit.text  # a small budget, its time stated


def test_documents_without_runnable_commands_stay_so() -> None:
    """The other documents' commands are all skipped with a reason (run them here when one is not)."""
    others = [c for c in all_commands() if c.doc not in ("README.md", "docs/data.md")]
    assert [f"{c.where()}: {c.text}" for c in others if skip_reason(c.text) is None] == []
