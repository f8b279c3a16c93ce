"""Order ingest: mapping, validation, rejects, returns, formats and clear errors."""

from __future__ import annotations

import gzip
import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assistant.core.config import REPO_ROOT
from assistant.core.errors import InputError
from assistant.orders.ingest import ORDER_COLUMNS, IngestResult, load_orders, parse_map_options

REAL_FILE = REPO_ROOT / "data" / "online_retail.csv.gz"
UCI_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"

# one row per case; the comment is what must happen to it
UCI_ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",  # noqa: E501  purchase, customer 17850.0 -> 17850
    "536365,71053,WHITE METAL LANTERN ,6,2010-12-01 08:26:00,3.39,17850,United Kingdom",  # purchase
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527,United Kingdom",  # return (both rules)
    "536380,22086,PAPER CHAIN KIT,-2,2010-12-01 09:45:00,2.95,14527,United Kingdom",  # return (qty)
    "C536381,22086,PAPER CHAIN KIT,3,2010-12-01 09:50:00,2.95,14527,France",  # return (prefix)
    "536382,22423,REGENCY CAKESTAND,1,2010-12-01 10:00:00,12.75,,United Kingdom",  # no customer
    "536383,22423,REGENCY CAKESTAND,1,not a date,12.75,15000,United Kingdom",  # bad date
    "536384,22423,REGENCY CAKESTAND,two,2010-12-01 10:00:00,12.75,15000,United Kingdom",  # qty
    "536385,22423,REGENCY CAKESTAND,1,2010-12-01 10:00:00,n/a,15000,United Kingdom",  # price
    "536386,22423,REGENCY CAKESTAND,0,2010-12-01 10:00:00,12.75,15000,United Kingdom",  # qty 0
    "536387,22423,REGENCY CAKESTAND,1,2010-12-01 10:00:00,0,15000,United Kingdom",  # price 0
    "536388,,NO CODE,1,2010-12-01 10:00:00,1.00,15000,United Kingdom",  # no item
    "536365,71053,WHITE METAL LANTERN ,6,2010-12-01 08:26:00,3.39,17850,United Kingdom",  # dup
    "536389,22423,REGENCY CAKESTAND,2,2010-12-02 11:00:00,12.75,15000,",  # purchase, no country
    ",22423,REGENCY CAKESTAND,1,2010-12-02 11:00:00,12.75,15000,France",  # no order id
]
UCI_REJECTED = {
    "missing_customer": 1,
    "unparseable_date": 1,
    "missing_item": 1,
    "missing_order_id": 1,
    "non_numeric_quantity": 1,
    "non_numeric_price": 1,
    "zero_quantity": 1,
    "non_positive_price": 1,
    "duplicate_row": 1,
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def uci_file(tmp_path: Path, name: str = "orders.csv") -> Path:
    return write(tmp_path, name, "\n".join([UCI_HEADER, *UCI_ROWS]) + "\n")


def assert_schema(result: IngestResult) -> None:
    assert list(result.orders.columns) == list(ORDER_COLUMNS)
    assert {c: str(t) for c, t in result.orders.dtypes.items()} == ORDER_COLUMNS
    assert result.rows_used == len(result.orders)
    assert result.rows_read == result.rows_used + sum(result.rejected.values())


def bad_input(path: Path, **kwargs) -> InputError:
    """Load and return the InputError; it must carry a hint and no chained traceback."""
    with pytest.raises(InputError) as info:
        load_orders(path, **kwargs)
    err = info.value
    assert err.message and err.hint
    assert err.__cause__ is None
    assert "Traceback" not in err.for_user()
    return err


# --------------------------------------------------------------------------- validation


def test_every_reject_reason_counted_and_written(tmp_path: Path) -> None:
    rejects = tmp_path / "out" / "rejects.csv"
    path = uci_file(tmp_path)
    result = load_orders(path, rejects_path=rejects)

    assert_schema(result)
    assert result.rows_read == 15
    assert result.rejected == UCI_REJECTED
    assert result.rows_used == 6
    assert result.returns == 3
    assert result.purchases == 3
    assert result.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.rejects_path == rejects

    written = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert list(written.columns) == ["row", *UCI_HEADER.split(","), "reason"]
    assert written["reason"].value_counts().to_dict() == UCI_REJECTED
    by_reason = dict(zip(written["reason"], written["row"].astype(int), strict=True))
    assert by_reason["missing_customer"] == 6
    assert by_reason["duplicate_row"] == 13
    assert written.loc[written["reason"] == "unparseable_date", "InvoiceDate"].item() == (
        "not a date"
    )


def test_values_normalised(tmp_path: Path) -> None:
    orders = load_orders(uci_file(tmp_path)).orders
    first = orders.iloc[0]
    assert first["customer"] == "17850"  # was "17850.0"
    assert first["order_id"] == "536365"
    assert first["timestamp"] == pd.Timestamp("2010-12-01 08:26:00")
    assert first["amount"] == pytest.approx(6 * 2.55)
    assert orders.iloc[1]["description"] == "WHITE METAL LANTERN"  # stripped
    assert orders["country"].tolist()[-1] == "Unknown"
    assert orders["customer"].tolist() == ["17850", "17850", "14527", "14527", "14527", "15000"]


def test_returns_by_both_rules_have_negative_quantity_and_amount(tmp_path: Path) -> None:
    orders = load_orders(uci_file(tmp_path)).orders
    returns = orders[orders["is_return"]]
    assert returns["order_id"].tolist() == ["C536379", "536380", "C536381"]
    assert returns["quantity"].tolist() == [-1.0, -2.0, -3.0]
    assert returns["amount"].tolist() == pytest.approx([-27.5, -5.9, -8.85])
    assert (returns["unit_price"] > 0).all()
    assert not orders.loc[~orders["is_return"], "order_id"].str.startswith("C").any()


def test_return_prefix_can_be_changed_or_disabled(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.csv",
        "order,customer,date,sku,qty,price\n"
        "C-1,a,2021-01-01,x,1,2.0\nR-2,a,2021-01-02,x,1,2.0\nC-3,b,2021-01-03,y,1,3.0\n",
    )
    assert load_orders(path, return_prefix="").returns == 0
    assert load_orders(path, return_prefix="R-").returns == 1
    assert load_orders(path).returns == 2


def test_amount_given_is_kept_and_price_derived(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.csv",
        "order_id,customer,date,sku,qty,revenue\n1,a,2021-01-01,x,4,10\n2,b,2021-01-02,y,-2,-6\n",
    )
    orders = load_orders(path).orders
    assert orders["amount"].tolist() == [10.0, -6.0]
    assert orders["unit_price"].tolist() == [2.5, 3.0]
    assert orders["is_return"].tolist() == [False, True]


def test_malformed_lines_are_rejected_not_fatal(tmp_path: Path) -> None:
    rejects = tmp_path / "rej.csv"
    path = write(
        tmp_path,
        "o.csv",
        "order,customer,date,sku,qty,price\n1,a,2021-01-01,x,1,2.0\n2,a,2021-01-02,x,1,2.0,EXTRA\n"
        "3,b,2021-01-03,y,1,3.0\n",
    )
    result = load_orders(path, rejects_path=rejects)
    assert result.rows_read == 3
    assert result.rows_used == 2
    assert result.rejected == {"malformed_line": 1}
    written = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert written["reason"].tolist() == ["malformed_line"]
    assert written["order"].item().startswith("line 3")


def test_no_rejects_file_unless_asked(tmp_path: Path) -> None:
    result = load_orders(uci_file(tmp_path))
    assert result.rejects_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orders.csv"]


# --------------------------------------------------------------------------- columns


def test_aliases_are_case_space_and_underscore_insensitive(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.csv",
        "Order ID,USER_ID,Order-Date,Product_ID,QTY,Unit Price,Product Name,COUNTRY\n"
        "o1,u1,2021-03-04 10:00,p1,2,1.5,Mug,UK\n",
    )
    result = load_orders(path)
    assert_schema(result)
    assert result.columns["order_id"] == "Order ID"
    assert result.columns["customer"] == "USER_ID"
    assert result.columns["timestamp"] == "Order-Date"
    assert result.columns["item"] == "Product_ID"
    row = result.orders.iloc[0]
    assert (row["order_id"], row["customer"], row["item"], row["description"]) == (
        "o1", "u1", "p1", "Mug",
    )
    assert (row["quantity"], row["unit_price"], row["amount"]) == (2.0, 1.5, 3.0)


def test_mapping_wins_over_aliases(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.csv",
        "client_ref,customer,date,shipped,code,n,cost\n"
        "C9,ignored,2021-01-01,2021-02-05 12:00:00,k,3,2\n",
    )
    mapping = {"customer": "client_ref", "timestamp": "shipped", "item": "code",
               "quantity": "n", "unit_price": "cost"}
    result = load_orders(path, mapping)
    row = result.orders.iloc[0]
    assert row["customer"] == "C9"
    assert row["timestamp"] == pd.Timestamp("2021-02-05 12:00:00")
    assert (row["item"], row["quantity"], row["amount"]) == ("k", 3.0, 6.0)
    # the mapped column names also match loosely
    loose = load_orders(path, {**mapping, "customer": "Client Ref"})
    assert loose.orders.iloc[0]["customer"] == "C9"


def test_minimal_schema_customer_date_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cdnow.csv",
        "customer_id,date,dollar_value\n1,1997-01-01,29.33\n1,1997-01-18,29.73\n"
        "2,1997-01-02,-10\n2,1997-01-12,35.6\n",
    )
    result = load_orders(path)
    assert_schema(result)
    orders = result.orders
    assert orders["quantity"].tolist() == [1.0, 1.0, -1.0, 1.0]
    assert orders["unit_price"].tolist() == [29.33, 29.73, 10.0, 35.6]
    assert orders["amount"].tolist() == [29.33, 29.73, -10.0, 35.6]
    assert set(orders["item"]) == {"unknown"}
    assert set(orders["country"]) == {"Unknown"}
    assert orders["order_id"].tolist()[0] == "1@1997-01-01T00:00:00"
    assert result.returns == 1
    assert result.columns["order_id"] is None
    assert any("quantity = 1" in note for note in result.notes)


def test_derived_order_id_never_counts_as_return(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", "customer,date,amount\nC100,2021-01-01 10:00,5\n")
    result = load_orders(path)
    assert result.returns == 0
    assert result.orders["order_id"].item() == "C100@2021-01-01T10:00:00"


def test_item_falls_back_to_description(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", "customer,date,description,price\na,2021-01-01,Mug  Blue,3\n")
    row = load_orders(path).orders.iloc[0]
    assert (row["item"], row["description"]) == ("Mug Blue", "Mug Blue")


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path: Path, sep: str) -> None:
    text = "\n".join(line.replace(",", sep) for line in [
        "InvoiceNo,CustomerID,InvoiceDate,StockCode,Quantity,UnitPrice",
        "1,a,2021-01-01 10:00,x,2,1.25",
        "2,b,2021-01-02 10:00,y,1,4",
    ]) + "\n"
    result = load_orders(write(tmp_path, "o.csv", text))
    assert result.rows_used == 2
    assert result.orders["amount"].tolist() == [2.5, 4.0]


def test_semicolon_file_with_decimal_commas_and_day_first_dates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "eu.csv",
        "Bestellung;Kunde;Datum;Artikel;Menge;Preis\n"
        "1;k1;13.01.2021 10:00;a;2;2,55\n2;k2;01.02.2021 11:30;b;1;1.234,50\n",
    )
    result = load_orders(
        path,
        {"order_id": "Bestellung", "customer": "Kunde", "timestamp": "Datum",
         "item": "Artikel", "quantity": "Menge", "unit_price": "Preis"},
    )
    orders = result.orders
    assert orders["unit_price"].tolist() == [2.55, 1234.5]
    assert orders["timestamp"].tolist() == [
        pd.Timestamp("2021-01-13 10:00"), pd.Timestamp("2021-02-01 11:30"),
    ]


def test_us_dates_as_exported_by_spreadsheets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.csv",
        "InvoiceNo,CustomerID,InvoiceDate,StockCode,Quantity,UnitPrice\n"
        "1,a,12/1/2010 8:26,x,1,1\n2,a,12/13/2010 17:05,x,1,1\n",
    )
    assert load_orders(path).orders["timestamp"].tolist() == [
        pd.Timestamp("2010-12-01 08:26"), pd.Timestamp("2010-12-13 17:05"),
    ]


def test_gzip_and_parquet_round_trip(tmp_path: Path) -> None:
    plain = load_orders(uci_file(tmp_path))
    gz = tmp_path / "orders.csv.gz"
    gz.write_bytes(gzip.compress(uci_file(tmp_path, "again.csv").read_bytes()))
    zipped = load_orders(gz)
    pd.testing.assert_frame_equal(zipped.orders, plain.orders)
    assert zipped.rejected == plain.rejected

    frame = plain.orders.drop(columns="is_return").copy()
    frame["customer"] = frame["customer"].astype(float)  # 17850.0, as many tools write it
    frame.loc[len(frame)] = [np.nan, "9", pd.Timestamp("2021-01-01"), "x", "", 1.0, 1.0, 1.0,
                             "UK"]
    pq = tmp_path / "orders.parquet"
    frame.to_parquet(pq)
    result = load_orders(pq)
    assert_schema(result)
    assert result.rejected == {"missing_customer": 1}
    expected = plain.orders.copy()
    expected["is_return"] = expected["quantity"] < 0
    pd.testing.assert_frame_equal(result.orders, expected)


def test_unix_time_and_offsets(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", "customer,ts,price\na,1609459200,1\nb,1609545600,2\n")
    assert load_orders(path).orders["timestamp"].tolist() == [
        pd.Timestamp("2021-01-01"), pd.Timestamp("2021-01-02"),
    ]
    path = write(
        tmp_path, "o.csv", "customer,ts,price\na,2021-01-01T10:00:00+02:00,1\nb,2021-01-02,2\n"
    )
    assert load_orders(path).orders["timestamp"].tolist() == [
        pd.Timestamp("2021-01-01 08:00"), pd.Timestamp("2021-01-02"),  # offsets -> UTC
    ]


def test_cp1252_text_is_read(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes("customer,date,description,price\na,2021-01-01,Caf\xe9 mug \xa3,3\n"
                     .encode("cp1252"))
    assert load_orders(path).orders["description"].item() == "Café mug £"


# --------------------------------------------------------------------------- bad input


def test_missing_required_columns_names_them_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", "client_ref,when,sku,price\na,2021-01-01,x,1\n")
    err = bad_input(path)
    assert "customer" in err.message and "timestamp" in err.message
    assert "client_ref, when, sku, price" in err.message
    assert "--map customer=client_ref" in err.hint
    assert "--map timestamp=when" in err.hint


def test_hint_quotes_column_names_with_spaces(tmp_path: Path) -> None:
    err = bad_input(write(tmp_path, "o.csv", "client name,date,price\na,2021-01-01,1\n"))
    assert '--map "customer=client name"' in err.hint


def test_missing_value_columns(tmp_path: Path) -> None:
    err = bad_input(write(tmp_path, "o.csv", "customer,date,sku\na,2021-01-01,x\n"))
    assert "amount (or unit_price)" in err.message
    assert "--map amount=" in err.hint


def test_unparseable_date_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.csv",
        "customer,date,price\na,soon,1\nb,later,2\nc,yesterday-ish,3\nd,2021-01-01,4\n",
    )
    err = bad_input(path)
    assert "'date'" in err.message
    assert "'soon'" in err.message and "'later'" in err.message and "'yesterday-ish'" in err.message
    assert "--map timestamp=COLUMN" in err.hint and "YYYY-MM-DD" in err.hint


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (b"customer,date,price\n", "no rows"),
    ],
)
def test_empty_files(tmp_path: Path, content: bytes, expect: str) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(content)
    assert expect in bad_input(path).message


def test_empty_date_column(tmp_path: Path) -> None:
    err = bad_input(write(tmp_path, "o.csv", "customer,date,price\na,,1\nb,,2\n"))
    assert "'date'" in err.message and "empty" in err.message
    assert "--map timestamp=" in err.hint


def test_file_without_header_row(tmp_path: Path) -> None:
    err = bad_input(write(tmp_path, "o.csv", "17850,2021-01-01,3.5\n12345,2021-01-02,4\n"))
    assert "no header row" in err.message


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(bytes(range(256)) * 40)
    assert "not a table" in bad_input(path).message


def test_gz_that_is_not_gzip_and_corrupt_gzip(tmp_path: Path) -> None:
    assert "not gzip" in bad_input(write(tmp_path, "o.csv.gz", "a,b\n1,2\n")).message
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(b"customer,date,price\n" * 1000)[:60])
    assert "not a table" in bad_input(broken).message


def test_garbage_parquet(tmp_path: Path) -> None:
    err = bad_input(write(tmp_path, "o.parquet", "customer,date,price\na,2021-01-01,1\n"))
    assert "Parquet" in err.message


def test_single_column_when_delimiter_is_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", "customer:date:price\na:2021-01-01:1\nb:2021-01-02:2\n")
    err = bad_input(path)
    assert "only one column" in err.message
    assert "separator" in err.message


def test_only_cancellations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.csv",
        "InvoiceNo,CustomerID,InvoiceDate,StockCode,Quantity,UnitPrice\n"
        "C1,a,2021-01-01,x,-1,2\nC2,b,2021-01-02,y,-3,1\n",
    )
    err = bad_input(path)
    assert "no purchases" in err.message
    assert "return" in err.hint and "--return-prefix" in err.hint


def test_every_row_rejected(tmp_path: Path) -> None:
    rejects = tmp_path / "rej.csv"
    path = write(tmp_path, "o.csv", "customer,date,price\n,2021-01-01,1\n,2021-01-02,2\n")
    err = bad_input(path, rejects_path=rejects)
    assert "missing_customer 2" in err.message
    assert str(rejects) in err.hint
    assert len(pd.read_csv(rejects)) == 2


@pytest.mark.parametrize("name", ["orders.xlsx", "orders.json", "orders"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    err = bad_input(write(tmp_path, name, "customer,date,price\na,2021-01-01,1\n"))
    assert "unsupported file type" in err.message
    assert "CSV" in err.hint


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "not found" in bad_input(tmp_path / "nope.csv").message
    assert "directory" in bad_input(tmp_path).message


def test_bad_mapping(tmp_path: Path) -> None:
    path = uci_file(tmp_path)
    assert "Unknown field 'buyer'" in bad_input(path, mapping={"buyer": "CustomerID"}).message
    err = bad_input(path, mapping={"customer": "ClientRef"})
    assert "'ClientRef'" in err.message and "InvoiceNo" in err.message


def test_parse_map_options() -> None:
    assert parse_map_options(["timestamp=Order Date", " Customer = id "]) == {
        "timestamp": "Order Date", "customer": "id",
    }
    with pytest.raises(InputError):
        parse_map_options(["timestamp"])


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[IngestResult, float]:
    rejects = tmp_path_factory.mktemp("real") / "rejects.csv"
    start = time.perf_counter()
    result = load_orders(REAL_FILE, rejects_path=rejects)
    return result, time.perf_counter() - start


def test_real_file_counts(real: tuple[IngestResult, float]) -> None:
    result, seconds = real
    assert_schema(result)
    assert result.rows_read == 541_909
    assert result.rejected == {
        "missing_customer": 135_080,
        "non_positive_price": 40,
        "duplicate_row": 5_225,
    }
    assert result.rows_used == 401_564
    assert result.returns == 8_872
    assert 4300 <= result.orders["customer"].nunique() <= 4400
    assert result.orders["customer"].str.fullmatch(r"\d{5}").all()
    assert result.source_hash == (
        "1e8ed4dac4a7e64560eb5fd8bf8560caa8ad5c2c68e3dc143ae745530689d448"
    )
    assert seconds < 30  # ~3.5 s on 2 cores; generous for slow CI


def test_real_file_returns_and_rejects_file(real: tuple[IngestResult, float]) -> None:
    result, _ = real
    orders = result.orders
    returns = orders[orders["is_return"]]
    assert returns["order_id"].str.startswith("C").all()
    assert (returns["quantity"] < 0).all() and (returns["amount"] < 0).all()
    purchases = orders[~orders["is_return"]]
    assert (purchases["unit_price"] > 0).all() and (purchases["quantity"] > 0).all()
    assert orders["timestamp"].min() == pd.Timestamp("2010-12-01 08:26:00")
    assert orders["timestamp"].max() == pd.Timestamp("2011-12-09 12:50:00")
    assert result.rejects_path is not None
    written = pd.read_csv(result.rejects_path, usecols=["reason"])
    assert written["reason"].value_counts().to_dict() == result.rejected
