"""The package's layers, read from its import statements (every one: top level, inside
functions, under ``TYPE_CHECKING``): the command line is imported by nothing but itself, the
rules by nothing of the runtime, and no two modules need each other."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import closedloop.agents
import closedloop.schemas
import closedloop.streams

PACKAGES = {
    "closedloop.schemas": Path(closedloop.schemas.__file__).parent,
    "closedloop.agents": Path(closedloop.agents.__file__).parent,
    "closedloop.streams": Path(closedloop.streams.__file__).parent,
}
CLI = "closedloop.streams.cli"


def _module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if "migrations" in parts:  # Alembic's scripts: loaded by Alembic, never imported
                continue
            name = ".".join((package, *(p for p in parts if p != "__init__")))
            modules[name] = path
    return modules


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the modules of this package it imports (a name imported from a package
    counts as its submodule when it is one)."""
    files = _module_files()
    graph: dict[str, frozenset[str]] = {}
    for module, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in files:
                        targets.add(full)
                    elif node.module in files:
                        targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in files)
        targets.discard(module)
        graph[module] = frozenset(targets)
    return graph


def cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


class TestLayers:
    def test_the_graph_holds_every_layer(self) -> None:
        graph = import_graph()
        assert {"closedloop.streams.cli.replay", "closedloop.streams.app.replay",
                "closedloop.agents.rounds", "closedloop.schemas.events"} <= graph.keys()
        assert "closedloop.streams.app.replay" in graph["closedloop.streams.cli.replay"]

    def test_only_the_command_line_imports_the_command_line(self) -> None:
        graph = import_graph()
        outside = sorted(module for module, targets in graph.items()
                         if not module.startswith(CLI)
                         and any(target.startswith(CLI) for target in targets))
        assert outside == []

    def test_the_rules_import_only_the_rules_and_the_contract(self) -> None:
        graph = import_graph()
        wrong = sorted((module, target) for module, targets in graph.items()
                       if module.startswith("closedloop.agents")
                       for target in targets
                       if not target.startswith(("closedloop.agents", "closedloop.schemas")))
        assert wrong == []

    def test_no_two_modules_import_each_other_even_through_others(self) -> None:
        assert cycles(import_graph()) == []

    def test_a_circle_is_found_when_there_is_one(self) -> None:
        graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}),
                 "d": frozenset({"a"})}
        assert cycles(graph) == [["a", "b", "c"]]
