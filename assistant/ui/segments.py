"""The Segments tab (ops): plots of the built segments (customers in 2-D coloured by segment,
predicted value or churn risk), the classifier's scores, a customer lookup and "rebuild from
a file" with a progress bar. Figures are plotly; no business logic. The callbacks are
module-level functions taking the service (the builder binds it), so tests call them without
a browser; the service checks the ops role."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from assistant.core.errors import AssistantError, InputError
from assistant.orders.ingest import parse_map_options
from assistant.service.assistant import AssistantService
from assistant.ui.guard import bind, guarded

EMPTY = ("**No segments yet.** Build them from the shipped orders "
         "(`assistant segments build --orders data/online_retail.csv.gz`) or upload an "
         "orders file below and press **Rebuild**.")


def empty_markdown(build_status: dict[str, str]) -> str:
    """The tab without segments: how to build them, and how the first-run build is doing."""
    state = build_status.get("segments", "")
    if state == "running":
        return ("**Building segments from the shop's orders (first run)…** This takes about "
                "a minute: open the tab again to see them.")
    if state.startswith("failed"):
        return ("**The first-run segment build failed:** "
                + html.escape(state.removeprefix("failed:").strip()) + "\n\n" + EMPTY)
    return EMPTY


def mapping_items(text: str | None) -> list[str]:
    """The mapping box's ``field=column`` items (separated by commas or lines) as the list
    ``orders.ingest.parse_map_options`` reads: the CLI's ``--map`` rules, one parser."""
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


def summary_markdown(summary: dict[str, Any]) -> str:
    clf = summary["classifier"]
    k = summary["clusters"]["k"]
    best = next(r for r in summary["clusters"]["scores"] if r["k"] == k)
    rejected = ", ".join(f"{r.replace('_', ' ')} {n:,}" for r, n in summary["rejected"].items())
    rows = "\n".join(
        f"| {mode} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['brier']:.3f} |"
        for mode, m in clf["by_mode"].items())
    chosen = ""
    if clf.get("candidates"):
        scores = ", ".join(f"{html.escape(name)} {modes['answers']['macro_f1']:.3f}"
                           for name, modes in clf["candidates"].items())
        chosen = (f"**Classifier:** {html.escape(clf['model'])}, chosen by "
                  f"{html.escape(clf['chosen_by'])} (answers-only macro-F1: {scores}).\n\n")
    return (
        f"**{summary['customers']:,} customers** from `{summary['source']}` · "
        f"{summary['rows_used']:,} of {summary['rows_read']:,} rows used "
        f"({summary['returns']:,} returns) · rejected: {rejected or 'none'}\n\n"
        f"**Clusters:** k = {k} chosen by silhouette ({best['silhouette']:.3f}; "
        f"Davies-Bouldin {best['davies_bouldin']:.3f}).\n\n"
        + chosen +
        f"**Segment classifier** ({clf['folds']}-fold CV over held-out customers; "
        f"majority baseline accuracy {clf['baseline_accuracy']:.3f}):\n\n"
        "| input | accuracy | macro-F1 | Brier |\n|---|---|---|---|\n" + rows
    )


def weights_markdown(served: dict[str, Any] | None) -> str:
    """Which hybrid weights the recommendations use, from where, and their validation score."""
    if not served:
        return ""
    tuned = served.get("tuned") if served["source"] == "tuned" else None
    rows = []
    for mode, weights in served["weights"].items():
        shown = ", ".join(f"{html.escape(n)} {w:g}" for n, w in weights.items() if w) or "none"
        val = (tuned or {}).get("validation", {}).get(mode)
        rows.append(f"| {mode.replace('_', ' ')} | {shown} | "
                    + (f"{val:.3f}" if val is not None else "–") + " |")
    metric = (tuned or {}).get("metric", "ndcg@10")
    return (f"\n\n**Recommender weights served:** {served['source']}: "
            f"{html.escape(served['note'])}.\n\n"
            f"| mode | weights | validation {metric} |\n|---|---|---|\n" + "\n".join(rows))


def sizes_figure(data: dict[str, Any]) -> go.Figure:
    sizes = data["sizes"]
    fig = px.bar(x=sizes.index, y=sizes.values, labels={"x": "segment", "y": "customers"},
                 color=sizes.index, title="Customers per RFM segment")
    fig.update_layout(showlegend=False, height=360, margin={"t": 50, "b": 10})
    return fig


def rfm_figure(data: dict[str, Any]) -> go.Figure:
    rfm = data["rfm"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "Recency (days since last order)", "Frequency (orders)", "Monetary (net spend £)"))
    fig.add_trace(go.Histogram(x=rfm["recency_days"], nbinsx=40, name="recency"), 1, 1)
    # log-spaced values drawn on a linear axis of log10, labelled in real units
    for col, values in ((2, rfm["frequency"]), (3, rfm["monetary"])):
        logs = np.log10(values.clip(lower=1))
        fig.add_trace(go.Histogram(x=logs, nbinsx=40), 1, col)
        ticks = np.arange(0, np.ceil(logs.max()) + 1)
        fig.update_xaxes(tickvals=ticks, ticktext=[f"{10 ** t:,.0f}" for t in ticks],
                         row=1, col=col)
    fig.update_layout(showlegend=False, height=320, margin={"t": 50, "b": 10})
    return fig


# the "Colour customers by" choices: (label, value); value -> the projection's column
COLOUR_CHOICES = [("segment", "segment"), ("predicted value (next 90 days, £)", "value"),
                  ("churn risk", "churn risk")]
COLOUR_COLUMNS = {"value": "expected_value", "churn risk": "churn_risk"}
VALUE_CLIP = 0.95  # the value scale tops out at this quantile (a few big accounts)
PROJECTION_TITLE = "Customers in 2-D (PCA of the clustering features)"


def colour_problem(data: dict[str, Any], colour: str) -> str | None:
    """Why the projection cannot be coloured by ``colour`` (None: it can): the predicted
    values are missing, or no plotted customer has one."""
    column = COLOUR_COLUMNS.get(colour)
    if column is None:
        return None if colour == "segment" else f"There is no colouring '{colour}'."
    proj = data["projection"]
    if column not in proj or proj[column].isna().all():
        return data.get("value_note") or "No customer in the plot has a predicted value."
    return None


def projection_figure(data: dict[str, Any], colour: str = "segment") -> go.Figure:
    """The customers in 2-D, coloured by RFM segment, or on a continuous scale by
    predicted value or churn risk (by segment when those are missing: ``colour_problem``)."""
    if colour == "segment" or colour_problem(data, colour):
        return _segment_projection(data)
    return _scaled_projection(data, colour)


def _segment_projection(data: dict[str, Any]) -> go.Figure:
    proj = data["projection"].reset_index()
    fig = px.scatter(proj, x="x", y="y", color="segment", hover_data=["customer", "cluster"],
                     category_orders={"segment": data["segment_order"]}, opacity=0.7,
                     title=PROJECTION_TITLE)
    fig.update_traces(marker={"size": 5})
    fig.update_layout(height=480, margin={"t": 50, "b": 10})
    return fig


def _colour_scale(data: dict[str, Any], colour: str, values: pd.Series
                  ) -> tuple[dict[str, Any], str]:
    """(the marker's colour range and colour bar, the hover text's value) for ``colour``:
    value from its lowest to its ``VALUE_CLIP`` quantile (above: the top colour, said in
    the colour bar), churn risk from 0 to 1."""
    if colour == "value":
        days = data.get("value_horizon_days", 90)
        top = float(values.quantile(VALUE_CLIP))
        title = (f"£, next {days:g} days<br>(scale clipped at the<br>"
                 f"{VALUE_CLIP * 100:g}th percentile, £{top:,.0f})")
        return ({"cmin": float(values.min()), "cmax": top, "colorbar": {"title": title}},
                "predicted value £%{customdata[2]:,.2f}")
    title = "churn risk (0-1)<br>one-time buyers: 0"
    return ({"cmin": 0.0, "cmax": 1.0, "colorbar": {"title": title}},
            "churn risk %{customdata[2]:.1%}")


def _scaled_projection(data: dict[str, Any], colour: str) -> go.Figure:
    """The customers in 2-D on a continuous colour scale; those without a prediction in
    grey. Hover: customer, segment and the value or risk."""
    column = COLOUR_COLUMNS[colour]
    proj = data["projection"].reset_index()
    known, unknown = proj[proj[column].notna()], proj[proj[column].isna()]
    values = known[column].astype(float)
    scale, shown = _colour_scale(data, colour, values)
    hover = "customer %{customdata[0]}<br>%{customdata[1]}<br>"
    fig = go.Figure()
    if len(unknown):
        fig.add_trace(go.Scattergl(
            x=unknown["x"], y=unknown["y"], mode="markers", name="no prediction",
            marker={"size": 5, "color": "lightgrey"},
            customdata=unknown[["customer", "segment"]].to_numpy(dtype=object),
            hovertemplate=hover + "no prediction<extra></extra>"))
    fig.add_trace(go.Scattergl(
        x=known["x"], y=known["y"], mode="markers", name=colour, showlegend=False,
        marker={"size": 5, "opacity": 0.8, "color": values.to_numpy(),
                "colorscale": "Viridis", "showscale": True, **scale},
        customdata=known[["customer", "segment", column]].to_numpy(dtype=object),
        hovertemplate=hover + shown + "<extra></extra>"))
    label = {v: k for k, v in COLOUR_CHOICES}[colour]
    fig.update_layout(title=f"{PROJECTION_TITLE}, by {label}", height=480,
                      margin={"t": 50, "b": 10}, legend={"orientation": "h", "y": -0.05})
    return fig


def confusion_figure(data: dict[str, Any], mode: str) -> go.Figure:
    clf = data["summary"]["classifier"]
    order = [c for c in data["segment_order"] if c in clf["classes"]]
    pos = [clf["classes"].index(c) for c in order]
    matrix = np.asarray(clf["confusion"][mode])[np.ix_(pos, pos)]
    fig = px.imshow(matrix, x=order, y=order, text_auto=True,
                    labels={"x": "predicted", "y": "true", "color": "people"},
                    color_continuous_scale="Blues",
                    title=f"Confusion matrix ({mode}, held-out customers)")
    fig.update_layout(height=520, margin={"t": 50, "b": 10})
    return fig


def medians_table(data: dict[str, Any]) -> pd.DataFrame:
    return data["medians"].round(1).reset_index().rename(columns={"rfm_segment": "segment"})


def clusters_table(data: dict[str, Any]) -> pd.DataFrame:
    prof = data["clusters"].drop(columns=["nearest_rfm"]).round(1)
    return prof[["name", *[c for c in prof.columns if c != "name"]]]


# ----------------------------------------------------------------------------- callbacks
# Module-level, the service first (the builder binds it with ``guard.bind``): tests call
# them without a browser. The service checks the role (ops) of ``request.username``.


def coloured_projection(data: dict[str, Any], colour: str) -> go.Figure:
    """``projection_figure``, with a warning when ``colour`` falls back to segment."""
    problem = colour_problem(data, colour)
    if problem:
        gr.Warning(f"{problem} The customers are coloured by segment instead.")
    return projection_figure(data, colour)


@guarded
def load(service: AssistantService, mode: str, request: gr.Request,
         colour: str = "segment") -> tuple:
    """The dashboard: summary, figures and tables (the confusion matrix for ``mode``, the
    projection coloured by ``colour``: after ``request`` so callers without it still work;
    Gradio passes it the colour radio's value)."""
    try:
        data = service.segments_dashboard(request.username)
    except AssistantError as err:
        empty = go.Figure()
        message = (empty_markdown(service.build_status)
                   if isinstance(err, InputError) else err.for_user())
        return (message, empty, empty,
                empty, pd.DataFrame(), pd.DataFrame(), empty)
    return (summary_markdown(data["summary"]) + weights_markdown(data.get("recommender")),
            sizes_figure(data), rfm_figure(data),
            coloured_projection(data, colour), medians_table(data), clusters_table(data),
            confusion_figure(data, mode))


@guarded
def recolour(service: AssistantService, colour: str, request: gr.Request) -> go.Figure:
    """"Colour customers by": the projection alone, redrawn (segment, value or churn
    risk)."""
    try:
        data = service.segments_dashboard(request.username)
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.skip()
    return coloured_projection(data, colour)


@guarded
def rebuild(service: AssistantService, file: str | None, mapping_text: str, mode: str,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's idiom
            colour: str = "segment") -> tuple:
    """Rebuild from an uploaded orders file with an optional column mapping; on any error
    the segments in use stay. Returns the dashboard (projection coloured by ``colour``)."""
    if not file:
        gr.Warning("Upload an orders file (CSV, CSV.gz or Parquet) first.")
        return load(service, mode, request, colour)
    try:
        service.staff_rebuild_segments(
            request.username, file, parse_map_options(mapping_items(mapping_text), option=""),
            progress=lambda stage, done: progress(done, desc=stage))
    except AssistantError as err:
        gr.Warning(err.for_user() + " — the segments in use are unchanged.")
        return load(service, mode, request, colour)
    gr.Info("Segments rebuilt.")
    return load(service, mode, request, colour)


@guarded
def lookup(service: AssistantService, customer_id: str, request: gr.Request
           ) -> dict[str, Any]:
    """The segment of a customer in the built data (or the error as JSON)."""
    try:
        return service.segment_of_customer(request.username, customer_id)
    except AssistantError as err:
        return {"error": err.message, "hint": err.hint}


@guarded
def from_answers(service: AssistantService, answers_json: str, customer_id: str,
                 request: gr.Request) -> dict[str, Any]:
    """The segment the classifier gives a person's answers (JSON), or the error as JSON."""
    try:
        answers = json.loads(answers_json or "{}")
    except ValueError as exc:
        return {"error": f"Answers are not valid JSON ({exc}).",
                "hint": 'Example: {"order_frequency": "every month or two"}'}
    try:
        return service.segment_from_answers(request.username, answers,
                                            customer_id.strip() or None)
    except AssistantError as err:
        return {"error": err.message, "hint": err.hint}


# ----------------------------------------------------------------------------- the tab


def build_segments_tab(service: AssistantService) -> tuple[Callable[..., Any], list, list]:
    """Render the tab inside the current Blocks and wire its events; returns (load, its
    inputs, its outputs) for the staff app's page load."""
    summary = gr.Markdown(EMPTY)
    with gr.Row():
        sizes = gr.Plot(label="Segment sizes")
        with gr.Column():
            colour = gr.Radio(COLOUR_CHOICES, value="segment", label="Colour customers by",
                              elem_id="tailor-projection-colour")
            projection = gr.Plot(label="2-D projection")
    rfm = gr.Plot(label="RFM distributions")
    medians = gr.Dataframe(label="Per-segment medians", interactive=False, wrap=True)
    clusters = gr.Dataframe(label="Clusters: size, feature medians, nearest RFM segment",
                            interactive=False, wrap=True)
    mode = gr.Radio(["both", "behaviour", "answers"], value="answers",
                    label="Classifier input (answers = cold start)")
    confusion = gr.Plot(label="Confusion matrix")
    with gr.Accordion("Look up a customer / place a person from answers", open=False), gr.Row():
        with gr.Column():
            cust = gr.Textbox(label="Customer id", placeholder="17850")
            lookup_btn = gr.Button("Segment of customer")
        with gr.Column():
            answers = gr.Code(label="Answers (JSON)", language="json",
                              value='{"order_frequency": "every month or two",\n'
                                    ' "spend_per_order": "£150-£300",\n'
                                    ' "last_order": "within the last month"}')
            answers_btn = gr.Button("Segment from answers")
        result = gr.JSON(label="Result")
    with gr.Accordion("Rebuild from an orders file", open=False):
        upload = gr.File(label="Orders (CSV, CSV.gz, Parquet)", type="filepath",
                         elem_id="tailor-orders-upload",
                         file_types=[".csv", ".gz", ".parquet"])
        mapping = gr.Textbox(label="Column mapping (optional)",
                             placeholder="customer=customer_id, timestamp=date, "
                                         "amount=dollar_value")
        rebuild_btn = gr.Button("Rebuild", variant="primary")

    outputs = [summary, sizes, rfm, projection, medians, clusters, confusion]
    dashboard = bind(load, service)
    gr.on([mode.change], dashboard, [mode, colour], outputs, api_name="segments_dashboard")
    colour.change(bind(recolour, service), [colour], [projection],
                  api_name="segments_projection")
    rebuild_btn.click(bind(rebuild, service), [upload, mapping, mode, colour], outputs,
                      api_name="segments_rebuild")
    lookup_btn.click(bind(lookup, service), [cust], [result], api_name="segment_of_customer")
    answers_btn.click(bind(from_answers, service), [answers, cust], [result],
                      api_name="segment_from_answers")
    return dashboard, [mode, colour], outputs
