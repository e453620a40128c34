"""Examples from Modal's guides (shared/reference/*.txt), run as their readers would: the file
as written there, ``import modal`` spelled ``import nbremote as modal``, with ``nbremote run``
and the guides' own command lines (``modal secret create``, ``modal app list``...) spelled
``nbremote``. Only examples that need no network, GPU or model download are here.

They run on a runner of this module's own: the guides' names (``my-volume``, ``hello-modal``)
are fixed, and must not meet other tests' objects.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import RunningRunner, start_runner


@pytest.fixture(scope="module")
def guide_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRunner]:
    running = start_runner(tmp_path_factory.mktemp("guides"))
    yield running
    running.stop()


def example(tmp_path: Path, name: str, source: str) -> Path:
    """The guide's file, importing nbremote under Modal's name."""
    path = tmp_path / name
    path.write_text(source.replace("import modal\n", "import nbremote as modal\n"))
    return path


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# modal-guide-serverless-ml.txt: "hello_modal.py", then `modal run hello_modal.py`.
HELLO_MODAL = """\
import modal

app = modal.App("hello-modal")

@app.function()
def square(x: int) -> int:
    import time
    time.sleep(0.5)  # simulate work
    return x * x

@app.local_entrypoint()
def main():
    # .remote() runs the function in a Modal cloud container
    result = square.remote(7)
    print(f"7² = {result}")  # 49

    # .map() runs the function in parallel for each input
    results = list(square.map([1, 2, 3, 4, 5]))
    print(results)  # [1, 4, 9, 16, 25]
"""

# modal-dev-guide.txt, "Apps and Functions": functions with parameters, run one from the shell.
APPS_AND_FUNCTIONS = """\
import modal

app = modal.App("my-app")

@app.function()
def hello(name: str) -> str:
    return f"Hello, {name}!"

@app.function()
def goodbye(name: str) -> str:
    return f"Goodbye, {name}!"
"""

# modal-dev-guide.txt, "Using .map() for Batch Processing" and "Using .starmap()".
MAP = """\
import modal

app = modal.App("my-app")

@app.function()
def process_item(item: int) -> int:
    return item * 2

@app.local_entrypoint()
def main():
    items = list(range(1000))

    # Process all items in parallel
    results = list(process_item.map(items))
    print(f"Processed {len(results)} items")
"""

STARMAP = """\
import modal

app = modal.App("my-app")

@app.function()
def add(x: int, y: int) -> int:
    return x + y

@app.local_entrypoint()
def main():
    pairs = [(1, 2), (3, 4), (5, 6)]
    results = list(add.starmap(pairs))
    print(results)
"""

# modal-dev-guide.txt, "Volumes (High-Performance Storage)".
VOLUMES = """\
import modal

app = modal.App("my-app")

# Create or reference a Volume
volume = modal.Volume.from_name("my-volume", create_if_missing=True)

@app.function(volumes={"/data": volume})
def save_data():
    with open("/data/output.txt", "w") as f:
        f.write("Hello, Volume!")

@app.function(volumes={"/data": volume})
def read_data():
    with open("/data/output.txt", "r") as f:
        return f.read()
"""

# modal-guide-serverless-ml.txt, "Secrets and Environment Configuration": the secret made with
# the guide's command line, read as its function reads it (without the wandb/huggingface calls).
SECRETS = """\
import modal

app = modal.App("my-app")

@app.function(
    secrets=[
        modal.Secret.from_name("huggingface-token"),
        modal.Secret.from_name("wandb-credentials"),
    ],
)
def train_with_tracking():
    import os

    # Secrets are available as environment variables
    hf_token = os.environ["HF_TOKEN"]
    return hf_token[:3], os.environ["WANDB_PROJECT"]
"""

# modal-dev-guide.txt, "Handling Remote-Only Imports", with the image given app-wide as its
# "web-app" example does (``modal.App("web-app", image=image)``).
REMOTE_ONLY_IMPORTS = """\
import modal

image = modal.Image.debian_slim().pip_install("pandas")
app = modal.App("web-app", image=image)

# Option 2: Use Image.imports() context manager
with image.imports():
    import pandas as pd
    import numpy as np

@app.function()
def my_function():
    return pd.DataFrame({"x": np.arange(3)}).shape
"""


def test_hello_modal(guide_runner: RunningRunner, tmp_path: Path) -> None:
    out = ok(guide_runner.cli("run", str(example(tmp_path, "hello_modal.py", HELLO_MODAL))))
    assert out.splitlines() == ["7² = 49", "[1, 4, 9, 16, 25]"]


def test_run_a_function_with_its_parameters_as_options(
    guide_runner: RunningRunner, tmp_path: Path
) -> None:
    path = example(tmp_path, "my_app.py", APPS_AND_FUNCTIONS)
    assert ok(guide_runner.cli("run", f"{path}::hello", "--name", "World")) == "'Hello, World!'\n"
    missing = guide_runner.cli("run", f"{path}::goodbye")
    assert missing.returncode == 2 and "Missing option '--name'" in missing.stderr


def test_map_and_starmap(guide_runner: RunningRunner, tmp_path: Path) -> None:
    assert ok(guide_runner.cli("run", str(example(tmp_path, "map.py", MAP)))) == (
        "Processed 1000 items\n"
    )
    assert ok(guide_runner.cli("run", str(example(tmp_path, "starmap.py", STARMAP)))) == (
        "[3, 7, 11]\n"
    )


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="volumes need bubblewrap")
def test_volumes_and_volume_ls(guide_runner: RunningRunner, tmp_path: Path) -> None:
    path = example(tmp_path, "volumes.py", VOLUMES)
    ok(guide_runner.cli("run", f"{path}::save_data"))
    assert ok(guide_runner.cli("run", f"{path}::read_data")) == "'Hello, Volume!'\n"
    # `modal volume ls my-volume`
    assert "output.txt" in ok(guide_runner.cli("volume", "ls", "my-volume"))


def test_secrets_created_with_the_guides_command_lines(
    guide_runner: RunningRunner, tmp_path: Path
) -> None:
    # modal secret create huggingface-token HF_TOKEN=hf_xxxxxxxxxxxx
    ok(guide_runner.cli("secret", "create", "huggingface-token", "HF_TOKEN=hf_xxxxxxxxxxxx"))
    ok(
        guide_runner.cli(
            "secret",
            "create",
            "wandb-credentials",
            "WANDB_API_KEY=xxxxxxxxxx",
            "WANDB_PROJECT=my-project",
        )
    )
    path = example(tmp_path, "secrets.py", SECRETS)
    assert ok(guide_runner.cli("run", f"{path}::train_with_tracking")) == (
        "('hf_', 'my-project')\n"
    )
    listed = ok(guide_runner.cli("secret", "list"))  # `modal secret list`
    assert "huggingface-token" in listed and "hf_xxxxxxxxxxxx" not in listed


def test_deployed_app_in_app_list(guide_runner: RunningRunner, tmp_path: Path) -> None:
    ok(guide_runner.cli("deploy", str(example(tmp_path, "hello_modal.py", HELLO_MODAL))))
    assert "hello-modal" in ok(guide_runner.cli("app", "list"))  # `modal app list`
    ok(guide_runner.cli("app", "stop", "hello-modal"))  # `modal app stop <name>`
    assert "hello-modal" not in ok(guide_runner.cli("app", "list"))


def test_remote_only_imports_with_an_app_wide_image(
    guide_runner: RunningRunner, tmp_path: Path
) -> None:
    path = example(tmp_path, "imports.py", REMOTE_ONLY_IMPORTS)
    ran = guide_runner.cli("run", f"{path}::my_function", timeout=300)
    assert ok(ran).splitlines()[-1] == "(3, 1)"
    assert "pip install pandas" in ran.stderr + ran.stdout  # built in the app's image
