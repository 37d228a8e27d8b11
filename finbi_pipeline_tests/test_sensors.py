"""new_upload_sensor, evaluated with build_sensor_context against a real lake folder."""

import json
import os

import dagster as dg
import pytest

from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.resources.sources_resource import SourcesResource
from finbi_pipeline.sensors import (
    LOOKBACK_SECONDS,
    RANGE_END_TAG,
    RANGE_START_TAG,
    build_new_upload_sensor,
)
from finbi_pipeline.uploads import uploads_partitions

sensor = build_new_upload_sensor(dg.DefaultSensorStatus.RUNNING)


@pytest.fixture
def lake(finbi_home):
    return LocalLake(home=str(finbi_home))


def write(lake: LocalLake, key: str, text: str, mtime: float | None = None) -> str:
    lake.write_bytes(key, text.encode())
    if mtime is not None:
        os.utime(lake.uri(key), (mtime, mtime))
    obj = lake.head(key)
    return f"{obj.key}@{obj.version}"


def tick(instance, lake, cursor=None) -> dg.SensorResult:
    """One evaluation; applies its partition requests as the daemon would."""
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"lake": lake, "sources": SourcesResource()},
    )
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


def test_first_tick_requests_one_run_for_the_batch(instance, lake):
    a = write(lake, "raw/interactions/a.csv", "x")
    b = write(lake, "raw/sales/b.csv", "y")
    write(lake, "raw/undeclared/c.csv", "z")  # not a declared source: never listed

    result = tick(instance, lake)

    (request,) = result.run_requests
    assert request.job_name == "ingest_job"
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (a, b)
    assert instance.get_dynamic_partitions(uploads_partitions.name) == [a, b]
    assert json.loads(result.cursor)["high_water"] > 0


def test_nothing_new_skips_and_never_requests_a_version_twice(instance, lake):
    write(lake, "raw/interactions/a.csv", "x")
    first = tick(instance, lake)

    second = tick(instance, lake, cursor=first.cursor)

    assert not second.run_requests
    assert second.skip_reason is not None


def test_two_uploads_in_the_same_second_are_both_seen(instance, lake):
    same_second = 1_764_000_000.0
    first_key = write(lake, "raw/interactions/b.csv", "x", mtime=same_second)
    first = tick(instance, lake)
    # Lands later in the same second, with a key that sorts before the first one.
    late_key = write(lake, "raw/interactions/a.csv", "y", mtime=same_second)

    second = tick(instance, lake, cursor=first.cursor)

    assert first.run_requests[0].tags[RANGE_START_TAG] == first_key
    (request,) = second.run_requests
    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == late_key


def test_an_overwritten_key_is_a_new_upload(instance, lake):
    old = write(lake, "raw/sales/s.csv", "v1", mtime=1_764_000_000.0)
    first = tick(instance, lake)
    new = write(lake, "raw/sales/s.csv", "version 2", mtime=1_764_000_005.0)

    (request,) = tick(instance, lake, cursor=first.cursor).run_requests

    assert new != old
    assert request.tags[RANGE_START_TAG] == new
    assert request.run_key != first.run_requests[0].run_key


def test_a_deleted_key_does_not_break_the_sensor(instance, lake):
    write(lake, "raw/interactions/gone.csv", "x")
    first = tick(instance, lake)
    lake.delete(["raw/interactions/gone.csv"])
    kept = write(lake, "raw/interactions/kept.csv", "y")

    (request,) = tick(instance, lake, cursor=first.cursor).run_requests

    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == kept


def test_old_objects_are_not_looked_up_again(instance, lake):
    old = 1_700_000_000.0
    for n in range(50):
        write(lake, f"raw/interactions/old-{n:02}.csv", "x", mtime=old)
    first = tick(instance, lake)
    write(lake, "raw/interactions/new.csv", "y", mtime=old + 10 * LOOKBACK_SECONDS)
    after_new = tick(instance, lake, cursor=first.cursor)

    lookups = []
    original = instance.has_dynamic_partition
    instance.has_dynamic_partition = lambda name, key: lookups.append(key) or original(name, key)
    tick(instance, lake, cursor=after_new.cursor)

    # Only objects within the look-back window of the newest one are checked again.
    assert [k.split("@")[0] for k in lookups] == ["raw/interactions/new.csv"]
