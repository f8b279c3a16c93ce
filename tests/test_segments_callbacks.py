"""The Segments tab's callbacks (assistant/ui/segments.py) called directly, as Gradio calls
them, without a browser: a real service on a copy of the staff shop and a fake request
carrying the signed-in user. The mapping box is read by the CLI's parser
(``orders.ingest.parse_map_options``); a bad mapping leaves the segments in use."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import plotly.graph_objects as go
import pytest

from assistant.core.errors import InputError
from assistant.orders.ingest import parse_map_options
from assistant.service.assistant import AssistantService
from assistant.ui import segments
from tests.conftest import shop_service, staff_copy

OPS = SimpleNamespace(username="olivia")
AGENT = SimpleNamespace(username="alex")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> tuple[Path, Path]:
    return staff_copy(staff_shop, tmp_path_factory.mktemp("segments") / "shop")


@pytest.fixture
def svc(shop: tuple[Path, Path]) -> AssistantService:
    return shop_service(shop)


def test_mapping_box_reads_like_the_cli_map_option() -> None:
    text = "Customer = ClientRef,\n timestamp=Order Date ,, amount=dollar_value\n"
    items = segments.mapping_items(text)
    assert items == ["Customer = ClientRef", "timestamp=Order Date", "amount=dollar_value"]
    assert parse_map_options(items, option="") == parse_map_options(
        ["customer=ClientRef", "timestamp=Order Date", "amount=dollar_value"]) == {
        "customer": "ClientRef", "timestamp": "Order Date", "amount": "dollar_value"}
    assert segments.mapping_items("") == segments.mapping_items(None) == []
    with pytest.raises(InputError) as err:
        parse_map_options(segments.mapping_items("customer=ClientRef, timestamp"), option="")
    assert err.value.message == "'timestamp' is not of the form field=column."
    assert err.value.hint.startswith("Write e.g. timestamp=InvoiceDate (fields: customer, ")
    with pytest.raises(InputError, match=r"^--map 'timestamp' is not of the form"):
        parse_map_options(["timestamp"])  # the CLI's wording is unchanged


def test_ops_get_the_dashboard(svc) -> None:
    summary = svc.segments_dashboard("olivia")["summary"]
    text, sizes, rfm, projection, medians, clusters, confusion = segments.load(
        svc, "answers", OPS)
    assert text == segments.summary_markdown(summary) + segments.weights_markdown(
        svc.segments_dashboard("olivia")["recommender"])
    assert "**Recommender weights served:** built-in" in text
    # the classifier was chosen by grouped CV; every candidate's answers-only score shows
    clf = summary["classifier"]
    assert set(clf["candidates"]) == {"logistic C=1", "logistic C=0.1", "random forest"}
    assert clf["model"] in clf["candidates"]
    assert clf["by_mode"] == clf["candidates"][clf["model"]]
    assert f"**Classifier:** {clf['model']}, chosen by macro-F1 on answers only" in text
    assert "random forest 0." in text
    assert text.startswith(f"**{summary['customers']:,} customers** from `")
    assert all(isinstance(f, go.Figure) and f.data for f in (sizes, rfm, projection,
                                                              confusion))
    assert "answers" in confusion.layout.title.text
    assert "behaviour" in segments.load(svc, "behaviour", OPS)[6].layout.title.text
    assert list(medians.columns)[0] == "segment" and len(medians) > 1
    assert list(clusters.columns)[0] == "name" and len(clusters) == summary["clusters"]["k"]


def test_a_bad_mapping_line_gets_a_clear_message_and_the_model_stays(svc, shop,
                                                                     tmp_path) -> None:
    _, orders = shop
    before = svc.segments_dashboard("olivia")["summary"]
    with pytest.warns(UserWarning) as seen:
        out = segments.rebuild(svc, str(orders), "customer=CustomerID, timestamp", "answers",
                               OPS)
    assert [str(w.message) for w in seen] == [
        "⚠️ 'timestamp' is not of the form field=column. — Write e.g. timestamp=InvoiceDate "
        "(fields: customer, order_id, timestamp, item, description, quantity, unit_price, "
        "amount, country). — the segments in use are unchanged."]
    assert out[0].startswith(segments.summary_markdown(before))  # the model in use
    assert svc.segments_dashboard("olivia")["summary"] == before

    # a well-formed line naming no field: refused when the file is read, model unchanged
    with pytest.warns(UserWarning, match="Unknown field 'buyer' in the column mapping.*"
                                         "the segments in use are unchanged"):
        segments.rebuild(svc, str(orders), "buyer=CustomerID", "answers", OPS)
    with pytest.warns(UserWarning, match="Upload an orders file"):
        assert segments.rebuild(svc, None, "", "answers", OPS)[0] == out[0]
    with pytest.warns(UserWarning, match="has the role agent; this needs ops.*unchanged"):
        segments.rebuild(svc, str(orders), "", "answers", AGENT)
    assert svc.segments_dashboard("olivia")["summary"] == before


def test_a_mapping_rebuilds_from_another_schema(svc, shop, tmp_path) -> None:
    """Columns the aliases do not know, named in the box (any case, commas or lines)."""
    _, orders = shop
    other = tmp_path / "other.csv"
    frame = pd.read_csv(orders, nrows=8_000)
    frame.rename(columns={"CustomerID": "patron", "InvoiceDate": "placed on",
                          "InvoiceNo": "ticket_no"}).to_csv(other, index=False)
    out = segments.rebuild(svc, str(other), "Customer=patron,\nTIMESTAMP = placed on\n"
                           "order_id=ticket_no", "answers", OPS)
    summary = svc.segments_dashboard("olivia")["summary"]
    assert summary["source"].endswith("other.csv") and summary["rows_read"] == 8_000
    assert out[0].startswith(segments.summary_markdown(summary))


def test_lookup_and_answers_as_json(svc) -> None:
    found = segments.lookup(svc, "17850", OPS)
    assert found["customer"] == "17850"
    assert found["segment"] == svc.segment_model().of_customer("17850")["segment"]
    assert segments.lookup(svc, "17850", AGENT) == {
        "error": "Your account 'alex' has the role agent; this needs ops.",
        "hint": "Ask an admin: assistant users add NAME --role ops (or sign in with an ops "
                "account)."}
    bad = segments.from_answers(svc, "{order_frequency:", "", OPS)
    assert bad["error"].startswith("Answers are not valid JSON (")
    placed = segments.from_answers(svc, '{"order_frequency": "every month or two"}', " ", OPS)
    assert placed["segment"] in svc.segment_model().summary["classifier"]["classes"]
    assert placed["customer"] is None
