"""Outcome metrics (assistant/insights) on small frames with known answers."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from assistant.core.errors import InputError
from assistant.insights.cohorts import cohort_retention, retention_matrix
from assistant.insights.funnel import funnel
from assistant.insights.migration import NOT_YET, segment_migration
from assistant.insights.purchases import NO_SEGMENT, purchases
from assistant.insights.rates import mean, rate
from assistant.insights.satisfaction import satisfaction
from assistant.insights.segments import ALL, segment_outcomes


def orders(rows: list[tuple[str, str, str, float]], returns: list[tuple] = ()) -> pd.DataFrame:
    """(customer, order_id, day, amount) rows; ``returns`` the same, marked as returns."""
    out = pd.DataFrame(
        [(c, o, pd.Timestamp(d), a, False) for c, o, d, a in rows]
        + [(c, o, pd.Timestamp(d), a, True) for c, o, d, a in returns],
        columns=["customer", "order_id", "timestamp", "amount", "is_return"])
    # the rest of a clean orders frame (the migration scores features from it)
    return out.assign(item="85123A", description="WHITE HANGING HEART", quantity=1.0,
                      unit_price=out["amount"], country="United Kingdom")


def test_rate_has_a_wilson_interval_and_its_count():
    r = rate(8, 10)
    assert r.value == 0.8 and r.whole == 10
    # Wilson 95 % for 8/10 (textbook value: 0.490 - 0.943)
    assert round(r.low, 3) == 0.490 and round(r.high, 3) == 0.943
    assert rate(0, 0).as_dict() == {"rate": None, "n": 0, "count": 0, "low": None,
                                    "high": None}
    assert rate(0, 5).low == 0.0 and rate(5, 5).high == 1.0
    with pytest.raises(ValueError):
        rate(3, 2)


def test_mean_has_a_t_interval():
    m = mean([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.303 -> half width 4.303 / sqrt(3) = 2.484
    assert m.value == 2.0 and m.n == 3
    assert math.isclose(m.high - m.value, 2.484, abs_tol=1e-3)
    assert mean([]).as_dict() == {"mean": None, "n": 0, "low": None, "high": None}
    assert mean([5.0]).low is None


def test_purchases_are_orders_without_returns():
    frame = orders([("a", "1", "2011-01-03", 10.0), ("a", "1", "2011-01-03", 5.0),
                    ("a", "2", "2011-02-01", 7.0)], returns=[("a", "C1", "2011-02-02", -3.0)])
    got = purchases(frame)
    assert list(got["order_id"]) == ["1", "2"] and list(got["amount"]) == [15.0, 7.0]
    assert list(purchases(frame, since="2011-01-15")["order_id"]) == ["2"]
    with pytest.raises(InputError, match="not a date"):
        purchases(frame, since="last tuesday")
    with pytest.raises(InputError, match="lack the column"):
        purchases(frame.drop(columns="is_return"))


def test_cohort_retention_counts_returning_customers_per_period():
    # January cohort: a, b, c. a buys again in Feb and Mar, b in Mar; February cohort: d.
    frame = orders([("a", "1", "2011-01-05", 1), ("b", "2", "2011-01-20", 1),
                    ("c", "3", "2011-01-31", 1), ("a", "4", "2011-02-10", 1),
                    ("a", "5", "2011-03-01", 1), ("b", "6", "2011-03-15", 1),
                    ("d", "7", "2011-02-02", 1)])
    table = cohort_retention(frame)
    jan = table[table["cohort"] == "2011-01"].set_index("offset")
    assert list(jan["active"]) == [3, 1, 2] and set(jan["size"]) == {3}
    assert jan.loc[2, "rate"] == pytest.approx(2 / 3)
    assert jan.loc[1, "low"] < 1 / 3 < jan.loc[1, "high"]
    feb = table[table["cohort"] == "2011-02"].set_index("offset")
    assert list(feb["active"]) == [1, 0]  # observed in March, nobody came back
    matrix = retention_matrix(table)
    assert matrix.shape == (2, 3) and math.isnan(matrix.loc["2011-02", 2])
    quarterly = cohort_retention(frame, period="Q")
    assert list(quarterly["size"]) == [4]
    only_a = cohort_retention(frame, customers=pd.Index(["a"]))
    assert list(only_a["active"]) == [1, 1, 1]


def test_cohorts_of_nothing_and_a_bad_period():
    assert cohort_retention(orders([])).empty
    assert retention_matrix(cohort_retention(orders([]))).empty
    with pytest.raises(InputError, match="Unknown period"):
        cohort_retention(orders([("a", "1", "2011-01-05", 1)]), period="fortnight")


def test_segment_outcomes_repeat_churn_risk_and_order_value():
    # as of 2011-07-01, churn window 30 days: the base bought 2011-05-02..2011-05-31.
    frame = orders([
        ("a", "1", "2011-05-10", 100), ("a", "2", "2011-06-10", 50),   # base, stayed
        ("b", "3", "2011-05-20", 30),                                   # base, churned
        ("c", "4", "2011-01-01", 20), ("c", "5", "2011-01-11", 20),     # gap 10 d, 171 d ago
        ("d", "6", "2011-06-20", 10),                                   # one order
    ])
    segments = pd.Series({"a": "Loyal", "b": "Loyal", "c": "At Risk"})
    table = segment_outcomes(frame, segments, as_of="2011-07-01", churn_days=30)
    rows = table.set_index("segment")
    assert list(rows.index) == [ALL, NO_SEGMENT, "At Risk", "Loyal"]
    everyone = rows.loc[ALL]
    assert everyone["customers"] == 4 and everyone["orders"] == 6
    assert everyone["repeat"]["count"] == 2 and everyone["repeat"]["n"] == 4
    assert everyone["churn"]["count"] == 1 and everyone["churn"]["n"] == 2
    assert everyone["at_risk"]["count"] == 1  # c: 171 days since, twice 10 is 20
    assert everyone["revenue"] == 230.0
    assert everyone["aov"]["mean"] == pytest.approx(230 / 6) and everyone["aov"]["n"] == 6
    loyal = rows.loc["Loyal"]
    assert loyal["churn"]["rate"] == 0.5 and loyal["revenue"] == 180.0
    assert loyal["aov"]["n"] == 3
    assert rows.loc[NO_SEGMENT, "customers"] == 1  # d is in no segment


def test_a_lapsed_customer_is_not_at_risk_and_small_segments_keep_their_counts():
    frame = orders([("c", "1", "2009-01-01", 5), ("c", "2", "2009-01-11", 5),
                    ("a", "3", "2011-06-01", 5)])
    table = segment_outcomes(frame, None, as_of="2011-07-01").set_index("segment")
    assert table.loc[ALL, "at_risk"]["count"] == 0  # lapsed over a year ago: lost
    assert table.loc[ALL, "churn"]["n"] == 0 and table.loc[ALL, "churn"]["rate"] is None
    assert segment_outcomes(orders([]), None).empty
    with pytest.raises(InputError, match="churn-days"):
        segment_outcomes(frame, None, churn_days=0)


def test_segment_migration_between_two_dates():
    rows = []
    for i in range(10):  # ten customers buying in January; five keep buying in June
        rows.append((f"c{i}", f"j{i}", "2011-01-10", 10.0 * (i + 1)))
        if i >= 5:
            rows.append((f"c{i}", f"u{i}", "2011-06-10", 10.0))
    rows += [(f"n{i}", f"n{i}", "2011-06-20", 5.0) for i in range(3)]  # new in June
    table = segment_migration(orders(rows), "2011-02-01", "2011-07-01")
    assert table["customers"].sum() == 13
    new = table[table["from"] == NOT_YET]
    assert new["customers"].sum() == 3 and new["share"].sum() == pytest.approx(1.0)
    for _, group in table.groupby("from"):
        assert group["share"].sum() == pytest.approx(1.0)
    with pytest.raises(InputError, match="must come before"):
        segment_migration(orders(rows), "2011-07-01", "2011-02-01")
    with pytest.raises(InputError, match="No orders before"):
        segment_migration(orders(rows), "2010-01-01", "2011-07-01")
    with pytest.raises(InputError, match="not a date"):
        segment_migration(orders(rows), "soon", "2011-07-01")


def test_churn_counts_customers_by_their_segment_when_the_window_began():
    # as of 2011-07-01, 30-day window: a and b bought in May; a came back, b did not.
    frame = orders([("a", "1", "2011-05-10", 1), ("a", "2", "2011-06-10", 1),
                    ("b", "3", "2011-05-20", 1)])
    now = pd.Series({"a": "Champions", "b": "Lost"})
    then = pd.Series({"a": "Loyal", "b": "Loyal"})
    rows = segment_outcomes(frame, now, churn_segments=then, as_of="2011-07-01",
                            churn_days=30).set_index("segment")
    assert rows.loc["Loyal", "churn"]["n"] == 2 and rows.loc["Loyal", "churn"]["count"] == 1
    assert rows.loc["Loyal", "customers"] == 0  # nobody is Loyal now
    assert rows.loc["Champions", "churn"]["n"] == 0 and rows.loc["Champions", "customers"] == 1


# --------------------------------------------------------------------------- funnel
def events(rows: list[tuple]) -> pd.DataFrame:
    """(at, kind, session, customer, segment, item, position, variant, value)"""
    return pd.DataFrame(rows, columns=["at", "kind", "session_id", "customer_id", "segment",
                                       "item", "position", "variant", "value"])


def test_funnel_counts_shown_engaged_and_bought_per_variant():
    log = events([
        # s1 (customer a, variant A) sees x and y; x again later (counted once); likes x
        ("2011-06-01T10:00:00+00:00", "impression", "s1", "a", "Loyal", "x", 1, "A", None),
        ("2011-06-01T10:00:00+00:00", "impression", "s1", "a", "Loyal", "y", 2, "A", None),
        ("2011-06-02T10:00:00+00:00", "impression", "s1", "a", "Loyal", "x", 1, "A", None),
        ("2011-06-01T10:01:00+00:00", "reaction", "s1", "a", "Loyal", "x", None, None, "like"),
        ("2011-06-01T10:02:00+00:00", "reaction", "s1", "a", "Loyal", "y", None, None,
         "dislike"),
        # s2 (anonymous, variant B) sees x
        ("2011-06-01T11:00:00+00:00", "impression", "s2", None, "New", "x", 1, "B", None),
        ("2011-06-01T11:00:00+00:00", "satisfaction", "s2", None, "New", None, None, None, "4"),
    ])
    lines = pd.DataFrame({
        "customer": ["a", "a", "a"], "item": ["x", "y", "x"],
        "timestamp": pd.to_datetime(["2011-06-10", "2011-05-01", "2011-09-01"]),
        "is_return": [False, False, False]})  # x within 30 days; y before; x again too late
    table = funnel(log, lines).set_index("variant")
    a, b = table.loc["A"], table.loc["B"]
    assert a["shown"] == 2 and a["engaged"] == 1 and a["ctr"]["rate"] == 0.5
    assert a["linked"] == 2 and a["bought"] == 1 and a["conversion"]["rate"] == 0.5
    assert b["shown"] == 1 and b["linked"] == 0 and b["conversion"]["rate"] is None
    by_both = funnel(log, lines, by=("variant", "segment"))
    assert list(by_both["segment"]) == ["Loyal", "New"]
    assert funnel(log, lines, window_days=200).set_index("variant").loc["A", "bought"] == 1
    assert funnel(log, None).set_index("variant").loc["A", "bought"] == 0
    assert funnel(log.iloc[0:0], lines).empty
    with pytest.raises(InputError, match="Cannot group"):
        funnel(log, lines, by=("colour",))
    with pytest.raises(InputError, match="window-days"):
        funnel(log, lines, window_days=0)


def test_satisfaction_means_per_segment_and_week_and_draft_ratings():
    log = events([
        ("2011-06-01T10:00:00+00:00", "satisfaction", "s1", None, "Loyal", None, None, None,
         "5"),
        ("2011-06-01T10:05:00+00:00", "satisfaction", "s1", None, "Loyal", None, None, None,
         "3"),  # the same session again: the last rating counts
        ("2011-06-02T10:00:00+00:00", "satisfaction", "s2", None, "New", None, None, None, "5"),
        ("2011-06-09T10:00:00+00:00", "satisfaction", "s3", None, None, None, None, None, "1"),
    ])
    drafts = pd.DataFrame({
        "created_at": ["2011-06-01T09:00:00+00:00"] * 3,
        "status": ["final", "final", "discarded"], "edit_diff": ["", "-a\n+b", None],
        "feedback": [1, -1, None],
        "resolved_at": ["2011-06-01T09:30:00+00:00", None, None]})
    report = satisfaction(log, drafts)
    everyone = report["by_segment"][0]
    assert everyone["segment"] == "All" and everyone["n"] == 3 and everyone["mean"] == 3.0
    loyal = next(r for r in report["by_segment"] if r["segment"] == "Loyal")
    assert loyal["mean"] == 3.0 and loyal["n"] == 1
    assert [t["n"] for t in report["trend"]] == [2, 1]
    week = report["drafts"][0]
    assert week["drafts"] == 3 and week["discarded"] == 1
    assert week["liked"]["count"] == 1 and week["liked"]["n"] == 2
    assert week["sent_as_written"]["count"] == 1 and week["sent_as_written"]["n"] == 2
    assert week["resolved"]["count"] == 1 and week["resolved"]["n"] == 2  # of those sent
    empty = satisfaction(log.iloc[0:0], None)
    assert empty["by_segment"][0]["n"] == 0 and empty["trend"] == [] and empty["drafts"] == []
    with pytest.raises(InputError, match="Unknown period"):
        satisfaction(log, None, period="Y")
