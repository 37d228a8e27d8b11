"""Runs a killed `finbi run` left started are failed, so that queued runs can start."""

import subprocess
import sys
import uuid

import dagster as dg

from finbi_pipeline.abandoned_runs import PROCESS_TAG, fail_abandoned_runs, process_tags


@dg.op
def noop():
    pass


@dg.job
def some_job():
    noop()


def _started_run(instance: dg.DagsterInstance, tags=None, process: str | None = None):
    """A started run; by default one a `finbi run` of this process runs."""
    run_id = str(uuid.uuid4())
    if tags is None:
        tags = process_tags(run_id)
        if process is not None:
            tags[PROCESS_TAG] = process
    run = instance.create_run_for_job(some_job, run_id=run_id, tags=tags)
    start = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.RUN_START.value, job_name=some_job.name
    )
    instance.handle_run_event(run.run_id, start)
    return run


def _status(instance, run) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run.run_id).status


def test_a_run_whose_process_is_gone_is_failed_and_others_are_left_alone(instance):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    abandoned = _started_run(instance, process=f"{gone}:1")
    reused = _started_run(instance, process="1:0")  # pid 1 is alive, but started otherwise
    running = _started_run(instance)  # this process's own
    # A re-execution from the UI copies its parent's tags, pid and all: the daemon's run.
    reexecution = _started_run(instance, tags={**process_tags("parent"), PROCESS_TAG: "1:0"})
    other = _started_run(instance, tags={})  # not a `finbi run`'s run

    assert sorted(fail_abandoned_runs(instance)) == sorted([abandoned.run_id, reused.run_id])

    assert [_status(instance, r) for r in (abandoned, reused, running, reexecution, other)] == [
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.STARTED,
    ]
    assert fail_abandoned_runs(instance) == []
