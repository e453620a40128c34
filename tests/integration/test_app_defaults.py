"""App-wide defaults on a real runner: ``nr.App(name, image=, secrets=, volumes=)`` reaches
every function and class, and a function's own settings combine with them as in Modal (its
image replaces the app's, its secrets come after the app's, its volumes join the app's)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbremote as nr
from nbremote._session import RemoteSession

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="volumes need bubblewrap")


@pytest.fixture
def volumes(remote_session: RemoteSession, tmp_path: Path) -> Iterator[tuple[nr.Volume, nr.Volume]]:
    """Two volumes, each holding ``which.txt`` that says which one it is."""
    with nr.Volume.ephemeral() as first, nr.Volume.ephemeral() as second:
        for name, volume in (("first", first), ("second", second)):
            (tmp_path / name).write_text(name)
            volume.put_file(tmp_path / name, "which.txt")
        yield first, second


def test_functions_and_classes_get_the_apps_defaults(volumes: tuple[nr.Volume, nr.Volume]) -> None:
    first, _ = volumes
    image = nr.Image.debian_slim().env({"IMAGE_SAYS": "app image"})
    secret = nr.Secret.from_dict({"TOKEN": "app-token", "ONLY_APP": "yes"})
    app = nr.App(
        f"defaults-{uuid.uuid4().hex[:6]}",
        image=image,
        secrets=[secret],
        volumes={"/app-data": first},
        include_source=True,  # accepted: functions always travel with their source
    )

    @app.function()
    def plain() -> tuple[str, str, str]:
        return (
            os.environ["IMAGE_SAYS"],
            os.environ["TOKEN"],
            Path("/app-data/which.txt").read_text(),
        )

    @app.cls()
    class Service:
        @nr.method()
        def look(self) -> tuple[str, str]:
            return os.environ["IMAGE_SAYS"], os.environ["TOKEN"]

    assert plain.remote() == ("app image", "app-token", "first")
    assert Service().look.remote() == ("app image", "app-token")


def test_a_functions_own_settings_combine_with_the_apps(
    volumes: tuple[nr.Volume, nr.Volume],
) -> None:
    first, second = volumes
    app = nr.App(
        f"overrides-{uuid.uuid4().hex[:6]}",
        image=nr.Image.debian_slim().env({"IMAGE_SAYS": "app image"}),
        secrets=[nr.Secret.from_dict({"TOKEN": "app-token", "ONLY_APP": "yes"})],
        volumes={"/app-data": first},
    )
    own_image = nr.Image.debian_slim().env({"IMAGE_SAYS": "own image"})

    @app.function(
        image=own_image,
        secrets=[nr.Secret.from_dict({"TOKEN": "own-token"})],
        volumes={"/own-data": second},
        include_source=False,  # accepted, as in Modal
    )
    def combined() -> dict[str, str]:
        return {
            "image": os.environ["IMAGE_SAYS"],
            "token": os.environ["TOKEN"],  # both set it: the function's, later, wins
            "only_app": os.environ["ONLY_APP"],  # the app's secret is still there
            "app_data": Path("/app-data/which.txt").read_text(),
            "own_data": Path("/own-data/which.txt").read_text(),
        }

    @app.function(volumes={"/app-data": second})
    def same_path() -> str:
        return Path("/app-data/which.txt").read_text()  # the function's volume at that path

    assert combined.remote() == {
        "image": "own image",
        "token": "own-token",
        "only_app": "yes",
        "app_data": "first",
        "own_data": "second",
    }
    assert same_path.remote() == "second"


def test_bad_app_defaults_are_refused_naming_the_function() -> None:
    app = nr.App("bad-defaults", secrets=["not-a-secret"])  # type: ignore[list-item]
    with pytest.raises(nr.NbremoteError, match=r"secrets= takes nr\.Secret objects, got a str"):
        app.function()(len)
    with pytest.raises(TypeError, match=r"image= takes an nr\.Image"):
        nr.App("bad-image", image="python:3.11").function()(len)  # type: ignore[arg-type]
