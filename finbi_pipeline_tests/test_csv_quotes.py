"""Quoted fields as DuckDB's CSV reader finds them: only a quote at a field's start opens one."""

import pytest

from finbi_pipeline.csv_quotes import QuotedFields, unclosed_quote


def unquoted_text(quoted: QuotedFields, block: bytes) -> list[bytes]:
    return [block[start:stop] for start, stop in quoted.unquoted(block)]


def test_quotes_inside_unquoted_fields_are_text():
    quoted = QuotedFields('"', ",")
    assert unquoted_text(quoted, b'a,42",I"1\nb,c\n') == [b'a,42",I"1\nb,c\n']
    assert not quoted.in_quotes


def test_a_quoted_field_holds_delimiters_newlines_and_doubled_quotes():
    quoted = QuotedFields('"', ";")
    block = b'a;"x;""y""\n\nz";b\n"q"\n'
    assert unquoted_text(quoted, block) == [b"a;", b";b\n", b"\n"]
    assert not quoted.in_quotes


def test_a_quoted_field_goes_on_into_the_next_block():
    quoted = QuotedFields('"', ",")
    assert unquoted_text(quoted, b'a,"x\n') == [b"a,"]
    assert quoted.in_quotes
    assert unquoted_text(quoted, b'\n"",y""\n') == []  # "" is a quote: still inside
    assert quoted.in_quotes
    assert unquoted_text(quoted, b'z",b\n') == [b",b\n"]
    assert not quoted.in_quotes


def test_skipping_line_ends_between_quoted_fields_keeps_the_empty_lines_outside():
    quoted = QuotedFields('"', ",", skip_line_ends=True)
    block = b'"a","b"\r\n"c"\n\nx,"\n\n"\n'
    assert unquoted_text(quoted, block) == [b"", b"\n\nx,", b"\n"]
    # Without skipping, every line end outside quotes is in a range.
    assert unquoted_text(QuotedFields('"', ","), block) == [b"", b"\r\n", b"\n\nx,", b"\n"]


def test_a_quote_one_space_into_a_field_opens_it_and_quoted_parts_after_spaces_continue_it():
    quoted = QuotedFields('"', ",")
    # As DuckDB reads them: ` "b\n"` is the field b\n, `"c" "d"` the field c d; two spaces
    # before a quote make it text.
    block = b'a, "b\n",  "x,"c" "d\n"\n'
    assert unquoted_text(quoted, block) == [b"a, ", b',  "x,', b"\n"]  # DuckDB agrees


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'a,b\n1,"x\n2,3\n', (2, 2)),
        (b'a,b\n1,"x\ny"\n2,"3', (4, 2)),  # the last line, without a line end
        (b'a,b,c\n"1,2",3,"x', (2, 3)),  # a delimiter inside an earlier quoted field
        (b'a,b\n1, "x\n2,3', (2, 2)),  # one space in: opens
        (b'a,b\n1,"x"\n2,3\n', None),
        (b'a,b\n1,4"2\n2,3\n', None),  # a stray quote is text
        (b'a,b\n"1","x""y"\n"2","3"', None),
    ],
)
def test_unclosed_quote_names_the_line_and_field_wherever_the_chunks_are_cut(data, where):
    for size in range(1, len(data) + 1):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert unclosed_quote(chunks, '"', ",") == where
