"""The purchase rows every outcome is computed from, and checks on the inputs."""
from __future__ import annotations

import pandas as pd

from assistant.core.errors import InputError

#: the columns of a clean orders frame (``orders/ingest.py``) that the insights read
ORDER_COLUMNS = ("customer", "order_id", "timestamp", "amount", "is_return")
#: customers the segment lookup does not know are counted under this name
NO_SEGMENT = "(no segment)"


def purchases(orders: pd.DataFrame, *, since: str | pd.Timestamp | None = None,
              until: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per purchased order (returns left out): customer, order_id, timestamp (of
    the order's first line) and amount (summed). ``since`` / ``until``: keep orders on or
    after / before these dates."""
    missing = [c for c in ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise InputError(f"The orders lack the column(s) {', '.join(missing)}.",
                         "Load them with the orders ingest (assistant segments build reads "
                         "the same file), which maps a file's columns onto these.")
    rows = orders.loc[~orders["is_return"].astype(bool),
                      ["customer", "order_id", "timestamp", "amount"]]
    rows = rows.assign(customer=rows["customer"].astype("string"),
                       order_id=rows["order_id"].astype("string"),
                       timestamp=pd.to_datetime(rows["timestamp"]))
    if since is not None:
        rows = rows[rows["timestamp"] >= parse_day(since, "--since")]
    if until is not None:
        rows = rows[rows["timestamp"] < parse_day(until, "--until")]
    return (rows.groupby(["customer", "order_id"], sort=False, observed=True)
            .agg(timestamp=("timestamp", "min"), amount=("amount", "sum"))
            .reset_index().sort_values(["timestamp", "order_id"], kind="stable")
            .reset_index(drop=True))


def parse_day(value: str | pd.Timestamp, name: str) -> pd.Timestamp:
    """A date option's value (``name``: how the user wrote the option, e.g. "--since");
    an ``InputError`` naming it when it is not a date."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} {value!r} is not a date.",
                         "Write it as YYYY-MM-DD, e.g. 2011-06-01.") from err
    if stamp is pd.NaT:
        raise InputError(f"{name} is empty.", "Write it as YYYY-MM-DD, e.g. 2011-06-01.")
    return stamp


def day_after_last(timestamps: pd.Series) -> pd.Timestamp:
    """The day after the last one in ``timestamps``: where the data ends, the default
    "as of" of every report."""
    return pd.to_datetime(timestamps).max().normalize() + pd.Timedelta(days=1)


def segment_of(customers: pd.Series, segments: pd.Series | None) -> pd.Series:
    """Each customer's segment (``NO_SEGMENT`` where the lookup has none)."""
    if segments is None:
        return pd.Series(NO_SEGMENT, index=customers.index, dtype=object)
    lookup = pd.Series(segments.to_numpy(dtype=object),
                       index=segments.index.astype(str))
    found = customers.astype(str).map(lookup)
    return found.where(found.notna(), NO_SEGMENT).astype(object)


def event_times(values: pd.Series) -> pd.Series:
    """The event log's times (ISO, UTC) as naive timestamps, comparable with the order
    file's (which carry no zone)."""
    return pd.to_datetime(values, utc=True, format="ISO8601").dt.tz_localize(None)
