"""``f.get_current_stats()``: a function's load, read from its pool's state (no frame, no worker).

A session's function pools are found by key in the session; a deployed app's in the app. A pool
not opened yet has no load: it answers zeros rather than 404 (nothing has called it yet).
"""

from __future__ import annotations

from typing import Any

from nbremote.wire.http import FunctionStats

from .batching import waiting
from .handlers import API, APP, SESSION, ApiError, BaseHandler, Operation


def _stats(pools: Any, key: str) -> FunctionStats:
    pool = pools.get(key)
    if pool is None:
        return FunctionStats(backlog=0, num_total_runners=0)
    queued, runners = pool.stats()
    return FunctionStats(backlog=queued + waiting(pool), num_total_runners=runners)


class SessionStatsHandler(BaseHandler):
    api = {
        "get": Operation(
            "A function's load: inputs waiting, workers live or starting (?pool=KEY)",
            FunctionStats,
        )
    }

    def get(self, session_id: str) -> None:
        session = self.session_or_404(session_id)
        self.reply(_stats(session.pools, self.get_query_argument("pool")))


class AppStatsHandler(BaseHandler):
    api = {
        "get": Operation(
            "A deployed function's load: inputs waiting, workers live or starting (?pool=KEY)",
            FunctionStats,
        )
    }

    def get(self, name: str) -> None:
        app = self.runner.apps.apps.get(name)
        if app is None:
            raise ApiError(404, "NotFound", self.runner.apps.missing(name))
        self.reply(_stats(app.pools, self.get_query_argument("pool")))


STATS_ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (f"{API}/sessions/{SESSION}/stats", SessionStatsHandler),
    (f"{API}/apps/{APP}/stats", AppStatsHandler),
]
