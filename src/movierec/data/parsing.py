"""Reading ratings text with pandas' C parser, and saying where in a file a problem is.

The toolkit every reader shares (MovieLens layouts, Netflix, generic files):

- :func:`check_file`, :func:`check_text`: refuse a missing, empty or binary file before parsing.
- :func:`read_text`: ``pd.read_csv`` with the C engine, every parser error a :class:`DataError`
  naming the file and line. ``::`` separators are rewritten to a one-byte separator in memory
  first, because pandas parses multi-character separators with its slow Python engine. With
  ``progress``, text files of :data:`PROGRESS_BYTES` and up show a bar of the bytes parsed (25M
  ratings are a 615 MiB CSV).
- :func:`locate_row`, :func:`locate_first`, :func:`row_locator`: a parsed row as a person finds
  it, a text line or a Parquet row and its row group.
- :func:`sniff_separator`, :func:`separator_hint`: which separator a line uses, to say when a
  file was read with the wrong one.
- :func:`guard`: what pandas, numpy or pyarrow raise on odd content, as a :class:`DataError`.
- :data:`FRAME`, :data:`ITEMS_FRAME`, :data:`USERS_FRAME`: the "paths" of ratings and metadata
  handed over as DataFrames; their rows are located by position (``row 3 (iloc 2)``), so the
  file readers' checks word a frame's errors too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.errors import DataError

SEPARATORS = ("::", "\t", ",", ";", "|")
SEP_NAMES = {"::": "'::'", "\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}
DAT_SEP = "\x1f"  # ASCII unit separator: stands in for "::" so pandas' C parser can split
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
SCAN_CHUNK = 1 << 22  # bytes per read while looking for NUL bytes
PROGRESS_BYTES = 64 << 20  # text files from this size show a reading bar (when asked to)
# Leading bytes of files people mistake for ratings text.
MAGIC = (
    (b"PK\x03\x04", "a zip archive; extract it first and pass the extracted file or folder"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first"),
    (b"PAR1", "a Parquet file; give it a .parquet suffix"),
    (b"\x89PNG", "a PNG image, not ratings"),
    (b"\xff\xfe", "UTF-16 text; convert it to UTF-8"),
    (b"\xfe\xff", "UTF-16 text; convert it to UTF-8"),
)
PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
# Data handed over as DataFrames go through the file readers' checks under these names.
FRAME = Path("the ratings DataFrame")
ITEMS_FRAME = Path("the items DataFrame")
USERS_FRAME = Path("the users DataFrame")
FRAMES = (FRAME, ITEMS_FRAME, USERS_FRAME)


def check_file(path: Path) -> None:
    """Refuse a path that is missing, not a file, or empty, before anything parses it."""
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path")
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it should hold ratings, one per line")


def check_text(path: Path) -> None:
    """Refuse a file that is not text: known binary formats by their first bytes, and any
    NUL byte (never in UTF-8 or latin-1 ratings text), with the line it is on."""
    with path.open("rb") as handle:
        chunk = handle.read(SCAN_CHUNK)
        for magic, what in MAGIC:
            if chunk.startswith(magic):
                raise DataError(f"{path} is not a ratings text file: it is {what}")
        offset = 0
        while chunk:
            if (at := chunk.find(b"\x00")) >= 0:
                line = _line_at(path, offset + at)
                raise DataError(
                    f"{path}: line {line} holds a NUL byte (byte {offset + at:,}); this is "
                    f"binary data, not ratings text. Pass the right file, or re-export it as "
                    f"UTF-8 text"
                )
            offset += len(chunk)
            chunk = handle.read(SCAN_CHUNK)


def _line_at(path: Path, offset: int) -> int:
    """The 1-based line holding byte ``offset`` of ``path`` (error path only)."""
    with path.open("rb") as handle:
        return handle.read(offset).count(b"\n") + 1


def read_text(
    path: Path,
    *,
    sep: str,
    names: Sequence[str] | None = None,
    header: int | None = None,
    encoding: str = "utf-8",
    quoting: int = csv.QUOTE_MINIMAL,
    dtype: Any = None,
    checked: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """``pd.read_csv`` with the C engine; ``::`` rewritten first; errors become DataError.

    ``checked``: the caller has already run :func:`check_text` on ``path``. ``progress``: show
    a bar of the bytes parsed on stderr when the file has at least :data:`PROGRESS_BYTES`.
    """
    if not checked:
        check_file(path)
        check_text(path)
    source: Any = path
    given_sep = sep
    if sep == "::":
        source = io.BytesIO(path.read_bytes().replace(b"::", DAT_SEP.encode()))
        sep = DAT_SEP
    try:
        with warnings.catch_warnings(), _progress_source(source, path, progress) as source:
            # pandas only warns (and drops data) when a line has more fields than names.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                source,
                sep=sep,
                names=names,
                header=header,
                index_col=False,
                encoding=encoding,
                quoting=quoting,
                dtype=dtype,
                engine="c",
                skip_blank_lines=True,
                keep_default_na=dtype is None,
            )
    except pd.errors.ParserWarning as err:
        expected = len(names) if names is not None else None
        raise DataError(_too_many_fields(path, given_sep, expected)) from err
    except UnicodeDecodeError as err:
        raise DataError(decode_error(path, encoding, err)) from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path} has no data rows; it is empty") from err
    except pd.errors.ParserError as err:
        if match := PARSER_FIELDS.search(str(err)):
            expected_count, line, seen = match.groups()
            raise DataError(
                f"{path}: line {line} has {seen} fields, expected {expected_count} like the "
                f"lines before it; each line needs the same fields (is a field quoted badly?)"
            ) from err
        raise DataError(f"cannot parse {path}: {first_error_line(err)}") from err
    except (ValueError, OSError) as err:
        raise DataError(f"cannot parse {path}: {first_error_line(err)}") from err


@contextlib.contextmanager
def _progress_source(source: Path | io.BytesIO, path: Path, show: bool) -> Iterator[Any]:
    """``source`` as pandas should read it: itself, or (``show``, and a file of at least
    :data:`PROGRESS_BYTES`) a buffered reader that advances a bar of the bytes read on stderr.

    pandas' C parser pulls a file object in blocks, so the bar costs one update per block and
    the parse (its speed, results and errors) stays exactly that of reading the path.
    """
    size = path.stat().st_size
    if not show or size < PROGRESS_BYTES:
        yield source
        return
    from tqdm.auto import tqdm

    with (
        tqdm(
            total=size,
            desc=f"reading {path.name}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=False,
        ) as bar,
        source if isinstance(source, io.BytesIO) else path.open("rb") as raw,
    ):
        yield io.BufferedReader(_CountingReader(raw, bar.update), buffer_size=1 << 20)


class _CountingReader(io.RawIOBase):
    """A binary stream that reports how many bytes each read returned (for a progress bar)."""

    def __init__(self, raw: Any, advance: Any) -> None:
        super().__init__()
        self._raw, self._advance = raw, advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer) or 0
        self._advance(count)
        return count


def decode_error(path: Path, encoding: str, err: UnicodeDecodeError) -> str:
    """Where the first undecodable byte of ``path`` is; pandas' offset is within a chunk."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
        start, reason = err.start, err.reason
    except UnicodeDecodeError as full:
        start, reason = full.start, full.reason
    line = data.count(b"\n", 0, start) + 1
    return (
        f"{path}: line {line} is not {encoding} text ({reason} at byte {start:,}); convert the "
        f"file to {encoding}, or check that it is a ratings file at all"
    )


def _fields_per_line(path: Path, sep: str) -> np.ndarray:
    """Fields on each physical line of ``path`` (quotes ignored; error path only)."""
    data = path.read_bytes()
    if sep == "::":
        data = data.replace(b"::", DAT_SEP.encode())
        sep = DAT_SEP
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    seps = np.flatnonzero(raw == ord(sep))
    return np.bincount(np.searchsorted(newlines, seps), minlength=len(newlines) + 1) + 1


def _too_many_fields(path: Path, sep: str, expected: int | None) -> str:
    hint = "each line needs exactly the same fields"
    if len(sep) == 1 or sep == "::":
        counts = _fields_per_line(path, sep)
        if expected is None:  # a header: the first non-blank line's count
            expected = int(counts[0])
        longer = np.flatnonzero(counts > expected)
        if len(longer):
            line = int(longer[0])
            return (
                f"{path}: line {line + 1} has {int(counts[line])} fields, more than the "
                f"{expected} expected; {hint}"
            )
    wanted = f"the {expected} fields expected" if expected else "the header's fields"
    return f"{path}: some lines have more than {wanted}; {hint}"


def first_error_line(err: BaseException) -> str:
    """The first line of an exception's message (pandas' run to several), for a one-line error."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def first_text_line(path: Path) -> str:
    """The first non-blank line of ``path``, to sniff its separator and header from."""
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                return raw.decode("utf-8", errors="replace").rstrip("\r\n")
    raise DataError(f"{path} holds only blank lines; it should hold ratings, one per line")


def sniff_separator(line: str) -> str | None:
    """The separator of a delimited line: ``::`` if present, else the most frequent of
    tab, comma, semicolon and pipe; None if the line has none of them."""
    if "::" in line:
        return "::"
    counts = {sep: line.count(sep) for sep in SEPARATORS[1:]}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else None


def separator_hint(path: Path, expected: str) -> str:
    """``"; the file seems to use comma ..."`` when its first line is split by another one."""
    try:
        found = sniff_separator(first_text_line(path))
    except DataError:
        return ""
    if found is None or found == expected:
        return ""
    return (
        f"; its first line seems to use {SEP_NAMES[found]} between fields, not "
        f"{SEP_NAMES.get(expected, repr(expected))}: is it the wrong file or separator?"
    )


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is read as Parquet (by its suffix); its rows are then located by row."""
    return path.suffix.lower() in PARQUET_SUFFIXES


def locate_row(path: Path, line_offset: int, row: int) -> str:
    """Row ``row`` (0-based, in file order) as a person finds it: a line, or a Parquet row and
    its row group, or a DataFrame's row and its position."""
    if path in FRAMES:
        return f"row {row + 1} (iloc {row})"
    if is_parquet(path):
        return f"row {row + 1}{_row_group(path, row)}"
    return f"line {row + 1 + line_offset}"


def locate_first(path: Path, line_offset: int, bad: np.ndarray) -> str:
    """Where the first True of ``bad`` is: a line of a text file or a row of a Parquet file."""
    return locate_row(path, line_offset, int(np.flatnonzero(bad)[0]))


def row_locator(path: Path, line_offset: int) -> Callable[[int], str]:
    """:func:`locate_row` for one file: what the policies call to name a row in a message."""

    def locate(row: int) -> str:
        return locate_row(path, line_offset, row)

    return locate


def _row_group(path: Path, row: int) -> str:
    try:
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(path).metadata
        ends = np.cumsum([metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)])
    except Exception:  # only decorates a message that is already being raised
        return ""
    group = int(np.searchsorted(ends, row, side="right"))
    return f" (row group {group})" if group < len(ends) else ""


@contextlib.contextmanager
def guard(path: Path) -> Iterator[None]:
    """Turn what pandas, numpy or pyarrow raise on odd content into a DataError naming ``path``;
    the readers' specific checks catch what they can with a line number first."""
    try:
        yield
    except DataError:
        raise
    except (
        ValueError,
        TypeError,
        OverflowError,
        KeyError,
        IndexError,
        OSError,
        csv.Error,
    ) as err:
        raise DataError(f"cannot read {path}: {first_error_line(err)}") from err
