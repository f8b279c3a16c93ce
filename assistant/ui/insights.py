"""The Insights tab (ops): did personalization work? Cohort retention as a heat map,
repeat purchases, churn and customers at risk per segment with their intervals, revenue and
order value, the recommendation funnel per variant, chat satisfaction, predicted value
and churn risk, and segment migration between two dates as a Sankey diagram. Plotly figures
from the service's JSON-ready reports; no business logic."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from assistant.core.errors import AssistantError
from assistant.service.assistant import AssistantService
from assistant.ui.guard import bind, guarded

EVERYONE = "All customers"
EMPTY = ("**No orders to measure yet.** Insights are computed from the shop's orders "
         "(`TAILOR_ORDERS`, by default the shipped Online Retail data).")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def retention_figure(report: dict[str, Any]) -> go.Figure:
    """Cohorts x months since the first purchase, coloured by the share who bought."""
    table = pd.DataFrame(report["cohorts"])
    fig = go.Figure()
    if table.empty:
        return fig.update_layout(title="No cohorts in this selection")
    rates = table.pivot(index="cohort", columns="offset", values="rate")
    sizes = table.pivot(index="cohort", columns="offset", values="size")
    active = table.pivot(index="cohort", columns="offset", values="active")
    text = rates.map(lambda v: "" if pd.isna(v) else f"{100 * v:.0f}")
    hover = ("cohort %{y}<br>%{x} periods later<br>%{z:.1%} bought"
             "<br>%{customdata[0]} of %{customdata[1]} customers<extra></extra>")
    custom = pd.concat([active, sizes], axis=1, keys=["a", "n"]).to_numpy()
    custom = custom.reshape(len(rates), 2, -1).transpose(0, 2, 1)
    fig.add_trace(go.Heatmap(z=rates.to_numpy(), x=[str(c) for c in rates.columns],
                             y=[f"{c} (n={int(s)})" for c, s in sizes[0].items()],
                             text=text.to_numpy(), texttemplate="%{text}",
                             customdata=custom, hovertemplate=hover,
                             colorscale="Blues", zmin=0, zmax=1,
                             colorbar={"title": "bought", "tickformat": ".0%"}))
    period = {"M": "months", "Q": "quarters", "W": "weeks"}.get(report["period"], "periods")
    return fig.update_layout(
        title=f"Cohort retention (% of each cohort buying, by {period} since the first order)",
        xaxis_title=f"{period} since the first order", yaxis_title="first order in",
        yaxis={"autorange": "reversed"}, height=max(320, 26 * len(rates) + 140))


def _interval_bars(fig: go.Figure, names: list[str], items: list[dict[str, Any]], *,
                   col: int, label: Callable[[dict[str, Any]], str], center: str = "rate",
                   row: int = 1) -> None:
    """Bars of rates (``center`` "rate") or means ("mean") with their 95 % interval as
    error bars (none where an item has no interval) and ``label(item)`` above each."""
    mid = [item[center] or 0.0 for item in items]
    fig.add_trace(go.Bar(
        x=names, y=mid, text=[label(item) for item in items], textposition="outside",
        error_y={"type": "data",
                 "array": [(item["high"] if item["high"] is not None else m) - m
                           for item, m in zip(items, mid, strict=True)],
                 "arrayminus": [m - (item["low"] if item["low"] is not None else m)
                                for item, m in zip(items, mid, strict=True)]}),
        row=row, col=col)


def _rate_label(r: dict[str, Any]) -> str:
    return f"{_pct(r['rate'])}<br>{r['count']}/{r['n']}"


def segments_figure(report: dict[str, Any]) -> go.Figure:
    """Repeat-purchase rate, churn rate and share at risk per segment, 95 % intervals."""
    rows = report["segments"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "Repeat-purchase rate", f"Churn rate ({report['churn_days']}-day window)",
        "At risk (overdue by their own rhythm)"))
    names = [r["segment"] for r in rows]
    for col, key in enumerate(("repeat", "churn", "at_risk"), start=1):
        _interval_bars(fig, names, [r[key] for r in rows], col=col,
                       label=lambda r: f"{_pct(r['rate'])}<br>n={r['n']:,}")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig.update_layout(showlegend=False, height=460,
                             title="Per segment (bars: 95 % Wilson intervals; n under each)")


def value_figure(report: dict[str, Any]) -> go.Figure:
    """Revenue and average order value per segment."""
    rows = [r for r in report["segments"] if r["segment"] != EVERYONE]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Revenue", "Average order value"))
    names = [r["segment"] for r in rows]
    fig.add_trace(go.Bar(x=names, y=[r["revenue"] for r in rows],
                         text=[f"£{r['revenue']:,.0f}<br>{r['orders']:,} orders" for r in rows],
                         textposition="outside"), row=1, col=1)
    _interval_bars(fig, names, [r["aov"] for r in rows], col=2, center="mean",
                   label=lambda a: f"£{a['mean'] or 0:,.0f}<br>n={a['n']:,}")
    fig.update_yaxes(tickprefix="£", rangemode="tozero")
    return fig.update_layout(showlegend=False, height=420)


def migration_figure(report: dict[str, Any]) -> go.Figure:
    """A Sankey diagram: segment on the first date -> segment on the second."""
    moves = report["moves"]
    left = list(dict.fromkeys(m["from"] for m in moves))
    right = list(dict.fromkeys(m["to"] for m in moves))
    labels = [f"{n} ({report['from']})" for n in left] + [f"{n} ({report['to']})"
                                                           for n in right]
    fig = go.Figure(go.Sankey(
        node={"label": labels, "pad": 12},
        link={"source": [left.index(m["from"]) for m in moves],
              "target": [len(left) + right.index(m["to"]) for m in moves],
              "value": [m["customers"] for m in moves],
              "customdata": [_pct(m["share"]) for m in moves],
              "hovertemplate": "%{source.label} → %{target.label}<br>%{value} customers "
                               "(%{customdata} of the source)<extra></extra>"}))
    return fig.update_layout(title=f"Segment migration, {report['from']} → {report['to']}",
                             height=560)


def funnel_figure(report: dict[str, Any]) -> go.Figure:
    """Per recommender variant: how many cards were shown, the share engaged with (CTR),
    and the share bought by linked customers within the window (conversion)."""
    rows = report["rows"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "Cards shown", "Engaged with (CTR)",
        f"Bought within {report['window_days']} days (linked customers)"))
    if not rows:
        return fig.update_layout(title=report.get("note") or "No data", height=360)
    names = [" / ".join(str(r[g]) for g in report["by"]) for r in rows]
    fig.add_trace(go.Bar(x=names, y=[r["shown"] for r in rows],
                         text=[f"{r['shown']:,}" for r in rows], textposition="outside"),
                  row=1, col=1)
    _interval_bars(fig, names, [r["ctr"] for r in rows], col=2, label=_rate_label)
    _interval_bars(fig, names, [r["conversion"] for r in rows], col=3, label=_rate_label)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=2)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=3)
    simulated = report.get("simulated_sessions") or 0
    return fig.update_layout(showlegend=False, height=420, title=(
        "Recommendation funnel per variant (bars: 95 % Wilson intervals)"
        + (f"<br><sup>{simulated:,} of {report['sessions']:,} sessions are SIMULATED "
           "(real customers and later orders, simulated sessions)</sup>" if simulated else "")))


def satisfaction_figure(report: dict[str, Any]) -> go.Figure:
    """Mean chat rating per segment (t intervals), its weekly trend, and the desk's
    outcomes per period: drafts the agents liked, sent as written, tickets resolved."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "Chat rating per segment (1-5)", "Trend", "Desk drafts: liked / as written / "
        "resolved"))
    rated = [r for r in report["by_segment"] if r["n"]]
    drafts = report.get("drafts") or []
    if not rated and not drafts:
        return fig.update_layout(title=report.get("note") or "No ratings", height=340)
    if rated:
        _interval_bars(fig, [r["segment"] for r in rated], rated, col=1, center="mean",
                       label=lambda r: f"{r['mean']:.2f}<br>n={r['n']}")
        trend = report["trend"]
        fig.add_trace(go.Scatter(x=[t["period"] for t in trend], y=[t["mean"] for t in trend],
                                 mode="lines+markers", text=[f"n={t['n']}" for t in trend],
                                 showlegend=False), row=1, col=2)
        fig.update_yaxes(range=[0, 5.5], row=1, col=1)
        fig.update_yaxes(range=[0, 5.5], row=1, col=2)
    for key, name in (("liked", "liked"), ("sent_as_written", "sent as written"),
                      ("resolved", "resolved")):
        cells = [d.get(key) or {} for d in drafts]
        fig.add_trace(go.Scatter(
            x=[d["period"] for d in drafts], y=[c.get("rate") for c in cells], name=name,
            mode="lines+markers", text=[f"n={c.get('n', 0)}" for c in cells]), row=1, col=3)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=3)
    return fig.update_layout(height=380, legend={"orientation": "h", "y": -0.2})


def prediction_figure(report: dict[str, Any]) -> go.Figure:
    """Predicted value over the horizon and mean churn risk per segment (BG/NBD +
    Gamma-Gamma)."""
    rows = [r for r in report["segments"] if r["segment"] != EVERYONE]
    days = f"{report['horizon_days']:.0f}"
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"Predicted value, next {days} days", "Churn risk of repeat buyers (1 - P(alive))"))
    names = [r["segment"] for r in rows]
    fig.add_trace(go.Bar(x=names, y=[r["expected_value"] for r in rows],
                         text=[f"£{r['expected_value']:,.0f}<br>n={r['customers']:,}"
                               for r in rows], textposition="outside"), row=1, col=1)
    _interval_bars(fig, names, [r["churn_risk"] for r in rows], col=2, center="mean",
                   label=lambda c: f"{_pct(c['mean'])}<br>n={c['n']:,}")
    fig.update_yaxes(tickprefix="£", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=2)
    return fig.update_layout(showlegend=False, height=420)


def validation_markdown(report: dict[str, Any]) -> str:
    """How well the value model predicted the last period, beside the naive baseline."""
    check = report.get("validation") or {}
    if "error" in check:
        return f"*The value model is not validated: {check['error']}*"
    if "purchases" not in check:
        return ""
    n, r = check["purchases"], check["revenue"]
    return (f"**Value model check** (fitted without the last {check['horizon_days']} days, "
            f"{check['customers']:,} customers): mean absolute error per customer, days "
            f"with an order "
            f"{n['model']['mae']:.2f} vs {n['baseline']['mae']:.2f} for carrying the last "
            f"period forward ({n['ratio']['mae']:.2f}x); revenue £{r['model']['mae']:,.0f} "
            f"vs £{r['baseline']['mae']:,.0f} ({r['ratio']['mae']:.2f}x).")


def segments_table(report: dict[str, Any]) -> pd.DataFrame:
    """The numbers behind the bars, with every count."""
    return pd.DataFrame([{
        "segment": r["segment"], "customers": r["customers"],
        "repeat": f"{_pct(r['repeat']['rate'])} ({r['repeat']['count']}/{r['repeat']['n']})",
        "churn": f"{_pct(r['churn']['rate'])} ({r['churn']['count']}/{r['churn']['n']})",
        "at risk": r["at_risk"]["count"], "revenue £": round(r["revenue"]),
        "orders": r["orders"],
        "avg order £": None if r["aov"]["mean"] is None else round(r["aov"]["mean"], 2),
    } for r in report["segments"]])


# ----------------------------------------------------------------------------- callbacks
@guarded
def load(service: AssistantService, segment: str, period: str, since: str, by: str,
         request: gr.Request) -> tuple[Any, ...]:
    """The tab's reports for the chosen segment, period, start date and funnel grouping."""
    who = request.username
    chosen = None if segment in (None, "", EVERYONE) else segment
    since = (since or "").strip() or None  # Gradio sends None for an empty box
    try:
        retention = service.insights_report(who, "retention", period=period or "M",
                                            segment=chosen, since=since)
        outcomes = service.insights_report(who, "segments", since=since)
        shown = service.insights_report(who, "funnel", by=by or "variant", since=since)
        rated = service.insights_report(who, "satisfaction", since=since)
        value = service.insights_report(who, "value", top=0)
    except AssistantError as err:
        return (f"**{err.message}** {err.hint}", *(gr.update() for _ in range(9)))
    names = [EVERYONE] + [r["segment"] for r in outcomes["segments"]
                          if r["segment"] != EVERYONE]
    note = outcomes.get("note") or ""
    header = (f"**{outcomes['segments'][0]['customers']:,} customers** measured"
              if outcomes["segments"] else EMPTY)
    return (header + (f"\n\n{note}" if note else ""), gr.update(choices=names),
            retention_figure(retention), segments_figure(outcomes), value_figure(outcomes),
            segments_table(outcomes), funnel_figure(shown), satisfaction_figure(rated),
            prediction_figure(value), validation_markdown(value))


@guarded
def migrate(service: AssistantService, start: str, end: str, request: gr.Request
            ) -> tuple[Any, str]:
    try:
        report = service.insights_report(request.username, "migration",
                                         start=(start or "").strip() or None,
                                         end=(end or "").strip() or None)
    except AssistantError as err:
        return gr.update(), f"**{err.message}** {err.hint}"
    return migration_figure(report), ""


def _mean_cell(m: dict[str, Any], fmt: str = "{:.2f}") -> str:
    return "–" if m["mean"] is None else fmt.format(m["mean"])


def _arms_table(status: dict[str, Any]) -> str:
    """One row per arm: the units and the kind's metrics."""
    unit = status["unit"]
    if unit == "customers":  # a policy experiment
        head = ("| arm | policy | customers | conversion | revenue / customer | drafts sent "
                "| liked |\n|---|---|---|---|---|---|---|\n")
        return head + "\n".join(
            f"| {html.escape(a['arm'])} | `{html.escape(a['spec'])}` | {a['customers']:,} | "
            f"{_pct(a['conversion']['rate'])} | "
            f"{_mean_cell(a['revenue_per_customer'], '£{:,.2f}')} | "
            f"{_pct(a['sent']['rate'])} (n={a['sent']['n']:,}) | "
            f"{_mean_cell(a['liked'], '{:.0%}')} |" for a in status["arms"])
    head = "| arm | weights | sessions | CTR | conversion | rating |\n|---|---|---|---|---|---|\n"
    return head + "\n".join(
        f"| {html.escape(a['arm'])} | `{html.escape(a['spec'])}` | {a['sessions']:,} | "
        f"{_pct(a['ctr']['rate'])} | {_pct(a['conversion']['rate'])} "
        f"(n={a['conversion']['n']:,}) | {_mean_cell(a['satisfaction'])} |"
        for a in status["arms"])


def experiment_markdown(status: dict[str, Any]) -> str:
    """An experiment's traffic per arm, its metrics and the verdict."""
    exp, verdict, unit = status["experiment"], status["verdict"], status["unit"]
    tests = "\n".join(
        f"| {html.escape(c['metric'])} | "
        + ("–" if c["difference"] is None else f"{c['difference']:+.4g}") + " | "
        + ("–" if c["p_adjusted"] is None else f"{c['p_adjusted']:.3g}") + " |"
        for c in verdict["comparisons"])
    on = f" on {html.escape(exp['segment'])}" if exp.get("segment") else ""
    simulated = status.get(f"simulated_{unit}") or 0
    return (f"**{html.escape(exp['name'])}** ({exp['status']}, {exp['kind']}{on}, started "
            f"{exp['started_at'][:16]} by {html.escape(exp['started_by'])}; primary metric "
            f"{exp['metric']}, {verdict['planned_per_arm']:,} {unit} per arm planned)\n\n"
            + _arms_table(status)
            + "\n\n| B vs A | difference | Holm p |\n|---|---|---|\n" + tests
            + f"\n\n**{verdict['state']}**: {html.escape(verdict['note'])}"
            + (f"\n\n**Too small:** {html.escape(status['capacity_note'])}"
               if status.get("capacity_note") else "")
            + (f"\n\n*{simulated:,} of these {unit} are SIMULATED (assistant insights "
               "simulate)" + (": an arm cannot change a real customer's past orders, so a "
                              "simulated policy experiment is an A/A check of the machinery"
                              if unit == "customers" else "") + ".*" if simulated else ""))


def experiment_figure(status: dict[str, Any]) -> go.Figure:
    """Per arm with 95 % intervals: CTR and conversion (recommender), or conversion and
    drafts sent (policy)."""
    arms = status["arms"]
    pairs = ((("Conversion (ordered within 30 days)", "conversion"),
              ("Drafts sent (customers with a draft)", "sent"))
             if status["unit"] == "customers" else
             (("CTR (sessions engaged)", "ctr"), ("Conversion (linked sessions)", "conversion")))
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for title, _ in pairs])
    names = [a["arm"] for a in arms]
    for col, (_, key) in enumerate(pairs, start=1):
        _interval_bars(fig, names, [a[key] for a in arms], col=col, label=_rate_label)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig.update_layout(showlegend=False, height=360)


#: what the arm, segment and metric boxes hold when the kind is picked
KIND_DEFAULTS = {"recommender": ("served,segment=0.5", "", "ctr"),
                 "policy": ("at-risk-10", "At Risk", "conversion")}


@guarded
def kind_defaults(kind: str) -> tuple[Any, Any, Any]:
    """Picking a kind fills arm B, the segment and the metric with a working example."""
    arm_b, segment, metric = KIND_DEFAULTS.get(kind, KIND_DEFAULTS["recommender"])
    return (gr.update(value=arm_b), gr.update(value=segment, interactive=kind == "policy"),
            gr.update(value=metric))


def _error(err: AssistantError) -> tuple[str, Any]:
    return (f"**{html.escape(err.message, quote=False)}** "
            f"{html.escape(err.hint, quote=False)}", gr.update())


@guarded
def experiment_action(service: AssistantService, action: str, name: str, arm_a: str,
                      arm_b: str, metric: str, base_rate: float | None, mde: float | None,
                      request: gr.Request, kind: str = "recommender",
                      segment: str = "") -> tuple[str, Any]:
    """Start, read or stop an experiment from the tab (the role is checked by the
    service); an error is shown with its hint and changes nothing. ``kind`` and
    ``segment`` come after ``request`` so older callers keep working."""
    who, name = request.username, (name or "").strip()
    try:
        if action == "start":
            status = service.experiment_start(
                who, name, {"A": (arm_a or "").strip(), "B": (arm_b or "").strip()},
                metric=metric or None, base_rate=float(base_rate or 0), mde=float(mde or 0),
                kind=kind or "recommender", segment=(segment or "").strip() or None)
        elif action == "stop":
            status = service.experiment_stop(who, name)
        else:
            status = service.experiment_status(who, name or None)
    except AssistantError as err:
        return _error(err)
    return experiment_markdown(status), experiment_figure(status)


@guarded
def simulate(service: AssistantService, sessions: float | None, name: str,
             request: gr.Request,
             progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's idiom
             kind: str = "recommender") -> tuple[str, Any]:
    """Simulated traffic (``assistant insights simulate``, with ``--policy`` for a policy
    experiment: that many customers exposed) with a progress bar; then the experiment's
    status (the running one of the kind, or the named one)."""
    who = request.username
    report = lambda stage, done: progress(done, desc=stage)  # noqa: E731
    try:
        if kind == "policy":
            out = service.simulate_exposures(who, customers=int(sessions or 0),
                                             progress=report)
            done = (f"*{out['customers']:,} of the {out['in_segment']:,} customers in "
                    f"{out['segment']} on {out['start']} exposed (simulated, run "
                    f"{out['run']}).*")
            name = name or out["experiment"]
        else:
            out = service.simulate_traffic(who, sessions=int(sessions or 0), progress=report)
            done = f"*{out['sessions']:,} simulated sessions written (run {out['run']}).*"
        status = service.experiment_status(who, (name or "").strip() or None)
    except AssistantError as err:
        return _error(err)
    return done + "\n\n" + experiment_markdown(status), experiment_figure(status)


@guarded
def api_insights(service: AssistantService, kind: str, options: str, request: gr.Request
                 ) -> dict[str, Any]:
    """``/insights``: one report as JSON, the CLI's ``assistant insights KIND --json``.
    ``kind``: retention, segments, funnel, satisfaction, value or migration; ``options``:
    a JSON object of the report's options (e.g. {"segment": "Champions", "since":
    "2011-06-01"}). An error comes back as {"error", "hint"}."""
    try:
        parsed = json.loads(options or "{}")
    except ValueError as exc:
        return {"error": f"The options are not valid JSON ({exc}).",
                "hint": 'Example: {"segment": "Champions"}'}
    if not isinstance(parsed, dict):
        return {"error": "The options must be a JSON object.",
                "hint": 'Example: {"since": "2011-06-01"}'}
    try:
        return service.insights_report(request.username, (kind or "").strip(), **parsed)
    except AssistantError as err:
        return {"error": err.message, "hint": err.hint}


def build_insights_tab(service: AssistantService) -> tuple[Callable[..., Any], list, list]:
    """Render the tab inside the current Blocks and wire its events; returns (load, its
    inputs, its outputs) for the staff app's page load."""
    header = gr.Markdown(EMPTY, elem_id="tailor-insights-header")
    with gr.Row():
        segment = gr.Dropdown([EVERYONE], value=EVERYONE, label="Cohorts of segment",
                              allow_custom_value=False)
        period = gr.Radio(["M", "Q", "W"], value="M", label="Period (month, quarter, week)")
        since = gr.Textbox(label="Orders since (YYYY-MM-DD, optional)", placeholder="2011-01-01")
    retention = gr.Plot(label="Cohort retention")
    per_segment = gr.Plot(label="Repeat, churn and risk per segment")
    value = gr.Plot(label="Revenue and order value")
    table = gr.Dataframe(label="Per segment, with counts", interactive=False, wrap=True)
    gr.Markdown("**What the app did.** Every card shown, every reaction and every 1-5 chat "
                "rating is in the event log; a card counts as bought when the linked customer "
                "orders it within 30 days (the orders file).")
    by = gr.Radio(["variant", "segment", "variant,segment"], value="variant",
                  label="Funnel by")
    shown = gr.Plot(label="Recommendation funnel")
    rated = gr.Plot(label="Satisfaction")
    predicted = gr.Plot(label="Predicted value and churn risk")
    checked = gr.Markdown()
    with gr.Row():
        start = gr.Textbox(label="Migration from (YYYY-MM-DD)",
                           placeholder="six months before the end")
        end = gr.Textbox(label="to", placeholder="the day after the last order")
        go_btn = gr.Button("Show migration")
    migration_note = gr.Markdown()
    migration = gr.Plot(label="Segment migration")
    with gr.Accordion("Experiment: recommender variants or support policies", open=False):
        gr.Markdown("Arm A is the control. **Recommender**: an arm is `served` (the weights "
                    "in use) with changes: `without:als`, `segment=0.5`; sessions are "
                    "assigned. **Policy**: one segment's support policy (`served`) against a "
                    "variant from `data/policies.yaml` (`at-risk-10`: At Risk with a 10 % "
                    "discount instead of 15 %); customers are assigned, and every desk draft "
                    "for them follows their arm. The sample size per arm comes from today's "
                    "rate of the metric and the smallest change worth knowing; the result is "
                    "read as *early* until both arms reach it.")
        with gr.Row():
            exp_kind = gr.Radio(["recommender", "policy"], value="recommender", label="Kind")
            exp_segment = gr.Textbox(label="Segment (policy)", placeholder="At Risk",
                                     interactive=False)
            exp_name = gr.Textbox(label="Name", placeholder="segment-boost")
            arm_a = gr.Textbox(label="Arm A", value="served")
            arm_b = gr.Textbox(label="Arm B", value="served,segment=0.5")
        with gr.Row():
            exp_metric = gr.Radio(["ctr", "conversion", "sent"], value="ctr",
                                  label="Primary metric (sent: policy only)")
            base_rate = gr.Number(label="Today's rate", value=0.1, minimum=0, maximum=1)
            mde = gr.Number(label="Smallest change worth knowing", value=0.02)
        with gr.Row():
            start_btn = gr.Button("Start", variant="primary")
            status_btn = gr.Button("Status")
            stop_btn = gr.Button("Stop", variant="stop")
        with gr.Row():
            sim_sessions = gr.Number(label="Simulated sessions (customers for a policy)",
                                     value=1000, precision=0, minimum=1, maximum=100_000)
            sim_btn = gr.Button("Simulate traffic (real customers, marked SIMULATED)")
        exp_note = gr.Markdown(elem_id="tailor-experiment")
        exp_plot = gr.Plot(label="Arms")
    outputs = [header, segment, retention, per_segment, value, table, shown, rated,
               predicted, checked]
    inputs = [segment, period, since, by]
    loader = bind(load, service)
    gr.on([segment.change, period.change, since.submit, by.change], loader, inputs, outputs,
          api_name="insights_load")
    go_btn.click(bind(migrate, service), [start, end], [migration, migration_note],
                 api_name="insights_migration")
    act = bind(experiment_action, service)
    exp_inputs = [exp_name, arm_a, arm_b, exp_metric, base_rate, mde, exp_kind, exp_segment]
    for btn, action in ((start_btn, "start"), (status_btn, "status"), (stop_btn, "stop")):
        btn.click(act, [gr.State(action), *exp_inputs], [exp_note, exp_plot],
                  api_name=f"experiment_{action}")
    exp_kind.change(kind_defaults, [exp_kind], [arm_b, exp_segment, exp_metric],
                    api_visibility="undocumented")
    sim_btn.click(bind(simulate, service), [sim_sessions, exp_name, exp_kind],
                  [exp_note, exp_plot], api_name="insights_simulate")
    kind_in, options_in, json_out = (gr.Textbox(visible=False), gr.Textbox(visible=False),
                                     gr.JSON(visible=False))
    gr.Button(visible=False).click(bind(api_insights, service), [kind_in, options_in],
                                   [json_out], api_name="insights")
    return loader, inputs, outputs
