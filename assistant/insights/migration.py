"""Segment migration: where the customers of each RFM segment on one date stand on a later
date. Both dates' segments are scored the way ``segments build`` scores them (features up
to the day, RFM quintiles among the customers known then), so a customer may move because
they bought, or because they did not while others did."""
from __future__ import annotations

import pandas as pd

from assistant.core.errors import InputError
from assistant.insights.purchases import parse_day
from assistant.orders.features import build_features
from assistant.segments.model import SEGMENTS, rfm_scores

NOT_YET = "(not yet a customer)"


def segments_on(orders: pd.DataFrame, day: pd.Timestamp) -> pd.Series:
    """Each customer's RFM segment scored on ``day`` from the orders before it."""
    before = orders[pd.to_datetime(orders["timestamp"]) < day]
    if before.empty:
        return pd.Series(dtype=object)
    features = build_features(before, reference_date=day)
    return rfm_scores(features)["rfm_segment"]


def segment_migration(orders: pd.DataFrame, start: str | pd.Timestamp,
                      end: str | pd.Timestamp) -> pd.DataFrame:
    """Customers counted by (segment on ``start``, segment on ``end``): a long table with
    ``from``, ``to``, ``customers`` and ``share`` (of the ``from`` segment's customers).
    Customers whose first order falls between the dates come from ``NOT_YET``."""
    a, b = parse_day(start, "--from").normalize(), parse_day(end, "--to").normalize()
    if not a < b:
        raise InputError(f"--from {a.date()} must come before --to {b.date()}.",
                         "Swap the dates, or pick a later --to.")
    first = pd.to_datetime(orders["timestamp"]).min()
    if pd.isna(first) or a <= first:
        raise InputError(f"No orders before --from {a.date()}: nobody has a segment then.",
                         f"Pick a day after the first order ({first:%Y-%m-%d}).")
    then, now = segments_on(orders, a), segments_on(orders, b)
    frame = pd.DataFrame({"to": now})
    frame["from"] = then.reindex(frame.index).fillna(NOT_YET)
    counts = frame.groupby(["from", "to"]).size().rename("customers").reset_index()
    counts["share"] = counts["customers"] / counts.groupby("from")["customers"].transform("sum")
    order = {name: i for i, name in enumerate([*SEGMENTS, NOT_YET])}
    counts = counts.sort_values(["from", "to"], key=lambda s: s.map(order), kind="stable")
    return counts.reset_index(drop=True)
