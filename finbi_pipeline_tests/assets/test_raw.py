"""raw_uploads: each partition stages the upload it names, at the version it names."""

import dagster as dg

from finbi_pipeline.assets.raw import raw_uploads
from finbi_pipeline.ingest import staging_key
from finbi_pipeline.resources import build_resources
from finbi_pipeline.sensors import RANGE_END_TAG, RANGE_START_TAG
from finbi_pipeline.uploads import Upload, uploads_partitions

HEADER = "user_id,item_id,event_type,timestamp\n"


def test_a_superseded_version_is_skipped_not_staged_with_the_keys_new_content(tmp_path, instance):
    resources = build_resources("local")
    lake = resources["lake"]
    first = Upload.from_object(lake.upload_file(_csv(tmp_path, 3), "raw/interactions/a.csv"))
    # Replaced before the first version's run (or that version materialized again later).
    second = Upload.from_object(lake.upload_file(_csv(tmp_path, 1), "raw/interactions/a.csv"))
    instance.add_dynamic_partitions(uploads_partitions.name, [first.partition_key])

    result = dg.materialize(
        [raw_uploads], partition_key=first.partition_key, resources=resources, instance=instance
    )

    assert result.success
    (materialization,) = result.asset_materializations_for_node("raw_uploads")
    assert materialization.metadata["uploads"].value == 0
    assert lake.head(staging_key(second, "json")) is None  # nothing staged for the key


def _csv(tmp_path, rows: int):
    path = tmp_path / f"{rows}.csv"
    path.write_text(HEADER + "".join(f"U{i},I{i},VIEW,1700000000\n" for i in range(rows)))
    return path


def test_a_partition_shows_its_own_row_count_never_its_batchs(tmp_path, instance):
    resources = build_resources("local")
    lake = resources["lake"]
    a = Upload.from_object(lake.upload_file(_csv(tmp_path, 3), "raw/interactions/a.csv"))
    b = Upload.from_object(lake.upload_file(_csv(tmp_path, 1), "raw/interactions/b.csv"))
    instance.add_dynamic_partitions(uploads_partitions.name, [a.partition_key, b.partition_key])

    alone = dg.materialize(
        [raw_uploads], partition_key=a.partition_key, resources=resources, instance=instance
    )
    batch = dg.materialize(
        [raw_uploads],
        resources=resources,
        instance=instance,
        tags={RANGE_START_TAG: a.partition_key, RANGE_END_TAG: b.partition_key},
    )

    (one,) = alone.asset_materializations_for_node("raw_uploads")
    assert one.metadata["dagster/row_count"].value == 3
    # Dagster gives both partitions of the batch its metadata: no row count to mislead.
    both = batch.asset_materializations_for_node("raw_uploads")
    assert {m.partition for m in both} == {a.partition_key, b.partition_key}
    assert all("dagster/row_count" not in m.metadata for m in both)
    assert {m.metadata["rows_read"].value for m in both} == {4}
