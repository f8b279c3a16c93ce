"""Parsing the values of order files: ids, text, numbers and dates, vectorized.

Ids written as floats (``17850.0``) become ``17850``. Numbers accept currency signs and
thousands separators, and decimal commas (``2,55``; ``1.234,50``); a lone ``1,234`` is read
as one thousand two hundred and thirty-four. Dates: ISO 8601 (offsets converted to UTC,
then made naive), day-first and month-first with ``/ . -``, month names, ``YYYYMMDD`` and
unix seconds/milliseconds; the format is chosen on a sample of distinct values (an
all-ambiguous sample, every day <= 12, reads day-first).
"""


import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

from assistant.core.errors import InputError

_NULL_TOKENS = ("", "nan", "none", "null", "na", "n/a", "<na>", "nat")

# Tried in this order on a sample; the best-scoring one parses the column (ties: earlier).
DATE_FORMATS = (
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


def collapse_spaces(s: pd.Series) -> pd.Series:
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
            best = best_date_format(sample)
            parsed = to_dt(present, best)
            parsed = _as_us(parsed)
            if best != "ISO8601" and parsed.isna().any():
                failed = parsed.isna()
                parsed[failed] = _as_us(to_dt(present[failed], "ISO8601"))
            out[present.index] = parsed
            bad = present[out[present.index].isna()]
            check_readable_dates(column, len(bad), len(present), bad.drop_duplicates())
    out, out_of_range = in_date_range(out)
    return out.astype("datetime64[ns]"), out_of_range


def best_date_format(sample: pd.Series) -> str:
    """The format of ``DATE_FORMATS`` that reads the most of ``sample`` (the first that
    reads all of it)."""
    best, best_ok = DATE_FORMATS[0], -1
    for fmt in DATE_FORMATS:
        ok = int(to_dt(sample, fmt).notna().sum())
        if ok > best_ok:
            best, best_ok = fmt, ok
        if ok == len(sample):
            break
    return best


def check_readable_dates(column: str, bad: int, total: int, failed: pd.Series) -> None:
    """An ``InputError`` when more than half of ``total`` date values (rows) cannot be
    read; ``failed``: some of the unreadable values, for the message."""
    if bad > total / 2:
        examples = ", ".join(repr(v) for v in failed.head(3))
        raise InputError(
            f"Column {column!r} (used as timestamp) has dates Tailor cannot read: "
            f"{bad:,} of {total:,} values fail, e.g. {examples}.",
            f"If another column holds the order date, pass --map timestamp=COLUMN; "
            f"otherwise reformat {column!r} as YYYY-MM-DD HH:MM:SS (ISO 8601).",
        )


def in_date_range(parsed: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(the dates, tz-naive at microseconds, NaT outside ``DATE_MIN``..``DATE_MAX``; the
    mask of the values that are dates but outside that range)."""
    out = _as_us(parsed)
    in_range = (out >= DATE_MIN) & (out <= DATE_MAX)
    out_of_range = (out.notna() & ~in_range).astype(bool)
    return out.where(in_range).dt.tz_localize(None), out_of_range


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


def to_dt(values: pd.Series, fmt: str) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(values, format=fmt, errors="coerce", utc=True)
        except (ValueError, TypeError, OverflowError):
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
