"""Images on the ray backend: built as venvs in the runner's image cache (every node of the test
cluster sees it: they share this machine), and a worker on a Ray node runs in one."""

from __future__ import annotations

import sys

import nbremote as nr
from nbremote import _session

app = nr.App("ray-image-tests")


def test_a_function_runs_in_its_image_on_a_ray_node(ray_session: _session.RemoteSession) -> None:
    image = nr.Image.debian_slim().pip_install("six==1.16.0").env({"GREETING": "hello"})

    @app.function(image=image)
    def inside() -> tuple[str, str, str, str]:
        import os
        import sys

        import six

        return (
            six.__version__,
            os.environ["GREETING"],
            sys.prefix,
            os.environ["NBREMOTE_RAY_NODE_ID"],
        )

    version, greeting, prefix, node = inside.remote()
    assert (version, greeting) == ("1.16.0", "hello")  # the image's package and env
    assert prefix != sys.prefix  # its venv, not the nodes' Python
    assert len(node) == 56  # on a Ray node
