"""Quoted fields as DuckDB's CSV reader finds them: only a quote at a field's start opens one."""

from finbi_pipeline.csv_quotes import QuotedFields


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
