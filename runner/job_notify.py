"""The webhook of a job (``--notify URL``): a JSON summary of a run, posted when it ends.

Why apart and never awaited: a webhook that is slow or down must not delay a schedule, so the
post is a task of its own with a short timeout, and its failure is logged, never raised. The
log names the URL without its query string, where tokens of such hooks usually travel.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from nbremote.wire.jobs import JobSettings

from .job_store import JobRun

log = logging.getLogger(__name__)
TIMEOUT = 10.0  # seconds for the whole post


def _shown(url: str) -> str:
    return urlsplit(url)._replace(query="", fragment="").geturl()


def summary(run: JobRun) -> dict[str, object]:
    """What the webhook gets."""
    return {
        "job": run.job,
        "number": run.number,
        "status": run.status,
        "error": run.error,
        "started": run.started,
        "finished": run.finished,
    }


async def _post(url: str, body: dict[str, object]) -> None:
    request = HTTPRequest(
        url,
        method="POST",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
        request_timeout=TIMEOUT,
        connect_timeout=TIMEOUT,
    )
    try:
        await AsyncHTTPClient().fetch(request, raise_error=True)
    except Exception as exc:  # a webhook's trouble is logged, never the schedule's
        reason = str(exc).replace(url, _shown(url))
        log.warning("job %s: the webhook %s failed: %s", body["job"], _shown(url), reason)


def notify(settings: JobSettings, run: JobRun) -> asyncio.Task[None] | None:
    """Post the run's summary to the job's webhook if it asks for this outcome (a task)."""
    if settings.notify is None or run.status == "interrupted":
        return None
    if run.status == "succeeded" and not settings.notify_on_success:
        return None
    return asyncio.create_task(_post(settings.notify, summary(run)))
