"""Deployed apps tell their endpoints what changed: the hook `DeployedApps.on_change` calls.

One hook serves both the scheduled functions (`job_apps.sync_app`) and the endpoints, so that a
deploy either one refuses changes neither: the endpoints' checks (settings, a name held by
another app's endpoint) come first, then the jobs are synced (which may still refuse), and only
then the endpoints.

An app's endpoints that keep workers warm (``min_containers``) have their pools opened as soon as
the app is installed (`keep_warm`: deployed, or read back when the runner starts), so that those
workers are up before the first request, as a deployed function's are in Modal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nbremote.wire.http import DeployApp

from .apps import DeployedApp
from .endpoint_serve import endpoint_pool
from .endpoints import Endpoints
from .errors import ApiError
from .job_apps import sync_app
from .jobs import Jobs

Hook = Callable[[str, DeployApp | None], Awaitable[None]]
log = logging.getLogger(__name__)


def on_change(jobs: Jobs, endpoints: Endpoints) -> Hook:
    """The hook for an app's deploy (``request``) or stop (None).

    Raises (from the hook):
        ApiError: an endpoint's settings are not valid, or its name is another app's.
        PromotionRefused: a schedule is not valid, or a job name is another's.
    """

    async def changed(app: str, request: DeployApp | None) -> None:
        wanted = endpoints.wanted(app, request)
        for name in wanted:  # a job and an endpoint share names
            job = jobs.jobs.get(name)
            if job is not None and job.record.app != app:
                raise ApiError(
                    409,
                    "Conflict",
                    f"the name {name!r} is taken by the job {name!r}: give the function another "
                    f"label= (or name=), or remove the job (nbremote jobs rm {name})",
                )
        await sync_app(jobs, app, request)
        endpoints.sync(app, wanted)

    return changed


def keep_warm(endpoints: Endpoints) -> Callable[[DeployedApp], None]:
    """The hook for an app just installed: the pools of its endpoints with ``min_containers``
    open now, and start their workers (the pool's own keep-warm starts, as at a first request)."""

    def warm(app: DeployedApp) -> None:
        served = {e.function for e in endpoints.endpoints.values() if e.app == app.name}
        for function in sorted(served & app.objects.keys()):
            keep = app.objects[function][0].settings.get("min_containers")
            if not isinstance(keep, int) or keep <= 0:
                continue
            try:
                endpoint_pool(app, function)
            except ValueError as exc:  # settings it cannot open with: its requests will say so
                log.warning("endpoint pool of %s.%s not opened: %s", app.name, function, exc)

    return warm
