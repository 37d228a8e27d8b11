"""new_upload_sensor, evaluated with build_sensor_context against a real lake folder."""

import json
import os
import time

import dagster as dg
import pytest

from finbi_pipeline.resources import lake as lake_module
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.resources.sources_resource import SourcesResource
from finbi_pipeline.resources.upload_events import UploadEvents
from finbi_pipeline.sensors import (
    FULL_LISTING_SECONDS,
    LOOKBACK_SECONDS,
    RANGE_END_TAG,
    RANGE_START_TAG,
    build_new_upload_sensor,
)
from finbi_pipeline.uploads import uploads_partitions
from finbi_pipeline_tests.aws.fixtures import REGION, aws_env, moto_aws  # noqa: F401
from finbi_pipeline_tests.resources.test_upload_events import queue_url  # noqa: F401

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


def tick(instance, lake, cursor=None, upload_events=None) -> dg.SensorResult:
    """One evaluation; applies its partition requests as the daemon would."""
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "lake": lake,
            "sources": SourcesResource(),
            "upload_events": upload_events or UploadEvents(),
        },
    ) as context:
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


def test_temporary_files_are_no_uploads_until_renamed(instance, lake):
    for name in ("~$open.csv", "copying.csv.part", "x.csv.tmp", "x.csv~", "get.csv.crdownload"):
        write(lake, f"raw/interactions/{name}", "partial")
    first = tick(instance, lake)
    lake.move("raw/interactions/copying.csv.part", "raw/interactions/copying.csv")

    (request,) = tick(instance, lake, cursor=first.cursor).run_requests

    assert not first.run_requests
    assert request.tags[RANGE_START_TAG].startswith("raw/interactions/copying.csv@")


def test_nothing_new_skips_and_never_requests_a_version_twice(instance, lake):
    write(lake, "raw/interactions/a.csv", "x")
    first = tick(instance, lake)

    second = tick(instance, lake, cursor=first.cursor)

    assert not second.run_requests
    assert second.skip_reason.skip_message == "no new uploads"


def test_a_tick_without_uploads_names_files_outside_every_sources_folder(instance, lake):
    write(lake, "raw/sale/a.csv", "x")  # a typo for "sales"

    result = tick(instance, lake)

    assert not result.run_requests
    assert result.skip_reason.skip_message == (
        "no new uploads; never ingested, not in a declared source's folder: raw/sale/"
    )


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


def test_a_file_that_keeps_an_old_time_is_seen(instance, lake):
    """`mv`, `cp -p`, tar and unzip land files dated long before the last tick."""
    write(lake, "raw/interactions/a.csv", "x")
    first = tick(instance, lake)  # the cursor's high-water mark is now
    moved = write(lake, "raw/interactions/moved.csv", "y", mtime=1_700_000_000.0)

    (request,) = tick(instance, lake, cursor=first.cursor).run_requests

    assert request.tags[RANGE_START_TAG] == moved


def test_a_file_dated_in_the_future_does_not_hide_later_ones(instance, lake):
    ahead = write(lake, "raw/interactions/ahead.csv", "x", mtime=time.time() + 86_400)
    first = tick(instance, lake)
    later = write(lake, "raw/interactions/later.csv", "y")

    second = tick(instance, lake, cursor=first.cursor)

    assert first.run_requests[0].tags[RANGE_START_TAG] == ahead
    assert json.loads(first.cursor)["high_water"] <= time.time()
    (request,) = second.run_requests
    assert request.tags[RANGE_START_TAG] == later


def test_old_objects_are_not_looked_up_again(instance, lake, monkeypatch):
    # Files written now cannot be made to have landed long ago (their ctime is now):
    # let them say they landed when their mtime says.
    monkeypatch.setattr(lake_module, "_changed_ns", lambda stat: stat.st_mtime_ns)
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


# --- with S3 notifications on SQS (moto) ----------------------------------------------------


@pytest.fixture
def s3_lake(moto_aws):  # noqa: F811
    from dagster_aws.s3 import S3Resource

    from finbi_pipeline.resources.s3_lake import S3Lake
    from finbi_pipeline_tests.aws.fixtures import BUCKET

    return S3Lake(bucket=BUCKET, s3=S3Resource(region_name=REGION))


def test_with_upload_events_a_tick_reads_the_queue_not_the_landing_zone(
    instance,
    s3_lake,
    queue_url,  # noqa: F811
    monkeypatch,
):
    events = UploadEvents(queue_url=queue_url, region=REGION)
    first = tick(instance, s3_lake, upload_events=events)  # no cursor: a full listing first
    assert first.run_requests == [] and json.loads(first.cursor)["listed_at"] > 0

    s3_lake.write_bytes("raw/interactions/a.csv", b"x")
    s3_lake.write_bytes("raw/undeclared/b.csv", b"y")  # notified, but not a declared source
    monkeypatch.setattr(type(s3_lake), "list_objects", lambda *a, **k: pytest.fail("listed"))
    second = tick(instance, s3_lake, first.cursor, upload_events=events)

    (request,) = second.run_requests
    a = f"raw/interactions/a.csv@{s3_lake.head('raw/interactions/a.csv').version}"
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (a, a)
    # The messages were acknowledged: the next tick has nothing to do.
    assert tick(instance, s3_lake, second.cursor, upload_events=events).run_requests == []


def test_with_upload_events_the_landing_zone_is_still_listed_now_and_then(
    instance,
    s3_lake,
    queue_url,  # noqa: F811
):
    events = UploadEvents(queue_url=queue_url, region=REGION)
    first = tick(instance, s3_lake, upload_events=events)
    s3_lake.write_bytes("raw/interactions/a.csv", b"x")
    events.acknowledge(events.receive(100)[1])  # as if the notification were lost

    assert tick(instance, s3_lake, first.cursor, upload_events=events).run_requests == []
    state = json.loads(first.cursor)
    overdue = json.dumps({**state, "listed_at": state["listed_at"] - FULL_LISTING_SECONDS})
    (request,) = tick(instance, s3_lake, overdue, upload_events=events).run_requests
    assert request.tags[RANGE_START_TAG].startswith("raw/interactions/a.csv@")


def test_on_s3_uploading_a_keys_earlier_content_again_is_a_new_upload(
    instance,
    s3_lake,
    queue_url,  # noqa: F811
):
    # A, then a corrected B, then A again: the key must end up with A's rows.
    events = UploadEvents(queue_url=queue_url, region=REGION)
    cursor = tick(instance, s3_lake, upload_events=events).cursor
    requested = []
    for content in (b"A", b"B", b"A"):
        if content == b"A" and requested:
            time.sleep(1.05)  # S3 dates objects to the second
        s3_lake.write_bytes("raw/sales/s.csv", content)
        result = tick(instance, s3_lake, cursor, upload_events=events)
        cursor = result.cursor
        requested += [request.tags[RANGE_START_TAG] for request in result.run_requests]
    assert len(set(requested)) == 3
    assert requested[-1] == f"raw/sales/s.csv@{s3_lake.head('raw/sales/s.csv').version}"
    # Notified twice for one key at one version, or told of a key since deleted: no new run.
    s3_lake.write_bytes("raw/sales/gone.csv", b"C")
    s3_lake.delete_prefix("raw/sales/gone.csv")
    assert tick(instance, s3_lake, cursor, upload_events=events).run_requests == []


def test_a_file_whose_name_is_no_text_does_not_stop_the_others(instance, lake):
    # Its key could not even be stored as a partition: every tick failed, ingesting nothing.
    folder = os.fsencode(lake.uri("raw/interactions/"))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, b"caf\xe9.csv"), "wb") as latin1_name:
        latin1_name.write(b"x")
    good = write(lake, "raw/interactions/good.csv", "x")
    (request,) = tick(instance, lake).run_requests
    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == good
