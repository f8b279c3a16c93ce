"""User-item files for the offline evaluation, read and validated: orders (a price or amount
column: read by ``orders/ingest.py``'s ``load_orders``, returns and non-product lines such as
postage left out, one interaction per item and order) or any other user-item file: ratings,
views, ... (columns ``user``, ``item`` and optionally ``time``, ``rating``, ``description``,
found by name or mapped with ``--map field=column``, read by ``orders/ingest.py``'s
``read_table``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from assistant.core.errors import InputError
from assistant.orders.catalog import assign_groups, clean_description
from assistant.orders.ingest import ALIASES, column_key, load_orders
from assistant.orders.tables import file_sha256, read_columns, read_table
from assistant.orders.values import clean_ids, clean_strings, parse_dates, to_number
from assistant.recommend.algorithms import NON_PRODUCT_GROUPS

FIELDS = ("user", "item", "time", "rating", "description")
_SYNONYMS = {"customer": "user", "timestamp": "time", "date": "time", "product": "item"}
_ORDER_FIELDS = ("order_id", "quantity", "unit_price", "amount", "country")
_RATING_ALIASES = ("rating", "ratings", "score", "stars", "preference", "grade")
_EXTRA_USER = ("userid", "user", "visitorid", "reviewerid", "viewerid", "readerid")
_EXTRA_ITEM = ("movieid", "movie", "asin", "bookid", "isbn", "trackid", "contentid")


@dataclass
class InteractionData:
    """A user-item file, cleaned: ``events`` has user, item, time (NaT when the file has no
    time), weight (a rating, else 1), order (the order id for orders, else a row number)."""

    events: pd.DataFrame
    kind: str  # "orders" or "interactions"
    source: str
    orders: pd.DataFrame | None = None  # the orders frame (purchases, with group) for orders
    descriptions: pd.Series | None = None  # item -> description, when the file has them
    rows_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sha256: str = ""  # of the file's bytes

    @property
    def has_time(self) -> bool:
        return bool(self.events["time"].notna().any())

    def summary(self) -> dict[str, Any]:
        ev = self.events
        return {"source": self.source, "kind": self.kind, "rows_read": int(self.rows_read),
                "interactions": int(len(ev)), "users": int(ev["user"].nunique()),
                "items": int(ev["item"].nunique()),
                "first": str(ev["time"].min())[:10] if self.has_time else None,
                "last": str(ev["time"].max())[:10] if self.has_time else None,
                "dropped": self.dropped, "notes": self.notes}


def parse_mapping(mapping: dict[str, str] | None) -> dict[str, str]:
    """Canonical field -> column; accepts customer/timestamp/date as synonyms and the
    orders fields (order_id, quantity, unit_price, amount, country) for orders files."""
    out: dict[str, str] = {}
    allowed = (*FIELDS, *_ORDER_FIELDS)
    for fld, col in (mapping or {}).items():
        key = _SYNONYMS.get(fld.strip().lower(), fld.strip().lower())
        if key not in allowed:
            raise InputError(
                f"Unknown field {fld!r} in the column mapping.",
                "Map one of: " + ", ".join(FIELDS) + " (e.g. --map user=CustomerID --map "
                "item=StockCode --map time=InvoiceDate --map rating=stars).",
            )
        if key in out:
            raise InputError(f"The field {key!r} is mapped twice.",
                             "Give each field one --map FIELD=COLUMN.")
        out[key] = col
    cols = list(out.values())
    twice = sorted({c for c in cols if cols.count(c) > 1})
    if twice:
        raise InputError(f"Column {twice[0]!r} is mapped to more than one field.",
                         "Map each column to one field only.")
    return out


def load_interactions(path: str | Path, mapping: dict[str, str] | None = None) -> InteractionData:
    """Read and validate a user-item file (see the module docstring). ``InputError`` with a
    hint for anything unusable: unknown or missing columns, no rows, a single user or item."""
    path = Path(path)
    fields = parse_mapping(mapping)
    header = read_columns(path)
    _check_mapped_columns(fields, header, path.name)
    if _looks_like_orders(fields, header):
        data = _load_orders(path, fields)
    else:
        data = _load_generic(path, fields)
    _check_enough(data.events, path.name)
    return data



def _find(header: list[str], aliases: Sequence[str]) -> str | None:
    by_norm = {column_key(c): c for c in reversed(header)}
    return next((by_norm[a] for a in aliases if a in by_norm), None)


def _check_mapped_columns(fields: dict[str, str], header: list[str], name: str) -> None:
    by_norm = {column_key(c) for c in header}
    for fld, col in fields.items():
        if col not in header and column_key(col) not in by_norm:
            raise InputError(
                f"Column {col!r} (mapped to {fld}) is not in {name}; columns found: "
                + ", ".join(header) + ".",
                f"Use one of the columns found, e.g. --map {fld}={header[0]}.",
            )


def _looks_like_orders(fields: dict[str, str], header: list[str]) -> bool:
    if "rating" in fields or _find(header, _RATING_ALIASES):
        return False
    priced = any(f in fields for f in ("amount", "unit_price")) or bool(
        _find(header, ALIASES["amount"]) or _find(header, ALIASES["unit_price"]))
    dated = "time" in fields or bool(_find(header, ALIASES["timestamp"]))
    return priced and dated


def _load_orders(path: Path, fields: dict[str, str]) -> InteractionData:
    to_orders = {"user": "customer", "time": "timestamp"}
    mapping = {to_orders.get(k, k): v for k, v in fields.items()}
    ingest = load_orders(path, mapping)
    orders = ingest.orders
    purchases = orders[~orders["is_return"]].copy()
    purchases["group"] = assign_groups(purchases["description"])
    product = ~purchases["group"].isin(NON_PRODUCT_GROUPS).to_numpy()
    dropped = dict(ingest.rejected)
    dropped["returns"] = int(orders["is_return"].sum())
    dropped["non_product_lines"] = int((~product).sum())
    purchases = purchases[product]
    events = pd.DataFrame({
        "user": purchases["customer"].astype(str).to_numpy(),
        "item": purchases["item"].astype(str).to_numpy(),
        "time": purchases["timestamp"].to_numpy(),
        "weight": 1.0,
        "order": purchases["order_id"].astype(str).to_numpy(),
    })
    desc = clean_description(purchases["description"])
    descriptions = _mode_by_item(purchases["item"].astype(str), desc)
    notes = [*ingest.notes, "orders: one interaction per item and order; returns and "
             "non-product lines (postage, fees) left out"]
    return InteractionData(events.reset_index(drop=True), "orders", path.name,
                           purchases.reset_index(drop=True), descriptions, ingest.rows_read,
                           {k: v for k, v in dropped.items() if v}, notes,
                           ingest.source_hash)


def _mode_by_item(items: pd.Series, descriptions: pd.Series) -> pd.Series:
    frame = pd.DataFrame({"item": items.to_numpy(), "d": descriptions.astype(str).to_numpy()})
    frame = frame[frame["d"] != ""]
    if frame.empty:
        return pd.Series(dtype=str)
    counts = frame.groupby(["item", "d"]).size().rename("n").reset_index()
    counts = counts.sort_values(["item", "n", "d"], ascending=[True, False, True])
    return counts.drop_duplicates("item").set_index("item")["d"]


def _load_generic(path: Path, fields: dict[str, str]) -> InteractionData:
    raw = read_table(path)
    header = [str(c) for c in raw.columns]
    cols = _resolve_generic(fields, header, ALIASES)
    if cols["user"] is None or cols["item"] is None:
        missing = [f for f in ("user", "item") if cols[f] is None]
        raise InputError(
            f"{path.name}: no column for {' and '.join(missing)}. Columns found: "
            + ", ".join(header) + ".",
            "Tell Tailor which column holds each one: "
            + " ".join(f"--map {f}=COLUMN" for f in missing)
            + " (and optionally time=, rating=, description=).",
        )
    rows_read = len(raw)
    dropped: dict[str, int] = {}
    notes: list[str] = []
    dup = raw.duplicated(keep="first").to_numpy()
    if dup.any():
        dropped["duplicate_row"] = int(dup.sum())
        raw = raw[~dup]
    user, item = clean_ids(raw[cols["user"]].astype("string")), clean_ids(raw[cols["item"]]
                                                                      .astype("string"))
    keep = user.notna() & item.notna()
    _count(dropped, "missing_user_or_item", ~keep)
    time = (parse_dates(raw[cols["time"]], cols["time"]) if cols["time"]
            else pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]"))
    if cols["time"]:
        _count(dropped, "unparseable_time", keep & time.isna())
        keep &= time.notna()
    else:
        notes.append("no time column: only --split random-per-user is possible")
    weight = pd.Series(1.0, index=raw.index)
    if cols["rating"]:
        weight = to_number(raw[cols["rating"]])
        _count(dropped, "non_numeric_rating", keep & weight.isna())
        keep &= weight.notna()
    events = pd.DataFrame({"user": user, "item": item, "time": time, "weight": weight,
                           "order": np.arange(len(raw)).astype(str)})[keep.to_numpy()]
    if cols["rating"]:
        before = len(events)
        events = events.sort_values("time", kind="stable").drop_duplicates(
            ["user", "item"], keep="last")
        if before - len(events):
            dropped["repeated_rating"] = before - len(events)
            notes.append("a user rating an item twice: the latest rating kept")
    descriptions = None
    if cols["description"]:
        desc = clean_strings(raw[cols["description"]], null_tokens=False).fillna("")
        descriptions = _mode_by_item(item[keep].astype(str), desc[keep])
    else:
        notes.append("no description column: content-based scores are 0, interests unknown")
    return InteractionData(events.astype({"user": str, "item": str}).reset_index(drop=True),
                           "interactions", path.name, None, descriptions, rows_read,
                           dropped, notes, file_sha256(path))


def _resolve_generic(fields: dict[str, str], header: list[str],
                     aliases: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
    by_norm = {column_key(c): c for c in reversed(header)}
    cols: dict[str, str | None] = {
        f: (fields[f] if fields[f] in header else by_norm[column_key(fields[f])])
        if f in fields else None for f in FIELDS}
    lookup = {"user": (*aliases["customer"], *_EXTRA_USER),
              "item": (*aliases["item"], *_EXTRA_ITEM),
              "time": aliases["timestamp"], "rating": _RATING_ALIASES,
              "description": aliases["description"]}
    taken = {c for c in cols.values() if c}
    for f in FIELDS:
        if cols[f] is None:
            found = _find([c for c in header if c not in taken], lookup[f])
            cols[f] = found
            if found:
                taken.add(found)
    return cols


def _count(dropped: dict[str, int], reason: str, mask: pd.Series) -> None:
    n = int(np.asarray(mask).sum())
    if n:
        dropped[reason] = dropped.get(reason, 0) + n


def _check_enough(events: pd.DataFrame, name: str) -> None:
    if events.empty:
        raise InputError(f"{name}: no usable interactions after validation.",
                         "Check the user and item columns (--map user=.. item=..).")
    users, items = events["user"].nunique(), events["item"].nunique()
    if users < 2:
        raise InputError(
            f"{name} has a single user ({events['user'].iat[0]}); recommenders are "
            "evaluated across users.",
            "Load a file with the interactions of many users, or check that --map user= "
            "names the user column (not a constant one).")
    if items < 2:
        raise InputError(f"{name} has a single item; there is nothing to rank.",
                         "Check that --map item= names the item column.")

