"""The `finbi` command line, driven in-process with click's runner."""

import datetime as dt
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from finbi_pipeline import checks
from finbi_pipeline.assets import curated
from finbi_pipeline.cli import main
from finbi_pipeline.dashboard import queries
from finbi_pipeline.dashboard.extract import serving_path
from finbi_pipeline.money import format_money
from finbi_pipeline_tests.conftest import SAMPLE


@pytest.fixture
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", ["load", "run", "generate", "dashboard", "serve"])
def test_every_subcommand_has_help(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_load_puts_files_under_the_source_prefix(cli, finbi_home):
    result = cli("load", "--source", "sales", str(SAMPLE / "sales.csv"))

    assert result.exit_code == 0, result.output
    assert "raw/sales/sales.csv" in result.output
    landed = finbi_home / "lake" / "raw" / "sales" / "sales.csv"
    assert landed.read_bytes() == (SAMPLE / "sales.csv").read_bytes()


def test_load_refuses_two_files_that_would_land_as_one_key(tmp_path, finbi_home):
    good = tmp_path / "day.csv"
    good.write_bytes((SAMPLE / "sales.csv").read_bytes())
    (tmp_path / "other").mkdir()
    same_name = tmp_path / "other" / "day.csv"
    same_name.write_text("order_id,user_id,item_id,quantity,unit_price,timestamp,country\n")

    result = CliRunner().invoke(main, ["load", "--source", "sales", str(good), str(same_name)])

    assert result.exit_code == 2
    assert f"{good} and {same_name} would both land as raw/sales/day.csv" in result.output
    assert not (finbi_home / "lake" / "raw" / "sales" / "day.csv").exists()  # nothing landed


def test_load_says_when_it_replaces_a_key(cli, tmp_path):
    first = cli("load", "--source", "sales", str(SAMPLE / "sales.csv"))
    assert "replaces" not in first.output
    header_only = tmp_path / "sales.csv"
    header_only.write_text("order_id,user_id,item_id,quantity,unit_price,timestamp,country\n")

    again = cli("load", "--source", "sales", str(header_only))

    assert again.exit_code == 0
    assert "raw/sales/sales.csv" in again.output
    assert "replaces the key's previous file and its rows" in again.output


def test_load_refuses_an_unknown_source(cli, finbi_home):
    result = CliRunner().invoke(main, ["load", "--source", "nope", str(SAMPLE / "sales.csv")])

    assert result.exit_code == 2
    assert "unknown source 'nope'" in result.output
    assert "interactions, sales" in result.output
    assert not (finbi_home / "lake").exists()


@pytest.mark.parametrize("command", ["load", "run"])
def test_a_broken_sources_file_is_one_clear_error(finbi_home, tmp_path, monkeypatch, command):
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  shop:\n    kind: clicks\n")
    monkeypatch.setenv("FINBI_SOURCES", str(sources))
    args = (
        ["load", "--source", "shop", str(SAMPLE / "sales.csv")] if command == "load" else [command]
    )

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 1
    assert result.output == (
        f"Error: {sources}: source 'shop': kind must be 'interactions' or 'sales', not 'clicks'\n"
    )


@pytest.mark.parametrize("command", ["load", "run"])
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FINBI_HOME", "a-file", "is a file: point it at a folder"),
        ("FINBI_TARGET", "LOCAL", "FINBI_TARGET must be one of local, aws, not 'LOCAL'"),
    ],
    ids=["home-is-a-file", "unknown-target"],
)
def test_a_bad_setting_is_one_clear_error(tmp_path, monkeypatch, command, variable, value, message):
    if variable == "FINBI_HOME":
        (tmp_path / value).write_text("")
        value = str(tmp_path / value)
    monkeypatch.setenv(variable, value)
    load = ["load", "--source", "sales", str(SAMPLE / "sales.csv")]
    args = load if command == "load" else [command]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (".sneaky.csv", "may not start with '.'"),
        ("day.csv.part", "is taken for a temporary file"),
        ("x*.csv", "file names may not hold *, ?, ["),
        (os.fsdecode(b"caf\xe9.csv"), "caf\\xe9.csv: the file name is not UTF-8 text"),
    ],
    ids=["hidden", "temporary", "pattern", "not-utf8"],
)
def test_load_refuses_names_the_pipeline_would_not_read(tmp_path, name, message):
    file = tmp_path / name
    file.write_text("user_id,item_id,event_type,timestamp\n")
    result = CliRunner().invoke(main, ["load", "--source", "interactions", str(file)])
    assert result.exit_code == 2
    assert message in result.output


def test_run_prints_the_summary_and_succeeds(cli):
    cli("load", "--source", "interactions", str(SAMPLE / "interactions.csv"))
    cli("load", "--source", "sales", str(SAMPLE / "sales.csv"))

    result = CliRunner().invoke(main, ["run"])

    assert result.exit_code == 0, result.output
    assert "uploads ingested: 2" in result.output
    assert "quarantined 0" in result.output
    assert "conversion" in result.output and "AOV" in result.output
    assert "status: ok" in result.output


def test_run_warns_of_files_outside_every_declared_sources_folder(cli, finbi_home):
    cli("load", "--source", "interactions", str(SAMPLE / "interactions.csv"))
    raw = finbi_home / "lake" / "raw"
    (raw / "sale").mkdir()  # a typo for "sales"
    (raw / "sale" / "sales.csv").write_bytes((SAMPLE / "sales.csv").read_bytes())
    (raw / "loose.csv").write_bytes(b"user_id,item_id,event_type,timestamp\n")

    result = CliRunner().invoke(main, ["run"])

    assert result.exit_code == 0, result.output
    declared = "(raw/<source>/ for interactions, sales)"
    assert f"WARNING: raw/sale/: not in a declared source's folder {declared}" in result.output
    assert f"WARNING: raw/loose.csv: not in a declared source's folder {declared}" in result.output
    assert "its files are not ingested (rows ingested from them while" in result.output
    assert "uploads ingested: 1" in result.output


# Two runs in a fresh interpreter: everything, then one more upload (the incremental paths).
_TWO_RUNS = """
import sys
from pathlib import Path
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.runner import run_pipeline
from finbi_pipeline.resources import finbi_home

ok = [run_pipeline().success]
LocalLake(home=finbi_home()).upload_file(Path(sys.argv[1]), "raw/interactions/more.csv")
ok.append(run_pipeline().success)
print(ok, sorted({"pandas", "pyarrow", "numpy"} & set(sys.modules)))
"""


def test_a_run_loads_neither_pandas_nor_pyarrow(land, tmp_path):
    """Small results are rows, not frames, so a run of clean uploads never loads pandas,
    pyarrow and numpy (0.3 s and 80 MiB of every run process), which DuckDB would load to
    bind any query parameter."""
    land("interactions", SAMPLE / "interactions.csv")
    land("sales", SAMPLE / "sales.csv")
    more = tmp_path / "more.csv"
    more.write_text("user_id,item_id,event_type,timestamp\nUser_new,Item_1,VIEW,1744300000\n")

    done = subprocess.run(
        [sys.executable, "-c", _TWO_RUNS, str(more)], capture_output=True, text=True, check=True
    )

    assert done.stdout.strip().splitlines()[-1] == "[True, True] []", done.stdout + done.stderr


def test_run_exits_non_zero_when_a_blocking_check_fails(finbi_home, monkeypatch):
    monkeypatch.setattr(checks, "kpi_consistency_sql", lambda: "SELECT 'tampered' AS problem")
    result = CliRunner().invoke(main, ["run"])

    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED: ")]
    # Once, with what the check found.
    assert failed == [
        "FAILED: check kpi_summary_consistent on kpi_summary failed: problems: tampered"
    ]
    assert "status: failed" in result.output
    assert not serving_path(finbi_home).exists()  # the dashboard was not refreshed


def test_a_first_run_that_fails_reports_its_failure_alone(cli, finbi_home, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("could not allocate block of size 256.0 KiB")

    monkeypatch.setattr(curated, "merge_staged", out_of_memory)
    cli("load", "--source", "interactions", str(SAMPLE / "interactions.csv"))

    result = CliRunner().invoke(main, ["run"])

    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED: ")]
    # Each failed step, with its cause; no "summary unavailable: ... ingest_log does not
    # exist" after them: nothing was merged, so there is nothing to sum up.
    assert [line.split(":")[1].strip() for line in failed] == [
        "curated_interactions",
        "curated_sales",
    ]
    assert all("could not allocate block" in line for line in failed)


def test_retracting_every_upload_empties_the_dashboard(cli, finbi_home, tmp_path):
    assert "status: ok" in cli("run").output  # an empty lake: nothing to show is no error
    cli("load", "--source", "interactions", str(SAMPLE / "interactions.csv"))
    cli("load", "--source", "sales", str(SAMPLE / "sales.csv"))
    assert "status: ok" in cli("run").output
    for source, name in (("interactions", "interactions.csv"), ("sales", "sales.csv")):
        header_only = tmp_path / name
        header_only.write_text((SAMPLE / name).read_text().splitlines()[0] + "\n")
        cli("load", "--source", source, str(header_only))

    result = cli("run")

    assert result.exit_code == 0, result.output
    assert "rows (current uploads): read 0" in result.output
    info = queries.extract_info(queries.open_extract(serving_path(finbi_home)))
    assert (info["events"], info["sales_lines"]) == (0, 0)


def test_the_average_order_value_shows_the_same_cents_as_the_dashboard(cli, finbi_home, tmp_path):
    # 3.0149 / 3 = 1.00496...: 1.00, where 1.0050 stored, then rounded to cents, made 1.01.
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "order_id,user_id,item_id,quantity,unit_price,timestamp,country\n"
        "A-1,U1,I1,1,1.0049,2025-04-11 10:00:00,Spain\n"
        "A-2,U2,I1,1,1.0050,2025-04-11 11:00:00,Spain\n"
        "A-3,U3,I1,1,1.0050,2025-04-11 12:00:00,Spain\n"
    )
    cli("load", "--source", "sales", str(sales))

    result = cli("run")

    con = queries.open_extract(serving_path(finbi_home))
    day = dt.date(2025, 4, 11)
    shown = queries.kpis(con, queries.Filters(day, day)).average_order_value
    assert format_money(shown) == "1.00"
    assert "AOV 1.00" in result.output, result.output


def test_generate_writes_both_files(cli, tmp_path):
    result = cli("generate", "--rows", "500", "--out", str(tmp_path / "gen"), "--seed", "7")

    assert result.exit_code == 0, result.output
    lines = (tmp_path / "gen" / "interactions.csv").read_text().splitlines()
    assert lines[0] == "user_id,item_id,event_type,timestamp"
    assert len(lines) == 501
    assert (tmp_path / "gen" / "sales.csv").exists()
