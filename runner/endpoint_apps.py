"""Deployed apps tell their endpoints what changed: the hook `DeployedApps.on_change` calls.

One hook serves both the scheduled functions (`job_apps.sync_app`) and the endpoints, so that a
deploy either one refuses changes neither: the endpoints' checks (settings, a name held by
another app's endpoint) come first, then the jobs are synced (which may still refuse), and only
then the endpoints.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nbremote.wire.http import DeployApp

from .endpoints import Endpoints
from .errors import ApiError
from .job_apps import sync_app
from .jobs import Jobs

Hook = Callable[[str, DeployApp | None], Awaitable[None]]


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
