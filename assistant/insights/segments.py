"""Outcomes per segment: repeat purchases, churn, customers at risk, revenue and order value.

Definitions (the README's Insights section says the same):

- **repeat-purchase rate**: customers with two orders or more, of the segment's customers.
- **churn rate** over a window of ``churn_days`` (default 90) before ``as_of``: of the
  customers who bought in the window before that one, the share who did not buy in it.
  Counted per the segment a customer was in when the window began (``churn_segments``), so
  it reads "of those who were Champions then, this many stopped buying"; scored at the end,
  a segment would already hold the answer (recency is part of RFM).
- **at risk**: customers with two orders or more whose time since their last order is
  more than twice their own average time between orders, and who have not yet churned
  (bought within the last ``lapsed_days``, default 365): the ones worth a nudge now.
- **revenue** is what the orders in the period sum to (returns left out); **average order
  value** is the mean of the order totals, with its t interval.
"""
from __future__ import annotations

import pandas as pd

from assistant.core.errors import InputError
from assistant.insights.purchases import day_after_last, parse_day, purchases, segment_of
from assistant.insights.rates import mean, rate

ALL = "All customers"
CHURN_DAYS = 90
LAPSED_DAYS = 365
OVERDUE = 2.0  # times the customer's own average gap between orders


def customer_summary(buys: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per customer of ``purchases(...)``: orders, first, last, revenue,
    ``gap_days`` (mean days between orders; NaN with one order), ``recency_days``."""
    g = buys.groupby("customer", sort=True, observed=True)
    out = g.agg(orders=("order_id", "nunique"), first=("timestamp", "min"),
                last=("timestamp", "max"), revenue=("amount", "sum"))
    span = (out["last"] - out["first"]) / pd.Timedelta(days=1)
    out["gap_days"] = (span / (out["orders"] - 1)).where(out["orders"] > 1)
    out["recency_days"] = (as_of - out["last"]) / pd.Timedelta(days=1)
    return out


def at_risk(summary: pd.DataFrame, *, lapsed_days: float = LAPSED_DAYS) -> pd.Series:
    """True for the customers at risk (see the module docstring)."""
    overdue = summary["recency_days"] > OVERDUE * summary["gap_days"]
    return (summary["orders"] > 1) & overdue & (summary["recency_days"] <= lapsed_days)


def segment_outcomes(orders: pd.DataFrame, segments: pd.Series | None = None, *,
                     churn_segments: pd.Series | None = None,
                     as_of: str | pd.Timestamp | None = None, since: str | None = None,
                     churn_days: int = CHURN_DAYS,
                     lapsed_days: int = LAPSED_DAYS) -> pd.DataFrame:
    """One row per segment (and ``ALL``): customers, repeat-purchase rate, churn rate,
    customers at risk, revenue, orders and average order value, each with its count and,
    for rates and the mean, a 95 % interval. ``segments``: customer -> segment name;
    ``churn_segments``: the same when the churn window began (default ``segments``).
    ``as_of``: the day the outcomes are measured at (default: the day after the last
    order); orders after it are left out. ``since``: count orders from this day only."""
    if churn_days < 1:
        raise InputError(f"--churn-days {churn_days} must be at least 1.",
                         "Pass e.g. --churn-days 90.")
    buys = purchases(orders, since=since)
    columns = ["segment", "customers", "repeat", "churn", "at_risk", "revenue", "orders",
               "aov"]
    if buys.empty:
        return pd.DataFrame(columns=columns)
    end = (parse_day(as_of, "--as-of") if as_of is not None
           else day_after_last(buys["timestamp"]))
    buys = buys[buys["timestamp"] < end]
    summary = customer_summary(buys, end)
    summary["segment"] = segment_of(summary.index.to_series(), segments).to_numpy()
    summary["churn_segment"] = segment_of(
        summary.index.to_series(), segments if churn_segments is None else churn_segments
    ).to_numpy()
    summary["at_risk"] = at_risk(summary, lapsed_days=lapsed_days)
    window = pd.Timedelta(days=churn_days)
    before = set(buys.loc[(buys["timestamp"] >= end - 2 * window)
                          & (buys["timestamp"] < end - window), "customer"])
    during = set(buys.loc[buys["timestamp"] >= end - window, "customer"])
    summary["churn_base"] = summary.index.isin(list(before))
    summary["churned"] = summary["churn_base"] & ~summary.index.isin(list(during))
    order_segment = buys["customer"].map(summary["segment"])
    rows = []
    names = [ALL] + sorted(set(summary["segment"]) | set(summary.loc[summary["churn_base"],
                                                                      "churn_segment"]), key=str)
    for name in names:
        mine = summary if name == ALL else summary[summary["segment"] == name]
        then = summary if name == ALL else summary[summary["churn_segment"] == name]
        amounts = buys["amount"] if name == ALL else buys.loc[order_segment == name, "amount"]
        rows.append({
            "segment": name, "customers": len(mine),
            "repeat": rate(int((mine["orders"] > 1).sum()), len(mine)).as_dict(),
            "churn": rate(int(then["churned"].sum()), int(then["churn_base"].sum())).as_dict(),
            "at_risk": rate(int(mine["at_risk"].sum()), len(mine)).as_dict(),
            "revenue": float(mine["revenue"].sum()), "orders": int(mine["orders"].sum()),
            "aov": mean(amounts).as_dict(),
        })
    return pd.DataFrame(rows, columns=columns)
