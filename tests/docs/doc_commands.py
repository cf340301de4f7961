"""The commands README.md and docs/*.md print, as a test reads them.

A *block* is a fenced code block (```bash, ```console, ```sh or a bare ```) or an indented
(4-space) code block.  In a block with ``$ `` prompts the commands are the prompt lines (with
their ``\\`` continuation lines) and each command's printed output is the lines up to the next
prompt; in a ``bash``/``sh`` block without prompts every line that is not a comment is a
command.  Blocks of other languages (python, yaml, toml, text tables) are not commands.

A block is marked for the test by an HTML comment on the line before it:

* ``<!-- output: example (why) -->``: its printed output is an example (another budget, machine
  or network), not checked; its commands still run unless the test's list skips them;
* ``<!-- output: tolerance 1% -->``: numbers in its output may differ by that relative amount.

Without a mark, every output line shown must appear in the command's output, in order,
numbers equal at the precision printed (``...`` lines stand for any number of lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PROMPT = "$ "
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[A-Za-z0-9_-]*)\s*$")
_MARK = re.compile(r"<!--\s*output:\s*(?P<kind>example|tolerance)\s*(?P<rest>[^>]*?)\s*-->")
COMMAND_LANGS = ("bash", "sh", "console", "shell", "")


@dataclass
class Command:
    """One command as printed, where it is, and the output printed under it."""

    doc: str
    line: int
    text: str
    expected: list[str] = field(default_factory=list)
    example: bool = False
    tolerance: float = 0.0
    block: int = 0

    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str, list[str]]]:
    """(line number, command, output lines) from a block's lines."""
    out: list[tuple[int, str, list[str]]] = []
    prompted = any(text.startswith(PROMPT) for _, text in lines)
    i = 0
    while i < len(lines):
        number, text = lines[i]
        if prompted and not text.startswith(PROMPT):
            if out:
                out[-1][2].append(text)
            i += 1
            continue
        command = text[len(PROMPT):] if prompted else text
        if not prompted and (not command.strip() or command.lstrip().startswith("#")):
            i += 1
            continue
        while command.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command.rstrip()[:-1].rstrip() + " " + lines[i][1].strip()
        out.append((number, command.strip(), []))
        i += 1
    return out


def commands_of(path: Path, root: Path) -> list[Command]:
    """Every command of a Markdown file, in order."""
    lines = path.read_text().splitlines()
    found: list[Command] = []
    i, block = 0, 0
    doc = str(path.relative_to(root))
    while i < len(lines):
        mark = None
        for back in (1, 2):
            if i - back >= 0 and _MARK.search(lines[i - back]):
                mark = _MARK.search(lines[i - back])
                break
        fence = _FENCE.match(lines[i])
        body: list[tuple[int, str]] = []
        start = i
        if fence:
            indent = len(fence.group("indent"))
            lang = fence.group("lang").lower()
            i += 1
            while i < len(lines) and not _FENCE.match(lines[i]):
                body.append((i + 1, lines[i][indent:] if lines[i].startswith(" " * indent) else lines[i]))
                i += 1
            i += 1
            if lang not in COMMAND_LANGS:
                continue
            if lang == "" and not any(t.startswith(PROMPT) for _, t in body):
                continue  # a bare block without prompts: a listing, not commands
        elif lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()) and \
                lines[i].strip().startswith(("$ ", "python -m kpremia")):
            indent = len(lines[i]) - len(lines[i].lstrip())
            while i < len(lines) and (lines[i].startswith(" " * indent) or not lines[i].strip()):
                if lines[i].strip():
                    body.append((i + 1, lines[i][indent:]))
                i += 1
        else:
            i += 1
            continue
        block += 1
        example = bool(mark and mark.group("kind") == "example")
        tolerance = 0.0
        if mark and mark.group("kind") == "tolerance":
            tolerance = float(mark.group("rest").strip().rstrip("%")) / 100
        del start
        for number, text, expected in _join_continuations(body):
            found.append(Command(doc, number, text, expected, example, tolerance, block))
    return found


_NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?")


def _numbers(text: str) -> tuple[str, list[tuple[float, int]]]:
    """(text with numbers replaced by #, [(value, decimals)])."""
    values: list[tuple[float, int]] = []

    def take(match: re.Match) -> str:
        raw = match.group(0).replace("−", "-").replace(",", "")
        values.append((float(raw), len(raw.split(".")[1]) if "." in raw else 0))
        return "#"

    return _NUMBER.sub(take, text), values


def line_matches(expected: str, actual: str, tolerance: float = 0.0) -> bool:
    """``actual`` is ``expected`` with each number equal at the printed precision (or within ``tolerance``).

    ``...`` inside a line stands for any text (``kill_switch since ...``).
    """
    if "..." in expected and expected.strip() != "...":
        pieces = [" ".join(p.split()) for p in expected.split("...")]
        pattern = ".*".join(re.escape(p) for p in pieces)
        return re.fullmatch(pattern, " ".join(actual.split())) is not None
    shape_e, nums_e = _numbers(" ".join(expected.split()))
    shape_a, nums_a = _numbers(" ".join(actual.split()))
    if shape_e != shape_a or len(nums_e) != len(nums_a):
        return False
    for (want, decimals), (got, _) in zip(nums_e, nums_a):
        slack = max(0.5 * 10 ** -decimals * 1.0001, abs(want) * tolerance)
        if abs(want - got) > slack:
            return False
    return True


def missing_lines(expected: list[str], actual: list[str], tolerance: float = 0.0) -> list[str]:
    """Expected lines not found in ``actual`` in order (``...`` lines skip any number of lines)."""
    missing = []
    position = 0
    for want in expected:
        if not want.strip() or want.strip() in ("...", "…"):
            continue
        for j in range(position, len(actual)):
            if line_matches(want, actual[j], tolerance):
                position = j + 1
                break
        else:
            missing.append(want)
    return missing
