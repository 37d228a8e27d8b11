"""Runs a killed `finbi run` left started are failed, so that queued runs can start."""

import subprocess
import sys

import dagster as dg

from finbi_pipeline.abandoned_runs import PID_TAG, fail_abandoned_runs, process_tags


def _started_run(instance: dg.DagsterInstance, tags: dict) -> dg.DagsterRun:
    @dg.op
    def noop():
        pass

    @dg.job
    def some_job():
        noop()

    run = instance.create_run_for_job(some_job, tags=tags)
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=some_job.name
        ),
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    return run


def test_a_run_whose_process_is_gone_is_failed_and_one_still_running_is_not(instance):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    abandoned = _started_run(instance, {**process_tags(), PID_TAG: gone})
    running = _started_run(instance, process_tags())  # this process: alive
    other = _started_run(instance, {})  # not a `finbi run`'s run: left alone

    assert fail_abandoned_runs(instance) == [abandoned.run_id]

    statuses = [instance.get_run_by_id(r.run_id).status for r in (abandoned, running, other)]
    assert statuses == [
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.STARTED,
    ]
    assert fail_abandoned_runs(instance) == []
