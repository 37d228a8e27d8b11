"""Runs whose `finbi run` process is gone: marked failed, so that they do not hold the queue.

`finbi run` executes its run in its own process (`execute_in_process`), outside the run
queue's launcher, so Dagster's run monitoring has no worker to watch. A `finbi run` killed
by closing its terminal, SIGKILL or the OOM killer left its run STARTED for good, and the
queue (one run at a time, `runner.DAGSTER_YAML`) then never launched the sensor's runs.
Each such run carries its process's host and pid; `finbi run` and the upload sensor fail
those whose process no longer exists.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

HOST_TAG = "finbi/host"
PID_TAG = "finbi/pid"


def process_tags() -> dict[str, str]:
    """The tags that say which process runs a run."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def fail_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the started runs of this host whose process is gone; their run ids."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
            tags={HOST_TAG: socket.gethostname()},
        )
    )
    failed = []
    for run in runs:
        pid = int(run.tags[PID_TAG])
        if _alive(pid):
            continue
        instance.report_run_failed(
            run,
            message=f"the `finbi run` process that ran it (pid {pid}) is gone, killed before "
            "the run ended: marked failed so that queued runs can start; run again to finish",
        )
        failed.append(run.run_id)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
