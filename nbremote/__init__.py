"""nbremote: run notebook cells and functions on your own GPU runner.

``%load_ext nbremote`` registers the ``%%remote`` magic. This module imports nothing heavy: the
worker program imports nbremote's frame and pickle helpers and must start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    NbremoteError,
    RemoteError,
    RunnerError,
    RunnerUnavailable,
    SerializationError,
    VersionMismatch,
    WorkerDied,
)

__version__ = "0.1.0"


if TYPE_CHECKING:
    from . import exception, gpu
    from .app import App, remote
    from .cls import Cls, batched, concurrent, enter, exit, method, parameter
    from .dict import Dict
    from .endpoint import Endpoint
    from .functions import Function, FunctionCall
    from .image import Image
    from .job import Job, JobRun
    from .output import enable_output
    from .queue import Queue
    from .retries import Retries
    from .sandbox import Sandbox
    from .schedule import Cron, Period
    from .secret import Secret
    from .volume import Volume
    from .web import asgi_app, fastapi_endpoint, web_endpoint, web_server, wsgi_app

# Imported on first use: the worker imports nbremote's frame and pickle helpers, and must not
# pay for pydantic and the client API it never uses.
_LAZY = {
    "App": "app",
    "Cls": "cls",
    "Cron": "schedule",
    "batched": "cls",
    "concurrent": "cls",
    "Dict": "dict",
    "enable_output": "output",
    "Endpoint": "endpoint",
    "Queue": "queue",
    "enter": "cls",
    "exit": "cls",
    "method": "cls",
    "parameter": "cls",
    "Function": "functions",
    "FunctionCall": "functions",
    "Image": "image",
    "Job": "job",
    "JobRun": "job",
    "Period": "schedule",
    "Retries": "retries",
    "Sandbox": "sandbox",
    "Secret": "secret",
    "Volume": "volume",
    "remote": "app",
    "asgi_app": "web",
    "fastapi_endpoint": "web",
    "web_endpoint": "web",
    "web_server": "web",
    "wsgi_app": "web",
}

__all__ = [
    "App",
    "AuthenticationError",
    "Cls",
    "Cron",
    "Dict",
    "Endpoint",
    "Function",
    "FunctionCall",
    "Image",
    "Job",
    "JobRun",
    "NbremoteError",
    "Period",
    "Queue",
    "RemoteError",
    "Retries",
    "RunnerError",
    "RunnerUnavailable",
    "Sandbox",
    "Secret",
    "SerializationError",
    "VersionMismatch",
    "Volume",
    "WorkerDied",
    "__version__",
    "asgi_app",
    "batched",
    "concurrent",
    "enable_output",
    "enter",
    "exception",
    "exit",
    "fastapi_endpoint",
    "gpu",
    "load_ipython_extension",
    "method",
    "parameter",
    "remote",
    "web_endpoint",
    "web_server",
    "wsgi_app",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register nbremote's magics in an IPython shell (``%load_ext nbremote``)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> Any:
    if name in ("gpu", "exception"):  # modules, as Modal's `modal.gpu` and `modal.exception`
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nbremote' has no attribute {name!r}")
