"""The Segments tab's "Colour customers by" (assistant/ui/segments.py) on a copy of the staff
shop: the dashboard's projection carries each customer's predicted value and churn risk
(``insights/value.py``), the projection is drawn on a continuous scale by either, segment
colouring is unchanged, and missing predictions fall back to segment colour with a reason."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest

from assistant.core.errors import AssistantError
from assistant.service.assistant import AssistantService
from assistant.ui import segments
from tests.conftest import shop_service, staff_copy

OPS = SimpleNamespace(username="olivia")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> AssistantService:
    return shop_service(staff_copy(staff_shop, tmp_path_factory.mktemp("colour") / "shop"))


@pytest.fixture(scope="module")
def data(svc: AssistantService) -> dict:
    return svc.segments_dashboard("olivia")


def _colours(fig: go.Figure) -> np.ndarray:
    return np.asarray(fig.data[-1].marker.color, dtype=float)


def test_the_projection_carries_predicted_value_and_churn_risk(svc, data) -> None:
    proj = data["projection"]
    table = svc.parts.customer_value().table
    assert {"x", "y", "segment", "cluster", "expected_value", "churn_risk"} <= set(proj)
    assert data["value_note"] is None and data["value_horizon_days"] == 90
    assert proj["expected_value"].notna().all()  # every plotted customer has a prediction
    some = proj.index[:20]
    assert proj.loc[some, "expected_value"].tolist() == pytest.approx(
        table.loc[some.astype(str), "expected_value"].tolist())
    assert proj.loc[some, "churn_risk"].tolist() == pytest.approx(
        table.loc[some.astype(str), "churn_risk"].tolist())


def test_value_and_churn_risk_draw_numeric_colour_scales(data) -> None:
    proj = data["projection"]
    value = segments.projection_figure(data, "value")
    assert len(value.data) == 1  # no customer without a prediction
    assert _colours(value) == pytest.approx(proj["expected_value"].to_numpy())
    marker = value.data[0].marker
    assert marker.cmax == pytest.approx(proj["expected_value"].quantile(0.95))
    assert marker.cmax < proj["expected_value"].max()  # a few big accounts clipped
    assert "95th percentile" in marker.colorbar.title.text
    assert "predicted value" in value.data[0].hovertemplate
    assert value.data[0].customdata[0][0] == str(proj.index[0])  # hover: the customer
    risk = segments.projection_figure(data, "churn risk")
    colours = _colours(risk)
    assert colours == pytest.approx(proj["churn_risk"].to_numpy())
    assert (risk.data[0].marker.cmin, risk.data[0].marker.cmax) == (0.0, 1.0)
    assert colours.min() >= 0.0 and colours.max() <= 1.0


def test_segment_colouring_is_unchanged(data) -> None:
    fig = segments.projection_figure(data)
    names = [t.name for t in fig.data]
    assert names == [s for s in data["segment_order"] if s in set(names)]  # one per segment
    assert sum(len(t.x) for t in fig.data) == len(data["projection"])
    assert fig.layout.title.text == segments.PROJECTION_TITLE
    assert segments.projection_figure(data, "segment").to_json() == fig.to_json()


def test_missing_predictions_fall_back_to_segment_colour(data, svc, monkeypatch) -> None:
    proj = data["projection"]
    partly = {**data, "projection": proj.assign(
        expected_value=proj["expected_value"].where(np.arange(len(proj)) % 2 == 0))}
    fig = segments.projection_figure(partly, "value")
    assert [t.name for t in fig.data] == ["no prediction", "value"]
    assert len(fig.data[0].x) == len(proj) // 2 and fig.data[0].marker.color == "lightgrey"
    none = {**data, "projection": proj.drop(columns=["expected_value", "churn_risk"]),
            "value_note": "No predicted value: too few orders."}
    assert segments.colour_problem(none, "value") == "No predicted value: too few orders."
    assert segments.projection_figure(none, "value").to_json() == \
        segments.projection_figure(data).to_json()
    with pytest.warns(UserWarning, match="too few orders. The customers are coloured by"):
        segments.coloured_projection(none, "churn risk")

    def broken() -> None:
        raise AssistantError("Cannot fit the value model.", "Add orders.")

    monkeypatch.setattr(svc.parts, "customer_value", broken)
    out = svc.segments_dashboard("olivia")
    assert "expected_value" not in out["projection"]
    assert out["value_note"] == "No predicted value: Cannot fit the value model."
    with pytest.warns(UserWarning, match="Cannot fit the value model"):
        fig = segments.recolour(svc, "value", OPS)
    assert fig.to_json() == segments.projection_figure(out).to_json()


def test_the_tab_redraws_the_projection_in_the_chosen_colour(svc, data) -> None:
    fig = segments.recolour(svc, "churn risk", OPS)
    assert "churn risk" in fig.layout.title.text
    assert _colours(fig) == pytest.approx(data["projection"]["churn_risk"].to_numpy())
    projection = segments.load(svc, "answers", OPS, "value")[3]
    assert "predicted value" in projection.layout.title.text
    assert segments.load(svc, "answers", OPS)[3].layout.title.text == \
        segments.PROJECTION_TITLE  # the default stays segment
    with pytest.warns(UserWarning, match="Please sign in"):
        assert segments.recolour(svc, "value", SimpleNamespace(username=None)) == \
            segments.gr.skip()
