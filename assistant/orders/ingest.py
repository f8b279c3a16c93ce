"""Read order files (CSV, gzipped CSV, Parquet), map their columns onto Tailor's canonical
order fields, validate every row (vectorized) and report what was rejected and why.

Canonical fields (one row per order line):

=============  ==========================  ===================================================
field          required                    when the column is absent
=============  ==========================  ===================================================
customer       yes                         -
timestamp      yes                         -
amount         one of amount / unit_price  quantity * unit_price
unit_price     one of amount / unit_price  abs(amount / quantity)  (amount when no quantity)
quantity       no                          1 (-1 when the amount is negative)
order_id       no                          derived: ``customer@YYYY-mm-ddTHH:MM:SS``
item           no                          the description when there is one, else "unknown"
description    no                          "" (empty)
country        no                          "Unknown"
=============  ==========================  ===================================================

So a file with only ``customer_id, date, dollar_value`` loads: each row becomes one order
line of quantity 1 priced at its value. Columns are found by name through known aliases
(case, spaces, underscores, dashes and dots ignored); ``mapping`` (canonical field -> source
column, the CLI's ``--map field=column``) wins over aliases.

Returns: a row whose quantity is negative (amount, when there is no quantity column), or
whose order id (from the file, never a derived one) starts with
``return_prefix`` ("C" by default, as in the UCI Online Retail data), has ``is_return``
True. Returns are kept; their quantity and amount are always negative, unit_price positive.

Every row that cannot be used gets exactly one reason (the first that applies, in the order
of ``REJECT_REASONS``), is counted in ``IngestResult.rejected`` and, when ``rejects_path``
is given, written there as read, with a ``row`` column (1-based position among the rows
parsed) and a ``reason`` column. Nothing is dropped silently.

Reading: the delimiter (comma, semicolon, tab, pipe) is sniffed from the first lines, or
taken from a first line ``sep=;`` (written for Excel); a separator at the end of every line
(empty fields after the last named column) is ignored, never shifts the columns. Text
is UTF-8 (with or without BOM), else cp1252. Ids written as floats (``17850.0``) become
``17850``. Numbers accept currency signs and thousands separators, and decimal commas
(``2,55``; ``1.234,50``); a lone ``1,234`` is read as one thousand two hundred and
thirty-four. Dates: ISO 8601 (offsets converted to UTC, then made naive), day-first and
month-first with ``/ . -``, month names, ``YYYYMMDD`` and unix seconds/milliseconds; the
format is chosen on a sample of distinct values (an all-ambiguous sample, every day <= 12,
reads day-first). A timestamp column where most values fail is an error, not a reject.
Dates before ``DATE_MIN`` (1970-01-01) or after ``DATE_MAX`` (2099-12-31) are rejected as
``date_out_of_range``: placeholders like 1900-01-01 or 2999-01-01 (any year 1-9999 is read).
Any problem with the file itself is an ``InputError`` with a message and a hint.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import warnings
import zlib
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

from assistant.core.errors import InputError

#: Output columns of ``IngestResult.orders``, in order, with their dtypes.
ORDER_COLUMNS: dict[str, str] = {
    "customer": "string",
    "order_id": "string",
    "timestamp": "datetime64[ns]",
    "item": "string",
    "description": "string",
    "quantity": "float64",
    "unit_price": "float64",
    "amount": "float64",
    "country": "string",
    "is_return": "bool",
}

CANONICAL_FIELDS = (
    "customer",
    "order_id",
    "timestamp",
    "item",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "country",
)

#: Why a row can be rejected, in priority order (a row gets the first reason that applies).
REJECT_REASONS = (
    "malformed_line",  # wrong number of fields (CSV); counted, raw row not recoverable
    "missing_customer",
    "unparseable_date",
    "date_out_of_range",  # a date, but before DATE_MIN or after DATE_MAX (placeholders)
    "missing_item",
    "missing_order_id",  # the file has an order id column but this row's is empty
    "non_numeric_quantity",
    "non_numeric_price",
    "non_numeric_amount",
    "zero_quantity",
    "non_positive_price",  # unit price <= 0 on a purchase, < 0 on a return
    "duplicate_row",  # exact duplicate (every column) of an earlier row
)

# Known column names per canonical field, compared after column_key() (first match wins).
ALIASES: dict[str, tuple[str, ...]] = {
    "customer": (
        "customer", "customerid", "customerno", "customernumber", "custid", "user",
        "userid", "client", "clientid", "buyer", "buyerid", "memberid", "accountid",
        "shopper", "shopperid",
    ),
    "order_id": (
        "orderid", "order", "invoiceno", "invoice", "invoiceid", "invoicenumber",
        "orderno", "ordernumber", "transactionid", "transaction", "receipt", "receiptid",
        "basketid", "cartid",
    ),
    "timestamp": (
        "timestamp", "invoicedate", "orderdate", "purchasedate", "transactiondate",
        "datetime", "date", "createdat", "orderedat", "eventtime", "ts", "time",
    ),
    "item": (
        "item", "itemid", "stockcode", "sku", "productid", "product", "productcode",
        "articleid", "article", "variantid", "itemcode", "itemno",
    ),
    "description": (
        "description", "itemdescription", "productdescription", "productname",
        "itemname", "name", "title",
    ),
    "quantity": ("quantity", "qty", "units", "quantityordered", "count", "numberofitems"),
    "unit_price": (
        "unitprice", "price", "priceeach", "itemprice", "unitcost", "priceperunit",
        "saleprice",
    ),
    "amount": (
        "amount", "dollarvalue", "value", "revenue", "total", "totalprice", "linetotal",
        "sales", "salesamount", "ordervalue", "spend", "monetary", "totalamount",
    ),
    "country": ("country", "countrycode", "countryname"),
}

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".parquet", ".pq")
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_NULL_TOKENS = ("", "nan", "none", "null", "na", "n/a", "<na>", "nat")

# Tried in this order on a sample; the best-scoring one parses the column (ties: earlier).
_DATE_FORMATS = (
    "ISO8601",
    "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y",
    "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y",
    "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y",
    "%d-%m-%Y %H:%M", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y",
    "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d",
    "%d/%m/%y %H:%M", "%d/%m/%y", "%m/%d/%y %H:%M", "%m/%d/%y",
    "%d %b %Y", "%d %B %Y", "%b %d %Y", "%B %d %Y", "%b %d, %Y", "%B %d, %Y",
    "%Y%m%d",
)
_DATE_SAMPLE = 2000
#: Order dates outside this range are rejected (``date_out_of_range``): they are placeholders
#: (1900-01-01, 2999-01-01, 9999-12-31) or typos, and would distort recency and tenure.
DATE_MIN = pd.Timestamp("1970-01-01", tz="UTC")
DATE_MAX = pd.Timestamp("2099-12-31 23:59:59.999999", tz="UTC")


@dataclass
class IngestResult:
    """What ``load_orders`` returns. ``orders`` has exactly ``ORDER_COLUMNS``."""

    orders: pd.DataFrame
    rejected: dict[str, int]
    rows_read: int
    rows_used: int
    returns: int
    source_hash: str
    rejects_path: Path | None = None
    #: canonical field -> source column it came from (None: defaulted or derived)
    columns: dict[str, str | None] = field(default_factory=dict)
    #: human-readable notes on defaults applied (for the CLI and logs)
    notes: list[str] = field(default_factory=list)

    @property
    def purchases(self) -> int:
        return self.rows_used - self.returns

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        parts = [
            f"{self.rows_read:,} rows read, {self.rows_used:,} used "
            f"({self.purchases:,} purchases, {self.returns:,} returns), "
            f"{self.rejected_total:,} rejected"
        ]
        if self.rejected:
            parts.append(
                "rejected: " + ", ".join(f"{k} {v:,}" for k, v in self.rejected.items())
            )
        if self.rejects_path is not None and self.rejected:
            parts.append(f"rejected rows written to {self.rejects_path}")
        parts.extend(self.notes)
        return "; ".join(parts)


# --------------------------------------------------------------------------- public API


def load_orders(
    path: str | Path,
    mapping: dict[str, str] | None = None,
    *,
    return_prefix: str = "C",
    rejects_path: Path | None = None,
) -> IngestResult:
    """Read, map and validate an orders file. Raises ``InputError`` for any unusable file."""
    path = Path(path)
    kind = _file_kind(path)
    source_hash = _sha256(path)
    raw, malformed, read_notes = _read_table(path, kind)
    rows_read = len(raw) + len(malformed)
    if rows_read == 0:
        raise InputError(
            f"{path.name} has a header but no rows.",
            "Export the orders again with at least one data row.",
        )

    columns = _resolve_columns(list(raw.columns), mapping, path.name, raw.head(50))
    try:
        orders, reasons, notes = _validate(raw, columns, return_prefix)
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. nested values in Parquet
        raise InputError(
            f"{path.name}: the mapped columns could not be read as orders ({_short(exc)}).",
            "Check that each mapped column holds plain text, numbers or dates "
            "(columns used: " + ", ".join(f"{k}={v}" for k, v in columns.items() if v) + ").",
        ) from exc

    rejected = {
        reason: int(n)
        for reason, n in reasons[reasons.notna()].value_counts().items()
    }
    if malformed:
        rejected["malformed_line"] = len(malformed)
    rejected = {r: rejected[r] for r in REJECT_REASONS if rejected.get(r)}
    notes = read_notes + notes
    if rejected.get("date_out_of_range"):
        notes.append(f"dates before {DATE_MIN:%Y-%m-%d} or after {DATE_MAX:%Y-%m-%d} are "
                     "rejected as date_out_of_range (placeholders such as 1900-01-01 or "
                     "2999-01-01)")

    if rejects_path is not None:
        rejects_path = Path(rejects_path)
        _write_rejects(raw, reasons, malformed, rejects_path)

    n_returns = int(orders["is_return"].sum())
    if n_returns == len(orders):
        _raise_no_purchases(path.name, rows_read, len(orders), rejected, return_prefix,
                            rejects_path)

    return IngestResult(
        orders=orders,
        rejected=rejected,
        rows_read=rows_read,
        rows_used=len(orders),
        returns=n_returns,
        source_hash=source_hash,
        rejects_path=rejects_path,
        columns=columns,
        notes=notes,
    )


def parse_map_options(
    items: list[str] | tuple[str, ...] | None, *, option: str = "--map"
) -> dict[str, str]:
    """Turn ``field=column`` items into a mapping (field lowercased, both sides stripped; the
    last item for a field wins): the CLI's ``--map`` options, the Segments tab's mapping box
    (``option=""``: its items are not options). A malformed item is an ``InputError``."""
    named = f"{option} " if option else ""
    out: dict[str, str] = {}
    for item in items or ():
        fld, sep, col = item.partition("=")
        fld, col = fld.strip().lower(), col.strip()
        if not sep or not fld or not col:
            raise InputError(
                f"{named}{item!r} is not of the form field=column.",
                f"Write e.g. {named}timestamp=InvoiceDate (fields: "
                + ", ".join(CANONICAL_FIELDS) + ").",
            )
        out[fld] = col
    return out


# --------------------------------------------------------------------------- reading


def read_table(path: str | Path) -> pd.DataFrame:
    """Any table (CSV, CSV.gz, Parquet) with the same checks as orders files; columns whose
    every non-empty value is a number become numeric, empty cells become missing."""
    path = Path(path)
    frame, _, _ = _read_table(path, _file_kind(path))
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
    kind = _file_kind(path)
    if kind == "parquet":
        try:
            return [str(c).strip() for c in pq.read_schema(path).names]
        except Exception:  # noqa: BLE001 - not readable as Parquet: _read_table says why
            pass
    frame, _, _ = _read_table(path, kind, nrows=5)
    return [str(c) for c in frame.columns]


def _file_kind(path: Path) -> str:
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


def _sha256(path: Path) -> str:
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


def _read_table(
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
            raise _not_a_table(path.name, _short(exc)) from None
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
    dated = _to_dt(names, "ISO8601").notna() | _to_dt(names, "%d/%m/%Y").notna()
    return bool((numeric | dated).mean() >= 0.5)


def _head_bytes(path: Path, compression: str | None, size: int = 65536) -> bytes:
    try:
        if compression == "gzip":
            with gzip.open(path, "rb") as fh:
                return fh.read(size)
        with path.open("rb") as fh:
            return fh.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise _not_a_table(path.name, f"it could not be decompressed ({_short(exc)})") from None


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
        raise _not_a_table(path.name, f"it could not be read as Parquet ({_short(exc)})") \
            from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.shape[1] < 2:
        raise _not_a_table(path.name, f"it has {df.shape[1]} column(s)")
    for col in df.columns:
        s = df[col]
        if not (is_numeric_dtype(s) or is_datetime64_any_dtype(s)) or s.dtype == bool:
            df[col] = s.astype("string").fillna("")
    return df.reset_index(drop=True)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# --------------------------------------------------------------------------- columns


def column_key(name: str) -> str:
    return re.sub(r"[\s_\-\.]+", "", str(name)).lower()


def _resolve_columns(
    found: list[str],
    mapping: dict[str, str] | None,
    filename: str,
    sample: pd.DataFrame | None = None,
) -> dict[str, str | None]:
    """canonical field -> source column (None when absent)."""
    by_norm: dict[str, str] = {}
    for col in found:
        by_norm.setdefault(column_key(col), col)
    columns: dict[str, str | None] = dict.fromkeys(CANONICAL_FIELDS)
    taken: set[str] = set()
    for fld, col in (mapping or {}).items():
        key = str(fld).strip().lower()
        if key not in CANONICAL_FIELDS:
            raise InputError(
                f"Unknown field {fld!r} in the column mapping.",
                "Map one of: " + ", ".join(CANONICAL_FIELDS) + " (e.g. --map customer=ClientRef).",
            )
        source = col if col in found else by_norm.get(column_key(col))
        if source is None:
            raise InputError(
                f"Column {col!r} (mapped to {key}) is not in {filename}; columns found: "
                + ", ".join(found) + ".",
                f"Use one of the columns found, e.g. {_map_option(key, found[0])}.",
            )
        columns[key] = source
        taken.add(source)
    for fld in CANONICAL_FIELDS:
        if columns[fld] is not None:
            continue
        for alias in ALIASES[fld]:
            col = by_norm.get(alias)
            if col is not None and col not in taken:
                columns[fld] = col
                taken.add(col)
                break

    missing = [f for f in ("customer", "timestamp") if columns[f] is None]
    no_value = columns["amount"] is None and columns["unit_price"] is None
    if missing or no_value:
        labels = missing + (["amount (or unit_price)"] if no_value else [])
        wanted = missing + (["amount"] if no_value else [])
        free = [c for c in found if c not in taken]
        fixes = []
        for f in wanted:
            guess = _guess_column(f, free, sample)
            free = [c for c in free if c != guess]
            fixes.append(_map_option(f, guess))
        fixes = " ".join(fixes)
        raise InputError(
            f"{filename}: no column for the required field(s) {', '.join(labels)}. "
            f"Columns found: {', '.join(found)}.",
            f"Tell Tailor which column holds each one: {fixes} "
            "(mapping={'field': 'column'} from Python).",
        )
    return columns


def _map_option(fld: str, column: str) -> str:
    """The CLI option, quoted for a shell when the column name needs it."""
    option = f"{fld}={column}"
    return f"--map {option}" if re.fullmatch(r"[\w.\-]+=[\w.\-]+", option) else (
        f'--map "{option}"'
    )


def _guess_column(fld: str, free: list[str], sample: pd.DataFrame | None) -> str:
    """The unassigned column most likely to hold ``fld`` (for the hint), else 'COLUMN'."""
    if not free:
        return "COLUMN"
    pool = {column_key(c): c for c in free}
    for alias in ALIASES[fld]:
        for key, col in pool.items():
            if alias in key or (len(key) >= 3 and key in alias):
                return col
    if sample is not None and len(sample):
        for col in free:
            values = sample[col]
            if fld == "timestamp" and not is_numeric_dtype(values):
                text = clean_strings(values).dropna()
                if len(text) and any(
                    _to_dt(text, fmt).notna().mean() >= 0.8 for fmt in _DATE_FORMATS[:7]
                ):
                    return col
            if fld in ("amount", "unit_price") and to_number(values).notna().mean() >= 0.8:
                return col
    close = get_close_matches(fld.replace("_", ""), list(pool), n=1, cutoff=0.5)
    if close:
        return pool[close[0]]
    return free[0] if len(free) == 1 else "COLUMN"


# --------------------------------------------------------------------------- validation


def clean_strings(s: pd.Series, *, null_tokens: bool = True) -> pd.Series:
    """Strip; empty (and null-looking tokens) -> <NA>. Returns a 'string' series."""
    s = s.astype("string").str.strip()
    if null_tokens:
        return s.mask(s.str.lower().isin(_NULL_TOKENS))
    return s.mask(s == "")


def clean_ids(s: pd.Series) -> pd.Series:
    """An id column: text, with float formatting from spreadsheets undone (17850.0 -> 17850)."""
    s = clean_strings(s)
    floaty = s.str.fullmatch(r"-?\d+\.0+").fillna(False).astype(bool)
    if floaty.any():
        s = s.copy()
        s[floaty] = s[floaty].str.replace(r"\.0+$", "", regex=True)
    return s


def _collapse_spaces(s: pd.Series) -> pd.Series:
    """Runs of spaces/tabs -> one space (only on the rows that have them: fast)."""
    has = (s.str.contains("  ", regex=False) | s.str.contains("\t", regex=False)).fillna(False)
    if has.any():
        s = s.copy()
        s[has] = s[has].str.replace("[ \t]+", " ", regex=True)
    return s


def to_number(s: pd.Series) -> pd.Series:
    """Numbers from numbers or text ('2.55', '2,55', '1.234,50', '£3.00', '1,234'); NaN if not."""
    if is_numeric_dtype(s) and s.dtype != bool:
        return s.astype("float64")
    t = clean_strings(s)
    try:  # fast path: every present value is a plain number
        out = pd.Series(pc.cast(pa.array(t.array), pa.float64()).to_numpy(zero_copy_only=False),
                        index=t.index, dtype="float64")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError):
        out = pd.to_numeric(t, errors="coerce").astype("float64")
    retry = out.isna() & t.notna()
    if retry.any():
        u = t[retry].str.replace("[£$€¥ \t\u00a0']", "", regex=True)
        has_comma = u.str.contains(",", regex=False)
        has_dot = u.str.contains(".", regex=False)
        comma_decimal = has_comma & (
            (has_dot & (u.str.rfind(",") > u.str.rfind(".")))
            | (~has_dot & ~u.str.fullmatch(r"-?\d{1,3}(,\d{3})+"))
        )
        u = u.where(~comma_decimal, u.str.replace(".", "", regex=False)
                    .str.replace(",", ".", regex=False))
        u = u.where(comma_decimal, u.str.replace(",", "", regex=False))
        out[retry] = pd.to_numeric(u, errors="coerce").astype("float64")
    return out.replace([np.inf, -np.inf], np.nan)


def parse_dates(s: pd.Series, column: str) -> pd.Series:
    """datetime64[ns] (naive, UTC when offsets were given); NaT where unparseable or outside
    ``DATE_MIN``..``DATE_MAX``."""
    return parse_dates_checked(s, column)[0]


def parse_dates_checked(s: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
    """``parse_dates`` and a boolean mask of the values that are dates but outside
    ``DATE_MIN``..``DATE_MAX`` (NaT in the first)."""
    # Parsed at microsecond resolution (pandas 3's default; years 0001-9999), so dates far
    # outside datetime64[ns]'s 1677-2262 are seen and rejected, never assigned into a ns
    # series (pandas fails on that with an internal AssertionError).
    if is_datetime64_any_dtype(s):
        out = s
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC")
        else:
            out = out.dt.tz_localize("UTC")
    elif is_numeric_dtype(s) and s.dtype != bool:
        num = s.astype("float64")
        unit = "ms" if num.abs().median() > 1e11 else "s"
        out = pd.to_datetime(num, unit=unit, errors="coerce", utc=True)
    else:
        text = clean_strings(s, null_tokens=True)
        present = text.dropna()
        if present.empty:
            raise InputError(
                f"Column {column!r} (used as timestamp) is empty.",
                "If another column holds the order date, pass --map timestamp=COLUMN; "
                "otherwise export the orders again with their dates.",
            )
        out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
        uniq = pd.Series(present.unique())
        sample = uniq.sample(min(len(uniq), _DATE_SAMPLE), random_state=0)
        unit = _epoch_unit(sample)
        if unit is not None:  # unix time in seconds or milliseconds
            numbers = to_number(present)
            low, high = _EPOCH_RANGE[unit]
            in_range = numbers.between(low, high)
            out[present.index] = _as_us(
                pd.to_datetime(numbers.where(in_range), unit=unit, utc=True))
            present = present.iloc[:0]
        if len(present):
            best, best_ok = None, -1
            for fmt in _DATE_FORMATS:
                ok = int(_to_dt(sample, fmt).notna().sum())
                if ok > best_ok:
                    best, best_ok = fmt, ok
                if ok == len(sample):
                    break
            parsed = _to_dt(present, best)
            parsed = _as_us(parsed)
            if best != "ISO8601" and parsed.isna().any():
                failed = parsed.isna()
                parsed[failed] = _as_us(_to_dt(present[failed], "ISO8601"))
            out[present.index] = parsed
            bad = present[out[present.index].isna()]
            if len(bad) > len(present) / 2:
                examples = ", ".join(repr(v) for v in bad.drop_duplicates().head(3))
                raise InputError(
                    f"Column {column!r} (used as timestamp) has dates Tailor cannot read: "
                    f"{len(bad):,} of {len(present):,} values fail, e.g. {examples}.",
                    f"If another column holds the order date, pass --map timestamp=COLUMN; "
                    f"otherwise reformat {column!r} as YYYY-MM-DD HH:MM:SS (ISO 8601).",
                )
    out = _as_us(out)
    in_range = (out >= DATE_MIN) & (out <= DATE_MAX)
    out_of_range = (out.notna() & ~in_range).astype(bool)
    out = out.where(in_range)
    return out.dt.tz_localize(None).astype("datetime64[ns]"), out_of_range


def _as_us(values: pd.Series) -> pd.Series:
    """A datetime series at microsecond resolution (finer input loses sub-microseconds)."""
    return values.dt.as_unit("us")


_EPOCH_RANGE = {"s": (1e8, 4.2e9), "ms": (1e12, 4.2e12)}  # about 1973-2103


def _epoch_unit(sample: pd.Series) -> str | None:
    numbers = pd.Series(
        pd.to_numeric(sample, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    )
    for unit, (low, high) in _EPOCH_RANGE.items():
        if numbers.between(low, high).mean() > 0.9:
            return unit
    return None


def _to_dt(values: pd.Series, fmt: str) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(values, format=fmt, errors="coerce", utc=True)
        except (ValueError, TypeError, OverflowError):
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")


def _validate(
    raw: pd.DataFrame, columns: dict[str, str | None], return_prefix: str
) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """(orders frame, reason per raw row or <NA>, notes on defaults). The steps: read each
    field, derive the missing ones (noted), give every row its first reject reason, build
    the frame of the rows kept."""
    idx = raw.index
    notes: list[str] = []

    def col(fld: str) -> pd.Series | None:
        name = columns[fld]
        return raw[name] if name is not None else None

    customer = clean_ids(col("customer"))
    timestamp, date_out_of_range = parse_dates_checked(col("timestamp"),
                                                       str(columns["timestamp"]))
    description, item, missing_item = _item_fields(col("description"), col("item"), idx, notes)
    values = _value_fields(col("quantity"), col("unit_price"), col("amount"), idx, notes)
    order_id, is_return = _order_ids(col("order_id"), values.quantity, return_prefix, idx)

    reasons = _first_reasons(idx, [  # in the order of REJECT_REASONS
        ("missing_customer", customer.isna()),
        ("unparseable_date", timestamp.isna() & ~date_out_of_range),
        ("date_out_of_range", date_out_of_range),
        ("missing_item", missing_item),
        ("missing_order_id", order_id.isna() if order_id is not None else False),
        ("non_numeric_quantity", values.bad_quantity),
        ("non_numeric_price", values.bad_price),
        ("non_numeric_amount", values.bad_amount),
        ("zero_quantity", values.quantity == 0),
        ("non_positive_price", (values.price < 0) | ((values.price == 0) & ~is_return)),
        ("duplicate_row", raw.duplicated(keep="first")),
    ])

    if order_id is None:
        order_id = (customer + "@" + timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S")).astype("string")
        notes.append("no order id column: order_id = customer@timestamp")
    country = _countries(col("country"), idx, notes)

    sign = np.where(is_return, -1.0, 1.0)
    orders = pd.DataFrame(
        {
            "customer": customer,
            "order_id": order_id,
            "timestamp": timestamp,
            "item": item,
            "description": description.fillna(""),
            "quantity": values.quantity.abs() * sign,
            "unit_price": values.price.abs(),
            "amount": values.amount.abs() * sign,
            "country": country,
            "is_return": is_return,
        },
        index=idx,
    )[reasons.isna().to_numpy()]
    orders = orders.reset_index(drop=True).astype(ORDER_COLUMNS)
    return orders, reasons, notes


def _item_fields(
    desc_src: pd.Series | None, item_src: pd.Series | None, idx: pd.Index, notes: list[str]
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(description, item, item missing in a row): without an item column, the item is the
    description, else "unknown"."""
    description = (
        _collapse_spaces(clean_strings(desc_src, null_tokens=False))
        if desc_src is not None
        else pd.Series(pd.NA, index=idx, dtype="string")
    )
    if item_src is not None:
        item = clean_ids(item_src)
        return description, item, item.isna()
    item = description.fillna("unknown").mask(description.fillna("") == "", "unknown")
    notes.append(
        "no item column: item = the description" if desc_src is not None
        else "no item column: item = 'unknown'"
    )
    return description, item, pd.Series(False, index=idx)


@dataclass
class _Values:
    """Quantity, unit price and amount of every row (absent ones derived), and which rows
    hold a value that is not a number."""

    quantity: pd.Series
    price: pd.Series
    amount: pd.Series
    bad_quantity: pd.Series
    bad_price: pd.Series
    bad_amount: pd.Series


def _value_fields(
    qty_src: pd.Series | None,
    price_src: pd.Series | None,
    amount_src: pd.Series | None,
    idx: pd.Index,
    notes: list[str],
) -> _Values:
    """Numbers from the quantity, unit price and amount columns; an absent one is derived
    from the others (see the module docstring) and noted."""
    quantity = to_number(qty_src) if qty_src is not None else None
    price = to_number(price_src) if price_src is not None else None
    amount = to_number(amount_src) if amount_src is not None else None

    bad_qty = quantity.isna() if quantity is not None else pd.Series(False, index=idx)
    bad_price = price.isna() if price is not None else pd.Series(False, index=idx)
    bad_amount = (
        amount.isna() if amount is not None and price is None else pd.Series(False, index=idx)
    )

    if quantity is None:
        if amount is not None and price is None:
            quantity = pd.Series(np.where(amount < 0, -1.0, 1.0), index=idx)
            notes.append("no quantity column: quantity = 1 per row (-1 for a negative amount)")
        else:
            quantity = pd.Series(1.0, index=idx)
            notes.append("no quantity column: quantity = 1 per row")
    if price is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            price = (amount / quantity).abs().replace([np.inf, -np.inf], np.nan)
        notes.append(
            "no unit_price column: unit_price = amount / quantity"
            if qty_src is not None else "no unit_price column: unit_price = amount"
        )
    if amount is None:
        amount = quantity * price
    elif amount_src is not None and price_src is not None:
        amount = amount.fillna(quantity * price)
    return _Values(quantity, price, amount, bad_qty, bad_price, bad_amount)


def _order_ids(
    order_src: pd.Series | None, quantity: pd.Series, return_prefix: str, idx: pd.Index
) -> tuple[pd.Series | None, pd.Series]:
    """(order ids from the file, None without the column; is each row a return): a negative
    quantity, or an order id starting with ``return_prefix``."""
    if order_src is not None:
        order_id = clean_ids(order_src)
        prefixed = (
            order_id.str.startswith(return_prefix).fillna(False).astype(bool)
            if return_prefix
            else pd.Series(False, index=idx)
        )
    else:
        order_id = None
        prefixed = pd.Series(False, index=idx)
    return order_id, ((quantity < 0) | prefixed).astype(bool)


def _countries(country_src: pd.Series | None, idx: pd.Index, notes: list[str]) -> pd.Series:
    """The country of every row ("Unknown" when empty or without the column)."""
    if country_src is not None:
        return clean_strings(country_src, null_tokens=False).fillna("Unknown")
    notes.append("no country column: country = 'Unknown'")
    return pd.Series("Unknown", index=idx, dtype="string")


def _first_reasons(idx: pd.Index, conditions: list[tuple[str, pd.Series | bool]]) -> pd.Series:
    """Each row's first reason whose mask holds (<NA> for a row kept); a mask may be a
    scalar ``False`` (that check does not apply to this file)."""
    reason_codes = np.select(
        [
            np.broadcast_to(np.asarray(m.fillna(False) if hasattr(m, "fillna") else m,
                                       dtype=bool), len(idx))
            for _, m in conditions
        ],
        list(range(1, len(conditions) + 1)),
        default=0,
    )
    labels = np.array([None] + [name for name, _ in conditions], dtype=object)
    return pd.Series(labels[reason_codes], index=idx, dtype="string")


# --------------------------------------------------------------------------- reporting


def _write_rejects(
    raw: pd.DataFrame, reasons: pd.Series, malformed: list[tuple[int, str]], target: Path
) -> None:
    """Rejected rows as they were read, plus ``row`` (1-based position among the rows
    parsed) and ``reason``. Malformed lines carry their file line number in the first column."""
    mask = reasons.notna().to_numpy()
    out = raw[mask].copy()
    out.insert(0, "row", np.flatnonzero(mask) + 1)
    out["reason"] = reasons[mask].to_numpy()
    if malformed:
        # the raw fields of a malformed line are not recoverable: keep pandas' message
        bad = pd.DataFrame({"row": [pd.NA] * len(malformed),
                            "reason": ["malformed_line"] * len(malformed)})
        for c in raw.columns:
            bad[c] = ""
        bad[raw.columns[0]] = [f"line {line}: {msg}" for line, msg in malformed]
        out = pd.concat([out, bad[out.columns]], ignore_index=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(target, index=False)
    except OSError as exc:
        raise InputError(
            f"Could not write the rejected rows to {target}: {_short(exc)}",
            "Choose a rejects path in a writable directory.",
        ) from None


def _raise_no_purchases(
    name: str,
    rows_read: int,
    rows_used: int,
    rejected: dict[str, int],
    return_prefix: str,
    rejects_path: Path | None,
) -> None:
    why = ", ".join(f"{k} {v:,}" for k, v in rejected.items()) or "none"
    where = (
        f"see {rejects_path} for every rejected row and its reason"
        if rejects_path is not None
        else "pass a rejects path (rejects_path=...) to see every rejected row and its reason"
    )
    if rows_used:
        hint = (
            f"Every usable row is a return (negative quantity or order id starting with "
            f"{return_prefix!r}). If your order ids simply start with {return_prefix!r}, load "
            "with return_prefix='' (--return-prefix ''); otherwise load a file with purchases."
        )
    else:
        hint = f"Every row was rejected; {where}."
    raise InputError(
        f"{name}: no purchases left after validation ({rows_read:,} rows read, "
        f"{rows_used:,} returns kept, rejected: {why}).",
        hint,
    )
