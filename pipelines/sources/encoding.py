"""Decode export files to text, and parse CSV text into all-string Polars frames with source row numbers.

Real exports arrive as UTF-8 (with or without a BOM), Windows-1252/Latin-1 (Excel on Western Windows) or
GBK (Excel on Chinese Windows). The rule is deterministic: strict UTF-8 first (a BOM is dropped), then the
one fallback encoding the caller declares (argument, or `SHOPLENS_SOURCE_ENCODING`, default cp1252), and
anything that still does not decode, or any file holding NUL bytes (binary: xlsx, images, UTF-16 without
a BOM), is rejected with an error naming the file and the byte offset.

Why not charset-normalizer (installed): it *guesses* among many encodings, and on short exports the guess
between cp1252 and GBK flips with a few characters. A declared fallback gives the same text every run; the
error message tells the user which encoding to declare.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
from pathlib import Path

import polars as pl

DEFAULT_FALLBACK = "cp1252"
ROW_COLUMN = "_source_row"
FILE_COLUMN = "_source_file"


class SourceDecodeError(ValueError):
    """A source file that cannot be read as text (binary, or bytes invalid in every allowed encoding)."""


def configured_fallback(fallback: str | None = None) -> str:
    """The fallback encoding: the argument, else SHOPLENS_SOURCE_ENCODING, else cp1252."""
    name = fallback or os.environ.get("SHOPLENS_SOURCE_ENCODING") or DEFAULT_FALLBACK
    try:
        return codecs.lookup(name).name
    except LookupError as exc:
        raise SourceDecodeError(f"unknown fallback encoding {name!r}") from exc


def decode_bytes(data: bytes, name: str, fallback: str | None = None) -> tuple[str, str]:
    """Decode `data` (from the file called `name`) and return (text, encoding used)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export: UTF-16 with a BOM is unambiguous, so accept it.
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise SourceDecodeError(f"{name}: invalid UTF-16 at byte {exc.start}: {exc.reason}") from exc
    nul = data.find(b"\x00")
    if nul >= 0:
        raise SourceDecodeError(
            f"{name}: binary content (NUL byte at offset {nul}); expected a text export (CSV/JSON lines)"
        )
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        enc = configured_fallback(fallback)
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError as exc:
            raise SourceDecodeError(
                f"{name}: not valid UTF-8 (byte {utf8_error.start}) nor {enc} (byte {exc.start}: "
                f"{data[exc.start : exc.start + 4]!r}); declare the file's encoding with "
                "SHOPLENS_SOURCE_ENCODING or --encoding"
            ) from exc


def read_bytes(path: Path) -> bytes:
    """Read a file, transparently gunzipping `.gz`; errors name the file."""
    raw = path.read_bytes()
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise SourceDecodeError(f"{path}: corrupt gzip stream: {exc}") from exc
    return raw


def read_text(path: Path, fallback: str | None = None) -> str:
    """The decoded text of a (possibly gzipped) text file."""
    return decode_bytes(read_bytes(path), str(path), fallback)[0]


def read_csv_strings(path: Path, fallback: str | None = None, separator: str = ",") -> pl.DataFrame:
    """Parse a CSV export into an all-String frame plus `_source_file` and `_source_row` (1-based data row).

    Every column stays text (no type sniffing: adapters cast explicitly and quarantine what fails); empty
    fields are null.
    Quoted fields may hold newlines; a data row is a CSV record, not a physical line.
    """
    text = read_text(path, fallback)
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            infer_schema=False,
            separator=separator,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise SourceDecodeError(f"{path}: cannot parse as CSV: {exc}") from exc
    # Empty and quoted-empty fields both mean null (the landing contract's "empty means null").
    frame = frame.rename({c: c.strip() for c in frame.columns}).with_columns(pl.all().replace("", None))
    return frame.with_row_index(ROW_COLUMN, offset=1).with_columns(
        pl.col(ROW_COLUMN).cast(pl.Int64), pl.lit(path.name).alias(FILE_COLUMN)
    )
