"""Jobs survive their runner: killed with SIGKILL in the middle of a run, a runner started again
on the same data dir marks that run interrupted (never left running), keeps the jobs and their
history, and fires the job again."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import TOKEN, RunningRunner, start_runner
from tests.integration.jobs_helpers import (
    api,
    channel_of,
    outputs,
    period,
    promote,
    raw,
    runs,
    wait_for,
)

CODE = """import os, time
print('started', flush=True)
if os.path.exists(marker):
    time.sleep(60)
y = 1"""


def test_a_run_cut_off_by_a_kill_is_interrupted_and_the_job_fires_again(
    fresh_runner: RunningRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "slow"
    marker.touch()
    with channel_of(fresh_runner) as channel:
        done, _ = promote(
            channel,
            CODE,
            {"marker": str(marker)},
            {"name": "nightly", "schedule": period(1)},
            ["y"],
        )
    assert done["ok"], done

    def running() -> list[dict[str, object]]:
        found = [r for r in runs(fresh_runner, "nightly") if r["status"] == "running"]
        if found and b"started" in raw(
            fresh_runner, f"/jobs/nightly/runs/{found[0]['number']}/logs"
        ):
            return found
        return []

    cut = wait_for(running)[0]
    fresh_runner.proc.kill()
    fresh_runner.proc.wait(timeout=20)
    marker.unlink()  # the runs after the restart end at once
    killed_at = time.time()

    restarted = start_runner(fresh_runner.data_dir, TOKEN)
    try:
        after = api(restarted, "GET", f"/jobs/nightly/runs/{cut['number']}")
        assert after["status"] == "interrupted" and after["finished"] is not None
        job = api(restarted, "GET", "/jobs/nightly")
        assert (job["version"], job["inputs"], job["paused"]) == (1, ["marker"], False)

        def fired_again() -> list[dict[str, object]]:
            return [
                r
                for r in runs(restarted, "nightly")
                if r["status"] == "succeeded" and float(r["started"] or 0) > killed_at  # type: ignore[arg-type]
            ]

        again = wait_for(fired_again)[0]
        assert outputs(restarted, "nightly", again["number"]) == {"y": 1}
        numbers = [r["number"] for r in runs(restarted, "nightly")]
        assert cut["number"] in numbers and numbers == sorted(numbers, reverse=True)
    finally:
        restarted.stop()
