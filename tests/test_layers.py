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


def layer_table() -> list[tuple[int, str]]:
    """``[(layer, module prefix)]`` from the block between the layer markers of the doc."""
    text = DOC.read_text()
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


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


DYNAMIC_IMPORTS = ("import_module", "import_optional")  # calls whose string argument names a module


def imported_modules(path: Path) -> set[str]:
    """kpremia modules imported anywhere in ``path`` (``from kpremia.x import y`` counts y if it is a module).

    ``importlib.import_module("kpremia.x")`` and ``import_optional("kpremia.x", ...)`` with a
    string literal count as imports of ``kpremia.x``: a lazy import is still a dependency.
    """
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
                if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).is_file() or \
                        (PACKAGE.parent / candidate.replace(".", "/")).is_dir():
                    found.add(candidate)
    return found


def test_layer_table_matches_the_package() -> None:
    table = layer_table()
    modules = [module_name(p) for p in PACKAGE.rglob("*.py")]
    unplaced = sorted(m for m in modules if m != "kpremia" and layer_of(m, table) is None)
    assert not unplaced, f"add these modules to the layer table in docs/architecture.md: {unplaced}"


def test_no_module_imports_from_a_layer_above_it() -> None:
    table = layer_table()
    upward = []
    for path in PACKAGE.rglob("*.py"):
        me = module_name(path)
        mine = layer_of(me, table)
        if mine is None:
            continue
        for dep in imported_modules(path):
            theirs = layer_of(dep, table)
            if theirs is not None and theirs > mine:
                upward.append(f"{me} (layer {mine}) imports {dep} (layer {theirs})")
    assert not upward, "imports that reach up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_between_packages() -> None:
    """Same-layer packages may import each other's modules in one direction only."""
    def package(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2])

    edges: set[tuple[str, str]] = set()
    for path in PACKAGE.rglob("*.py"):
        me = package(module_name(path))
        for dep in imported_modules(path):
            if package(dep) != me and package(dep) != "kpremia":
                edges.add((me, package(dep)))
    cycles = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
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
