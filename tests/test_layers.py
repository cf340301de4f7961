"""The import graph of ``kpremia/`` keeps the layer rule of docs/architecture.md.

The layer table is read from the document itself, so the rule users read and
the rule the test checks are the same text.  Every import counts, including
imports inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kpremia"
DOC = ROOT / "docs" / "architecture.md"


def layer_table(doc: Path | None = None) -> list[tuple[int, str]]:
    """``[(layer, module prefix)]`` from the block between the layer markers of the doc."""
    text = (doc or DOC).read_text()
    block = re.search(r"<!-- layers: begin.*?-->(.*?)<!-- layers: end -->", text, re.S)
    assert block, "docs/architecture.md lost its layer table markers"
    table = []
    for line in block.group(1).strip().splitlines():
        number, *prefixes = line.split()
        table += [(int(number), prefix) for prefix in prefixes]
    return table


def layer_of(module: str, table: list[tuple[int, str]]) -> int | None:
    """The layer of the longest prefix that names ``module`` or a package above it."""
    best: tuple[int, int] | None = None
    for layer, prefix in table:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), layer)
    return None if best is None else best[1]


def module_name(path: Path, src: Path | None = None) -> str:
    """The dotted name of ``path`` below ``src`` (the folder holding ``kpremia/``; default this repository)."""
    parts = path.relative_to(ROOT if src is None else src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


DYNAMIC_IMPORTS = ("import_module", "import_optional")  # calls whose string argument names a module


def imported_modules(path: Path, src: Path | None = None) -> set[str]:
    """kpremia modules imported anywhere in ``path`` (``from kpremia.x import y`` counts y if it is a module).

    ``importlib.import_module("kpremia.x")`` and ``import_optional("kpremia.x", ...)`` with a
    string literal count as imports of ``kpremia.x``: a lazy import is still a dependency.
    ``src`` is the folder holding the ``kpremia/`` tree the names are looked up in.
    """
    src = PACKAGE.parent if src is None else src
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and node.args[0].value.split(".")[0] == "kpremia":
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in DYNAMIC_IMPORTS:
                found.add(node.args[0].value)
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "kpremia"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "kpremia":
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (src / (candidate.replace(".", "/") + ".py")).is_file() or \
                        (src / candidate.replace(".", "/")).is_dir():
                    found.add(candidate)
    return found


def modules_of(src: Path) -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the ``kpremia/`` tree under ``src``."""
    return {module_name(p, src): p for p in sorted((src / "kpremia").rglob("*.py"))}


def unplaced_modules(src: Path, table: list[tuple[int, str]]) -> list[str]:
    """The modules of the tree under ``src`` that no line of the layer table names."""
    return sorted(m for m in modules_of(src) if m != "kpremia" and layer_of(m, table) is None)


def upward_imports(src: Path, table: list[tuple[int, str]]) -> list[str]:
    """One line per import of the tree under ``src`` that reaches a layer above its module's."""
    upward = []
    for me, path in modules_of(src).items():
        mine = layer_of(me, table)
        if mine is None:
            continue
        for dep in imported_modules(path, src):
            theirs = layer_of(dep, table)
            if theirs is not None and theirs > mine:
                upward.append(f"{me} (layer {mine}) imports {dep} (layer {theirs})")
    return sorted(upward)


def package_of(module: str) -> str:
    """``kpremia.<package>`` of a module (``kpremia`` itself for the package's own files)."""
    return ".".join(module.split(".")[:2])


def package_cycles(src: Path) -> list[str]:
    """``a <-> b`` for each pair of packages of the tree under ``src`` that import each other."""
    edges: set[tuple[str, str]] = set()
    for me, path in modules_of(src).items():
        for dep in imported_modules(path, src):
            if package_of(dep) not in (package_of(me), "kpremia"):
                edges.add((package_of(me), package_of(dep)))
    return sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)


def test_layer_table_matches_the_package() -> None:
    unplaced = unplaced_modules(ROOT, layer_table())
    assert not unplaced, f"add these modules to the layer table in docs/architecture.md: {unplaced}"


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = upward_imports(ROOT, layer_table())
    assert not upward, "imports that reach up a layer:\n" + "\n".join(upward)


def test_no_import_cycle_between_packages() -> None:
    """Same-layer packages may import each other's modules in one direction only (run never imports live)."""
    cycles = package_cycles(ROOT)
    assert not cycles, f"packages that import each other: {cycles}"


@pytest.mark.parametrize("module, layer", [("kpremia.core.spec", 0), ("kpremia.envs.batched", 3),
                                           ("kpremia.algos.ppo", 5), ("kpremia.app.cli", 9)])
def test_layer_lookup_uses_the_longest_prefix(module: str, layer: int) -> None:
    assert layer_of(module, layer_table()) == layer


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The import scan finds function-level imports, ``from kpremia.run import module`` and import_module targets."""
    source = tmp_path / "probe.py"
    source.write_text("import importlib\ndef f():\n    from kpremia.run import training\n    import kpremia.app.cli\n"
                      "    importlib.import_module('kpremia.algos.ppo')\n")
    assert {"kpremia.run.training", "kpremia.app.cli", "kpremia.algos.ppo"} <= imported_modules(source)


def test_every_registry_declares_exactly_what_its_modules_register() -> None:
    """The built-in maps (what the registry imports on demand) match the names the modules register."""
    import importlib

    from kpremia.core.registry import REGISTRIES

    for title, registry in REGISTRIES.items():
        for module in set(registry.builtins.values()):
            importlib.import_module(module)
            mine = {n for n, m in registry.builtins.items() if m == module}
            registered = {n for n, obj in registry._entries.items() if getattr(obj, "__module__", "") == module}
            assert registered == mine, (title, module, registered ^ mine)


def _tree(src: Path, files: dict[str, str]) -> Path:
    """A small ``kpremia/`` tree under ``src``: the real package names, the given sources (every package has ``__init__``)."""
    for name, text in files.items():
        path = src / (name.replace(".", "/") + ".py")
        for folder in [src / "kpremia", *(p for p in path.parents if src / "kpremia" in p.parents)]:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "__init__.py").touch()
        path.write_text(text)
    return src


_CLEAN = {"kpremia.core.errors": "class UserError(Exception): ...\n",
          "kpremia.data.frame": "from kpremia.core.errors import UserError\n",
          "kpremia.run.training": "from kpremia.data import frame\n",
          "kpremia.live.loop.runner": "from kpremia.run.training import fit\n",
          "kpremia.app.cli": "def main():\n    from kpremia.live.loop import runner\n"}


def test_the_checks_fail_on_a_planted_upward_import(tmp_path: Path) -> None:
    """The real layer table over a small tree: clean as built, then one function-level import of the CLI from data/."""
    table = layer_table()
    src = _tree(tmp_path, _CLEAN)
    assert upward_imports(src, table) == [] and package_cycles(src) == [] and unplaced_modules(src, table) == []
    _tree(src, {"kpremia.data.planted": "def f():\n    from kpremia.app.cli import main\n    return main\n"})
    assert upward_imports(src, table) == ["kpremia.data.planted (layer 2) imports kpremia.app.cli (layer 9)"]


def test_the_checks_fail_on_a_planted_run_to_live_import(tmp_path: Path) -> None:
    """run/ importing live/ (which imports run/) is reported as a package cycle, and as an upward import."""
    table = layer_table()
    src = _tree(tmp_path, {**_CLEAN, "kpremia.run.study": "import importlib\n"
                                                            "def f():\n    importlib.import_module('kpremia.live.loop.runner')\n"})
    assert package_cycles(src) == ["kpremia.live <-> kpremia.run"]
    assert upward_imports(src, table) == ["kpremia.run.study (layer 6) imports kpremia.live.loop.runner (layer 7)"]


def test_a_module_missing_from_the_table_is_reported(tmp_path: Path) -> None:
    src = _tree(tmp_path, {**_CLEAN, "kpremia.newpkg.thing": "x = 1\n"})
    assert unplaced_modules(src, layer_table()) == ["kpremia.newpkg", "kpremia.newpkg.thing"]


def layout_files(doc: Path | None = None) -> set[str]:
    """The files the module map of docs/architecture.md places, as paths (``kpremia/live/loop/runner.py``).

    The map is an indented tree between the layout markers: a line's first word is a folder
    (ending in ``/``) or a file, and belongs to the nearest folder above it indented less.
    """
    text = (doc or DOC).read_text()
    block = re.search(r"<!-- layout: begin.*?-->(.*?)<!-- layout: end -->", text, re.DOTALL)
    assert block, "docs/architecture.md lost its layout markers"
    folders: list[tuple[int, str]] = []
    files: set[str] = set()
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        indent, word = len(line) - len(line.lstrip()), line.split()[0]
        while folders and folders[-1][0] >= indent:
            folders.pop()
        path = "".join(name for _, name in folders) + word
        if word.endswith("/"):
            folders.append((indent, word))
        elif word.endswith(".py"):
            files.add(path)
    return files


def test_the_module_map_places_every_module() -> None:
    """docs/architecture.md's module map names each module of the package in its folder, and no other."""
    on_disk = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py" or p.parent in (PACKAGE, PACKAGE / "configs")}
    mapped = layout_files()
    assert not on_disk - mapped, f"add to the module map in docs/architecture.md: {sorted(on_disk - mapped)}"
    assert not mapped - on_disk, f"the module map names files that do not exist: {sorted(mapped - on_disk)}"


def test_the_module_map_reader_follows_the_indentation(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("<!-- layout: begin -->\n    kpremia/\n      a.py   x\n      live/   y\n        loop/\n"
                   "          runner.py  z\n        config.py\n      cli.py\n<!-- layout: end -->\n")
    assert layout_files(doc) == {"kpremia/a.py", "kpremia/live/loop/runner.py", "kpremia/live/config.py",
                                 "kpremia/cli.py"}
