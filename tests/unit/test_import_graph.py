"""The import graph of nbremote and its runner, read from the source with `ast`.

Two rules keep the parts apart (DESIGN: one wire package, imported by client, runner and server
extension): the runner imports nothing of the client but the wire (and the package's version
and error classes), and no module imports itself through others, not even from inside a function
or under ``TYPE_CHECKING``: a circle hidden that way still ties the modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"nbremote": ROOT / "nbremote", "nbremote_runner": ROOT / "runner"}
# What the runner may import of nbremote: the package itself (its __version__ and __file__), the
# error classes the value codec raises on both sides, and the wire.
RUNNER_MAY_IMPORT = {"nbremote", "nbremote.errors"}


def _runner_may_import(module: str) -> bool:
    return module in RUNNER_MAY_IMPORT or module.startswith("nbremote.wire")


# The CLI's circle (cli <-> _storage_cli) goes when the CLI becomes a package (nbremote/cli/);
# until then its two modules are left out of the circle check, and only they.
PENDING = {"nbremote.cli", "nbremote._storage_cli"}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((package, *parts))] = path
    return modules


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every module of ours that ``module`` imports, wherever the import statement stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = ".".join(filter(None, (base, node.module))) if node.level else node.module
            assert source is not None
            for alias in node.names:  # `from . import x`: the submodule x if there is one
                submodule = f"{source}.{alias.name}"
                yield submodule if submodule in MODULES else source


def _ours(name: str) -> str | None:
    """The module of ours that an imported name is (or is in), if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        targets = {_ours(name) for name in _imported(module, path)}
        graph[module] = {target for target in targets if target and target != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it; None if there is none."""
    done: set[str] = set()
    for start in sorted(graph):
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph[start])))]
        if start in done:
            continue
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return None


def test_the_runner_imports_no_client_api_module() -> None:
    """A runner module that imports the client's API (magics, App, Volume...) ties the runner to
    the client and drags pydantic models and user-facing code into it."""
    offending = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.startswith("nbremote_runner")
        for target in sorted(targets)
        if target.partition(".")[0] == "nbremote" and not _runner_may_import(target)
    ]
    assert not offending, "move what both sides need into nbremote/wire:\n" + "\n".join(offending)


def test_the_wire_imports_only_the_wire() -> None:
    """Both sides import the wire, so it may import neither of them (only the error classes)."""
    offending = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.startswith("nbremote.wire")
        for target in sorted(targets)
        if not target.startswith("nbremote.wire") and target != "nbremote.errors"
    ]
    assert not offending, "\n".join(offending)


def test_there_is_no_import_circle() -> None:
    graph = _graph()
    if (ROOT / "nbremote" / "cli.py").is_file():  # the CLI is one module yet
        graph = {module: targets - PENDING for module, targets in graph.items()}
    circle = _cycle(graph)
    assert circle is None, (
        "import circle: " + " -> ".join(circle) + " (move the shared piece down, or pass a "
        "callable in; an import inside a function still counts)"
    )


@pytest.mark.parametrize(
    ("graph", "found"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, False),
    ],
)
def test_the_cycle_finder_finds_circles_and_only_them(
    graph: dict[str, set[str]], found: bool
) -> None:
    assert (_cycle(graph) is not None) is found


def test_imports_inside_functions_and_from_dot_count() -> None:
    """The graph sees what the rules are about: a function-level `from . import x` is an edge."""
    graph = _graph()
    assert "nbremote.wire.shm" in graph["nbremote.wire.codec"]
    assert "nbremote.wire.classes" in graph["nbremote_runner.worker_patterns"]  # in a function
