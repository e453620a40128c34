"""The image spec builder: immutable chains, content-addressed ids, Modal's names."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

import nbremote as nr
from nbremote.wire.images import layer_ids


def test_steps_chain_immutably_and_ids_address_content() -> None:
    base = nr.Image.debian_slim()
    six = base.pip_install("six==1.16.0")
    assert base.steps != six.steps and len(base.steps) == 1  # the base image is unchanged
    assert six.object_id == nr.Image.debian_slim().pip_install("six==1.16.0").object_id
    assert six.object_id != base.pip_install("six==1.17.0").object_id
    # One layer id per step: an added step keeps the ids of the steps before it.
    longer = six.pip_install("idna==3.7")
    assert layer_ids(list(longer.steps))[:2] == layer_ids(list(six.steps))
    assert longer.object_id == f"im-{layer_ids(list(longer.steps))[-1]}"


def test_python_version_defaults_to_the_kernels() -> None:
    kernel = ".".join(platform.python_version_tuple()[:2])
    assert nr.Image.debian_slim().python_version == kernel
    assert nr.Image.debian_slim("3.12").python_version == "3.12"
    with pytest.raises(ValueError, match="python_version='three'"):
        nr.Image.debian_slim("three")


def test_requirements_and_local_files_are_part_of_the_step(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n")
    first = nr.Image.debian_slim().pip_install_from_requirements(requirements)
    requirements.write_text("six==1.17.0\n")
    assert nr.Image.debian_slim().pip_install_from_requirements(requirements) != first

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("1")
    (tmp_path / "data" / "__pycache__").mkdir()
    (tmp_path / "data" / "__pycache__" / "x.pyc").write_bytes(b"skipped")
    image = nr.Image.debian_slim().add_local_dir(tmp_path / "data", "/root/data")
    assert list(image.steps[-1].files) == ["a.txt"]
    (tmp_path / "data" / "a.txt").write_text("2")
    assert nr.Image.debian_slim().add_local_dir(tmp_path / "data", "/root/data") != image


def test_modal_signatures_and_clear_errors(tmp_path: Path) -> None:
    image = (
        nr.Image.debian_slim(python_version=None)
        .apt_install("git")
        .pip_install("a==1", ["b==2", "c==3"])
        .uv_pip_install("d==4")
        .run_commands("echo one", "echo two")
        .env({"K": "V"})
    )
    assert [step.kind for step in image.steps] == [
        "debian_slim",
        "apt_install",
        "pip_install",
        "uv_pip_install",
        "run_commands",
        "env",
    ]
    assert image.steps[2].args == ["a==1", "b==2", "c==3"]
    assert nr.Image.from_registry("python:3.11-slim", add_python="3.11").python_version == "3.11"
    with pytest.raises(TypeError, match="'K'"):
        nr.Image.debian_slim().env({"K": 1})  # type: ignore[dict-item]
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        nr.Image.debian_slim().pip_install_from_requirements(tmp_path / "nope.txt")
    with pytest.raises(nr.NbremoteError, match="no module 'surely_not_a_module'"):
        nr.Image.debian_slim().add_local_python_source("surely_not_a_module")
    with pytest.raises(nr.NbremoteError, match="looked up by id"):
        nr.Image.from_id("im-0").pip_install("six")


def test_imports_swallows_import_errors_outside_the_image() -> None:
    image = nr.Image.debian_slim().pip_install("surely-not-installed==1.0")
    with image.imports():
        import surely_not_installed  # type: ignore[import-not-found]  # noqa: F401
    with pytest.raises(ZeroDivisionError), image.imports():
        1 / 0  # noqa: B018


def test_image_is_refused_where_it_is_not_an_image() -> None:
    app = nr.App("images-unit")
    with pytest.raises(TypeError, match=r"image= takes an nr\.Image"):
        app.function(image="debian")(lambda: None)
