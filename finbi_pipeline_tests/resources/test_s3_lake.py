"""S3Lake against moto: paged listing, cursors, atomic writes, moves, deletes."""

from __future__ import annotations

import time

import boto3

from finbi_pipeline_tests.aws.fixtures import BUCKET, REGION


def test_listing_pages_through_many_keys_with_equal_timestamps(lake):
    client = boto3.client("s3", region_name=REGION)
    keys = [f"raw/interactions/{i:05d}.csv" for i in range(2501)]
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    client.put_object(Bucket=BUCKET, Key="raw/sales/other.csv", Body=b"y")

    listed = list(lake.list_objects("raw/interactions/", page_size=100))

    assert [o.key for o in listed] == keys  # every page, in key order, nothing else
    # moto stamps objects to the second: many share one, which is why the sensor's cursor
    # must not rely on timestamps alone; StartAfter continues exactly after a key.
    assert len({o.last_modified for o in listed}) < len(listed)
    after = list(lake.list_objects("raw/interactions/", start_after=keys[1999], page_size=300))
    assert [o.key for o in after] == keys[2000:]


def test_version_changes_whenever_the_content_is_replaced_even_by_earlier_content(lake):
    lake.write_bytes("raw/interactions/a.csv", b"one")
    first = lake.head("raw/interactions/a.csv")
    [listed] = list(lake.list_objects("raw/interactions/"))
    assert first.version == listed.version and '"' not in first.version
    lake.write_bytes("raw/interactions/a.csv", b"two")
    second = lake.head("raw/interactions/a.csv")
    assert second.version != first.version
    time.sleep(1.05)  # S3 dates objects to the second
    lake.write_bytes("raw/interactions/a.csv", b"one")  # the first content again: a new upload
    third = lake.head("raw/interactions/a.csv")
    assert third.version not in (first.version, second.version)
    assert sorted([third.version, second.version]) == [second.version, third.version]
    assert lake.head("raw/interactions/missing.csv") is None


def test_write_is_whole_and_reads_can_be_ranged(lake):
    lake.write_bytes("staging/s/x.json", b'{"a": 1}')
    assert lake.read_bytes("staging/s/x.json") == b'{"a": 1}'
    assert lake.read_bytes("staging/s/x.json", max_bytes=3) == b'{"a'
    assert lake.read_range("staging/s/x.json", 2) == b"1}"


def test_an_object_is_read_in_chunks(lake):
    data = bytes(range(256)) * 20_000  # 5 MB
    lake.write_bytes("raw/shop/big.csv", data)

    chunks = list(lake.iter_bytes("raw/shop/big.csv", chunk_size=1 << 20))

    assert len(chunks) == 5 and b"".join(chunks) == data


def test_move_replaces_the_target_and_removes_the_source(lake, tmp_path):
    source = tmp_path / "f.parquet"
    source.write_bytes(b"new")
    lake.upload_file(source, "curated/interactions/.tmp-x/event_date=2024-01-01/part")
    lake.write_bytes("curated/interactions/event_date=2024-01-01/x.parquet", b"old")

    lake.move(
        "curated/interactions/.tmp-x/event_date=2024-01-01/part",
        "curated/interactions/event_date=2024-01-01/x.parquet",
    )

    assert lake.read_bytes("curated/interactions/event_date=2024-01-01/x.parquet") == b"new"
    assert lake.head("curated/interactions/.tmp-x/event_date=2024-01-01/part") is None


def test_delete_prefix_batches_and_ignores_missing_keys(lake):
    for i in range(1203):
        lake.write_bytes(f"analytics/t/{i}", b"")
    lake.delete(["analytics/t/does-not-exist"])
    lake.delete_prefix("analytics/t/")
    assert list(lake.list_objects("analytics/")) == []
    assert lake.uri("a/b") == f"s3://{BUCKET}/a/b"
    assert lake.key_of(f"s3://{BUCKET}/a/b") == "a/b"


def test_delete_prefix_deletes_folder_markers_too(lake):
    # What the S3 console's "Create folder" leaves, inside and at the prefix itself.
    for key in ("analytics/t/", "analytics/t/part=1/", "analytics/t/part=1/file"):
        lake.write_bytes(key, b"")
    lake.delete_prefix("analytics/t/")
    client = boto3.client("s3", region_name=REGION)
    assert client.list_objects_v2(Bucket=BUCKET, Prefix="analytics/").get("Contents") is None


def test_children_are_the_folders_and_objects_directly_under_a_prefix(lake):
    client = boto3.client("s3", region_name=REGION)
    for key in ("raw/sales/a.csv", "raw/sale/b/c.csv", "raw/loose.csv", "raw/"):
        client.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    assert lake.list_children("raw/") == (["raw/sale/", "raw/sales/"], ["raw/loose.csv"])
    assert lake.list_children("nothing/") == ([], [])
