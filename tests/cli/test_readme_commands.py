"""The README's two commands and `.ci/run` stay in step.

CI once stayed green while the README's first command crashed on a fresh machine: CI
installed the test extra (which brought scipy), the README's install line did not. So
`.ci/run` must run the README's install line verbatim, with no extras, and the main job,
before the test extra goes in; and the README's test command must be `.ci/run`.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _two_commands() -> list[str]:
    """The command lines of the first fenced block under '## Two commands'."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: no ```bash block under '## Two commands'"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_has_an_install_and_run_command_and_a_test_command() -> None:
    main_job, test_cmd = _two_commands()
    assert "pip install" in main_job and "python -m kpremia fit" in main_job
    assert test_cmd == "bash .ci/run"


def test_ci_runs_the_readme_install_line_without_extras_before_the_test_extra() -> None:
    main_job, _ = _two_commands()
    steps = [s.strip() for s in main_job.split("&&")]
    install = next(s for s in steps if s.startswith("pip install"))
    fit = next(s for s in steps if s.startswith("python -m kpremia fit"))
    assert "[" not in install, "the README's install line must not need an extra"

    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    code = [ln for ln in ci if ln and not ln.startswith("#")]
    install_at = code.index(install)  # verbatim, as its own line
    fit_at = next(i for i, ln in enumerate(code) if fit in ln)
    extra_at = next(i for i, ln in enumerate(code) if "pip install" in ln and "[dev]" in ln)
    pytest_at = next(i for i, ln in enumerate(code) if "pytest" in ln)
    assert install_at < fit_at < extra_at < pytest_at
