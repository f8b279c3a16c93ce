"""Insights through the service, the CLI and the Insights tab's callbacks, on a copy of the
staff shop (60,000 rows of Online Retail, segments built): the reports' numbers agree with
a direct count in pandas, roles are checked, bad input gets a message and a hint."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import plotly.graph_objects as go
import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.core.config import load_settings
from assistant.core.errors import InputError
from assistant.infra.llm import ScriptedModel
from assistant.service.assistant import AssistantService
from assistant.ui import insights as tab
from tests.apprunner import add_user
from tests.conftest import copy_shop

OPS = SimpleNamespace(username="olivia")
AGENT = SimpleNamespace(username="alex")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> tuple[Path, Path]:
    data, orders = copy_shop(staff_shop, tmp_path_factory.mktemp("insights") / "shop")
    add_user(data, "alex", "agent")
    add_user(data, "olivia", "ops")
    return data, orders


@pytest.fixture
def svc(shop: tuple[Path, Path]) -> AssistantService:
    data, orders = shop
    settings = load_settings(data_dir=data, llm_provider="scripted", orders=orders)
    return AssistantService.from_settings(settings, model=ScriptedModel())


def test_retention_agrees_with_a_direct_count(svc) -> None:
    report = svc.insights_report("olivia", "retention")
    first = report["cohorts"][0]
    orders = svc.orders()
    buys = orders[~orders["is_return"]]
    month = buys["timestamp"].dt.to_period("M")
    first_month = month.groupby(buys["customer"]).transform("min")
    cohort = set(buys.loc[first_month == month.min(), "customer"])
    back = set(buys.loc[(first_month == month.min()) & (month == month.min() + 1), "customer"])
    assert first["cohort"] == str(month.min()) and first["offset"] == 0
    assert first["size"] == len(cohort)
    second = report["cohorts"][1]
    assert second["offset"] == 1 and second["active"] == len(back)
    assert second["low"] <= second["rate"] <= second["high"]
    json.dumps(report)  # plain values only


def test_segments_report_counts_every_customer_once(svc) -> None:
    report = svc.insights_report("olivia", "segments")
    rows = {r["segment"]: r for r in report["segments"]}
    customers = svc.segment_model().customers
    assert rows["All customers"]["customers"] == len(customers)
    assert sum(r["customers"] for name, r in rows.items() if name != "All customers") \
        == len(customers)
    champions = (customers["rfm_segment"] == "Champions").sum()
    assert rows["Champions"]["customers"] == champions
    assert report["note"] is None
    one = svc.insights_report("olivia", "segments", segment="Loyal")["segments"]
    assert [r["segment"] for r in one] == ["Loyal"]


def test_migration_defaults_to_the_second_half_of_a_short_history(svc) -> None:
    report = svc.insights_report("olivia", "migration")
    times = svc.orders()["timestamp"]
    first, last = times.min().normalize(), times.max().normalize() + pd.Timedelta(days=1)
    assert report["to"] == f"{last:%Y-%m-%d}"
    assert report["from"] == f"{first + (last - first) / 2:%Y-%m-%d}"  # under a year of data
    total = sum(m["customers"] for m in report["moves"])
    orders = svc.orders()
    buyers = orders.loc[~orders["is_return"] & (orders["timestamp"] < last), "customer"]
    assert total == buyers.nunique()  # every customer with a purchase, once


def test_roles_and_bad_input(svc) -> None:
    with pytest.raises(InputError, match="needs ops"):
        svc.insights_report("alex", "retention")
    with pytest.raises(InputError, match="sign in"):
        svc.insights_report(None, "retention")
    with pytest.raises(InputError, match="no insights report 'funnels'"):
        svc.insights_report("olivia", "funnels")
    with pytest.raises(InputError, match="no segment 'Champs'") as err:
        svc.insights_report("olivia", "retention", segment="Champs")
    assert "Champions" in err.value.hint


def test_tab_callbacks_draw_the_reports(svc) -> None:
    header, choices, retention, per_segment, value, table = tab.load(svc, "All customers",
                                                                     "M", "", OPS)
    assert "customers** measured" in header
    assert "Champions" in choices["choices"]
    assert isinstance(retention, go.Figure) and retention.data[0].type == "heatmap"
    assert [t.type for t in per_segment.data] == ["bar", "bar", "bar"]
    assert len(table) == len(choices["choices"])  # one row per segment and everyone
    loyal = tab.load(svc, "Loyal", "Q", "2011-01-01", OPS)
    assert loyal[2].data[0].type == "heatmap"
    refused = tab.load(svc, "All customers", "M", "", AGENT)
    assert "needs ops" in refused[0]
    assert tab.load(svc, None, None, None, OPS)[0] == header  # Gradio's empty inputs
    bad = tab.load(svc, "All customers", "M", "yesterday-ish", OPS)
    assert "not a date" in bad[0]
    sankey, note = tab.migrate(svc, None, "", OPS)
    assert sankey.data[0].type == "sankey" and note == ""
    kept, why = tab.migrate(svc, "2011-12-01", "2011-01-01", OPS)
    assert "must come before" in why


def test_cli_reports(shop, monkeypatch) -> None:
    data, orders = shop
    monkeypatch.setenv("TAILOR_DATA_DIR", str(data))
    runner = CliRunner()
    out = runner.invoke(app, ["insights", "segments", "--orders", str(orders), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output[out.output.index("{"):])
    assert report["report"] == "segments" and report["segments"][0]["segment"] == "All customers"
    text = runner.invoke(app, ["insights", "retention", "--orders", str(orders)])
    assert text.exit_code == 0 and "n=" in text.output
    moved = runner.invoke(app, ["insights", "migration", "--orders", str(orders),
                                "--from", "2011-01-15", "--to", "2011-02-01"])
    assert moved.exit_code == 0 and " -> " in moved.output
    bad = runner.invoke(app, ["insights", "retention", "--orders", str(orders),
                              "--period", "year"])
    assert bad.exit_code != 0 and "Unknown period" in bad.output
