"""The scheduled functions of deployed apps become jobs of kind ``function``.

A deployed function with ``settings["schedule"]`` is one job (named ``settings["job"]``, else
``{app}.{object}``), created or updated on each deploy, removed when a redeploy drops its
schedule or the app is stopped.

Why a run is a one-line cell, not a call: a call's answer is the batch of its results, pickled
together, and the runner never unpickles a worker's output; so that the run's one output,
``result``, is the function's return value itself (stored and sent back as a cell's output), a
run executes ``result = f(**kwargs)`` in a fresh worker of the function's spec, the function's
payload (as deployed) and the keyword arguments (``{}``, or a run's ``params``) being its inputs
from the job blob store.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from nbremote.wire.codec import Header
from nbremote.wire.gpu import parse_text
from nbremote.wire.http import DeployApp, DeployObject, WorkerSpec
from nbremote.wire.jobs import JobSettings
from nbremote.wire.ops import Op
from nbremote.wire.serialize import content_hash

from .apps import payload_parts
from .job_promote import settings_of
from .job_runs import KWARGS

if TYPE_CHECKING:
    from .jobs import Jobs

FUNCTION = "_nbremote_job_function"
CODE = f"result = {FUNCTION}(**{KWARGS})"


def pickled(value: Any) -> tuple[str, list[bytes]]:
    """A JSON value pickled by the runner (plain pickle of plain data), and its hash."""
    parts = [pickle.dumps(value, protocol=5)]
    return content_hash(parts), parts


def _spec(settings: dict[str, Any]) -> Header:
    gpu = settings.get("gpu")
    spec = WorkerSpec(
        env=settings.get("env") or {},
        volumes=settings.get("volumes") or {},
        secrets=settings.get("secrets") or [],
        image=settings.get("image"),
        gpu=parse_text(gpu) if isinstance(gpu, str) else None,
    )
    return spec.model_dump(exclude_defaults=True)


def job_settings(app: str, obj: DeployObject) -> JobSettings:
    """The job of a scheduled function (its schedule checked: a bad one refuses the deploy)."""
    settings = obj.settings
    retries = settings.get("retries") or {}
    return settings_of(
        {
            "name": settings.get("job") or f"{app}.{obj.name}",
            "schedule": settings["schedule"],
            "retries": retries.get("max_retries", 0) if isinstance(retries, dict) else 0,
            "timeout": settings.get("timeout"),
        }
    )


def function_request(obj: DeployObject, function_hash: str, kwargs_hash: str) -> Header:
    """The exec request each run of the function's job sends."""
    return {
        "op": Op.EXEC,
        "code": CODE,
        "inputs": [
            {"name": FUNCTION, "hash": function_hash},
            {"name": KWARGS, "hash": kwargs_hash},
        ],
        "outputs": ["result"],
        "spec": _spec(obj.settings),
    }


async def sync_app(jobs: Jobs, app: str, request: DeployApp | None) -> None:
    """Make the app's jobs those of its scheduled functions (None: the app was stopped).

    Raises:
        PromotionRefused: a schedule is not valid, or a job name is another's (nothing changed).
    """
    wanted: list[tuple[JobSettings, DeployObject]] = []
    for obj in request.objects if request is not None else []:
        if obj.kind == "function" and obj.settings.get("schedule"):
            settings = job_settings(app, obj)
            jobs.check_name(settings.name, app=app)
            wanted.append((settings, obj))
    kwargs_hash, kwargs_parts = pickled({})
    for settings, obj in wanted:
        parts = payload_parts(obj.payload, obj.sizes)
        function_hash = content_hash(parts)
        await jobs.blobs.put(function_hash, parts, verify=False)
        await jobs.blobs.put(kwargs_hash, kwargs_parts, verify=False)
        request_ = function_request(obj, function_hash, kwargs_hash)
        old = jobs.jobs.get(settings.name)
        if old is None or (old.record.settings, old.record.request) != (settings, request_):
            await jobs.promote(settings, "function", request_, app=app)  # else: as it was
    kept = {settings.name for settings, _ in wanted}
    for job in list(jobs.jobs.values()):
        if job.record.app == app and job.name not in kept:
            await jobs.remove(job.name)
