"""The Segments tab (ops): plots of the built segments, the classifier's scores, a customer
lookup and "rebuild from a file" with a progress bar. Figures are plotly; no business logic.
The callbacks are module-level functions taking the service (the builder binds it), so tests
call them without a browser; the service checks the ops role."""

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


def projection_figure(data: dict[str, Any]) -> go.Figure:
    proj = data["projection"].reset_index()
    fig = px.scatter(proj, x="x", y="y", color="segment", hover_data=["customer", "cluster"],
                     category_orders={"segment": data["segment_order"]}, opacity=0.7,
                     title="Customers in 2-D (PCA of the clustering features)")
    fig.update_traces(marker={"size": 5})
    fig.update_layout(height=480, margin={"t": 50, "b": 10})
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


@guarded
def load(service: AssistantService, mode: str, request: gr.Request) -> tuple:
    """The dashboard: summary, figures and tables (the confusion matrix for ``mode``)."""
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
            projection_figure(data), medians_table(data), clusters_table(data),
            confusion_figure(data, mode))


@guarded
def rebuild(service: AssistantService, file: str | None, mapping_text: str, mode: str,
            request: gr.Request,
            progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008 - gradio's idiom
    """Rebuild from an uploaded orders file with an optional column mapping; on any error
    the segments in use stay. Returns the dashboard."""
    if not file:
        gr.Warning("Upload an orders file (CSV, CSV.gz or Parquet) first.")
        return load(service, mode, request)
    try:
        service.staff_rebuild_segments(
            request.username, file, parse_map_options(mapping_items(mapping_text), option=""),
            progress=lambda stage, done: progress(done, desc=stage))
    except AssistantError as err:
        gr.Warning(err.for_user() + " — the segments in use are unchanged.")
        return load(service, mode, request)
    gr.Info("Segments rebuilt.")
    return load(service, mode, request)


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
    gr.on([mode.change], dashboard, [mode], outputs, api_name="segments_dashboard")
    rebuild_btn.click(bind(rebuild, service), [upload, mapping, mode], outputs,
                      api_name="segments_rebuild")
    lookup_btn.click(bind(lookup, service), [cust], [result], api_name="segment_of_customer")
    answers_btn.click(bind(from_answers, service), [answers, cust], [result],
                      api_name="segment_from_answers")
    return dashboard, [mode], outputs
