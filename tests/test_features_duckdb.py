"""The DuckDB feature step (orders/features_duckdb.py) gives what the pandas path gives
(load_orders + assign_groups + build_features) on the same file: the same frame, counts,
rejects and errors; and `segments build --engine` chooses between them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from assistant.core.config import REPO_ROOT
from assistant.core.errors import InputError
from assistant.orders import features_duckdb
from assistant.orders.catalog import assign_groups, build_catalog, load_group_rules
from assistant.orders.features import build_features
from assistant.orders.features_duckdb import build_features_duckdb, choose_engine
from assistant.orders.ingest import load_orders

ORDERS = REPO_ROOT / "data" / "online_retail.csv.gz"
RULES = load_group_rules()
GROUPS = sorted(RULES.names)


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    """The first 30,000 rows of the shipped data, as pandas reads the CSV (CustomerID a float
    with NaN, InvoiceDate text): returns, rows without a customer, duplicates included."""
    return pd.read_csv(ORDERS, nrows=30_000)


@pytest.fixture(scope="module")
def sample_parquet(shipped, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("orders") / "sample.parquet"
    shipped.to_parquet(path, index=False)
    return path


def pandas_path(path: Path, **kw) -> tuple[pd.DataFrame, object, pd.DataFrame]:
    ingest = load_orders(path, kw.get("mapping"), return_prefix=kw.get("return_prefix", "C"),
                         rejects_path=kw.get("rejects_path"))
    orders = ingest.orders
    orders["group"] = assign_groups(orders["description"], RULES)
    features = build_features(orders, groups=kw.get("groups", GROUPS),
                              reference_date=kw.get("reference_date"))
    return features, ingest, build_catalog(orders, RULES)


def assert_same_features(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a.index.equals(b.index)
    assert a.index.dtype == b.index.dtype and a.index.name == b.index.name == "customer"
    assert a.attrs == b.attrs
    for col in a.columns:
        assert a[col].dtype == b[col].dtype, col
        if a[col].dtype.kind == "f":
            np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), rtol=1e-9,
                                       atol=1e-9, err_msg=col)
        else:
            assert (a[col] == b[col]).all(), col


def assert_same_ingest(ingest, info: dict) -> None:
    assert info["rows_read"] == ingest.rows_read
    assert info["rows_used"] == ingest.rows_used
    assert info["returns"] == ingest.returns
    assert info["rejected"] == ingest.rejected
    assert list(info["rejected"]) == list(ingest.rejected)  # same order (REJECT_REASONS)
    assert info["notes"] == ingest.notes
    assert info["columns"] == ingest.columns
    assert info["source_hash"] == ingest.source_hash


def test_same_features_counts_catalog_and_rejects_as_pandas(sample_parquet, tmp_path):
    expected, ingest, catalog = pandas_path(sample_parquet, rejects_path=tmp_path / "p.csv")
    features, info = build_features_duckdb(sample_parquet, groups=GROUPS, rules=RULES,
                                           rejects_path=tmp_path / "d.csv", catalog=True)
    assert_same_ingest(ingest, info)
    assert info["rejected"]["missing_customer"] > 5_000 and info["rejected"]["duplicate_row"]
    assert info["returns"] > 0 and features.attrs["returns_only_customers"] >= 0
    assert_same_features(expected, features)
    assert [c for c in features.columns if c.startswith("share_")] == [
        f"share_{g}" for g in GROUPS]
    shares = features[[f"share_{g}" for g in GROUPS]].sum(axis=1)
    np.testing.assert_allclose(shares, 1.0, rtol=1e-9)
    pd.testing.assert_frame_equal(info["catalog"], catalog, check_exact=False, rtol=1e-9)
    ours = pd.read_csv(tmp_path / "d.csv", dtype=str, keep_default_na=False)
    theirs = pd.read_csv(tmp_path / "p.csv", dtype=str, keep_default_na=False)
    assert list(ours.columns) == list(theirs.columns)
    assert (ours["row"] == theirs["row"]).all() and (ours["reason"] == theirs["reason"]).all()


def test_explicit_reference_date_and_no_groups(sample_parquet):
    ingest = load_orders(sample_parquet)
    expected = build_features(ingest.orders, reference_date="2011-06-01")
    features, _ = build_features_duckdb(sample_parquet, reference_date="2011-06-01")
    assert not any(c.startswith("share_") for c in features.columns)
    assert features.attrs["reference_date"] == pd.Timestamp("2011-06-01")
    assert_same_features(expected, features)
    with pytest.raises(InputError, match="before the last purchase"):
        build_features_duckdb(sample_parquet, reference_date="2010-12-02")


@pytest.mark.parametrize("variant", ["csv", "csv.gz", "typed", "tz", "epoch", "date",
                                     "nullable_int", "return_prefix"])
def test_file_kinds_and_column_types(shipped, tmp_path, variant):
    """CSV (text everywhere), and Parquet with the date as a timestamp (naive or with a
    time zone), unix seconds or a date, the customer as a nullable integer."""
    raw = shipped.iloc[:8_000]
    when = pd.to_datetime(raw["InvoiceDate"])
    frame = {
        "typed": raw.assign(InvoiceDate=when),
        "tz": raw.assign(InvoiceDate=when.dt.tz_localize("Europe/Paris")),
        "epoch": raw.assign(InvoiceDate=when.astype("int64") // 10**9),
        "date": raw.assign(InvoiceDate=when.dt.date),
        "nullable_int": raw.assign(CustomerID=raw["CustomerID"].astype("Int64")),
    }.get(variant, raw)
    path = tmp_path / f"orders.{variant if variant.startswith('csv') else 'parquet'}"
    if variant.startswith("csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    prefix = "5365" if variant == "return_prefix" else "C"  # some orders
    expected, ingest, _ = pandas_path(path, return_prefix=prefix)
    features, info = build_features_duckdb(path, groups=GROUPS, rules=RULES,
                                           return_prefix=prefix)
    assert_same_ingest(ingest, info)
    assert_same_features(expected, features)


def messy_orders(n: int = 2_000) -> pd.DataFrame:
    """Text everywhere, in another schema: ids written as floats or padded, null-looking
    tokens, day-first dates with placeholders and junk, currency signs, decimal commas,
    zero quantities, negative prices, duplicates, messy descriptions."""
    rng = np.random.default_rng(7)
    pick = lambda values: rng.choice(np.array(values, dtype=object), n)  # noqa: E731
    when = [f"{d:02d}/{m:02d}/2011 {h:02d}:15" for d, m, h in
            zip(rng.integers(1, 29, n), rng.integers(1, 13, n), rng.integers(0, 24, n),
                strict=True)]
    when = np.where(rng.random(n) < 0.02, "01/01/1900 00:00", when)
    when = np.where(rng.random(n) < 0.02, "soon", when)
    frame = pd.DataFrame({
        "Client Ref": pick(["17850", " 17851 ", "17852.0", "nan", "", "A-9", "NULL", "b7",
                            "c8", "d9"]),
        "When": when,
        "Qty": pick(["1", "2", "-1", "0", "abc", " 3 ", "1.0", "1,5"]),
        "Price": pick(["2.55", "£3.50", "2,55", "0", "-1", "1.234,50", "x", "10"]),
        "Ticket": pick(["O1", "O2", "C3", "O4", "", "O5 ", "O6.0", "C7"]),
        "SKU": pick(["X1", "X2", "", "X3", "85123A"]),
        "Label": pick(["WHITE HANGING HEART  T-LIGHT HOLDER", " JUMBO BAG RED RETROSPOT", "",
                       "POSTAGE", "mug\tcup", "CHRISTMAS  TREE"]),
        "Land": pick(["United Kingdom", " France", "", "Germany"]),
        "extra": rng.integers(0, 3, n),
    })
    return pd.concat([frame, frame.iloc[:150]], ignore_index=True)


MAPPING = {"customer": "Client Ref", "timestamp": "When", "quantity": "Qty",
           "unit_price": "Price", "order_id": "Ticket", "item": "SKU",
           "description": "Label", "country": "Land"}


@pytest.mark.parametrize("schema", ["full", "amount_only", "amount_and_price", "minimal"])
@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_column_mapping_and_every_cleaning_rule(tmp_path, schema, kind):
    frame = messy_orders()
    mapping = dict(MAPPING)
    if schema == "amount_only":  # amount without quantity or price: derived as ingest does
        frame = frame.drop(columns=["Qty"]).rename(columns={"Price": "Value"})
        mapping = {k: v for k, v in mapping.items() if k not in ("quantity", "unit_price")}
        mapping["amount"] = "Value"
    elif schema == "amount_and_price":  # an amount that is missing in some rows
        frame["Sum"] = np.resize(np.array(["5", "", "x", "-3", "12.5"], dtype=object),
                                 len(frame))
        mapping["amount"] = "Sum"
    elif schema == "minimal":  # no order id, item, description, country: derived
        frame = frame.drop(columns=["Ticket", "SKU", "Label", "Land"])
        mapping = {k: v for k, v in mapping.items() if v in frame.columns}
    path = tmp_path / f"messy.{kind}"
    frame.to_parquet(path, index=False) if kind == "parquet" else frame.to_csv(path,
                                                                                index=False)
    expected, ingest, catalog = pandas_path(path, mapping=mapping, groups=None)
    features, info = build_features_duckdb(path, mapping=mapping, rules=RULES, catalog=True)
    assert_same_ingest(ingest, info)
    assert len(info["rejected"]) >= 4
    assert_same_features(expected, features)
    pd.testing.assert_frame_equal(info["catalog"], catalog, check_exact=False, rtol=1e-9)


def test_every_row_rejected_is_the_same_error(shipped, tmp_path):
    path = tmp_path / "nobody.parquet"
    shipped.iloc[:500].assign(CustomerID=np.nan).to_parquet(path, index=False)
    with pytest.raises(InputError) as pandas_err:
        load_orders(path)
    with pytest.raises(InputError) as duck_err:
        build_features_duckdb(path)
    assert str(duck_err.value) == str(pandas_err.value)
    assert "no purchases left" in duck_err.value.message
    assert "missing_customer 500" in duck_err.value.message


def test_only_returns_is_the_same_error(shipped, tmp_path):
    path = tmp_path / "returns.parquet"
    shipped.iloc[:500].assign(InvoiceNo="C1").to_parquet(path, index=False)
    with pytest.raises(InputError) as pandas_err:
        load_orders(path)
    with pytest.raises(InputError) as duck_err:
        build_features_duckdb(path)
    assert str(duck_err.value) == str(pandas_err.value)
    assert "return_prefix=''" in duck_err.value.hint


def test_missing_column_is_the_same_error(shipped, tmp_path):
    path = tmp_path / "nodate.parquet"
    shipped.iloc[:200].drop(columns=["InvoiceDate"]).to_parquet(path, index=False)
    with pytest.raises(InputError) as pandas_err:
        load_orders(path)
    with pytest.raises(InputError) as duck_err:
        build_features_duckdb(path)
    assert str(duck_err.value) == str(pandas_err.value)
    assert "timestamp" in duck_err.value.message and "--map" in duck_err.value.hint
    with pytest.raises(InputError, match="not in nodate.parquet"):
        build_features_duckdb(path, mapping={"timestamp": "Shipped"})


def test_unreadable_empty_and_absent_files(shipped, tmp_path):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet at all" * 10)
    with pytest.raises(InputError, match="could not be read as Parquet") as err:
        build_features_duckdb(garbage)
    assert err.value.hint
    empty = tmp_path / "empty.parquet"
    shipped.iloc[:0].to_parquet(empty, index=False)
    with pytest.raises(InputError, match="has a header but no rows"):
        build_features_duckdb(empty)
    with pytest.raises(InputError, match="File not found"):
        build_features_duckdb(tmp_path / "absent.parquet")
    malformed = tmp_path / "malformed.csv"
    malformed.write_text("customer,date,amount\na,2011-01-01,3\nb,2011-01-02,4,extra\n")
    assert load_orders(malformed).rejected == {"malformed_line": 1}  # pandas counts it
    with pytest.raises(InputError, match="DuckDB could not read") as err:
        build_features_duckdb(malformed)
    assert "--engine pandas" in err.value.hint
    text = tmp_path / "latin.csv"
    text.write_bytes("customer,date,amount\nJos\xe9,2011-01-01,3\n".encode("cp1252"))
    with pytest.raises(InputError, match="not UTF-8") as err:
        build_features_duckdb(text)
    assert "--engine pandas" in err.value.hint


def test_choose_engine_rule(sample_parquet, monkeypatch):
    assert choose_engine(ORDERS)[0] == "pandas"  # the shipped file: small
    assert choose_engine(sample_parquet, "duckdb") == ("duckdb", "duckdb (asked for)")
    monkeypatch.setattr(features_duckdb, "available_memory", lambda: 64 << 20)
    engine, why = choose_engine(ORDERS)
    assert engine == "duckdb" and "GiB available" in why
    monkeypatch.setattr(features_duckdb, "available_memory", lambda: 1 << 40)
    assert choose_engine(sample_parquet)[0] == "pandas"
    monkeypatch.setattr(features_duckdb, "DUCKDB_MIN_PARQUET_ROWS", 10_000)
    engine, why = choose_engine(sample_parquet)
    assert engine == "duckdb" and "30,000 rows" in why
    with pytest.raises(InputError, match="Unknown engine 'bogus'") as err:
        choose_engine(sample_parquet, "bogus")
    assert "--engine pandas, duckdb or auto" in err.value.hint


def test_segments_build_with_either_engine_gives_the_same_segments(shipped, tmp_path):
    from assistant.cli import app

    small = tmp_path / "small.parquet"  # 12,000 rows, ~600 customers: two builds in ~20 s
    shipped.iloc[:12_000].to_parquet(small, index=False)
    runner = CliRunner()
    out = {}
    for engine in ("duckdb", "pandas"):
        env = {"TAILOR_DATA_DIR": str(tmp_path / engine)}
        result = runner.invoke(app, ["segments", "build", "--orders", str(small),
                                     "--engine", engine, "--json"], env=env)
        assert result.exit_code == 0, result.output
        out[engine] = json.loads(result.stdout)
    duck, pand = out["duckdb"], out["pandas"]
    assert duck["engine"] == "duckdb" and pand["engine"] == "pandas"
    assert "asked for" in duck["engine_reason"]
    for key in ("customers", "rows_read", "rows_used", "returns", "rejected", "segments",
                "reference_date"):
        assert duck[key] == pand[key], key
    assert duck["clusters"]["k"] == pand["clusters"]["k"]
    assert (tmp_path / "duckdb" / "artifacts" / "last-rejects.csv").exists()


def test_segments_build_with_a_bogus_engine_is_a_clear_error(sample_parquet, tmp_path):
    from assistant.cli import app

    result = CliRunner().invoke(app, ["segments", "build", "--orders", str(sample_parquet),
                                      "--engine", "bogus"],
                                env={"TAILOR_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "Unknown engine 'bogus'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "artifacts").exists()
