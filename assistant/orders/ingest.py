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

Reading the file is ``orders/tables.py`` (dialect, encoding, Parquet); parsing ids, numbers
and dates is ``orders/values.py``. A timestamp column where most values fail is an error,
not a reject.
Dates before ``DATE_MIN`` (1970-01-01) or after ``DATE_MAX`` (2099-12-31) are rejected as
``date_out_of_range``: placeholders like 1900-01-01 or 2999-01-01 (any year 1-9999 is read).
Any problem with the file itself is an ``InputError`` with a message and a hint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from assistant.core.errors import InputError
from assistant.orders.tables import file_kind, file_sha256, read_raw_table, short_error
from assistant.orders.values import (
    DATE_FORMATS,
    DATE_MAX,
    DATE_MIN,
    clean_ids,
    clean_strings,
    collapse_spaces,
    parse_dates_checked,
    to_dt,
    to_number,
)

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
    kind = file_kind(path)
    source_hash = file_sha256(path)
    raw, malformed, read_notes = read_raw_table(path, kind)
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
            f"{path.name}: the mapped columns could not be read as orders ({short_error(exc)}).",
            "Check that each mapped column holds plain text, numbers or dates "
            "(columns used: " + ", ".join(f"{k}={v}" for k, v in columns.items() if v) + ").",
        ) from exc

    rejected = {
        reason: int(n)
        for reason, n in reasons[reasons.notna()].value_counts().items()
    }
    if malformed:
        rejected["malformed_line"] = len(malformed)
    rejected, reject_notes = summarise_rejects(rejected)
    notes = read_notes + notes + reject_notes

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
                    to_dt(text, fmt).notna().mean() >= 0.8 for fmt in DATE_FORMATS[:7]
                ):
                    return col
            if fld in ("amount", "unit_price") and to_number(values).notna().mean() >= 0.8:
                return col
    close = get_close_matches(fld.replace("_", ""), list(pool), n=1, cutoff=0.5)
    if close:
        return pool[close[0]]
    return free[0] if len(free) == 1 else "COLUMN"




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
        collapse_spaces(clean_strings(desc_src, null_tokens=False))
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
            f"Could not write the rejected rows to {target}: {short_error(exc)}",
            "Choose a rejects path in a writable directory.",
        ) from None


def summarise_rejects(counts: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """The reject counts in ``REJECT_REASONS`` order (zeros left out), and the notes they
    call for."""
    rejected = {r: int(counts[r]) for r in REJECT_REASONS if counts.get(r)}
    notes = []
    if rejected.get("date_out_of_range"):
        notes.append(f"dates before {DATE_MIN:%Y-%m-%d} or after {DATE_MAX:%Y-%m-%d} are "
                     "rejected as date_out_of_range (placeholders such as 1900-01-01 or "
                     "2999-01-01)")
    return rejected, notes


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
