"""Issue 15's fidelity suite: each public notebook, local against ``%%remote``, cell by cell.

Every code cell must show what it shows locally, except the cells known_differences.toml lists
(each with the issue-15 item it waits for). The list is strict: a listed cell that starts
matching fails its notebook's test until it is removed, so the list can only shrink.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.fidelity.harness import (
    NotebookResult,
    compare_all,
    fidelity_runner,
    house_names,
    notebook_names,
    notebook_path,
    notebooks_folder,
)
from tests.fidelity.known import known_differences, unstable_cells


def _compared(
    names: list[str], folder: Path | None, factory: pytest.TempPathFactory
) -> Iterator[dict[str, NotebookResult]]:
    with fidelity_runner(factory.mktemp("fidelity-runner")) as runner:
        home = factory.mktemp("fidelity-home")
        yield {r.name: r for r in compare_all(names, folder, runner, home)}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NotebookResult]]:
    """Every public notebook compared, on one runner, two notebooks at a time (so the first
    test to ask pays for all of them)."""
    folder = notebooks_folder()
    if folder is None:
        pytest.skip("the fidelity notebooks are not here: see tests/fidelity/SOURCES.md")
    yield from _compared(notebook_names(), folder, tmp_path_factory)


@pytest.fixture(scope="module")
def house_results(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, NotebookResult]]:
    """The project's own notebooks (house/), compared apart: they never skip, and `-k house`
    runs only them."""
    yield from _compared(house_names(), None, tmp_path_factory)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [*house_names(), *notebook_names()])
def test_remote_cells_show_what_local_cells_show(name: str, request: pytest.FixtureRequest) -> None:
    fixture = "house_results" if name in house_names() else "results"
    result = request.getfixturevalue(fixture)[name]
    known = known_differences().get(name, {})
    unstable = unstable_cells().get(name, {})
    problems = []
    for cell in result.cells:
        if cell.index in unstable:
            continue
        if cell.matched and cell.index in known:
            problems.append(
                f"cell {cell.index} now matches: remove it from known_differences "
                f"(it waited for {known[cell.index]})"
            )
        elif not cell.matched and cell.index not in known:
            problems.append(f"cell {cell.index} differs ({cell.head}):\n{cell.diff}")
    assert not problems, f"{name}: {result.matched}/{len(result.cells)} cells match\n" + (
        "\n\n".join(problems)
    )


def test_known_differences_name_code_cells_of_listed_notebooks() -> None:
    folder = notebooks_folder()  # None: only the house notebooks' entries can be checked
    names = set(notebook_names()) | set(house_names())
    known, unstable = known_differences(), unstable_cells()
    for name, cells in [*known.items(), *unstable.items()]:
        assert name in names, f"known_differences.toml: {name} is not in SOURCES.md or house/"
        path = notebook_path(name, folder)
        if not path.exists():
            continue  # a public notebook, not here
        notebook = nbformat.read(path, as_version=4)
        for index in cells:
            assert notebook.cells[index].cell_type == "code", f"{name} cell {index}: not code"
    for name, cells in known.items():
        for index, reason in cells.items():
            assert reason.startswith(("item ", "new: ", "by design: ")), f"{name} {index}: why?"
