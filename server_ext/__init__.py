"""The jupyter-server extension of nbremote (installed as ``nbremote_server_ext``).

It serves ``/nbremote/api/...``: the runner's jobs, endpoints, GPUs and sessions behind Jupyter's
own login, and their live changes as server-sent events, for the JupyterLab frontend
(``labextension/``, shipped prebuilt in ``share/jupyter/labextensions/nbremote``). The browser
never sees the runner's token: the server finds the runner as the kernels do (`link`).

Enabled on install by ``etc/jupyter/jupyter_server_config.d/nbremote.json``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbremote_server_ext"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nbremote"}]


def load_jupyter_server_extension(serverapp: Any) -> None:
    """Add the extension's routes and its one runner link and monitor to the server."""
    from .events import Monitor
    from .handlers import routes
    from .link import RunnerLink

    web_app = serverapp.web_app
    link = RunnerLink()
    monitor = Monitor(link)
    web_app.settings["nbremote_link"] = link
    web_app.settings["nbremote_monitor"] = monitor
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    serverapp.log.info("nbremote: /nbremote/api serves the runner's jobs, endpoints and GPUs")


_load_jupyter_server_extension = load_jupyter_server_extension
