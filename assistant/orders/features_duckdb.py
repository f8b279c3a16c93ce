"""Per-customer features straight from an orders file with DuckDB, out of core: the feature
step of ``segments build`` for files larger than pandas handles comfortably.

``build_features_duckdb(path, ...)`` returns what ``load_orders`` + ``assign_groups`` +
``build_features`` return on the same file (same index, columns, dtypes, values, ``attrs``;
sums may differ in the last bits, DuckDB adds in its own order), without ever holding the
order lines in pandas: DuckDB reads the file (Parquet; CSV/CSV.gz in UTF-8 without malformed
lines) and keeps only one row per customer. The ingest rules are the same (see
``orders/ingest.py``): the column mapping and aliases (``_resolve_columns`` itself), every
reject reason in the same priority order, counted per reason, the same derived fields and
notes, the same errors. How each rule is reproduced:

- ids (customer, order id, item): in SQL, as ``values.clean_ids`` (strip the same Unicode
  whitespace, null-looking tokens, ``17850.0`` -> ``17850``).
- descriptions, countries, text dates and numbers that are not plain (``£3.00``, ``2,55``):
  on their DISTINCT values, by the very functions ``load_orders`` uses (``collapse_spaces``,
  ``clean_strings``, ``to_number``, the date-format choice of ``parse_dates_checked`` on the
  same sample of distinct values, in order of first appearance, its error counted in rows),
  then joined back. Product groups likewise: ``assign_groups`` on the distinct descriptions.
- duplicate rows (every column equal to an earlier row's): a hash of each row finds the
  candidates, an exact comparison over the candidates only decides.

DuckDB runs on every core (``threads``), within ``memory_limit`` (default: half the memory
available), spilling to a temporary directory beyond it. ``choose_engine`` is the rule
``segments build --engine auto`` follows (measured in ``bench/features.py``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from assistant.core.errors import InputError
from assistant.orders.catalog import CATALOG_COLUMNS, GroupRules, assign_groups, load_group_rules
from assistant.orders.features import SHARE_PREFIX, _date, _reference_day
from assistant.orders.ingest import (
    _raise_no_purchases,
    _resolve_columns,
    summarise_rejects,
)
from assistant.orders.tables import (
    _declared_delimiter,
    _guess_encoding,
    _head_bytes,
    _looks_like_data,
    _not_a_table,
    _sniff_delimiter,
    file_kind,
    file_sha256,
    short_error,
)
from assistant.orders.values import (
    _DATE_SAMPLE,
    _EPOCH_RANGE,
    DATE_MAX,
    DATE_MIN,
    _as_us,
    _epoch_unit,
    best_date_format,
    check_readable_dates,
    clean_strings,
    collapse_spaces,
    in_date_range,
    to_dt,
    to_number,
)

ENGINES = ("pandas", "duckdb", "auto")

#: ``choose_engine``: pandas' peak memory (``load_orders`` + ``assign_groups`` +
#: ``build_features``) per cell (row x column) of a Parquet file, and per byte of CSV text.
#: Measured on the shipped data: Parquet 90 B/cell at x1 (373 MB), 68 at x20 (5.7 GB);
#: CSV 8.0 B/byte at x1 (375 MB for 47 MB of text), 7.0 at x5 (1.7 GB for 250 MB).
PANDAS_PEAK_PER_PARQUET_CELL = 90.0
PANDAS_PEAK_PER_CSV_BYTE = 8.0
#: ``choose_engine`` leaves pandas for DuckDB when its estimated peak exceeds this share of
#: the memory available (the rest is for the clustering and classifier that follow, and
#: for everything else on the machine).
PANDAS_MEMORY_SHARE = 0.5
#: ``choose_engine``: Parquet files with at least this many rows go to DuckDB whatever the
#: memory: as fast at 0.54 M rows (pandas 1.15 s, DuckDB 1.17 s), 2.66x faster at 10.8 M.
DUCKDB_MIN_PARQUET_ROWS = 1_000_000

_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # str.strip()'s set
_NULL_TOKENS = ("nan", "none", "null", "na", "n/a", "<na>", "nat")  # and "" (values.py)
_PLAIN_NUMBER = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE")
_FLOAT_TYPES = ("FLOAT", "DOUBLE")
_NESTED = ("[]", "STRUCT", "MAP", "UNION")


# --------------------------------------------------------------------------- engine choice


def available_memory() -> int:
    """Bytes of memory available now (Linux MemAvailable, else the free pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def pandas_peak_estimate(path: Path) -> tuple[float, int | None]:
    """(bytes pandas would peak at on this orders file, its rows when known): a Parquet
    file's rows x columns from its footer x ``PANDAS_PEAK_PER_PARQUET_CELL``; a CSV's text
    (gzip: the size its trailer gives, corrected for the 4 GiB wrap) x
    ``PANDAS_PEAK_PER_CSV_BYTE``."""
    path = Path(path)
    kind = file_kind(path)
    size = path.stat().st_size
    if kind == "parquet":
        try:
            meta = pq.read_metadata(path)  # the footer only
        except Exception:  # noqa: BLE001 - unreadable: the build says why
            return size * PANDAS_PEAK_PER_CSV_BYTE, None
        return meta.num_rows * meta.num_columns * PANDAS_PEAK_PER_PARQUET_CELL, meta.num_rows
    text = size
    if kind == "gzip":
        with path.open("rb") as fh:
            fh.seek(-4, os.SEEK_END)
            text = int.from_bytes(fh.read(4), "little")
        while text < 2 * size:
            text += 1 << 32
    return text * PANDAS_PEAK_PER_CSV_BYTE, None


def choose_engine(path: str | Path, engine: str = "auto") -> tuple[str, str]:
    """(engine, why) for the feature step of ``segments build``: ``pandas`` or ``duckdb`` as
    asked, or for ``auto`` the rule below.

    Measured by ``bench/features.py`` (end to end from one Parquet file: the shipped data
    replicated x1, x20, x100; 2 cores, 24 GiB; README, "bench/features.py"): pandas vs
    DuckDB 1.15 s vs 1.17 s at 0.54 M rows (peak 373 vs 139 MB), 25.7 s vs 9.7 s at
    10.8 M rows (5.7 GB vs 0.8 GB); at 54 M rows pandas passed 17 GiB and was stopped,
    DuckDB took 46 s and 3.1 GB. On CSV DuckDB gains less (x5, 2.7 M rows: 7.4 s vs 9.9 s)
    and reads less (UTF-8 only; a malformed line is an error, not a counted reject), so CSV
    stays with pandas until memory says otherwise. ``auto`` picks:

    1. DuckDB when pandas' estimated peak (``pandas_peak_estimate``) exceeds
       ``PANDAS_MEMORY_SHARE`` (half) of the memory available now;
    2. DuckDB for a Parquet file of ``DUCKDB_MIN_PARQUET_ROWS`` (1 M) rows or more;
    3. pandas otherwise.
    """
    engine = (engine or "auto").strip().lower()
    if engine not in ENGINES:
        raise InputError(f"Unknown engine {engine!r}.",
                         "Use --engine pandas, duckdb or auto (the default: chosen by the "
                         "file's size and the memory available).")
    if engine != "auto":
        return engine, f"{engine} (asked for)"
    path = Path(path)
    need, rows = pandas_peak_estimate(path)
    free = available_memory()
    if need > PANDAS_MEMORY_SHARE * free:
        return "duckdb", (f"duckdb (auto: pandas would need about {need / 2**30:.1f} GiB, more "
                          f"than {PANDAS_MEMORY_SHARE:.0%} of the {free / 2**30:.1f} GiB "
                          "available)")
    if file_kind(path) == "parquet" and rows is not None and rows >= DUCKDB_MIN_PARQUET_ROWS:
        return "duckdb", (f"duckdb (auto: Parquet with {rows:,} rows, >= "
                          f"{DUCKDB_MIN_PARQUET_ROWS:,}, where DuckDB is faster)")
    what = (f"Parquet of {rows:,} rows, < {DUCKDB_MIN_PARQUET_ROWS:,}" if rows is not None
            else "not Parquet")
    return "pandas", (f"pandas (auto: needs about {need / 2**30:.1f} GiB of the "
                      f"{free / 2**30:.1f} GiB available; {what})")


# --------------------------------------------------------------------------- SQL pieces


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ws() -> str:
    return _lit(_WHITESPACE)


def _strip_sql(x: str) -> str:
    """``str.strip()``: DuckDB's ``trim`` with a set of characters is slow (6.5 s for 21 M
    values against 0.1 s), so it runs only on values that start or end with whitespace.
    ``x`` should be a column (it is read four times)."""
    codes = ", ".join(str(ord(c)) for c in _WHITESPACE)
    first, last = f"ord(left({x}, 1))", f"ord(right({x}, 1))"
    return (f"(CASE WHEN (({first} <= 32 OR {first} >= 133) AND {first} IN ({codes})) "
            f"OR (({last} <= 32 OR {last} >= 133) AND {last} IN ({codes})) "
            f"THEN trim({x}, {_ws()}) ELSE {x} END)")


def _null_tokens_sql(t: str) -> str:
    """``values.clean_strings`` after the strip: empty and null-looking values -> NULL."""
    tokens = ", ".join(_lit(s) for s in _NULL_TOKENS)
    return (f"(CASE WHEN {t} = '' OR (length({t}) <= 4 AND lower({t}) IN ({tokens})) "
            f"THEN NULL ELSE {t} END)")


@dataclass
class _Column:
    """A file column as ``tables.read_raw_table`` hands it to pandas."""

    source: str  # its name in the file
    name: str  # stripped, as ingest sees it
    type: str  # DuckDB type

    @property
    def ref(self) -> str:
        return f"src.{_q(self.source)}"

    @property
    def kind(self) -> str:
        t = self.type.upper()
        if t in _NUMERIC_TYPES:
            return "number"
        if t.startswith("DECIMAL"):
            return "decimal"
        if t.startswith("TIMESTAMP"):
            return "datetime"
        if t == "DATE":
            return "date"
        if t == "BOOLEAN":
            return "bool"
        if any(n in t for n in _NESTED):
            return "nested"
        return "text"

    def text(self) -> str:
        """The value as text, as pandas' ``astype("string")`` writes it (NULL for missing)."""
        r = self.ref
        if self.kind == "bool":
            return f"(CASE WHEN {r} THEN 'True' WHEN NOT {r} THEN 'False' END)"
        if self.kind == "number" and self.type.upper() in _FLOAT_TYPES:
            return f"(CASE WHEN isnan({r}) THEN NULL ELSE CAST({r} AS VARCHAR) END)"
        return f"CAST({r} AS VARCHAR)"

    def raw(self) -> str:
        """The value pandas compares for duplicate rows (missing text is '', NaN is NULL)."""
        r = self.ref
        if self.kind == "number":
            return f"(CASE WHEN isnan({r}) THEN NULL ELSE {r} END)" if (
                self.type.upper() in _FLOAT_TYPES) else r
        if self.kind == "datetime":
            return r
        return f"coalesce({self.text()}, '')"


def _nested_error(col: _Column, filename: str) -> InputError:
    return InputError(
        f"{filename}: the mapped columns could not be read as orders (column "
        f"{col.name!r} holds {col.type} values).",
        "Check that each mapped column holds plain text, numbers or dates.",
    )


# --------------------------------------------------------------------------- the build


def build_features_duckdb(
    path: str | Path,
    *,
    mapping: dict[str, str] | None = None,
    return_prefix: str = "C",
    reference_date: str | dt.date | pd.Timestamp | None = None,
    groups: list[str] | None = None,
    rules: GroupRules | None = None,
    rejects_path: Path | None = None,
    catalog: bool = False,
    threads: int | None = None,
    memory_limit: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(features, info): ``build_features`` on what ``load_orders`` reads from ``path``,
    computed by DuckDB (see the module docstring).

    ``rules`` / ``groups``: product groups as ``assign_groups(rules)`` gives them and the
    ``share_<group>`` columns to make (as ``build_features``'s ``groups``); either one turns
    the shares on (``rules`` default: ``load_group_rules()``). ``rejects_path``: write the
    rejected rows there (as ``load_orders`` does). ``catalog``: also return
    ``build_catalog``'s table in ``info["catalog"]``.

    ``info``: rows_read, rows_used, returns, purchases, rejected (reason -> rows, in the
    order of ``REJECT_REASONS``), source_hash, columns, notes, rejects_path, engine,
    threads, memory_limit, seconds (and catalog).
    """
    import duckdb  # lazy: only this engine needs it (about 0.2 s to import)

    t0 = time.perf_counter()
    path = Path(path)
    kind = file_kind(path)
    if groups is not None and len(set(groups)) != len(groups):
        raise InputError("The list of product groups has duplicates.", "Pass each group once.")
    if groups is not None or rules is not None:
        rules = rules if rules is not None else load_group_rules()
    source_hash = file_sha256(path)
    tmp = tempfile.mkdtemp(prefix="tailor-duckdb-")
    limit = int(memory_limit or max(available_memory() // 2, 1 << 30))
    config = {"memory_limit": f"{limit // (1 << 20)}MB", "temp_directory": tmp,
              "preserve_insertion_order": True}
    if threads:
        config["threads"] = int(threads)
    con = duckdb.connect(config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET default_collation = ''")
        build = _Build(con, path, kind, mapping, return_prefix, rules, duckdb)
        features, info = build.run(reference_date, groups, rejects_path, catalog)
        info.update(source_hash=source_hash, engine="duckdb",
                    threads=int(con.execute("SELECT current_setting('threads')").fetchone()[0]),
                    memory_limit=limit, seconds=time.perf_counter() - t0)
        return features, info
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)


class _Build:
    """One build: the file as a DuckDB relation ``src`` (with ``rn``, the 0-based row), the
    mapped fields, the per-row SQL, then the aggregates."""

    def __init__(self, con: Any, path: Path, kind: str, mapping: dict[str, str] | None,
                 return_prefix: str, rules: GroupRules | None, duckdb: Any) -> None:
        self.con = con
        self.path = path
        self.duckdb = duckdb
        self.return_prefix = return_prefix
        self.rules = rules
        self.notes: list[str] = []
        self._open(kind)
        found = [c.name for c in self.file_columns]
        sample = self._sample()
        self.columns = _resolve_columns(found, mapping, path.name, sample)
        by_name = {c.name: c for c in self.file_columns}
        self.field: dict[str, _Column | None] = {
            f: (by_name[c] if c is not None else None) for f, c in self.columns.items()}

    # --- reading

    def _open(self, kind: str) -> None:
        path = _lit(str(self.path))
        if kind == "parquet":
            self.source_sql = f"read_parquet({path}, file_row_number = true)"
            self.rn = "file_row_number"
            try:
                described = self.con.execute(f"DESCRIBE SELECT * FROM {self.source_sql}").fetchall()
                self.rows_read = int(self.con.execute(
                    f"SELECT count(*) FROM {self.source_sql}").fetchone()[0])
            except self.duckdb.Error as exc:
                raise _not_a_table(self.path.name,
                                   f"it could not be read as Parquet ({short_error(exc)})") \
                    from None
            cols = [(name, typ) for name, typ, *_ in described if name != "file_row_number"]
            if len(cols) < 2:
                raise _not_a_table(self.path.name, f"it has {len(cols)} column(s)")
        else:
            self._open_csv(kind, path)
            cols = self._csv_columns
        self.file_columns = [_Column(n, str(n).strip(), str(t)) for n, t in cols]
        if self.rows_read == 0:
            raise InputError(f"{self.path.name} has a header but no rows.",
                             "Export the orders again with at least one data row.")

    def _open_csv(self, kind: str, path: str) -> None:
        """A CSV read as text by DuckDB: the delimiter found as ``tables.py`` finds it; UTF-8
        only, and no malformed line (``load_orders`` reads those and reports them)."""
        compression = "gzip" if kind == "gzip" else None
        head = _head_bytes(self.path, compression)
        if b"\x00" in head:
            raise _not_a_table(self.path.name, "it contains binary data")
        if not head.strip():
            raise InputError(f"{self.path.name} is empty (no header, no rows).",
                             "Export the orders again with a header row and data rows.")
        if _guess_encoding(head) != "utf-8-sig":
            raise InputError(
                f"{self.path.name} is not UTF-8 text, which the DuckDB engine needs.",
                "Use --engine pandas (it reads cp1252 too), or save the file as UTF-8 or "
                "Parquet.")
        text = head.decode("utf-8-sig", errors="replace")
        declared = _declared_delimiter(text)
        delimiter = declared or _sniff_delimiter(text)
        skip = 1 if declared else 0
        self.source_sql = (
            f"read_csv({path}, delim = {_lit(delimiter)}, header = true, all_varchar = true, "
            f"quote = '\"', escape = '\"', skip = {skip}, null_padding = true, "
            f"compression = {_lit(compression or 'none')}, auto_detect = false, "
            "columns = {COLUMNS})")
        # the header, as the csv module reads the first line that is not blank
        lines = [ln for ln in text.splitlines() if ln.strip()][skip:]
        names = next(csv.reader(io.StringIO(lines[0]), delimiter=delimiter), []) if lines else []
        names = [n.strip().lstrip("\ufeff").strip() for n in names]
        if len(names) < 2:
            first = names[0] if names else ""
            raise _not_a_table(self.path.name, f"only one column ({first[:60]!r}) was found")
        if _looks_like_data(pd.Index(names)):
            raise InputError(
                f"{self.path.name} has no header row: its first line "
                f"({', '.join(names)[:80]}) looks like data.",
                "Add a first line naming the columns (e.g. customer,date,amount) and load "
                "again.")
        spec = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
        self.source_sql = self.source_sql.replace("{COLUMNS}", spec)
        # DuckDB numbers CSV rows in file order with preserve_insertion_order
        self._run(f"CREATE TEMP TABLE csv_rows AS SELECT *, "
                  f"row_number() OVER () - 1 AS __tailor_rn FROM {self.source_sql}")
        self.source_sql = "csv_rows"
        self.rn = "__tailor_rn"
        self.rows_read = int(self.con.execute("SELECT count(*) FROM csv_rows").fetchone()[0])
        self._csv_columns = [(n, "VARCHAR") for n in names]

    def _run(self, sql: str, what: str = "read") -> Any:
        """Run ``sql``; a problem with the data (not a bug in the SQL) is an InputError."""
        d = self.duckdb
        try:
            return self.con.execute(sql)
        except (d.IOException, d.InvalidInputException, d.ConversionException,
                d.OutOfRangeException, d.OutOfMemoryException) as exc:
            raise InputError(
                f"{self.path.name}: DuckDB could not {what} the orders ({short_error(exc)}).",
                "Use --engine pandas, which reports every problem row by row, or check the "
                "file.") from None

    def _sample(self) -> pd.DataFrame:
        """The first 50 rows as pandas sees them (for the hints of a missing column)."""
        cols = ", ".join(f"{c.raw() if c.kind != 'datetime' else c.ref} AS {_q(c.name)}"
                         for c in self.file_columns)
        return self._run(f"SELECT {cols} FROM {self.source_sql} AS src LIMIT 50").df()

    # --- the fields of every row

    def _dictionaries(self) -> None:
        """Distinct descriptions, countries, text dates and non-plain numbers (one scan), each
        turned into its cleaned value by the functions ``load_orders`` uses."""
        # per key: (its text, cleaned: whether it goes through clean_strings here)
        keys: dict[str, tuple[str, bool]] = {}
        desc, country, ts = self.field["description"], self.field["country"], \
            self.field["timestamp"]
        if desc is not None:
            keys["desc"] = (f"coalesce({desc.text()}, '')", False)
        if country is not None:
            keys["country"] = (f"coalesce({country.text()}, '')", False)
        if ts is not None and ts.kind in ("text", "bool", "decimal"):
            keys["ts"] = (ts.text(), True)
        for f in ("quantity", "unit_price", "amount"):
            c = self.field[f]
            if c is not None and c.kind in ("text", "bool", "date", "datetime"):
                keys[f] = (c.text(), True)
        self.lookups: dict[str, str] = {}
        if not keys:
            return
        names = list(keys)
        texts = ", ".join(f"{e} AS {_q(k + '_x')}" for k, (e, _) in keys.items())
        stripped = ", ".join(f"{_strip_sql(_q(k + '_x'))} AS {_q(k + '_t')}"
                             for k, (_, clean) in keys.items() if clean)
        final = []
        for k, (_, clean) in keys.items():
            if not clean:
                final.append(f"{_q(k + '_x')} AS {_q(k)}")
            elif k == "ts":
                final.append(f"{_null_tokens_sql(_q('ts_t'))} AS {_q(k)}")
            else:  # numbers: only those that are not plain (the rows parse those in SQL)
                c = _null_tokens_sql(_q(k + "_t"))
                final.append(f"(CASE WHEN NOT regexp_full_match({c}, {_lit(_PLAIN_NUMBER)}) "
                             f"THEN {c} END) AS {_q(k)}")
        inner = f"SELECT {texts}, {self.rn} AS rn FROM {self.source_sql} AS src"
        if stripped:
            inner = f"SELECT *, {stripped} FROM ({inner}) OFFSET 0"
        sets = ", ".join(f"({_q(k)})" for k in names)
        grouping = ", ".join(f"GROUPING({_q(k)}) AS {_q('g_' + k)}" for k in names)
        dist = self._run(
            f"SELECT {', '.join(_q(k) for k in names)}, {grouping}, count(*) AS n, "
            f"min(rn) AS first FROM (SELECT {', '.join(final)}, rn FROM ({inner})) "
            f"GROUP BY GROUPING SETS ({sets})").df()
        part = {k: dist[dist["g_" + k] == 0][[k, "n", "first"]].sort_values("first")
                for k in names}
        if "desc" in part:
            raw = part["desc"]["desc"].astype("string").reset_index(drop=True)
            cleaned = collapse_spaces(clean_strings(raw, null_tokens=False)).fillna("")
            table = pd.DataFrame({"raw": raw, "description": cleaned})
            if self.rules is not None:
                names = self.rules.names
                table["grp"] = assign_groups(cleaned, self.rules).to_numpy()
                table["gid"] = np.array([names.index(g) for g in table["grp"]], dtype=np.int16)
            self.con.register("desc_map", table)
            self.lookups["desc"] = "desc_map"
        if "country" in part:
            raw = part["country"]["country"].astype("string").reset_index(drop=True)
            table = pd.DataFrame({"raw": raw, "country": clean_strings(
                raw, null_tokens=False).fillna("Unknown")})
            self.con.register("country_map", table)
            self.lookups["country"] = "country_map"
        if "ts" in part:
            present = part["ts"].dropna(subset=["ts"])
            self.con.register("ts_map", _text_dates(present["ts"].astype("string"),
                                                    present["n"].to_numpy(),
                                                    str(self.columns["timestamp"])))
            self.lookups["ts"] = "ts_map"
        for f in ("quantity", "unit_price", "amount"):
            if f in part:
                raw = part[f][f].dropna().astype("string").reset_index(drop=True)
                table = pd.DataFrame({"t": raw, "value": to_number(raw).to_numpy()})
                self.con.register(f"num_{f}", table)
                self.lookups[f] = f"num_{f}"

    def _timestamp_sql(self) -> tuple[str, str]:
        """(timestamp (naive UTC, microseconds, NULL when unusable), out of range flag)."""
        col = self.field["timestamp"]
        assert col is not None
        r = col.ref
        lo = f"TIMESTAMP '{DATE_MIN.tz_localize(None)}'"
        hi = f"TIMESTAMP '{DATE_MAX.tz_localize(None)}'"
        if col.kind == "datetime" or col.kind == "date":
            value = f"CAST({r} AS TIMESTAMP)"
        elif col.kind == "number":
            median = self._run(f"SELECT median(abs(CAST({r} AS DOUBLE))) FROM "
                               f"{self.source_sql} AS src WHERE NOT isnan({r})").fetchone()[0]
            per_second = 1.0 if median is None or median <= 1e11 else 1000.0
            sec = f"(CAST({r} AS DOUBLE) / {per_second})"
            value = (f"(CASE WHEN abs({sec}) < 9.2e9 THEN "
                     f"make_timestamp(CAST(round({sec} * 1e6) AS BIGINT)) END)")
        elif col.kind == "nested":
            raise _nested_error(col, self.path.name)
        else:  # text: rows_sql joins ts_map
            raise AssertionError(col.kind)
        return (f"(CASE WHEN {value} BETWEEN {lo} AND {hi} THEN {value} END)",
                f"coalesce(NOT ({value} BETWEEN {lo} AND {hi}), false)")

    def rows_sql(self) -> str:
        """Every row of the file with its canonical fields and its reject reason (NULL for a
        row kept); duplicates from the table ``dup_rn``. Built in layers, so that each
        value is stripped, checked and parsed once."""
        f = self.field
        notes = self.notes
        ids = [k for k in ("customer", "order_id", "item") if f[k] is not None]
        text_numbers = [k for k in ("quantity", "unit_price", "amount")
                        if f[k] is not None and f[k].kind not in ("number", "decimal")]
        ts_col = f["timestamp"]
        ts_text = ts_col.kind in ("text", "bool", "decimal")

        # layer 1: the file's values, stripped; descriptions and countries from their tables
        l1 = [f"src.{_q(self.rn)} AS rn",
              f"src.{_q(self.rn)} IN (SELECT rn FROM dup_rn) AS dup"]
        joins = []
        for k in ids + text_numbers:
            l1.append(f"{f[k].text()} AS {k}_x")
        for k in ("quantity", "unit_price", "amount"):
            if f[k] is not None and k not in text_numbers:
                v = f"CAST({f[k].ref} AS DOUBLE)"
                l1.append(f"(CASE WHEN isnan({v}) OR isinf({v}) THEN NULL ELSE {v} END) AS {k}_v")
        if ts_text:
            l1.append(f"{ts_col.text()} AS ts_x")
        else:
            ts, oor = self._timestamp_sql()
            l1 += [f"{ts} AS ts", f"{oor} AS oor"]
        if f["description"] is not None:
            joins.append(f"LEFT JOIN desc_map ON desc_map.raw = "
                         f"coalesce({f['description'].text()}, '')")
            l1.append("desc_map.description AS description")
            l1.append(f"{'desc_map.gid' if self.rules is not None else 'NULL'} AS gid")
        else:
            l1.append("'' AS description")
            fallback = (str(self.rules.names.index(assign_groups(
                pd.Series([""], dtype="string"), self.rules).iloc[0]))
                if self.rules is not None else "NULL")
            l1.append(f"{fallback} AS gid")
        if f["country"] is not None:
            joins.append(f"LEFT JOIN country_map ON country_map.raw = "
                         f"coalesce({f['country'].text()}, '')")
            l1.append("country_map.country AS country")
        else:
            l1.append("'Unknown' AS country")
        layer1 = f"SELECT {', '.join(l1)} FROM {self.source_sql} AS src {' '.join(joins)}"

        # layer 2: stripped; empty and null-looking values -> NULL (values.clean_strings)
        texts = ids + text_numbers + (["ts"] if ts_text else [])
        if texts:
            stripped = ", ".join(f"{_strip_sql(k + '_x')} AS {k}_t" for k in texts)
            layer1 = f"SELECT *, {stripped} FROM ({layer1}) OFFSET 0"
        tokens = ", ".join(_lit(s) for s in _NULL_TOKENS)
        l2 = ["*"]
        for k in texts:
            t = f"{k}_t"
            l2.append(f"(CASE WHEN {t} = '' OR (length({t}) <= 4 AND lower({t}) IN "
                      f"({tokens})) THEN NULL ELSE {t} END) AS {k}_c")
        layer2 = f"SELECT {', '.join(l2)} FROM ({layer1})"

        # layer 3: ids (values.clean_ids), numbers (values.to_number), text dates
        l3 = ["l2.*"]
        joins = []
        for k in ids:
            c = f"l2.{k}_c"
            l3.append(f"(CASE WHEN contains({c}, '.') AND regexp_full_match({c}, "
                      f"'-?[0-9]+\\.0+') THEN regexp_replace({c}, '\\.0+$', '') ELSE {c} END)"
                      f" AS {k}_id")
        for k in text_numbers:
            c = f"l2.{k}_c"
            lookup = self.lookups.get(k)
            if lookup:
                joins.append(f"LEFT JOIN {lookup} ON {lookup}.t = {c}")
            parsed = f"{lookup}.value" if lookup else "NULL"
            v = (f"(CASE WHEN {c} IS NULL THEN NULL WHEN regexp_full_match({c}, "
                 f"{_lit(_PLAIN_NUMBER)}) THEN TRY_CAST({c} AS DOUBLE) ELSE {parsed} END)")
            l3.append(f"{v} AS {k}_raw")
        if ts_text:
            joins.append("LEFT JOIN ts_map ON ts_map.t = l2.ts_c")
            l3 += ["ts_map.ts AS ts", "coalesce(ts_map.oor, false) AS oor"]
        layer3 = f"SELECT {', '.join(l3)} FROM ({layer2}) AS l2 {' '.join(joins)}"
        l3b = ["*"]
        for k in text_numbers:
            l3b.append(f"(CASE WHEN isnan({k}_raw) OR isinf({k}_raw) THEN NULL "
                       f"ELSE {k}_raw END) AS {k}_v")
        layer3 = f"SELECT {', '.join(l3b)} FROM ({layer3})"

        # layer 4: item, quantity, unit price, amount (ingest._item_fields, _value_fields)
        if f["item"] is not None:
            item, missing_item = "item_id", "item_id IS NULL"
        else:
            item = "(CASE WHEN description = '' THEN 'unknown' ELSE description END)"
            missing_item = "false"
            notes.append("no item column: item = the description" if f["description"] is not None
                         else "no item column: item = 'unknown'")
        has_q, has_p, has_a = (f[k] is not None for k in ("quantity", "unit_price", "amount"))
        q = "quantity_v" if has_q else None
        p = "unit_price_v" if has_p else None
        a = "amount_v" if has_a else None
        bad_q = f"{q} IS NULL" if has_q else "false"
        bad_p = f"{p} IS NULL" if has_p else "false"
        bad_a = f"{a} IS NULL" if has_a and not has_p else "false"
        if not has_q:
            if has_a and not has_p:
                q = f"(CASE WHEN {a} < 0 THEN -1.0 ELSE 1.0 END)"
                notes.append("no quantity column: quantity = 1 per row (-1 for a negative "
                             "amount)")
            else:
                q = "1.0"
                notes.append("no quantity column: quantity = 1 per row")
        if not has_p:
            ratio = f"abs({a} / {q})"
            p = (f"(CASE WHEN {q} = 0 OR isnan({ratio}) OR isinf({ratio}) THEN NULL "
                 f"ELSE {ratio} END)")
            notes.append("no unit_price column: unit_price = amount / quantity" if has_q
                         else "no unit_price column: unit_price = amount")
        if not has_a:
            a = f"({q} * {p})"
        elif has_p:
            a = f"coalesce({a}, {q} * {p})"
        if f["order_id"] is not None:
            order_file, missing_order = "order_id_id", "order_id_id IS NULL"
            prefixed = (f"coalesce(starts_with(order_id_id, {_lit(self.return_prefix)}), false)"
                        if self.return_prefix else "false")
        else:
            order_file, missing_order, prefixed = "NULL::VARCHAR", "false", "false"
            notes.append("no order id column: order_id = customer@timestamp")
        if f["country"] is None:
            notes.append("no country column: country = 'Unknown'")
        layer4 = f"""
            SELECT rn, dup, customer_id AS customer, ts, oor, {order_file} AS order_file,
                   {item} AS item, {missing_item} AS missing_item,
                   {missing_order} AS missing_order, {prefixed} AS prefixed,
                   description, gid, country,
                   {q} AS q, {p} AS p, {a} AS a,
                   {bad_q} AS bad_q, {bad_p} AS bad_p, {bad_a} AS bad_a
            FROM ({layer3})"""

        # layer 5: returns (ingest._order_ids), the reason (ingest._validate), the output
        derived_order = ("customer || '@' || strftime(ts, '%Y-%m-%dT%H:%M:%S')"
                         if f["order_id"] is None else "order_file")
        return f"""
            SELECT *, {derived_order} AS order_id,
                   (CASE WHEN reason IS NULL THEN
                         CAST(epoch_us(ts) // 86400000000 AS BIGINT) END) AS day,
                   (CASE WHEN is_return THEN -1.0 ELSE 1.0 END) * abs(q) AS quantity,
                   abs(p) AS unit_price,
                   (CASE WHEN is_return THEN -1.0 ELSE 1.0 END) * abs(a) AS amount
            FROM (
              SELECT *, CASE
                WHEN customer IS NULL THEN 'missing_customer'
                WHEN ts IS NULL AND NOT oor THEN 'unparseable_date'
                WHEN oor THEN 'date_out_of_range'
                WHEN missing_item THEN 'missing_item'
                WHEN missing_order THEN 'missing_order_id'
                WHEN bad_q THEN 'non_numeric_quantity'
                WHEN bad_p THEN 'non_numeric_price'
                WHEN bad_a THEN 'non_numeric_amount'
                WHEN q = 0 THEN 'zero_quantity'
                WHEN p < 0 OR (p = 0 AND NOT is_return) THEN 'non_positive_price'
                WHEN dup THEN 'duplicate_row'
              END AS reason
              FROM (SELECT *, (coalesce(q < 0, false) OR prefixed) AS is_return
                    FROM ({layer4}))
            )
            OFFSET 0  -- a barrier: without it DuckDB merges the layers into one projection
                      -- and computes every cleaned value again wherever it is used (5x slower)
            """

    def _duplicates(self) -> None:
        """``dup_rn``: the rows equal in every column to an earlier row (pandas'
        ``duplicated(keep="first")`` over the columns as read). A 64-bit hash of each row
        finds the candidates; the exact comparison runs over those only."""
        values = [c.raw() for c in self.file_columns]
        h = f"hash({', '.join(values)})"
        parts = ", ".join(values)
        self._run(f"""
            CREATE TEMP TABLE dup_rn AS
            WITH cand AS (SELECT h FROM (SELECT {h} AS h FROM {self.source_sql} AS src)
                          GROUP BY h HAVING count(*) > 1)
            SELECT rn FROM (
                SELECT {self.rn} AS rn,
                       row_number() OVER (PARTITION BY {parts} ORDER BY {self.rn}) AS k
                FROM {self.source_sql} AS src WHERE {h} IN (SELECT h FROM cand))
            WHERE k > 1""", "compare the rows of")

    # --- the aggregates

    def run(self, reference_date: Any, groups: list[str] | None, rejects_path: Path | None,
            catalog: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
        for col in self.field.values():
            if col is not None and col.kind == "nested":
                raise _nested_error(col, self.path.name)
        self._dictionaries()
        self._duplicates()
        rows = self.rows_sql()
        self.con.execute(f"CREATE TEMP VIEW rows_ AS {rows}")
        names = self.rules.names if self.rules is not None else []
        group_aggs = "".join(
            f", sum(amount) FILTER (NOT is_return AND gid = {k}) AS {_q('spend_' + g)}"
            for k, g in enumerate(names))
        if names and len(names) <= 120:  # the groups present (among every row kept)
            group_aggs += ", bit_or(CAST(1 AS HUGEINT) << gid) AS groups_present"
        elif names:  # more groups than bits
            group_aggs += "".join(f", count(*) FILTER (gid = {k}) > 0 AS {_q('has_' + g)}"
                                  for k, g in enumerate(names))
        per = self._run(f"""
            SELECT reason, CASE WHEN reason IS NULL THEN customer END AS customer,
                   count(*) AS n_rows,
                   count(*) FILTER (is_return) AS n_returns,
                   count(*) FILTER (NOT is_return) AS n_purchases,
                   sum(amount) FILTER (NOT is_return) AS gross,
                   sum(quantity) FILTER (NOT is_return) AS qty,
                   sum(-amount) FILTER (is_return) AS returned,
                   count(DISTINCT order_id) FILTER (NOT is_return) AS frequency,
                   count(DISTINCT day) FILTER (NOT is_return) AS n_dates,
                   min(day) FILTER (NOT is_return) AS first_day,
                   max(day) FILTER (NOT is_return) AS last_day,
                   max(day) AS last_any_day,
                   count(DISTINCT item) FILTER (NOT is_return) AS distinct_items,
                   list_sort(list_transform(map_entries(histogram(country)),
                             lambda e: {{'n': -CAST(e.value AS BIGINT), 'k': e.key}}))[1].k
                       AS country
                   {group_aggs}
            FROM rows_
            GROUP BY ALL""", "aggregate").df()
        reasons = per.groupby("reason", dropna=True)["n_rows"].sum()
        kept = per[per["reason"].isna()]
        rejected, reject_notes = summarise_rejects({str(r): int(n)
                                                    for r, n in reasons.items()})
        rows_used = int(kept["n_rows"].sum())
        n_returns = int(kept["n_returns"].sum())
        notes = list(self.notes) + reject_notes
        if rejects_path is not None:
            rejects_path = Path(rejects_path)
            self._write_rejects(rejects_path)
        if n_returns == rows_used:
            _raise_no_purchases(self.path.name, self.rows_read, rows_used, rejected,
                                self.return_prefix, rejects_path)
        features = self._features(kept, reference_date, groups, names)
        info: dict[str, Any] = {
            "rows_read": self.rows_read, "rows_used": rows_used, "returns": n_returns,
            "purchases": rows_used - n_returns, "rejected": rejected,
            "columns": self.columns, "notes": notes, "rejects_path": rejects_path,
        }
        if catalog:
            info["catalog"] = self._catalog()
        return features, info

    def _features(self, kept: pd.DataFrame, reference_date: Any, groups: list[str] | None,
                  names: list[str]) -> pd.DataFrame:
        """``build_features``' frame from the per-customer aggregates (its formulas)."""
        last_order_day = int(kept["last_any_day"].max())
        ref_day = _reference_day(reference_date, last_order_day)
        buyers = kept[kept["n_purchases"] > 0]
        returns_only = kept.loc[kept["n_purchases"] == 0, "customer"]
        last_day = buyers["last_day"].to_numpy(dtype=np.int64)
        first_day = buyers["first_day"].to_numpy(dtype=np.int64)
        if ref_day < last_day.max():
            raise InputError(
                f"The reference date {_date(ref_day)} is before the last purchase "
                f"({_date(int(last_day.max()))}).",
                "Keep only the orders up to the reference date, or pass a later date.",
            )
        freq = buyers["frequency"].to_numpy(dtype=np.int64)
        gross = buyers["gross"].to_numpy(dtype=np.float64)
        returned = buyers["returned"].fillna(0.0).to_numpy(dtype=np.float64)
        n_dates = buyers["n_dates"].to_numpy(dtype=np.int64)
        spent = gross > 0
        return_rate = np.where(
            spent,
            np.clip(returned / np.where(spent, gross, 1.0), 0.0, 1.0),
            np.where(returned > 0, 1.0, 0.0),
        )
        gaps = np.where(n_dates > 1, (last_day - first_day) / np.maximum(n_dates - 1, 1),
                        np.nan)
        columns: dict[str, object] = {
            "recency_days": (ref_day - last_day).astype(np.int64),
            "frequency": freq,
            "monetary": gross - returned,
            "gross_spend": gross,
            "tenure_days": (ref_day - first_day).astype(np.int64),
            "avg_basket_value": gross / freq,
            "avg_items_per_order": buyers["qty"].to_numpy(dtype=np.float64) / freq,
            "distinct_items": buyers["distinct_items"].to_numpy(dtype=np.int64),
            "return_rate": return_rate,
            "days_between_orders": gaps.astype(np.float64),
            "country": pd.array(buyers["country"].to_numpy(dtype=object), dtype="string"),
        }
        if self.rules is not None:
            if "groups_present" in kept:
                bits = 0
                for value in kept["groups_present"].dropna():
                    bits |= int(value)
                present = [g for k, g in enumerate(names) if bits >> k & 1]
            else:
                present = [g for g in names if kept["has_" + g].any()]
            wanted = sorted(present) if groups is None else [str(g) for g in groups]
            unknown = sorted(set(present) - set(wanted))
            if unknown:
                raise InputError(
                    f"The orders hold product group(s) {', '.join(unknown)} that are not "
                    f"among the requested groups {', '.join(wanted)}.",
                    "Pass every group the catalog assigns, or groups=None.")
            nonzero = gross != 0
            denom = np.where(nonzero, gross, 1.0)
            for g in wanted:
                if g in names:
                    spend = buyers["spend_" + g].fillna(0.0).to_numpy(dtype=np.float64)
                    columns[SHARE_PREFIX + g] = np.where(nonzero, spend / denom, 0.0)
                else:
                    columns[SHARE_PREFIX + g] = np.zeros(len(buyers))
        index = pd.Index(buyers["customer"].to_numpy(dtype=object), dtype="string",
                         name="customer")
        features = pd.DataFrame(columns, index=index).sort_index()
        features.attrs = {
            "reference_date": pd.Timestamp(_date(ref_day)),
            "returns_only_customers": int(len(returns_only)),
            "returns_only_ids": tuple(sorted(str(c) for c in returns_only)),
        }
        return features

    def _catalog(self) -> pd.DataFrame:
        """``catalog.build_catalog`` over the rows kept."""
        cat = self._run("""
            SELECT item,
                   coalesce(list_sort(list_transform(map_entries(
                       histogram(description) FILTER (description <> '')),
                       lambda e: {'n': -CAST(e.value AS BIGINT), 'k': e.key}))[1].k, '')
                       AS description,
                   coalesce(median(unit_price) FILTER (NOT is_return), median(unit_price))
                       AS typical_price,
                   count(DISTINCT customer) FILTER (NOT is_return) AS popularity
            FROM rows_ WHERE reason IS NULL GROUP BY item""", "aggregate").df()
        cat["item"] = cat["item"].astype("string")
        cat["description"] = cat["description"].astype("string")
        cat["group"] = assign_groups(cat["description"], self.rules).to_numpy()
        cols = list(CATALOG_COLUMNS)
        cat = cat.astype(CATALOG_COLUMNS)[cols]
        return cat.sort_values(["popularity", "item"], ascending=[False, True]).reset_index(
            drop=True)

    def _write_rejects(self, target: Path) -> None:
        """The rejected rows as read, with ``row`` (1-based) and ``reason`` (as
        ``load_orders`` writes them)."""
        cols = ", ".join(f"{c.raw() if c.kind != 'datetime' else c.ref} AS {_q(c.name)}"
                         for c in self.file_columns)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.con.execute(f"""
                COPY (SELECT r.rn + 1 AS "row", {cols}, r.reason
                      FROM rows_ AS r JOIN {self.source_sql} AS src
                           ON src.{_q(self.rn)} = r.rn
                      WHERE r.reason IS NOT NULL ORDER BY r.rn)
                TO {_lit(str(target))} (HEADER, DELIMITER ',')""")
        except (OSError, self.duckdb.Error) as exc:
            raise InputError(
                f"Could not write the rejected rows to {target}: {short_error(exc)}",
                "Choose a rejects path in a writable directory.",
            ) from None


# --------------------------------------------------------------------------- text dates


def _text_dates(values: pd.Series, counts: np.ndarray, column: str) -> pd.DataFrame:
    """``values.parse_dates_checked`` on a text column given as its distinct cleaned values
    (in order of first appearance) and how many rows hold each: the same format choice (the
    same sample of distinct values), the same error, counted in rows. A table t -> ts
    (naive UTC, NULL when unusable), oor (a date out of range)."""
    values = values.reset_index(drop=True)
    if values.empty:
        raise InputError(
            f"Column {column!r} (used as timestamp) is empty.",
            "If another column holds the order date, pass --map timestamp=COLUMN; "
            "otherwise export the orders again with their dates.",
        )
    uniq = pd.Series(values.to_numpy(), dtype="string")
    sample = uniq.sample(min(len(uniq), _DATE_SAMPLE), random_state=0)
    unit = _epoch_unit(sample)
    if unit is not None:
        numbers = to_number(uniq)
        low, high = _EPOCH_RANGE[unit]
        out = _as_us(pd.to_datetime(numbers.where(numbers.between(low, high)), unit=unit,
                                    utc=True))
    else:
        best = best_date_format(sample)
        out = _as_us(to_dt(uniq, best))
        if best != "ISO8601" and out.isna().any():
            failed = out.isna()
            out[failed] = _as_us(to_dt(uniq[failed], "ISO8601"))
        failed = out.isna().to_numpy()
        check_readable_dates(column, int(counts[failed].sum()), int(counts.sum()),
                             uniq[failed])
    ts, oor = in_date_range(out)
    return pd.DataFrame({"t": uniq, "ts": ts.astype("datetime64[us]"), "oor": oor})

