"""`assistant segments ...` on the shipped real data (UCI Online Retail), JSON output."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from assistant.core.config import REPO_ROOT
from assistant.infra.artifacts import current_bundle_path
from assistant.segments.model import SEGMENTS

ORDERS = REPO_ROOT / "data" / "online_retail.csv.gz"
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data = tmp_path_factory.mktemp("segdata")
    env = {"TAILOR_DATA_DIR": str(data)}
    result = runner.invoke(app_(), ["segments", "build", "--orders", str(ORDERS), "--json"],
                           env=env)
    assert result.exit_code == 0, result.output
    return data, env, json.loads(result.stdout)


def app_():
    from assistant.cli import app

    return app


def test_build_reports_real_customers_and_rejects(built):
    _, _, summary = built
    assert summary["rows_read"] == 541_909
    assert summary["reference_date"] == "2011-12-10"  # the day after the last order
    assert 4_300 <= summary["customers"] <= 4_400
    assert summary["rejected"]["missing_customer"] == 135_080
    assert summary["returns"] > 8_000
    assert set(summary["segments"]) <= set(SEGMENTS)
    assert sum(summary["segments"].values()) == summary["customers"]
    assert 3 <= summary["clusters"]["k"] <= 8
    clf = summary["classifier"]
    assert clf["accuracy"] > 0.8 and clf["macro_f1"] > 0.6
    # the cold start (answers only) is far above the majority class, below behaviour
    answers = clf["by_mode"]["answers"]
    assert clf["baseline_accuracy"] + 0.2 < answers["accuracy"] < clf["by_mode"]["behaviour"][
        "accuracy"]
    assert 0 < answers["brier"] < 1


def test_show_a_known_customer(built):
    _, env, _ = built
    result = runner.invoke(app_(), ["segments", "show", "17850"], env=env)
    assert result.exit_code == 0, result.output
    seg = json.loads(result.stdout)
    assert seg["segment"] in SEGMENTS and seg["rfm"]["f"] >= 1 and seg["reasons"]


def test_failed_build_keeps_what_was_built(built, tmp_path):
    data, env, _ = built
    before = current_bundle_path(data / "artifacts", "segments")
    bad = tmp_path / "orders.csv"
    bad.write_text("who,when,what\n1,2,3\n")
    result = runner.invoke(app_(), ["segments", "build", "--orders", str(bad)], env=env)
    assert result.exit_code == 2
    assert "--map" in result.stderr and "Traceback" not in result.output
    assert current_bundle_path(data / "artifacts", "segments") == before


def test_other_schema_with_map(tmp_path):
    """Per-invoice totals of the real data as customer_id, date, dollar_value."""
    raw = pd.read_csv(ORDERS, dtype={"CustomerID": "string", "InvoiceNo": "string"})
    raw = raw.dropna(subset=["CustomerID"])
    raw["dollar_value"] = raw["Quantity"] * raw["UnitPrice"]
    inv = raw.groupby(["InvoiceNo", "CustomerID"], as_index=False).agg(
        date=("InvoiceDate", "first"), dollar_value=("dollar_value", "sum"))
    inv = inv[inv["dollar_value"] > 0].rename(columns={"CustomerID": "cust"})
    path = tmp_path / "invoices.csv"
    inv[["cust", "date", "dollar_value"]].to_csv(path, index=False)
    env = {"TAILOR_DATA_DIR": str(tmp_path / "data")}
    result = runner.invoke(app_(), ["segments", "build", "--orders", str(path),
                                    "--map", "customer=cust", "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert 4_300 <= summary["customers"] <= 4_400
    assert summary["classifier"]["accuracy"] > 0.7


def test_reference_date_option(tmp_path):
    orders = tmp_path / "orders.csv"
    pd.read_csv(ORDERS, nrows=30_000).to_csv(orders, index=False)
    env = {"TAILOR_DATA_DIR": str(tmp_path / "data")}
    result = runner.invoke(app_(), ["segments", "build", "--orders", str(orders), "--json",
                                    "--reference-date", "2011-06-01"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reference_date"] == "2011-06-01"
    bad = runner.invoke(app_(), ["segments", "build", "--orders", str(orders),
                                 "--reference-date", "2010-01-01"], env=env)
    assert bad.exit_code == 2 and "hint:" in bad.stderr  # before the last purchase


def test_train_any_table(tmp_path):
    rows = []
    for i in range(120):
        plan = ["basic", "pro", "team"][i % 3]
        rows.append({"plan": plan, "seats": (i % 3) * 10 + i % 5, "churned": plan == "basic"})
    path = tmp_path / "answers.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    result = runner.invoke(app_(), ["segments", "train", "--table", str(path),
                                    "--label", "churned", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["accuracy"] > out["baseline"]["accuracy"] and out["macro_f1"] > 0.9
    bad = runner.invoke(app_(), ["segments", "train", "--table", str(path), "--label", "nope"])
    assert bad.exit_code == 2 and "no column 'nope'" in bad.stderr


@pytest.mark.parametrize(("content", "needle"), [
    ("", "empty"),
    ("customer;order;date;amount\n1;2;2011-01-01;3\n" * 1, None),  # semicolons are fine
    ("\x00\x01\x02garbage\xff" * 50, "not a table"),
])
def test_bad_files(tmp_path, content, needle):
    path = tmp_path / "orders.csv"
    path.write_bytes(content.encode("latin-1") if isinstance(content, str) else content)
    result = runner.invoke(app_(), ["segments", "build", "--orders", str(path)],
                           env={"TAILOR_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 2  # too few customers in the semicolon case
    assert "Traceback" not in result.output and "hint:" in result.stderr
    if needle:
        assert needle in result.stderr
