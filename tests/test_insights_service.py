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
from assistant.core.errors import InputError, StoreError
from assistant.service.assistant import AssistantService
from assistant.ui import desk
from assistant.ui import insights as tab
from tests.conftest import shop_service, staff_copy

OPS = SimpleNamespace(username="olivia")
AGENT = SimpleNamespace(username="alex")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> tuple[Path, Path]:
    return staff_copy(staff_shop, tmp_path_factory.mktemp("insights") / "shop")


@pytest.fixture
def svc(shop: tuple[Path, Path]) -> AssistantService:
    return shop_service(shop)


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
    header, choices, retention, per_segment, value, table, shown, rated, predicted, checked = \
        tab.load(svc, "All customers", "M", "", "variant", OPS)
    assert [t.type for t in predicted.data] == ["bar", "bar"]
    assert "Value model check" in checked or "not validated" in checked
    assert shown.data == () or shown.data[0].type == "bar"
    assert rated.data == () or rated.data[0].type == "bar"
    assert "customers** measured" in header
    assert "Champions" in choices["choices"]
    assert isinstance(retention, go.Figure) and retention.data[0].type == "heatmap"
    assert [t.type for t in per_segment.data] == ["bar", "bar", "bar"]
    assert len(table) == len(choices["choices"])  # one row per segment and everyone
    loyal = tab.load(svc, "Loyal", "Q", "2011-01-01", "variant,segment", OPS)
    assert loyal[2].data[0].type == "heatmap"
    refused = tab.load(svc, "All customers", "M", "", "variant", AGENT)
    assert "needs ops" in refused[0]
    assert tab.load(svc, None, None, None, None, OPS)[0] == header  # Gradio's empty inputs
    bad = tab.load(svc, "All customers", "M", "yesterday-ish", "variant", OPS)
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


# --------------------------------------------------------------------------- event log
def test_cards_shown_and_reactions_go_to_the_event_log(svc) -> None:
    sid = svc.new_session()
    cards = svc.recommend(sid)
    shown = svc.store.events(kinds=("impression",))
    mine = [e for e in shown if e["session_id"] == sid]
    assert [e["item"] for e in mine] == [c["id"] for c in cards.items]
    assert [e["position"] for e in mine] == list(range(1, len(cards.items) + 1))
    assert {e["variant"] for e in mine} == {"popular"}  # nothing known yet
    first = cards.items[0]["id"]
    again = svc.item_feedback(sid, first, "like")
    reactions = [e for e in svc.store.events(kinds=("reaction",)) if e["session_id"] == sid]
    assert [(e["item"], e["value"]) for e in reactions] == [(first, "like")]
    latest = [e for e in svc.store.events(kinds=("impression",)) if e["session_id"] == sid]
    assert len(latest) == len(mine) + len(again.items)
    assert {e["variant"] for e in latest[len(mine):]} == {"hybrid (built-in)"}
    report = svc.insights_report("olivia", "funnel")
    rows = {r["variant"]: r for r in report["rows"]}
    assert rows["popular"]["engaged"] == 1 and rows["popular"]["ctr"]["n"] == len(mine)


def test_a_purchase_after_a_card_was_shown_counts_as_bought(svc, shop) -> None:
    sid = svc.new_session()
    orders = svc.orders()
    line = orders[~orders["is_return"]].iloc[-1]  # a real customer's last order line
    shown_at = (line["timestamp"] - pd.Timedelta(days=3)).tz_localize("UTC").isoformat()
    svc.store.add_events([
        {"at": shown_at, "kind": "impression", "session_id": sid, "item": line["item"],
         "position": 1, "variant": "hybrid (built-in)", "segment": "Loyal",
         "customer_id": line["customer"]},
        {"at": shown_at, "kind": "impression", "session_id": sid, "item": "NOT-BOUGHT",
         "position": 2, "variant": "hybrid (built-in)", "segment": "Loyal",
         "customer_id": line["customer"]}])
    rows = svc.insights_report("olivia", "funnel", by="variant,segment")["rows"]
    loyal = next(r for r in rows if r["segment"] == "Loyal")
    assert loyal["linked"] == 2 and loyal["bought"] == 1
    assert loyal["conversion"]["rate"] == 0.5
    later = svc.insights_report("olivia", "funnel", since="2030-01-01")
    assert later["rows"] == [] and "No recommendations shown" in later["note"]


def test_chat_rating_is_validated_logged_exported_and_erased(svc) -> None:
    sid = svc.new_session()
    with pytest.raises(InputError, match="no conversation to rate"):
        svc.rate_chat(sid, 4)
    svc.store.add_message(sid, "user", "hello")
    with pytest.raises(InputError, match="not a rating from 1 to 5"):
        svc.rate_chat(sid, 9)
    svc.rate_chat(sid, 4)
    rated = [e for e in svc.store.events(kinds=("satisfaction",)) if e["session_id"] == sid]
    assert [e["value"] for e in rated] == ["4"]
    report = svc.insights_report("olivia", "satisfaction")
    assert report["by_segment"][0]["n"] >= 1
    assert [e["kind"] for e in svc.my_data(sid)["events"]] == ["satisfaction"]
    with pytest.raises(StoreError, match="append-only"), svc.store.connect() as conn:
        conn.exec_driver_sql("UPDATE events SET value = '5' WHERE session_id = ?", (sid,))
    svc.erase(sid)
    assert [e for e in svc.store.events() if e["session_id"] == sid] == []


def test_a_store_failure_loses_the_event_not_the_request(svc, monkeypatch, caplog) -> None:

    def full(_events):
        raise StoreError("Cannot log 1 event(s): database or disk is full", "Free space.")

    monkeypatch.setattr(svc.store, "add_events", full)
    sid = svc.new_session()
    assert svc.recommend(sid).items  # the cards still come
    assert "event(s) lost" in caplog.text


def test_value_report_and_the_desk_sidebar(svc) -> None:
    report = svc.insights_report("olivia", "value", top=5)
    everyone = report["segments"][0]
    assert everyone["segment"] == "All customers"
    assert everyone["customers"] == sum(r["customers"] for r in report["segments"][1:])
    assert len(report["top"]) == 5
    values = [t["expected_value"] for t in report["top"]]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= t["churn_risk"] <= 1.0 for t in report["top"])
    check = report["validation"]
    assert "purchases" in check or "error" in check  # 60,000 rows: a short history
    json.dumps(report)
    with pytest.raises(InputError, match="cannot be negative"):
        svc.insights_report("olivia", "value", top=-1)
    customer = report["top"][0]["customer"]
    side = svc.desk_customer("alex", customer)
    assert side["value"]["expected_value"] == pytest.approx(values[0])
    assert "predicted" in desk.sidebar_markdown(side)


def test_the_insights_api_endpoint(svc) -> None:
    got = tab.api_insights(svc, "segments", '{"segment": "Loyal"}', OPS)
    assert [r["segment"] for r in got["segments"]] == ["Loyal"]
    assert tab.api_insights(svc, "funnel", "", OPS)["report"] == "funnel"
    assert "needs ops" in tab.api_insights(svc, "value", "{}", AGENT)["error"]
    assert "not valid JSON" in tab.api_insights(svc, "segments", "{oops", OPS)["error"]
    assert "JSON object" in tab.api_insights(svc, "segments", "[1]", OPS)["error"]
    assert "no option colour" in tab.api_insights(svc, "segments", '{"colour": 1}',
                                                  OPS)["error"]
    assert "no insights report" in tab.api_insights(svc, "weather", "{}", OPS)["error"]
