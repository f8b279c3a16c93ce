"""The recommendation funnel: cards shown -> cards engaged with -> items bought.

- **shown**: distinct (session, item) pairs among the impressions (a card shown again in
  the same session counts once), with the first time it was shown.
- **engaged**: shown pairs the person then marked "more like this" or opened with "Show
  me" (a ``click``) in that session. CTR = engaged / shown.
- **bought**: shown pairs whose session was linked to a customer who ordered the item
  within ``window_days`` after it was first shown (the order file's lines). Conversion =
  bought / shown to linked customers (an anonymous visitor's purchase cannot be seen).

Grouped by recommender variant, segment, or both; every rate has its count and Wilson
interval.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from assistant.core.errors import InputError
from assistant.insights.purchases import event_times
from assistant.insights.rates import rate

WINDOW_DAYS = 30
GROUPS = ("variant", "segment")
POSITIVE = ("like",)  # the reaction a "more like this" button sends


def shown_pairs(events: pd.DataFrame) -> pd.DataFrame:
    """The first impression of each (session, item), with its variant, segment, customer
    and position (None where the events do not carry one)."""
    columns = ["session_id", "item", "at", "variant", "segment", "customer_id", "position"]
    imp = events[events["kind"] == "impression"].reindex(columns=columns)
    if imp.empty:
        return imp
    imp = imp.assign(at=event_times(imp["at"])).sort_values("at", kind="stable")
    return imp.drop_duplicates(["session_id", "item"])


def funnel(events: pd.DataFrame, order_lines: pd.DataFrame | None = None, *,
           by: Sequence[str] = ("variant",), window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """One row per group: shown, engaged, CTR, shown to linked customers, bought,
    conversion (rates as dicts with count, n, low, high). ``events``: the event log's rows;
    ``order_lines``: orders with customer, item, timestamp, is_return (None: no purchases
    are matched)."""
    unknown = [g for g in by if g not in GROUPS]
    if unknown:
        raise InputError(f"Cannot group the funnel by {', '.join(unknown)}.",
                         "Group by variant, segment, or both.")
    if window_days < 1:
        raise InputError(f"--window-days {window_days} must be at least 1.",
                         "Pass e.g. --window-days 30.")
    columns = [*by, "shown", "engaged", "ctr", "linked", "bought", "conversion"]
    pairs = shown_pairs(events)
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    pairs = pairs.assign(**pair_flags(events, pairs, order_lines, window_days))
    rows = []
    for key, group in pairs.fillna({g: "(none)" for g in by}).groupby(list(by), sort=True):
        values = key if isinstance(key, tuple) else (key,)
        linked = group[group["linked"]]
        rows.append({**dict(zip(by, values, strict=True)), "shown": len(group),
                     "engaged": int(group["engaged"].sum()),
                     "ctr": rate(int(group["engaged"].sum()), len(group)).as_dict(),
                     "linked": len(linked), "bought": int(linked["bought"].sum()),
                     "conversion": rate(int(linked["bought"].sum()), len(linked)).as_dict()})
    return pd.DataFrame(rows, columns=columns)


def pair_flags(events: pd.DataFrame, pairs: pd.DataFrame, order_lines: pd.DataFrame | None,
               window_days: int) -> dict[str, list]:
    """For each shown pair (``shown_pairs``): ``engaged`` ("more like this" or a click in
    its session), ``linked`` (shown to a linked customer), ``bought`` (that customer
    ordered the item within the window) and ``revenue`` (those order lines' amount)."""
    acts = events[events["kind"].isin(["reaction", "click"])]
    acts = acts[(acts["kind"] == "click") | acts["value"].isin(POSITIVE)]
    engaged = set(zip(acts["session_id"], acts["item"], strict=True))
    linked = (pairs["customer_id"].notna()
              & (pairs["customer_id"].astype(str) != "")).to_list()
    revenue = _bought(pairs, order_lines, window_days)
    return {"engaged": [(s, i) in engaged for s, i in zip(pairs["session_id"], pairs["item"],
                                                          strict=True)],
            "linked": linked, "bought": [r is not None for r in revenue],
            "revenue": [r or 0.0 for r in revenue]}


def _bought(pairs: pd.DataFrame, order_lines: pd.DataFrame | None,
            window_days: int) -> list[float | None]:
    """For each shown pair: what its linked customer spent on the item within the window
    (None: did not order it)."""
    if order_lines is None or order_lines.empty:
        return [None] * len(pairs)
    lines = order_lines.loc[~order_lines["is_return"].astype(bool),
                            ["customer", "item", "timestamp"]]
    amounts = (order_lines.loc[lines.index, "amount"].astype(float)
               if "amount" in order_lines else pd.Series(0.0, index=lines.index))
    lines = lines.assign(customer=lines["customer"].astype(str), item=lines["item"].astype(str),
                         timestamp=pd.to_datetime(lines["timestamp"]), amount=amounts)
    mine = pairs[["customer_id", "item", "at"]].reset_index(drop=True)
    mine = mine.assign(row=range(len(mine)), customer=mine["customer_id"].astype(str),
                       item=mine["item"].astype(str))
    joined = mine.merge(lines, on=["customer", "item"], how="inner")
    window = pd.Timedelta(days=window_days)
    hit = joined[(joined["timestamp"] > joined["at"])
                 & (joined["timestamp"] <= joined["at"] + window)]
    spent = hit.groupby("row")["amount"].sum()
    return [float(spent[i]) if i in spent.index else None for i in range(len(mine))]
