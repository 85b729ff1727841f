"""Landing files as they may arrive: plain CSV (`x.csv`) or gzip-compressed CSV (`x.csv.gz`).

A shop that ships large exports compresses them (the large benchmark shop's landing is ~50 GB as CSV and
~11 GB gzipped). Everything that lists, reads or rewrites landing files goes through these helpers so both
forms are handled the same way; DuckDB's `read_csv` and polars' `scan_csv` decompress `.gz` themselves.

Compression uses the standard library's gzip (zlib) at level 1: it is ~3x faster to write than the default
level 6 for ~25% larger files, and a landing file is written once and read once or twice. `mtime=0` keeps
the bytes identical for the same content (the generator promises byte-identical files for a seed).
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
from pathlib import Path
from typing import IO

CSV_SUFFIXES = (".csv", ".csv.gz")
GZIP_LEVEL = 1
_CSV_NAME = re.compile(r"(?i)\.csv(\.gz)?$")


class LandingFileError(ValueError):
    """Two forms of one landing file (x.csv and x.csv.gz) side by side: which one is current is unknown."""


def is_gzip(path: Path | str) -> bool:
    return str(path).lower().endswith(".gz")


def is_landing_csv(path: Path | str) -> bool:
    return bool(_CSV_NAME.search(Path(path).name))


def csv_stem(path: Path | str) -> str:
    """The file name without `.csv` or `.csv.gz`."""
    return _CSV_NAME.sub("", Path(path).name)


def csv_files(folder: Path, pattern: str = "*", strict: bool = True) -> list[Path]:
    """Landing CSV files in `folder` whose stem matches `pattern` (a glob), plain and gzipped, sorted.

    A stem present in both forms stops with LandingFileError naming both files (unless not `strict`):
    reading both would count every row twice, and picking one could read a stale copy.
    """
    if not folder.is_dir():
        return []
    found = sorted({*folder.glob(f"{pattern}.csv"), *folder.glob(f"{pattern}.csv.gz")})
    if not strict:
        return found
    by_stem: dict[str, Path] = {}
    for path in found:
        stem = csv_stem(path)
        if stem in by_stem:
            raise LandingFileError(
                f"{by_stem[stem].name} and {path.name} are both in {folder.name}/: the same file plain and "
                "compressed; nothing was read. Keep one of them (the current export) and run again."
            )
        by_stem[stem] = path
    return found


def csv_file(folder: Path, stem: str) -> Path | None:
    """The landing file `<stem>.csv` or `<stem>.csv.gz` in `folder` (LandingFileError if both), or None."""
    hits = [p for p in (folder / f"{stem}.csv", folder / f"{stem}.csv.gz") if p.exists()]
    if len(hits) == 2:
        raise LandingFileError(
            f"{hits[0].name} and {hits[1].name} are both in {folder.name}/: the same file plain and "
            "compressed; nothing was read. Keep one of them (the current export) and run again."
        )
    return hits[0] if hits else None


def open_bytes(path: Path | str) -> IO[bytes]:
    """The file's (decompressed) bytes as a binary stream."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def read_bytes(path: Path | str) -> bytes:
    with open_bytes(path) as fh:
        return fh.read()


def encode(path: Path | str, payload: bytes) -> bytes:
    """What goes on disk for `payload` at `path`: gzipped for `.gz` (deterministic, level 1), else as is."""
    return gzip.compress(payload, compresslevel=GZIP_LEVEL, mtime=0) if is_gzip(path) else payload


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write `payload` (compressed when the name ends in .gz) to a temporary file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(encode(path, payload))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def data_size(path: Path) -> int:
    """Bytes of CSV text in the file: its size, or for gzip the uncompressed size from the trailer.

    The gzip trailer (ISIZE, RFC 1952) holds the size modulo 2**32 of the last member; a file written
    here is one member, and a daily landing file is far below 4 GiB. For a larger or multi-member file the
    number is a lower bound, so the chunk budget that uses it stays an estimate, never a failure.
    """
    size = path.stat().st_size
    if not is_gzip(path) or size < 18:
        return size
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return max(size, int.from_bytes(fh.read(4), "little"))
