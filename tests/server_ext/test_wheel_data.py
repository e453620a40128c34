"""`pip install` ships the prebuilt JupyterLab extension and the config that enables the server
extension: every built file is mapped by pyproject's data-files into the prefix, where JupyterLab
and Jupyter Server look (no node, no `jupyter labextension install` for a user)."""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "server_ext" / "labextension"


def data_files() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    files: dict[str, list[str]] = config["tool"]["setuptools"]["data-files"]
    return files


def installed_as(source: Path) -> str | None:
    """Where setuptools puts ``source`` (it globs each pattern from the project's root)."""
    relative = source.relative_to(ROOT).as_posix()
    for target, patterns in data_files().items():
        if any(relative in glob.glob(pattern, root_dir=ROOT) for pattern in patterns):
            return f"{target}/{source.name}"
    return None


def test_every_built_file_of_the_lab_extension_is_installed_in_the_prefix() -> None:
    built = [path for path in BUILT.rglob("*") if path.is_file()]
    assert any(path.name == "package.json" for path in built), "run `make labext` first"
    for path in built:
        expected = "share/jupyter/labextensions/nbremote/" + path.relative_to(BUILT).as_posix()
        assert installed_as(path) == expected


def test_the_server_extension_config_is_installed_where_jupyter_reads_it() -> None:
    config = ROOT / "server_ext" / "jupyter-config" / "nbremote.json"
    assert installed_as(config) == "etc/jupyter/jupyter_server_config.d/nbremote.json"
