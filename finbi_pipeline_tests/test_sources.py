"""Source declarations: the built-in file loads; a bad file fails naming file, source, field."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from finbi_pipeline.sources import (
    BUILTIN_SOURCES,
    CsvDialect,
    SourceConfigError,
    load_sources,
)

GOOD_COLUMNS = "    columns: {user_id: u, item_id: i, event_type: e, timestamp: t}\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def shop(settings: str) -> str:
    return "sources:\n  shop:\n" + settings


def test_builtin_sources_load():
    sources = load_sources()
    assert load_sources(BUILTIN_SOURCES) == sources
    assert set(sources) >= {"interactions", "sales"}

    interactions = sources["interactions"]
    assert interactions.kind == "interactions"
    assert interactions.csv == CsvDialect()
    assert interactions.event_types == ("VIEW", "ADD_TO_CART", "PURCHASE")
    assert interactions.timestamp_format == "epoch_seconds"
    assert interactions.timezone == "UTC"
    assert interactions.required_columns == ["user_id", "item_id", "event_type", "timestamp"]
    assert interactions.plausible_from == dt.date(1990, 1, 1)
    assert interactions.plausible_days_ahead == 1

    sales = sources["sales"]
    assert sales.kind == "sales"
    assert sales.timestamp_format == "%Y-%m-%d %H:%M:%S"
    assert sales.required_columns == ["order_id", "item_id", "quantity", "unit_price", "timestamp"]
    assert sales.file_column("user_id") == "user_id"  # optional, but mapped
    assert sales.file_column("country") == "country"


def test_a_full_declaration_loads(tmp_path):
    path = write(
        tmp_path,
        shop(
            "    kind: interactions\n"
            "    columns: {user_id: uid, item_id: sku, event_type: action, timestamp: at}\n"
            "    csv: {names: [at, uid, sku, action], delimiter: '|', encoding: LATIN-1}\n"
            "    values: {event_type: {' PV ': view, cart: add_to_cart}}\n"
            "    event_types: [view, add_to_cart]\n"
            "    timestamp: {format: epoch_millis, timezone: Europe/London}\n"
            "    integer_ids: [user_id]\n"
            "    plausible: {from: 2015-06-01, days_ahead: 3}\n"
        ),
    )
    spec = load_sources(path)["shop"]
    assert spec.csv == CsvDialect(
        delimiter="|", header=False, names=("at", "uid", "sku", "action"), encoding="latin-1"
    )
    assert spec.event_type_values == {"pv": "VIEW", "cart": "ADD_TO_CART"}
    assert spec.event_types == ("VIEW", "ADD_TO_CART")
    assert (spec.timestamp_format, spec.timezone) == ("epoch_millis", "Europe/London")
    assert spec.integer_ids == ("user_id",)
    assert (spec.plausible_from, spec.plausible_days_ahead) == (dt.date(2015, 6, 1), 3)


@pytest.mark.parametrize(
    ("settings", "field", "cause"),
    [
        pytest.param(
            "    kind: orders\n" + GOOD_COLUMNS,
            "kind",
            "must be 'interactions' or 'sales', not 'orders'",
            id="unknown-kind",
        ),
        pytest.param(
            "    kind: interactions\n    columns: {user_id: u, item_id: i, event_type: e}\n",
            "columns",
            "required canonical column(s) ['timestamp'] are not mapped",
            id="unmapped-required-column",
        ),
        pytest.param(
            "    kind: sales\n"
            "    columns: {order_id: o, item_id: i, quantity: q, timestamp: t, price: p}\n",
            "columns",
            "unknown canonical column(s) ['price']",
            id="unknown-canonical-column",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    csv: {encoding: cp1252}\n",
            "csv.encoding",
            "must be one of ('utf-8', 'latin-1', 'utf-16'), not 'cp1252'",
            id="bad-encoding",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    csv: {header: false}\n",
            "csv",
            "a file without a header needs 'names'",
            id="headerless-without-names",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    csv: {names: [u, i, e]}\n",
            "columns",
            "map to ['t'], which are not in csv.names",
            id="column-not-in-names",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    plausible: {from: yesterday}\n",
            "plausible.from",
            "must be a date like 1990-01-01, not 'yesterday'",
            id="bad-plausible-date",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    plausible: {days_ahead: soon}\n",
            "plausible.days_ahead",
            "must be a whole number of days, not 'soon'",
            id="bad-days-ahead",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    timestamp: {format: iso}\n",
            "timestamp.format",
            "must be one of ('epoch_seconds', 'epoch_millis', 'iso8601') or a strptime pattern",
            id="bad-timestamp-format",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    integer_ids: [event_type]\n",
            "integer_ids",
            "may only name user_id, item_id, order_id; got ['event_type']",
            id="bad-integer-ids",
        ),
        pytest.param(
            "    kind: sales\n    columns: [order_id, item_id]\n",
            "columns",
            "must map canonical column names",
            id="columns-not-a-mapping",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    csv: {delimeter: ';'}\n",
            "csv",
            "unknown setting(s) ['delimeter']; allowed: delimiter, quote, header, names",
            id="typo-in-csv",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    timezone: Europe/London\n",
            "unknown setting(s) ['timezone']",
            "(timezone belongs under timestamp:)",
            id="setting-at-the-wrong-level",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    timestamp: epoch_millis\n",
            "timestamp",
            "must be a mapping, not 'epoch_millis'",
            id="timestamp-not-a-mapping",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    timestamp: {timezone: Europe/Londn}\n",
            "timestamp.timezone",
            "'Europe/Londn' is not a time zone name",
            id="unknown-time-zone",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    timestamp: {timezone: America}\n",
            "timestamp.timezone",
            "'America' is not a time zone name",
            id="a-time-zone-folder",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    timestamp: {format: '%Y-%m-%d %Q'}\n",
            "timestamp.format",
            "%Q is not a directive FinBI can parse",
            id="unknown-strptime-directive",
        ),
        pytest.param(
            "    kind: interactions\n"
            + GOOD_COLUMNS
            + "    timestamp: {format: '%Y-%m-%dT%H:%M:%S%z'}\n",
            "timestamp.format",
            "%z (a UTC offset or zone in each value) is not supported in a pattern: "
            "use format iso8601",
            id="utc-offsets",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    csv: {delimiter: ';;'}\n",
            "csv.delimiter",
            "must be one character",
            id="two-character-delimiter",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    csv: {delimiter: '\"'}\n",
            "csv.delimiter and csv.quote must differ",
            "",
            id="delimiter-is-the-quote",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    csv: {header: 'false', names: [u]}\n",
            "csv.header",
            "must be true or false, not 'false'",
            id="header-as-text",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    event_types: VIEW\n",
            "event_types",
            "must be a list, e.g. [a, b], not 'VIEW'",
            id="event-types-not-a-list",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    values: {event_type: {01: VIEW}}\n",
            "values.event_type",
            "1: 'VIEW' must map text to text",
            id="value-key-read-as-a-number",
        ),
        pytest.param(
            "    kind: sales\n"
            "    columns: {order_id: o, item_id: i, quantity: q, unit_price: p, timestamp: t}\n"
            "    event_types: [VIEW]\n",
            "values and event_types",
            "apply to interactions sources only",
            id="event-types-on-sales",
        ),
        pytest.param(
            "    kind: interactions\n" + GOOD_COLUMNS + "    plausible: {days_ahead: -5}\n",
            "plausible.days_ahead",
            "must be 0 or more, not -5",
            id="negative-days-ahead",
        ),
    ],
)
def test_errors_name_file_source_and_field(tmp_path, settings, field, cause):
    path = write(tmp_path, shop(settings))
    with pytest.raises(SourceConfigError) as raised:
        load_sources(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: source 'shop': {field}")
    assert cause in message


def test_the_failing_source_is_named_among_good_ones(tmp_path):
    good = "    kind: interactions\n" + GOOD_COLUMNS
    path = write(tmp_path, "sources:\n  ok:\n" + good + "  broken:\n    kind: nope\n")
    with pytest.raises(SourceConfigError, match=re.escape(f"{path}: source 'broken': kind")):
        load_sources(path)


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        pytest.param("", "expected a non-empty mapping under 'sources:'", id="empty"),
        pytest.param("sources: {}\n", "expected a non-empty mapping under 'sources:'", id="none"),
        pytest.param("- a\n- b\n", "expected a non-empty mapping under 'sources:'", id="a-list"),
        pytest.param("sources: [\n", "cannot read sources file", id="bad-yaml"),
    ],
)
def test_file_level_errors_name_the_file(tmp_path, body, cause):
    path = write(tmp_path, body)
    with pytest.raises(SourceConfigError) as raised:
        load_sources(path)
    assert str(raised.value).startswith(f"{path}: {cause}")


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(SourceConfigError, match=re.escape(f"{path}: cannot read sources file")):
        load_sources(path)


def test_a_source_that_is_not_a_mapping_is_named(tmp_path):
    path = write(tmp_path, "sources:\n  shop: interactions\n")
    with pytest.raises(SourceConfigError, match=re.escape(f"{path}: source 'shop': expected")):
        load_sources(path)


def test_bad_source_names_are_rejected(tmp_path):
    path = write(tmp_path, "sources:\n  'my shop':\n    kind: interactions\n" + GOOD_COLUMNS)
    with pytest.raises(SourceConfigError, match="source 'my shop': names may only hold"):
        load_sources(path)


def test_a_source_name_yaml_reads_as_a_number_is_named(tmp_path):
    path = write(tmp_path, "sources:\n  123:\n    kind: interactions\n" + GOOD_COLUMNS)
    with pytest.raises(SourceConfigError, match="source '123': a source name must be text"):
        load_sources(path)


def test_day_first_dates_and_padding_free_directives_load(tmp_path):
    path = write(
        tmp_path,
        shop(
            "    kind: interactions\n"
            + GOOD_COLUMNS
            + "    timestamp: {format: '%-d/%-m/%Y %I:%M %p', timezone: America/New_York}\n"
        ),
    )
    assert load_sources(path)["shop"].timestamp_format == "%-d/%-m/%Y %I:%M %p"


def test_utc_may_be_written_in_any_case(tmp_path):
    path = write(
        tmp_path,
        shop("    kind: interactions\n" + GOOD_COLUMNS + "    timestamp: {timezone: utc}\n"),
    )
    assert load_sources(path)["shop"].timezone == "utc"
