"""Asset metadata previews as the Dagster UI shows them."""

from decimal import Decimal

from finbi_pipeline.metadata import markdown_preview, markdown_table
from finbi_pipeline.resources.engine import QueryResult


def test_a_preview_is_a_markdown_table_of_the_rows():
    result = QueryResult(
        ("item_id", "conversion_rate", "net_revenue"),
        ("VARCHAR", "DOUBLE", "DECIMAL(18,4)"),
        [("Item_1", 0.25, Decimal("12.5000")), ("Item_2", None, None)],
    )

    lines = markdown_preview(result).value.splitlines()

    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == list(result.columns)
    assert [cell.strip() for cell in lines[2].split("|")[1:-1]] == ["Item_1", "0.25", "12.5000"]
    assert [cell.strip() for cell in lines[3].split("|")[1:-1]] == ["Item_2", "", ""]


def test_money_is_shown_as_stored_and_numbers_align_right():
    result = QueryResult(
        ("event_type", "gross_revenue", "orders"),
        ("VARCHAR", "DECIMAL(18,4)", "BIGINT"),
        [("VIEW", Decimal("12441865.8100"), 815391)],
    )

    header, rule, row = markdown_preview(result).value.splitlines()

    assert [cell.strip() for cell in row.split("|")[1:-1]] == ["VIEW", "12441865.8100", "815391"]
    # Markdown alignment: text left, numbers right.
    alignments = [cell.strip() for cell in rule.split("|")[1:-1]]
    assert [a.startswith(":") for a in alignments] == [True, False, False]
    assert [a.endswith(":") for a in alignments] == [False, True, True]


def test_an_empty_result_says_so():
    assert markdown_table(("a", "b"), []).value == "_no rows_"
