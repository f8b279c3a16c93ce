"""Per-customer features on hand-made order frames whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from assistant.core.errors import InputError
from assistant.orders.features import FEATURE_COLUMNS, build_features, share_columns

COLUMNS = ["customer", "order_id", "timestamp", "item", "quantity", "unit_price", "country",
           "is_return"]


def make_orders(rows: list[tuple], groups: list[str] | None = None) -> pd.DataFrame:
    """The canonical orders frame from (customer, order, timestamp, item, quantity, unit_price,
    country, is_return) tuples."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    out = pd.DataFrame(
        {
            "customer": df["customer"].astype("string"),
            "order_id": df["order_id"].astype("string"),
            "timestamp": pd.to_datetime(df["timestamp"]).astype("datetime64[ns]"),
            "item": df["item"].astype("string"),
            "description": ("desc " + df["item"]).astype("string"),
            "quantity": df["quantity"].astype("float64"),
            "unit_price": df["unit_price"].astype("float64"),
            "amount": (df["quantity"] * df["unit_price"]).astype("float64"),
            "country": df["country"].astype("string"),
            "is_return": df["is_return"].astype(bool),
        }
    )
    if groups is not None:
        out["group"] = pd.Series(groups, dtype="string")
    return out


UK = "United Kingdom"
# Customer A: three purchase orders (O1 has two lines), one return. Customer B: one order.
ROWS = [
    ("A", "O1", "2011-01-01 10:00", "X", 2, 5.0, UK, False),  # 10
    ("A", "O1", "2011-01-01 10:00", "Y", 1, 20.0, UK, False),  # 20
    ("A", "O2", "2011-01-11 09:30", "X", 3, 5.0, UK, False),  # 15
    ("A", "O3", "2011-01-31 23:59", "Z", 1, 5.0, UK, False),  # 5
    ("A", "C1", "2011-02-01 08:00", "X", -1, 5.0, UK, True),  # -5 (return)
    ("B", "O4", "2011-01-20 12:00", "Y", 1, 20.0, "France", False),
]


@pytest.fixture
def orders() -> pd.DataFrame:
    return make_orders(ROWS)


def test_rfm_by_hand_with_explicit_reference_date(orders):
    f = build_features(orders, reference_date="2011-03-01")
    a = f.loc["A"]
    assert a["recency_days"] == 29  # 2011-03-01 - 2011-01-31 (the 23:59 does not matter)
    assert a["frequency"] == 3
    assert a["gross_spend"] == pytest.approx(50.0)
    assert a["monetary"] == pytest.approx(45.0)  # net: 50 bought - 5 returned
    assert a["tenure_days"] == 59  # 2011-03-01 - 2011-01-01
    assert a["avg_basket_value"] == pytest.approx(50 / 3)
    assert a["avg_items_per_order"] == pytest.approx(7 / 3)  # 2 + 1 + 3 + 1 units
    assert a["distinct_items"] == 3
    assert a["return_rate"] == pytest.approx(0.1)
    assert a["days_between_orders"] == pytest.approx(15.0)  # Jan 1 -> 11 -> 31
    b = f.loc["B"]
    assert (b["recency_days"], b["frequency"], b["monetary"]) == (40, 1, 20.0)
    assert f.attrs["reference_date"] == pd.Timestamp("2011-03-01")


def test_default_reference_is_the_day_after_the_last_order(orders):
    f = build_features(orders)
    # the last order is A's return on 2011-02-01 08:00 -> reference 2011-02-02 00:00
    assert f.attrs["reference_date"] == pd.Timestamp("2011-02-02")
    assert f.loc["A", "recency_days"] == 2
    assert f.loc["B", "recency_days"] == 13
    assert f.loc["A", "tenure_days"] == 32


def test_reference_date_time_of_day_is_ignored(orders):
    late = build_features(orders, reference_date=pd.Timestamp("2011-03-01 18:45"))
    assert late.loc["A", "recency_days"] == 29
    assert late.attrs["reference_date"] == pd.Timestamp("2011-03-01")


def test_reference_date_before_last_purchase_is_an_error(orders):
    with pytest.raises(InputError, match="before the last purchase"):
        build_features(orders, reference_date="2011-01-15")
    with pytest.raises(InputError, match="not a date"):
        build_features(orders, reference_date="soon")


def test_frequency_counts_distinct_orders_not_rows():
    rows = [("A", "O1", "2011-01-01", item, 1, 1.0, UK, False) for item in "PQRST"]
    rows.append(("A", "O2", "2011-01-02", "P", 1, 1.0, UK, False))
    f = build_features(make_orders(rows))
    assert f.loc["A", "frequency"] == 2
    assert f.loc["A", "distinct_items"] == 5
    assert f.loc["A", "avg_items_per_order"] == pytest.approx(3.0)


def test_returns_lower_monetary_raise_return_rate_and_are_not_orders(orders):
    without = build_features(orders[~orders["is_return"]], reference_date="2011-03-01")
    with_return = build_features(orders, reference_date="2011-03-01")
    a0, a1 = without.loc["A"], with_return.loc["A"]
    assert a0["frequency"] == a1["frequency"] == 3
    assert a1["monetary"] < a0["monetary"] == pytest.approx(50.0)
    assert a0["return_rate"] == 0.0 < a1["return_rate"]
    assert not np.signbit(without["return_rate"]).any()  # 0.0, not -0.0
    assert a1["gross_spend"] == a0["gross_spend"]
    assert a1["recency_days"] == a0["recency_days"]  # a return is not a purchase date


def test_return_rate_is_clipped_to_one():
    rows = [("A", "O1", "2011-01-01", "X", 1, 10.0, UK, False),
            ("A", "C1", "2011-01-02", "X", -3, 10.0, UK, True)]  # returns older purchases too
    f = build_features(make_orders(rows))
    assert f.loc["A", "return_rate"] == 1.0
    assert f.loc["A", "monetary"] == pytest.approx(-20.0)


def test_days_between_orders_uses_distinct_dates():
    rows = [("A", "O1", "2011-01-01 09:00", "X", 1, 1.0, UK, False),
            ("A", "O2", "2011-01-01 17:00", "X", 1, 1.0, UK, False),  # same day as O1
            ("A", "O3", "2011-01-04 09:00", "X", 1, 1.0, UK, False),
            ("A", "O4", "2011-01-10 09:00", "X", 1, 1.0, UK, False),
            ("B", "O5", "2011-01-05 09:00", "X", 1, 1.0, UK, False),
            ("C", "O6", "2011-01-05 09:00", "X", 1, 1.0, UK, False),
            ("C", "O7", "2011-01-05 11:00", "Y", 1, 1.0, UK, False)]
    f = build_features(make_orders(rows))
    assert f.loc["A", "frequency"] == 4
    assert f.loc["A", "days_between_orders"] == pytest.approx(4.5)  # gaps 3 and 6
    assert np.isnan(f.loc["B", "days_between_orders"])  # a single order
    assert np.isnan(f.loc["C", "days_between_orders"])  # two orders, one date
    assert f.loc["C", "frequency"] == 2


def test_group_shares_sum_to_one():
    rows = [("A", "O1", "2011-01-01", "X", 1, 30.0, UK, False),
            ("A", "O1", "2011-01-01", "Y", 1, 10.0, UK, False),
            ("A", "O2", "2011-01-03", "Z", 2, 30.0, UK, False),
            ("A", "C1", "2011-01-04", "Z", -1, 30.0, UK, True),  # returns do not move shares
            ("B", "O3", "2011-01-02", "Y", 1, 5.0, UK, False)]
    orders = make_orders(rows, groups=["candles", "bags", "kitchen", "kitchen", "bags"])
    f = build_features(orders)
    assert share_columns(f) == ["share_bags", "share_candles", "share_kitchen"]
    np.testing.assert_allclose(f[share_columns(f)].sum(axis=1), 1.0)
    assert f.loc["A", "share_candles"] == pytest.approx(0.3)
    assert f.loc["A", "share_bags"] == pytest.approx(0.1)
    assert f.loc["A", "share_kitchen"] == pytest.approx(0.6)
    assert f.loc["B", "share_bags"] == 1.0

    fixed = build_features(orders, groups=["kitchen", "candles", "fees", "bags"])
    assert share_columns(fixed) == ["share_kitchen", "share_candles", "share_fees",
                                    "share_bags"]
    assert (fixed["share_fees"] == 0).all()
    with pytest.raises(InputError, match="candles"):
        build_features(orders, groups=["kitchen", "bags"])


def test_no_group_column_means_no_shares(orders):
    f = build_features(orders)
    assert share_columns(f) == []
    assert list(f.columns) == [*FEATURE_COLUMNS, "country"]
    with pytest.raises(InputError, match="no 'group' column"):
        build_features(orders, groups=["bags"])


def test_missing_group_counts_as_other():
    rows = [("A", "O1", "2011-01-01", "X", 1, 3.0, UK, False),
            ("A", "O1", "2011-01-01", "Y", 1, 1.0, UK, False)]
    f = build_features(make_orders(rows, groups=["bags", None]))
    assert f.loc["A", "share_other"] == pytest.approx(0.25)
    assert f.loc["A", "share_bags"] == pytest.approx(0.75)


def test_all_zero_spend_customer_has_no_division_errors():
    rows = [("Z", "O1", "2011-01-01", "X", 2, 0.0, UK, False),
            ("Z", "O2", "2011-01-05", "Y", 1, 0.0, UK, False),
            ("A", "O3", "2011-01-02", "X", 1, 4.0, UK, False)]
    orders = make_orders(rows, groups=["bags", "candles", "bags"])
    with np.errstate(all="raise"):
        f = build_features(orders)
    z = f.loc["Z"]
    assert z["gross_spend"] == z["monetary"] == 0.0
    assert z["avg_basket_value"] == 0.0
    assert z["return_rate"] == 0.0
    assert z["share_bags"] == z["share_candles"] == 0.0
    assert z["frequency"] == 2 and z["avg_items_per_order"] == pytest.approx(1.5)
    assert f.loc["A", "share_bags"] == 1.0
    assert not f[list(FEATURE_COLUMNS[:-1])].isna().any().any()


def test_returns_only_customer_is_excluded_and_counted(orders):
    extra = make_orders([("R", "C9", "2011-01-15", "X", -2, 5.0, UK, True),
                         ("Q", "C8", "2011-01-16", "Y", -1, 5.0, UK, True)])
    f = build_features(pd.concat([orders, extra], ignore_index=True))
    assert list(f.index) == ["A", "B"]
    assert f.attrs["returns_only_customers"] == 2
    assert f.attrs["returns_only_ids"] == ("Q", "R")
    assert build_features(orders).attrs["returns_only_customers"] == 0


def test_only_returns_is_an_error():
    only = make_orders([("R", "C9", "2011-01-15", "X", -2, 5.0, UK, True)])
    with pytest.raises(InputError, match="no purchase"):
        build_features(only)


def test_country_is_the_most_frequent_with_alphabetical_ties():
    rows = [("A", "O1", "2011-01-01", "X", 1, 1.0, "France", False),
            ("A", "O2", "2011-01-02", "X", 1, 1.0, UK, False),
            ("A", "O2", "2011-01-02", "Y", 1, 1.0, UK, False),
            ("A", "C1", "2011-01-03", "Y", -1, 1.0, "France", True),
            ("A", "C2", "2011-01-03", "Y", -1, 1.0, "France", True),  # France: 3 rows
            ("T", "O3", "2011-01-01", "X", 1, 1.0, "Spain", False),
            ("T", "O4", "2011-01-02", "X", 1, 1.0, "Austria", False),  # tie
            ("N", "O5", "2011-01-01", "X", 1, 1.0, None, False),
            ("N", "O6", "2011-01-02", "X", 1, 1.0, "Spain", False),
            ("M", "O7", "2011-01-01", "X", 1, 1.0, None, False)]
    f = build_features(make_orders(rows))
    assert f.loc["A", "country"] == "France"
    assert f.loc["T", "country"] == "Austria"
    assert f.loc["N", "country"] == "Spain"  # a missing country never wins
    assert pd.isna(f.loc["M", "country"])


def test_dtypes_index_and_column_order(orders):
    f = build_features(orders, reference_date="2011-03-01")
    assert f.index.name == "customer"
    assert f.index.dtype == orders["customer"].dtype
    assert f.index.is_unique and f.index.is_monotonic_increasing
    assert list(f.columns) == [*FEATURE_COLUMNS, "country"]
    ints = {"recency_days", "frequency", "tenure_days", "distinct_items"}
    for col in FEATURE_COLUMNS:
        assert f[col].dtype == (np.int64 if col in ints else np.float64), col
    assert f["country"].dtype == orders["country"].dtype


def test_empty_input_is_a_clear_error(orders):
    with pytest.raises(InputError, match="empty") as err:
        build_features(orders.iloc[:0])
    assert err.value.hint


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda o: o.drop(columns=["order_id"]), "lacks the column"),
        (lambda o: o.assign(customer=o["customer"].where(o.index != 2)), "no customer"),
        (lambda o: o.assign(timestamp=o["timestamp"].astype(str)), "not datetime"),
        (lambda o: o.assign(timestamp=o["timestamp"].where(o.index != 1)), "no timestamp"),
        (lambda o: o.assign(amount=o["amount"].where(o.index != 1)), "no amount"),
    ],
)
def test_bad_input_is_an_input_error(orders, change, match):
    with pytest.raises(InputError, match=match):
        build_features(change(orders))


def test_order_spanning_midnight_or_mixing_returns_takes_the_general_path():
    rows = [("A", "O1", "2011-01-01 23:50", "X", 1, 10.0, UK, False),
            ("A", "O1", "2011-01-02 00:10", "Y", 1, 10.0, UK, False),  # O1 spans two days
            ("A", "O2", "2011-01-05 10:00", "X", 1, 10.0, UK, False),
            ("A", "O2", "2011-01-05 10:00", "X", -1, 10.0, UK, True),  # a return line in O2
            ("B", "O3", "2011-01-03 10:00", "X", 1, 10.0, UK, False)]
    f = build_features(make_orders(rows), reference_date="2011-01-10")
    a = f.loc["A"]
    assert a["frequency"] == 2
    assert a["recency_days"] == 5 and a["tenure_days"] == 9
    assert a["days_between_orders"] == pytest.approx(2.0)  # dates Jan 1, 2, 5
    assert a["monetary"] == pytest.approx(20.0)


@pytest.mark.parametrize("kind", ["str", "object", "category", "arrow", "chunked", "tz", "us"])
def test_input_representations_give_the_same_features(orders, kind):
    expected = build_features(orders, reference_date="2011-03-01")
    text = ["customer", "order_id", "item", "country"]
    if kind == "chunked":  # several Arrow chunks, as after pd.concat
        other = orders.copy()
        other["customer"] = other["customer"] + "2"
        other["order_id"] = other["order_id"] + "2"
        got = build_features(pd.concat([orders, other], ignore_index=True),
                             reference_date="2011-03-01")
        pd.testing.assert_frame_equal(got.loc[expected.index], expected, check_like=True)
        assert got.loc["A2", "frequency"] == 3
        return
    changed = orders.copy()
    if kind == "tz":
        changed["timestamp"] = changed["timestamp"].dt.tz_localize("Europe/London")
    elif kind == "us":
        changed["timestamp"] = changed["timestamp"].astype("datetime64[us]")
    else:
        dtype = pd.ArrowDtype(pa.string()) if kind == "arrow" else kind
        for col in text:
            changed[col] = changed[col].astype(dtype)
    got = build_features(changed, reference_date="2011-03-01")
    pd.testing.assert_frame_equal(got, expected, check_index_type=False, check_dtype=False,
                                  check_categorical=False)


def _plain_pandas(orders: pd.DataFrame, ref: pd.Timestamp) -> pd.DataFrame:
    """The same features with plain groupby, written for clarity (the oracle)."""
    buys = orders[~orders["is_return"]]
    g = buys.groupby("customer")
    dates = buys["timestamp"].dt.normalize()
    n_dates = dates.groupby(buys["customer"]).nunique()
    first, last = g["timestamp"].min().dt.normalize(), g["timestamp"].max().dt.normalize()
    gross = g["amount"].sum()
    returned = -orders[orders["is_return"]].groupby("customer")["amount"].sum()
    returned = returned.reindex(gross.index, fill_value=0.0)
    freq = g["order_id"].nunique()
    out = pd.DataFrame({
        "recency_days": (ref - last).dt.days,
        "frequency": freq,
        "monetary": gross - returned,
        "gross_spend": gross,
        "tenure_days": (ref - first).dt.days,
        "avg_basket_value": gross / freq,
        "avg_items_per_order": g["quantity"].sum() / freq,
        "distinct_items": g["item"].nunique(),
        "return_rate": (returned / gross).clip(0, 1),
        "days_between_orders": ((last - first).dt.days / (n_dates - 1)).where(n_dates > 1),
    })
    return out


@pytest.mark.parametrize("orders_span_days", [False, True])
def test_matches_plain_pandas_on_random_orders(orders_span_days):
    rng = np.random.default_rng(7)
    n_orders = 400
    order_cust = rng.integers(0, 60, n_orders)
    order_time = pd.Timestamp("2011-01-01") + pd.to_timedelta(
        rng.integers(0, 200 * 24 * 60, n_orders), unit="min")
    order_ret = rng.random(n_orders) < 0.1
    lines = rng.integers(1, 6, n_orders)
    o = np.repeat(np.arange(n_orders), lines)
    ts = order_time[o]
    if orders_span_days:  # some lines an hour later than their order: may cross midnight
        ts = ts + pd.to_timedelta(rng.integers(0, 2, len(o)) * 60, unit="min")
    qty = rng.integers(1, 5, len(o)).astype(float) * np.where(order_ret[o], -1, 1)
    price = rng.choice([0.5, 1.25, 2.0, 9.99], len(o))
    orders = pd.DataFrame({
        "customer": pd.array([f"c{c:03d}" for c in order_cust[o]], dtype="string"),
        "order_id": pd.array([f"{'C' if order_ret[i] else ''}{i}" for i in o], dtype="string"),
        "timestamp": pd.DatetimeIndex(ts).astype("datetime64[ns]"),
        "item": pd.array([f"i{k}" for k in rng.integers(0, 40, len(o))], dtype="string"),
        "description": pd.array(["d"] * len(o), dtype="string"),
        "quantity": qty,
        "unit_price": price,
        "amount": qty * price,
        "country": pd.array(rng.choice(["UK", "France"], len(o), p=[0.9, 0.1]),
                            dtype="string"),
        "is_return": order_ret[o],
    }).sample(frac=1.0, random_state=1, ignore_index=True)  # rows in no particular order
    ref = pd.Timestamp("2011-08-01")
    got = build_features(orders, reference_date=ref)
    want = _plain_pandas(orders, ref)
    want.index = want.index.astype(got.index.dtype)
    pd.testing.assert_frame_equal(got[list(FEATURE_COLUMNS)], want.loc[got.index],
                                  check_dtype=False, check_names=False)
    assert set(got.index) | set(got.attrs["returns_only_ids"]) == set(orders["customer"])
