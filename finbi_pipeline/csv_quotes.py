"""Where a CSV's quoted fields are, read as DuckDB reads them, for the checks and line
numbers that look at a file's bytes (as UTF-8: `utf8_chunks`).

A quote opens a quoted field at the start of a field, or after one space there (`a, "b"`):
anywhere else (`42"`, `I"1`, `a,  "b"`) it is text. Inside a quoted field a doubled quote is
a quote and the next single one closes it, unless spaces and another quote follow, which
DuckDB reads as the same field going on (`"a" "b"` is `a b`). Counting quotes instead
(odd: inside) goes wrong from the first stray one to the end of the file.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator

# A line end followed by an empty line (LF or CRLF).
LINE_BEFORE_EMPTY = re.compile(rb"\n(?=\r?\n)")


def whole_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The bytes of `chunks` again, in blocks that each start at a line start and end at a
    line end (the last one perhaps without it), as `QuotedFields` reads them."""
    pending: list[bytes] = []  # the start of a line the chunks so far have not ended
    for chunk in chunks:
        end = chunk.rfind(b"\n") + 1
        if end:
            yield b"".join([*pending, chunk[:end]])
            pending = [chunk[end:]]
        else:
            pending.append(chunk)
    if any(pending):
        yield b"".join(pending)


class QuotedFields:
    """Follows quoted fields through a CSV read in blocks, each starting at a line start.

    Byte searches and a regular expression jump from one quoted field to the next, so
    bytes without quotes cost nothing in Python.
    """

    def __init__(self, quote: str, delimiter: str, skip_line_ends: bool = False):
        """`skip_line_ends`: a line end between two quoted fields (`"a"\n"b"`) may fall
        inside one range the walk jumps over, which makes a file of quoted fields one jump
        per block instead of one per field; for callers that only look for empty lines."""
        self._quote = quote.encode()
        self._field_ends = (delimiter.encode()[0], 0x0A)  # bytes a field starts after
        q, d = re.escape(self._quote), re.escape(delimiter.encode())
        # To the quote that closes the field (other bytes and doubled quotes before it, and
        # quoted parts after spaces), and on over the quoted fields that follow it at once.
        part = rb"[^" + q + rb"]*(?:" + q + q + rb"[^" + q + rb"]*)*" + q + rb"(?!" + q + rb")"
        rest_of_field = part + rb"(?: *" + q + part + rb")*"
        between = (rb"(?:" + d + rb"|\r?\n)" if skip_line_ends else d) + rb" ?"
        self._closing = re.compile(rest_of_field + rb"(?:" + between + q + rest_of_field + rb")*")
        self.in_quotes = False  # at the end of the blocks seen so far

    def unquoted(self, block: bytes) -> Iterator[tuple[int, int]]:
        """The (start, stop) ranges of `block` outside quoted fields, in order; consume it
        whole before passing the next block."""
        at = 0
        while at < len(block):
            if self.in_quotes:
                closed = self._closing.match(block, at)
                if closed is None:  # the field goes on in the next block
                    return
                at, self.in_quotes = closed.end(), False
                continue
            stop = self._opening(block, at)
            yield at, stop
            if stop == len(block):
                return
            at, self.in_quotes = stop + 1, True

    def _opening(self, block: bytes, at: int) -> int:
        """Where the next quote that starts a field is, from `at` on (the block's length if
        none). `bytes.find` is far faster than a regular expression with a lookbehind."""
        found = block.find(self._quote, at)
        while found > 0 and not self._starts_field(block, found):
            found = block.find(self._quote, found + 1)
        return len(block) if found < 0 else found

    def _starts_field(self, block: bytes, at: int) -> bool:
        """Whether the quote at `at` (> 0) opens a field: at its start, or one space in."""
        before = block[at - 1]
        if before in self._field_ends:
            return True
        return before == 0x20 and (at == 1 or block[at - 2] in self._field_ends)


def unclosed_quote(chunks: Iterable[bytes], quote: str, delimiter: str) -> tuple[int, int] | None:
    """Where the quote is that opens a field the file never closes: (its line, its field's
    position in the record), both from 1; None when every quoted field closes.

    `chunks` are the file's bytes in order, cut anywhere.
    """
    quoted = QuotedFields(quote, delimiter)
    lines = 0  # line ends before the current block
    opened = None
    for block in whole_lines(chunks):
        last = None
        for _, stop in quoted.unquoted(block):
            last = stop
        if quoted.in_quotes and last is not None and last < len(block):
            line_start = block.rfind(b"\n", 0, last) + 1
            opened = (lines + block.count(b"\n", 0, last) + 1, block[line_start:last])
        lines += block.count(b"\n")
    if not quoted.in_quotes or opened is None:
        return None
    # Its field: one more than the delimiters outside quoted fields before it on its line
    # (a record that began on an earlier line is counted from this line's start).
    line, before = opened
    separators = QuotedFields(quote, delimiter).unquoted(before)
    return line, 1 + sum(before.count(delimiter.encode(), a, b) for a, b in separators)


def utf8_chunks(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """A CSV's bytes with UTF-16 (little-endian, the one DuckDB reads, unless a byte order
    mark says otherwise) transcoded to UTF-8, a chunk at a time, so that line ends, quotes
    and delimiters are the bytes the checks look for. Other encodings pass as they are:
    UTF-8 and Latin-1 agree on those bytes."""
    if encoding != "utf-16":
        yield from chunks
        return
    decoder = None
    for chunk in chunks:
        if decoder is None:
            order = "utf-16-be" if chunk.startswith(codecs.BOM_UTF16_BE) else "utf-16-le"
            decoder = codecs.getincrementaldecoder(order)(errors="replace")
            chunk = chunk.removeprefix(codecs.BOM_UTF16_BE).removeprefix(codecs.BOM_UTF16_LE)
        yield decoder.decode(chunk).encode()
    if decoder is not None:
        yield decoder.decode(b"", final=True).encode()
