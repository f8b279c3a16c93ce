"""Cohort retention: of the customers whose first purchase fell in a period, the share who
bought again k periods later.

The first period of the data holds every customer who was already buying when the data
starts (their real first purchase is earlier): read its row as "customers at the start".
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from assistant.core.errors import InputError
from assistant.insights.purchases import purchases
from assistant.insights.rates import rate

PERIODS = {"M": "month", "Q": "quarter", "W": "week"}


def cohort_retention(orders: pd.DataFrame, *, period: str = "M",
                     since: str | None = None, until: str | None = None,
                     customers: pd.Index | None = None) -> pd.DataFrame:
    """A long table, one row per (cohort, offset) observed: ``cohort`` (the period of the
    first purchase, e.g. "2011-01"), ``offset`` (periods after it, 0 = the first),
    ``active`` (cohort customers buying in that period), ``size`` (the cohort's customers),
    ``rate`` with its Wilson interval ``low`` / ``high``. Every offset up to the last
    period in the data is present (0 active when nobody bought). ``customers``: count only
    these (e.g. one segment's)."""
    if period not in PERIODS:
        raise InputError(f"Unknown period {period!r}.",
                         f"Use one of {', '.join(PERIODS)} ({', '.join(PERIODS.values())}).")
    buys = purchases(orders, since=since, until=until)
    if customers is not None:
        buys = buys[buys["customer"].isin(customers.astype(str))]
    columns = ["cohort", "offset", "active", "size", "rate", "low", "high"]
    if buys.empty:
        return pd.DataFrame(columns=columns)
    periods = buys["timestamp"].dt.to_period(period)
    ordinal = pd.PeriodIndex(periods).asi8
    first = pd.Series(ordinal).groupby(buys["customer"].to_numpy()).transform("min").to_numpy()
    seen = pd.DataFrame({"customer": buys["customer"].to_numpy(), "first": first,
                         "offset": ordinal - first}).drop_duplicates()
    active = seen.groupby(["first", "offset"]).size()
    sizes = active.xs(0, level="offset")
    last = int(ordinal.max())
    rows = []
    for start, size in sizes.items():
        for offset in range(last - int(start) + 1):
            n = int(active.get((start, offset), 0))
            r = rate(n, int(size))
            rows.append((str(pd.Period(ordinal=int(start), freq=periods.dt.freq)), offset, n,
                         int(size), r.value, r.low, r.high))
    return pd.DataFrame(rows, columns=columns)


def retention_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """The long table as cohorts x offsets of rates (NaN where not yet observed), for a
    heat map."""
    if table.empty:
        return pd.DataFrame()
    return table.pivot(index="cohort", columns="offset", values="rate").astype(np.float64)
