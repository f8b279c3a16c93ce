"""Reading a table file (CSV, TSV, gzipped, Parquet) into strings, whatever its dialect.

The delimiter (comma, semicolon, tab, pipe) is sniffed from the first lines, or taken from
a first line ``sep=;`` (written for Excel); a separator at the end of every line (empty
fields after the last named column) is ignored, never shifts the columns. Text is UTF-8
(with or without BOM), else cp1252. Any problem with the file itself is an ``InputError``
with a message and a hint. ``orders/ingest.py`` maps and validates what is read here.
"""


import csv
import gzip
import hashlib
import io
import re
import warnings
import zlib
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

from assistant.core.errors import InputError
from assistant.orders.values import to_dt, to_number

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".parquet", ".pq")
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def read_table(path: str | Path) -> pd.DataFrame:
    """Any table (CSV, CSV.gz, Parquet) with the same checks as orders files; columns whose
    every non-empty value is a number become numeric, empty cells become missing."""
    path = Path(path)
    frame, _, _ = read_raw_table(path, file_kind(path))
    frame = frame.replace("", pd.NA)
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            present = int(frame[col].notna().sum())
            numbers = pd.to_numeric(frame[col], errors="coerce")
            if numbers.notna().sum() < present:  # decimal commas ('2,55'), currency signs
                numbers = to_number(frame[col])
            if numbers.notna().sum() == present:
                frame[col] = numbers
    if frame.empty:
        raise InputError(f"{path.name} has a header but no rows.", "Add rows to the table.")
    return frame


def read_columns(path: str | Path) -> list[str]:
    """A table's column names as ``read_table`` finds them, with the same checks, reading
    only the header (a Parquet file's schema, a CSV's first rows)."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "parquet":
        try:
            return [str(c).strip() for c in pq.read_schema(path).names]
        except Exception:  # noqa: BLE001 - not readable as Parquet: read_raw_table says why
            pass
    frame, _, _ = read_raw_table(path, kind, nrows=5)
    return [str(c) for c in frame.columns]


def file_kind(path: Path) -> str:
    if not path.exists():
        raise InputError(f"File not found: {path}", "Check the path (relative paths start in "
                         "the current directory).")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an orders file.",
                         "Pass one .csv, .csv.gz or .parquet file.")
    name = path.name.lower()
    suffix = next((s for s in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True)
                   if name.endswith(s)), None)
    if suffix is None:
        shown = "".join(path.suffixes[-2:]) or "(none)"
        hint = "Save the orders as CSV (comma, semicolon, tab or pipe separated), .csv.gz or "
        hint += "Parquet."
        if name.endswith((".xlsx", ".xls", ".ods")):
            hint = "Open it in your spreadsheet program and save it as CSV, then load the CSV."
        raise InputError(
            f"{path.name}: unsupported file type {shown!r}; supported: "
            + ", ".join(SUPPORTED_SUFFIXES) + ".",
            hint,
        )
    if path.stat().st_size == 0:
        raise InputError(f"{path.name} is empty (0 bytes).",
                         "Export the orders again; the file has no content.")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if suffix in (".parquet", ".pq") or magic == b"PAR1":
        return "parquet"
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if suffix.endswith(".gz"):
        raise InputError(f"{path.name} is named .gz but is not gzip-compressed.",
                         "Rename it to .csv, or compress it with gzip.")
    return "csv"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _not_a_table(name: str, why: str) -> InputError:
    return InputError(
        f"{name} is not a table of orders: {why}.",
        "Pass a CSV (comma, semicolon, tab or pipe separated, with a header row), a .csv.gz "
        "or a Parquet file.",
    )


def read_raw_table(
    path: Path, kind: str, nrows: int | None = None
) -> tuple[pd.DataFrame, list[tuple[int, str]], list[str]]:
    """The file as a frame (text columns as strings, '' for empty), malformed lines, notes;
    ``nrows``: only the first rows of a CSV."""
    if kind == "parquet":
        return _read_parquet(path), [], []
    compression = "gzip" if kind == "gzip" else None
    head = _head_bytes(path, compression)
    if b"\x00" in head:
        raise _not_a_table(path.name, "it contains binary data")
    if not head.strip():
        raise InputError(f"{path.name} is empty (no header, no rows).",
                         "Export the orders again with a header row and data rows.")
    encoding = _guess_encoding(head)
    text = head.decode(encoding, errors="replace")
    declared = _declared_delimiter(text)  # Excel's "sep=;" first line
    delimiter = declared or _sniff_delimiter(text)
    malformed: list[tuple[int, str]] = []
    notes: list[str] = []
    for enc in dict.fromkeys((encoding, "cp1252", "latin-1")):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                raw = pd.read_csv(
                    path,
                    sep=delimiter,
                    dtype=str,
                    keep_default_na=False,
                    encoding=enc,
                    compression=compression,
                    on_bad_lines="warn",
                    skip_blank_lines=True,
                    # never the first column as index when rows have more fields than the
                    # header (a separator at the end of each line): columns would shift
                    index_col=False,
                    skiprows=_sep_line_rows(text) if declared else None,
                    nrows=nrows,
                    engine="c",
                )
            break
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise InputError(f"{path.name} is empty (no header, no rows).",
                             "Export the orders again with a header row and data rows.") from None
        except (pd.errors.ParserError, ValueError, OSError, EOFError, zlib.error) as exc:
            raise _not_a_table(path.name, short_error(exc)) from None
    else:  # pragma: no cover - latin-1 decodes any byte
        raise _not_a_table(path.name, "its text encoding could not be read")
    for w in caught:
        for m in re.finditer(r"Skipping line (\d+): (.*)", str(w.message)):
            malformed.append((int(m.group(1)), m.group(2).strip()))
        if "Length of header or names does not match" in str(w.message):
            notes.append("the rows have more fields than the header has names (a separator "
                         "at the end of each line?): the unnamed fields were ignored")
    # a BOM that survived (UTF-8 BOM before cp1252 text) is not part of the first name
    raw.columns = [str(c).strip().lstrip("\ufeff").removeprefix("\u00ef\u00bb\u00bf").strip()
                   for c in raw.columns]
    if raw.shape[1] < 2:
        tried = ", ".join(_DELIMITER_NAMES.values())
        raise _not_a_table(
            path.name,
            f"only one column ({raw.columns[0][:60]!r}) was found; the separator is none of "
            f"{tried}",
        )
    if _looks_like_data(raw.columns):
        raise InputError(
            f"{path.name} has no header row: its first line ({', '.join(raw.columns)[:80]}) "
            "looks like data.",
            "Add a first line naming the columns (e.g. customer,date,amount) and load again.",
        )
    return raw, malformed, notes


def _looks_like_data(names: pd.Index) -> bool:
    """True when most column names are numbers or dates (the header row is missing)."""
    names = pd.Series([str(n).removeprefix("Unnamed: ") for n in names], dtype="string")
    numeric = pd.to_numeric(names, errors="coerce").notna()
    dated = to_dt(names, "ISO8601").notna() | to_dt(names, "%d/%m/%Y").notna()
    return bool((numeric | dated).mean() >= 0.5)


def _head_bytes(path: Path, compression: str | None, size: int = 65536) -> bytes:
    try:
        if compression == "gzip":
            with gzip.open(path, "rb") as fh:
                return fh.read(size)
        with path.open("rb") as fh:
            return fh.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise _not_a_table(path.name,
                           f"it could not be decompressed ({short_error(exc)})") from None


def _guess_encoding(head: bytes) -> str:
    try:
        head.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is fine
        if exc.start >= len(head) - 4:
            return "utf-8-sig"
        return "cp1252"


def _sample_lines(text: str, limit: int = 50) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may end mid-line
    return lines[:limit]


def _declared_delimiter(text: str) -> str | None:
    """The delimiter of a first line ``sep=;`` (written for Excel by many exports)."""
    lines = _sample_lines(text, 1)
    m = re.fullmatch(r'\s*"?sep=(.)"?[,;\t|]*\s*', lines[0], re.IGNORECASE) if lines else None
    return m.group(1) if m and m.group(1) in _DELIMITERS else None


def _sep_line_rows(text: str) -> list[int]:
    """File line(s) to skip for the ``sep=`` line (blank lines before it count)."""
    for n, line in enumerate(text.splitlines()):
        if line.strip():
            return [n]
    return []


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header into the most columns, consistently: the share
    of the sampled lines with as many fields as the header first, then the header's width.
    Empty fields after the last named column (a separator at the end of the line, common in
    spreadsheet exports) do not break the consistency."""
    lines = _sample_lines(text)
    best, best_score = ",", (-1.0, 0)
    for delim in _DELIMITERS:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        consistent = sum(
            len(row) == width
            or (len(row) > width and not "".join(row[width:]).strip())
            for row in rows
        ) / len(rows)
        score = (consistent, width)
        if score > best_score:
            best, best_score = delim, score
    return best


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types (ArrowInvalid, OSError, ...)
        raise _not_a_table(path.name, f"it could not be read as Parquet ({short_error(exc)})") \
            from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.shape[1] < 2:
        raise _not_a_table(path.name, f"it has {df.shape[1]} column(s)")
    for col in df.columns:
        s = df[col]
        if not (is_numeric_dtype(s) or is_datetime64_any_dtype(s)) or s.dtype == bool:
            df[col] = s.astype("string").fillna("")
    return df.reset_index(drop=True)


def short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
