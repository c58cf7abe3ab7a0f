"""The packages' layering, read from the source: every import of every module under
``src/omega`` (at module level, inside functions and under ``TYPE_CHECKING`` alike).

- a package reaches another only through its public names: no ``omega.X._y`` (nor a
  ``_name`` from one of X's modules) imported from outside package X;
- no import cycle between the top-level packages (``omega.errors`` and ``omega.clock``
  are leaf modules and count as packages of their own);
- the brain stands alone: it imports nothing from the simulator, the servers, storage or
  the benchmarks.

Each failure lists the offending imports as ``importer:line -> imported``.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import omega

SRC = Path(omega.__file__).resolve().parent
#: What the brain (the TV's own library) must never import.
BRAIN_MUST_NOT_IMPORT = ("sim", "constellation", "federation", "storage", "bench")


@dataclass(frozen=True, slots=True)
class Import:
    importer: str  # dotted module name, e.g. "omega.sync.reports"
    line: int
    target: str  # dotted name imported, e.g. "omega.protocol._limits.MAX_SHARED_CATALOG"

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} -> {self.target}"

    @property
    def source_package(self) -> str:
        return _package_of(self.importer)

    @property
    def target_package(self) -> str:
        return _package_of(self.target)


def _package_of(dotted: str) -> str:
    """The top-level part of omega a dotted name belongs to ("" for ``omega`` itself)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a source file, and whether it is a package's ``__init__``."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _imports_of(path: Path) -> Iterator[Import]:
    module, is_package = _module_name(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importer's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                yield Import(module, node.lineno, f"{origin}.{alias.name}")


def _all_imports() -> list[Import]:
    found = [i for path in sorted(SRC.rglob("*.py")) for i in _imports_of(path)]
    return [i for i in found if i.target.split(".")[0] == "omega"]


IMPORTS = _all_imports()


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _private_imports() -> list[Import]:
    """Imports of ``omega.X._y`` (or a ``_name`` inside X) from outside package X."""
    return [
        i
        for i in IMPORTS
        if i.source_package != i.target_package
        and any(_is_private(part) for part in i.target.split(".")[2:])
    ]


def _package_graph() -> dict[str, dict[str, list[Import]]]:
    """package -> imported package -> the imports that make that edge."""
    graph: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for i in IMPORTS:
        if i.source_package and i.target_package and i.source_package != i.target_package:
            graph[i.source_package][i.target_package].append(i)
    return graph


def _cycles(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """One shortest cycle through each package that is on a cycle (deduplicated)."""
    found: dict[frozenset[str], list[str]] = {}
    for start in sorted(graph):
        # Breadth-first from start's neighbours back to start: the shortest cycle.
        paths = {n: [start, n] for n in sorted(graph[start])}
        queue = list(paths)
        while queue and start not in paths:
            node = queue.pop(0)
            for nxt in sorted(graph.get(node, {})):
                if nxt == start:
                    paths[start] = paths[node] + [start]
                    break
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    queue.append(nxt)
        if start in paths:
            found.setdefault(frozenset(paths[start]), paths[start])
    return list(found.values())


def _describe_cycle(cycle: list[str], graph: dict[str, dict[str, list[Import]]]) -> str:
    lines = [" -> ".join(f"omega.{p}" for p in cycle)]
    for a, b in itertools.pairwise(cycle):
        edge = graph[a][b]
        lines += [f"    {i}" for i in edge[:3]]
        if len(edge) > 3:
            lines.append(f"    … and {len(edge) - 3} more omega.{a} -> omega.{b} imports")
    return "\n".join(lines)


def test_the_walk_sees_every_part() -> None:
    """A guard on the walker itself: it finds the packages and the imports it must."""
    packages = {i.source_package for i in IMPORTS}
    assert {"brain", "sync", "protocol", "storage", "constellation", "federation"} <= packages
    assert any(
        i.importer == "omega.cli.bench" and i.target.startswith("omega.bench") for i in IMPORTS
    )
    # Imports inside functions count too (cli/bench.py imports each bench on use).
    assert any(
        i.importer == "omega.constellation.rounds" and "federation" in i.target for i in IMPORTS
    )


def test_no_module_imports_another_packages_private_module() -> None:
    offending = _private_imports()
    assert not offending, "private imports across packages (use the package's public names):\n" + (
        "\n".join(f"  {i}" for i in offending)
    )


def test_no_import_cycle_between_packages() -> None:
    graph = _package_graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles between packages:\n" + "\n".join(
        _describe_cycle(c, graph) for c in cycles
    )


def test_the_brain_imports_no_simulator_server_storage_or_bench() -> None:
    offending = [
        i
        for i in IMPORTS
        if i.source_package == "brain" and i.target_package in BRAIN_MUST_NOT_IMPORT
    ]
    assert not offending, "the brain must stand alone:\n" + "\n".join(f"  {i}" for i in offending)
