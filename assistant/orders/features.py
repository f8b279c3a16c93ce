"""Per-customer features from the canonical orders frame (RFM, basket, returns, category mix).

Input: the frame ``behaviour.load_orders`` produces, one row per order line, with the columns
``customer, order_id, timestamp, item, description, quantity, unit_price, amount, country,
is_return`` and optionally ``group`` (product group from ``orders/catalog.py``). Output: one row per
customer, indexed by ``customer`` and sorted by it.

Definitions (purchases are the rows with ``is_return`` false, returns the others; dates are
calendar days, so an order at 23:59 and one at 00:01 the next day are one day apart):

- ``recency_days``: reference date minus the date of the last purchase, in whole days. The
  reference date defaults to the day after the last order (purchase or return) in the data,
  at midnight; an explicit ``reference_date`` is also taken at midnight of its day.
- ``frequency``: distinct purchase orders (returns never count as orders).
- ``monetary``: **net** spend, purchase amounts minus returned amounts (= the sum of
  ``amount`` over all rows, since returns carry negative amounts). Net, because a customer
  who sends most of it back is not a high-value customer; it can be negative when the data
  holds returns of purchases made before its first day. ``gross_spend`` keeps purchases only.
- ``tenure_days``: reference date minus the date of the first purchase.
- ``avg_basket_value``: gross spend / frequency; ``avg_items_per_order``: purchased quantity /
  frequency.
- ``distinct_items``: distinct items among purchases.
- ``return_rate``: returned amount / gross spend, clipped to [0, 1] (1 when something was
  returned against a gross spend of 0; 0 when nothing was).
- ``days_between_orders``: mean gap between the customer's distinct purchase dates (which is
  the span first..last date divided by the number of gaps); NaN with a single purchase date.
- ``country``: the most frequent country among the customer's rows (ties: alphabetical first).
- ``share_<group>``: share of gross spend per product group, only when the orders carry a
  ``group`` column. A row sums to 1 over the groups, or to 0 for a customer whose gross spend
  is 0. A missing group counts as ``other``.

Customers with returns but no purchase are left out (their recency, frequency and basket are
undefined). How many, and who, is in ``features.attrs``:
``attrs["returns_only_customers"]`` (count), ``attrs["returns_only_ids"]`` (tuple of ids) and
``attrs["reference_date"]`` (the Timestamp used). pandas carries ``attrs`` through most
operations, but the feature is marked experimental: read them right after the build.

Speed (``bench/features.py`` compares the build with DuckDB on 8 M rows): each string key
(customer, order, item, country, group) is dictionary-encoded once (pyarrow for Arrow-backed
strings, else ``pd.factorize``); everything after that is numpy on integer codes. Sums are
``bincount``s. "Distinct X per customer" is a sort of one combined integer key (int32 when it
fits) and a neighbour compare. Orders and purchase dates take a shortcut when every order has
one customer and one day (checked on every build, never assumed): two scatters reduce the rows
to one per order. No groupby on strings, no Python loop over customers.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assistant.core.errors import InputError

REQUIRED_COLUMNS = (
    "customer",
    "order_id",
    "timestamp",
    "item",
    "quantity",
    "amount",
    "country",
    "is_return",
)

#: Numeric feature columns every build has (``share_<group>`` columns come on top of these
#: when the orders carry product groups; see :func:`share_columns`).
FEATURE_COLUMNS: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "gross_spend",
    "tenure_days",
    "avg_basket_value",
    "avg_items_per_order",
    "distinct_items",
    "return_rate",
    "days_between_orders",
)

SHARE_PREFIX = "share_"
OTHER_GROUP = "other"

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_HINT = ("Load the orders with assistant.orders.ingest.load_orders, which produces the "
         "expected frame.")


def share_columns(features: pd.DataFrame) -> list[str]:
    """The ``share_<group>`` columns of a features frame, in their order."""
    return [c for c in features.columns if c.startswith(SHARE_PREFIX)]


def build_features(
    orders: pd.DataFrame,
    *,
    reference_date: str | dt.date | pd.Timestamp | None = None,
    groups: list[str] | None = None,
) -> pd.DataFrame:
    """One feature row per customer with at least one purchase (see the module docstring).

    ``reference_date``: the day recency and tenure are counted to (default: the day after the
    last order). It may not fall before the customers' last purchase.
    ``groups``: the product groups to make ``share_<group>`` columns for, in that order (so
    that every build has the same columns; groups absent from the data get 0). Default: the
    groups present in the data, sorted. A group in the data but not in ``groups`` is an error.
    """
    _check_frame(orders, groups)
    n = len(orders)

    cust, customers = _codes(orders["customer"], "customer")
    n_cust = len(customers)
    is_return = _bool_values(orders["is_return"])
    amount = _float_values(orders["amount"], "amount")
    quantity = _float_values(orders["quantity"], "quantity")
    day = _days(orders["timestamp"])
    ref_day = _reference_day(reference_date, int(day.max()))

    # ``buyer``: the customer code on purchase rows and ``n_cust`` (a bucket dropped at the
    # end) on returns; cheaper than cutting every column down to the purchase rows.
    buyer = np.where(is_return, np.intp(n_cust), cust.astype(np.intp, copy=False))
    n_buckets = n_cust + 1

    def per_buyer(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(buyer, weights=weights, minlength=n_buckets)[:n_cust]

    rows = np.bincount(cust, minlength=n_cust)
    purchase_rows = per_buyer()
    gross = per_buyer(amount)
    qty = per_buyer(quantity)
    returned = np.bincount(cust[is_return], weights=-amount[is_return], minlength=n_cust)

    order, order_ids = _codes(orders["order_id"], "order_id")
    frequency, n_dates, first_day, last_day = _orders_and_dates(
        buyer, order, len(order_ids), day, n_buckets
    )
    del order, order_ids
    item, item_ids = _codes(orders["item"], "item")
    distinct_items = _distinct_per_major(buyer, item, len(item_ids), n_buckets)
    del item, item_ids

    country = _mode_country(orders["country"], cust, n_cust)
    shares = _group_shares(orders, groups, buyer, amount, gross, n_cust)

    keep = np.flatnonzero(purchase_rows > 0)
    returns_only = np.flatnonzero((rows > 0) & (purchase_rows == 0))
    if keep.size == 0:
        raise InputError(
            f"The {n} order rows hold no purchase, only returns.",
            "Features need at least one purchase; check the is_return column.",
        )
    first_day = first_day[keep]
    last_day = last_day[keep]
    if ref_day < last_day.max():
        raise InputError(
            f"The reference date {_date(ref_day)} is before the last purchase "
            f"({_date(int(last_day.max()))}).",
            "Keep only the orders up to the reference date, or pass a later date.",
        )
    freq = frequency[keep]
    gross_k = gross[keep]
    returned_k = returned[keep]
    n_dates_k = n_dates[keep]
    spent = gross_k > 0
    return_rate = np.where(
        spent,
        np.clip(returned_k / np.where(spent, gross_k, 1.0), 0.0, 1.0),
        np.where(returned_k > 0, 1.0, 0.0),
    )
    gaps = np.where(n_dates_k > 1, (last_day - first_day) / np.maximum(n_dates_k - 1, 1), np.nan)

    columns: dict[str, object] = {
        "recency_days": (ref_day - last_day).astype(np.int64),
        "frequency": freq.astype(np.int64),
        "monetary": gross_k - returned_k,
        "gross_spend": gross_k,
        "tenure_days": (ref_day - first_day).astype(np.int64),
        "avg_basket_value": gross_k / freq,
        "avg_items_per_order": qty[keep] / freq,
        "distinct_items": distinct_items[keep].astype(np.int64),
        "return_rate": return_rate,
        "days_between_orders": gaps.astype(np.float64),
        "country": country.take(keep),
    }
    for name, values in shares.items():
        columns[SHARE_PREFIX + name] = values[keep]

    index = customers.take(keep).rename("customer")
    features = pd.DataFrame(columns, index=index).sort_index()
    features.attrs = {
        "reference_date": pd.Timestamp(_date(ref_day)),
        "returns_only_customers": int(returns_only.size),
        "returns_only_ids": tuple(customers.take(returns_only).sort_values()),
    }
    return features


# --- input checks and conversions -------------------------------------------------------------


def _check_frame(orders: pd.DataFrame, groups: list[str] | None) -> None:
    if not isinstance(orders, pd.DataFrame):
        raise InputError(f"Expected a pandas DataFrame of orders, got {type(orders).__name__}.",
                         _HINT)
    missing = [c for c in REQUIRED_COLUMNS if c not in orders.columns]
    if missing:
        raise InputError(f"The orders frame lacks the column(s) {', '.join(missing)}.", _HINT)
    if len(orders) == 0:
        raise InputError("The orders frame is empty: there is nothing to build features from.",
                         "Check the orders file and the filters applied before the build.")
    if groups is not None:
        if "group" not in orders.columns:
            raise InputError("Product groups were requested but the orders have no 'group' "
                             "column.",
                             "Assign groups with assistant.orders.catalog first, or pass "
                             "groups=None.")
        if len(set(groups)) != len(groups):
            raise InputError("The list of product groups has duplicates.",
                             "Pass each group once.")


def _encode(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 for missing) and the distinct values, in order of appearance.

    Arrow-backed strings (pandas 3's default) are dictionary-encoded by pyarrow directly and
    the int32 indices used as they come: this skips the chunk concatenation and int64 copy
    ``pd.factorize`` makes (0.83 s instead of 1.27 s for four key columns at 8 M rows).
    Categoricals use their codes; anything else goes through ``pd.factorize``.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), pd.Index(values.cat.categories)
    arrow_backed = isinstance(dtype, pd.ArrowDtype) or (
        isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
    )
    if arrow_backed and len(values):
        data = pa.array(values.array)
        if isinstance(data, pa.Array):
            data = pa.chunked_array([data])
        if not pa.types.is_dictionary(data.type):
            encoded = data.dictionary_encode()  # one hash table: all chunks share a dictionary
            parts = []
            for chunk in encoded.chunks:
                indices = chunk.indices
                if indices.null_count:
                    indices = pc.fill_null(indices, -1)
                parts.append(indices.to_numpy(zero_copy_only=False))
            dictionary = encoded.chunks[-1].dictionary
            return np.concatenate(parts), pd.Index(pd.array(dictionary, dtype=dtype))
    codes, uniques = pd.factorize(values)
    return codes, pd.Index(uniques)


def _codes(values: pd.Series, name: str) -> tuple[np.ndarray, pd.Index]:
    """Codes 0..k-1 of a required key column and its k distinct values."""
    codes, uniques = _encode(values)
    if codes.size and codes.min() < 0:
        bad = int((codes < 0).sum())
        raise InputError(f"{bad} order row(s) have no {name}.",
                         f"Drop or fix the rows with an empty '{name}' before the build.")
    return codes, uniques


def _bool_values(values: pd.Series) -> np.ndarray:
    if values.dtype == np.bool_:
        return values.to_numpy()
    if values.isna().any():
        raise InputError("Some order rows have no is_return value.",
                         "is_return must be true or false on every row.")
    try:
        return values.to_numpy(dtype=bool)
    except (TypeError, ValueError) as err:
        raise InputError("The is_return column is not boolean.",
                         "is_return must be true or false on every row.") from err


def _float_values(values: pd.Series, name: str) -> np.ndarray:
    try:
        out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise InputError(f"The '{name}' column is not numeric.",
                         f"'{name}' must be a number on every row.") from err
    if np.isnan(out).any():
        raise InputError(f"Some order rows have no {name}.",
                         f"'{name}' must be a number on every row.")
    return out


def _days(timestamps: pd.Series) -> np.ndarray:
    """Calendar day of each timestamp as int64 days since 1970-01-01 (any datetime unit)."""
    if not pd.api.types.is_datetime64_any_dtype(timestamps.dtype):
        raise InputError(f"The timestamp column has dtype {timestamps.dtype}, not datetime.",
                         _HINT)
    if isinstance(timestamps.dtype, pd.DatetimeTZDtype):
        timestamps = timestamps.dt.tz_localize(None)  # local wall time decides the day
    values = timestamps.to_numpy()
    if np.isnat(values).any():
        raise InputError("Some order rows have no timestamp.",
                         "Drop or fix the rows with an empty timestamp before the build.")
    unit, count = np.datetime_data(values.dtype)
    per_day = int(np.timedelta64(1, "D") // np.timedelta64(count, unit))
    return values.view(np.int64) // per_day


def _reference_day(reference_date: object, last_order_day: int) -> int:
    if reference_date is None:
        return last_order_day + 1
    try:
        ref = pd.Timestamp(reference_date)
    except (TypeError, ValueError) as err:
        raise InputError(f"{reference_date!r} is not a date.",
                         "Pass a date such as '2011-12-10'.") from err
    if ref is pd.NaT:
        raise InputError("The reference date is empty.", "Pass a date such as '2011-12-10'.")
    if ref.tzinfo is not None:
        ref = ref.tz_localize(None)
    return ref.date().toordinal() - _EPOCH_ORDINAL


def _date(day: int) -> dt.date:
    """Days since 1970-01-01 as a date."""
    return dt.date.fromordinal(day + _EPOCH_ORDINAL)


# --- numpy kernels ------------------------------------------------------------------------------


def _pair_key(major: np.ndarray, minor: np.ndarray, n_minor: int, n_major: int) -> np.ndarray:
    """``major * n_minor + minor`` as one integer key: int32 when it fits (sorts twice as fast),
    else int64."""
    dtype = np.int32 if n_major * max(n_minor, 1) < 2**31 else np.int64
    key = np.multiply(major, max(n_minor, 1), dtype=dtype)
    key += minor.astype(dtype, copy=False)
    return key


def _unique_sorted_inplace(keys: np.ndarray) -> np.ndarray:
    """Distinct values of ``keys`` (sorted in place: pass a temporary). A sort and a neighbour
    compare: faster than hashing when most keys are distinct, and never degrades."""
    keys.sort()
    if keys.size < 2:
        return keys
    new = np.empty(keys.size, dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    return keys[new]


def _distinct_per_major(major: np.ndarray, minor: np.ndarray, n_minor: int, n_major: int
                        ) -> np.ndarray:
    """How many distinct ``minor`` codes each ``major`` code has."""
    pairs = _unique_sorted_inplace(_pair_key(major, minor, n_minor, n_major))
    return np.bincount(pairs // max(n_minor, 1), minlength=n_major)


def _orders_and_dates(
    buyer: np.ndarray, order: np.ndarray, n_orders: int, day: np.ndarray, n_buckets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per buyer bucket: distinct orders, distinct dates, first date, last date.

    Fast path (checked, not assumed): every order belongs to one buyer bucket and falls on one
    day, as in any normal order log. Then the orders are reduced to one row each with two
    scatters, and only those rows are sorted. Otherwise: (buyer, order) and (buyer, day) keys
    over all rows, sorted.
    """
    # (an order code without rows, e.g. an unused category, lands in the returns bucket)
    owner = np.full(n_orders, n_buckets - 1, dtype=np.intp)
    owner[order] = buyer
    on_day = np.full(n_orders, day[0], dtype=np.int64)
    on_day[order] = day
    if np.array_equal(owner[order], buyer) and np.array_equal(on_day[order], day):
        frequency = np.bincount(owner, minlength=n_buckets)
        major, days = owner, on_day
    else:
        frequency = _distinct_per_major(buyer, order, n_orders, n_buckets)
        major, days = buyer, day
    day0 = int(days.min())
    span = int(days.max()) - day0 + 1
    pairs = _unique_sorted_inplace(_pair_key(major, days - day0, span, n_buckets))
    pair_major, pair_day = np.divmod(pairs, span)
    n_dates = np.bincount(pair_major, minlength=n_buckets)
    last = np.cumsum(n_dates) - 1  # position of each bucket's last date in ``pairs``
    first = last - n_dates + 1
    # (a bucket without dates gets a clipped, meaningless position; it is never read)
    first_day = pair_day.take(first, mode="clip").astype(np.int64) + day0
    last_day = pair_day.take(last, mode="clip").astype(np.int64) + day0
    return frequency, n_dates, first_day, last_day


def _mode_country(
    country: pd.Series, cust: np.ndarray, n_cust: int
) -> pd.api.extensions.ExtensionArray:
    """Most frequent country per customer code (ties: alphabetical first; NA when all its rows
    lack one)."""
    codes, names = _encode(country)
    n_names = len(names)
    rank = np.argsort(np.argsort(names.to_numpy(dtype=object, na_value=""), kind="stable"))
    codes = np.append(rank, n_names)[codes]  # alphabetical codes; missing (-1) -> n_names
    low = np.full(n_cust, n_names, dtype=np.int64)
    high = np.full(n_cust, -1, dtype=np.int64)
    np.minimum.at(low, cust, codes)
    np.maximum.at(high, cust, codes)
    mode = low  # right wherever a customer has a single country (nearly everyone)
    mixed = np.flatnonzero(low != high)
    if mixed.size:
        is_mixed = np.zeros(n_cust, dtype=bool)
        is_mixed[mixed] = True
        rows = np.flatnonzero(is_mixed[cust] & (codes < n_names))
        keys = np.sort(_pair_key(cust[rows], codes[rows], n_names, n_cust))
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        counts = np.diff(np.r_[starts, keys.size])
        pair_cust, pair_code = np.divmod(keys[starts], n_names)
        # per customer: highest count first, then lowest (alphabetical) code
        order = np.lexsort((pair_code, -counts, pair_cust))
        best = order[np.r_[True, pair_cust[order][1:] != pair_cust[order][:-1]]]
        mode[pair_cust[best]] = pair_code[best]
    by_rank = np.argsort(rank)  # alphabetical code -> position in ``names``
    positions = np.where(mode < n_names, np.append(by_rank, -1)[mode], -1)
    return pd.api.extensions.take(names.array, positions, allow_fill=True)


def _group_shares(
    orders: pd.DataFrame,
    groups: list[str] | None,
    buyer: np.ndarray,
    amount: np.ndarray,
    gross: np.ndarray,
    n_cust: int,
) -> dict[str, np.ndarray]:
    """share_<group> arrays (per customer code) of gross spend; {} without a group column.
    ``buyer`` is the customer code on purchase rows and ``n_cust`` on returns."""
    if "group" not in orders.columns:
        return {}
    codes, uniques = _encode(orders["group"])
    names = [str(g) for g in uniques]
    if codes.size and codes.min() < 0:  # missing group: count it as "other"
        if OTHER_GROUP not in names:
            names.append(OTHER_GROUP)
        codes = np.where(codes < 0, names.index(OTHER_GROUP), codes)
    wanted = sorted(names) if groups is None else [str(g) for g in groups]
    unknown = sorted(set(names) - set(wanted))
    if unknown:
        raise InputError(f"The orders hold product group(s) {', '.join(unknown)} that are not "
                         f"among the requested groups {', '.join(wanted)}.",
                         "Pass every group the catalog assigns, or groups=None.")
    k = max(len(names), 1)
    key = _pair_key(buyer, codes, k, n_cust + 1)
    spend = np.bincount(key, weights=amount, minlength=(n_cust + 1) * k)
    spend = spend.reshape(n_cust + 1, k)[:n_cust]
    spent = gross != 0
    denom = np.where(spent, gross, 1.0)
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        if name in names:
            out[name] = np.where(spent, spend[:, names.index(name)] / denom, 0.0)
        else:
            out[name] = np.zeros(n_cust)
    return out
