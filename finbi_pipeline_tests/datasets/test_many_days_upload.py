"""An upload spanning more days than one merge statement writes (ingest.MERGE_DAYS).

Real exports can span years (the Personalize POC data: 4,075 days); the merge writes them in
batches of days, which must not change what is accepted or counted as a duplicate.
Synthetic data, built here: runs without ../shared.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

from finbi_pipeline.resources.engine import DuckDBSession, OutOfEngineMemory

from ._pipeline import run_files

DAYS = 250  # more than two batches
START = dt.datetime(2020, 1, 1, 12, 0)


def _write(path: Path, rows: list[tuple]) -> Path:
    lines = ["user_id,item_id,event_type,timestamp"]
    lines += [f"{u},{i},{e},{int(t.replace(tzinfo=dt.UTC).timestamp())}" for u, i, e, t in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_multi_year_upload_merges_in_batches_and_dedups_across_them(tmp_path: Path) -> None:
    days = [START + dt.timedelta(days=n * 3) for n in range(DAYS)]  # about two years
    first = [("u1", f"i{n}", "VIEW", day) for n, day in enumerate(days)]
    first += [("u2", f"i{n}", "PURCHASE", day) for n, day in enumerate(days)]
    first += first[::50]  # 10 duplicates within the upload, in every batch
    # The second upload repeats one row of every tenth day (across all batches) and adds one.
    second = [first[n] for n in range(0, DAYS, 10)] + [("u3", "i0", "VIEW", days[-1])]
    files = [_write(tmp_path / "a.csv", first), _write(tmp_path / "b.csv", second)]

    run = run_files(tmp_path / "home", "interactions", files)

    assert run.success, run.failures
    a, b = run.uploads["a.csv"], run.uploads["b.csv"]
    assert (a["rows_read"], a["rows_accepted"], a["rows_duplicate"]) == (
        2 * DAYS + 10,
        2 * DAYS,
        10,
    )
    assert (b["rows_read"], b["rows_accepted"], b["rows_duplicate"]) == (DAYS // 10 + 1, 1, 25)
    assert a["rows_quarantined"] == b["rows_quarantined"] == 0
    [(rows, distinct_days)] = run.query(
        "SELECT COUNT(*), COUNT(DISTINCT event_date) FROM finbi.interactions"
    )
    assert (rows, distinct_days) == (2 * DAYS + 1, DAYS)
    assert (run.kpis["total_views"], run.kpis["total_purchases"]) == (DAYS + 1, DAYS)


def test_a_batch_that_runs_out_of_memory_is_merged_in_halves(tmp_path: Path, monkeypatch) -> None:
    """Under a low memory limit, days of many rows can outgrow it even MERGE_DAYS at a time:
    the batch is split until it fits, and what it had written before failing is not kept."""
    write_parquet = DuckDBSession.write_parquet
    failed_batches = []

    def out_of_memory_over_30_days(self, sql, uri, partition_by=None, scratch=False):
        stats = write_parquet(self, sql, uri, partition_by, scratch)
        days = re.findall(r"\(DATE '([\d-]+)'", sql)  # the batch's members, one per day
        if partition_by and len(days) > 30:
            failed_batches.append(len(days))
            # As if another thread had written a file too, which no smaller write overwrites.
            for day in days:
                for written in Path(uri, f"event_date={day}").glob("*.parquet"):
                    shutil.copy(written, written.with_name(f"other_thread_{written.name}"))
            raise OutOfEngineMemory("could not allocate block of size 256.0 KiB")
        return stats

    monkeypatch.setattr(DuckDBSession, "write_parquet", out_of_memory_over_30_days)
    days = [START + dt.timedelta(days=n * 3) for n in range(DAYS)]
    rows = [("u1", f"i{n}", "VIEW", day) for n, day in enumerate(days)]
    rows += rows[::50]  # duplicates within the upload, in every batch

    run = run_files(tmp_path / "home", "interactions", [_write(tmp_path / "a.csv", rows)])

    assert run.success, run.failures
    # Each 100-day batch fails, then each of its 50-day halves; the last batch is 50 days.
    assert failed_batches == [100, 50, 50, 100, 50, 50, 50]
    a = run.uploads["a.csv"]
    assert (a["rows_read"], a["rows_accepted"], a["rows_duplicate"]) == (DAYS + 5, DAYS, 5)
    [(stored, distinct)] = run.query(
        "SELECT COUNT(*), COUNT(DISTINCT event_date) FROM finbi.interactions"
    )
    assert (stored, distinct) == (DAYS, DAYS)  # no row twice, though failed batches wrote some
