"""Runs whose `finbi run` process is gone: marked failed, so that they do not hold the queue.

`finbi run` executes its run in its own process (`execute_in_process`), outside the run
queue's launcher, so Dagster's run monitoring has no worker to watch. A `finbi run` killed
by closing its terminal, SIGKILL or the OOM killer left its run STARTED for good, and the
queue (one run at a time, `runner.DAGSTER_YAML`) then never launched the sensor's runs.
Each such run carries its own id and its process's host, pid and start time; `finbi run`
and the upload sensor fail those whose process no longer exists. A re-execution from the
UI inherits the tags but has another id: it is the daemon's, and left alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

HOST_TAG = "finbi/host"
PROCESS_TAG = "finbi/process"  # "<pid>:<start time>"
RUN_TAG = "finbi/run_id"


def process_tags(run_id: str) -> dict[str, str]:
    """The tags of the run `run_id` that this process runs."""
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PROCESS_TAG: f"{pid}:{_start_time(pid)}",
        RUN_TAG: run_id,
    }


def fail_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the started runs of `finbi run`s of this host that are gone; their ids."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
            tags={HOST_TAG: socket.gethostname()},
        )
    )
    failed = []
    for run in runs:
        if run.tags.get(RUN_TAG) != run.run_id:  # a re-execution, which copied the tags
            continue
        pid, _, started = run.tags[PROCESS_TAG].partition(":")
        if _start_time(int(pid)) == started:
            continue  # still running
        instance.report_run_failed(
            run,
            message=f"the `finbi run` process that ran it (pid {pid}) is gone, killed before "
            "the run ended: marked failed so that queued runs can start; run again to finish",
        )
        failed.append(run.run_id)
    return failed


def _start_time(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, from /proc), which tells it from a
    later process given the same pid; '' when there is no such process. Where /proc is
    missing, a process that exists counts as the same one."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        # The command name (field 2) may hold spaces and parentheses: split after it.
        return stat.read_text().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        if stat.parent.parent.is_dir():  # /proc is there: no such process
            return ""
    except (OSError, IndexError):
        return ""
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return ""
    except PermissionError:  # another user's process
        pass
    return "?"
