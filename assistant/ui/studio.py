"""The Prompt studio tab (staff app, role ``ops``): templates with their labels; a YAML
editor with live validation and a diff against any version; save with a note (a conflict
shows what changed meanwhile); per-segment preview and a streamed run on the model; tests;
staged rollout with per-version metrics and the audit log; agents' edits as test cases.
Callbacks unpack state, call ``service.studio`` and format; plus the ``/prompt*`` API."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any

import gradio as gr
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from assistant.core.errors import AssistantError, InputError
from assistant.infra.users import has_role
from assistant.prompts.versions import (
    PRODUCTION,
    STAGING,
    ConflictError,
    Problem,
    TemplateValidationError,
    TestRun,
    dump_body,
)
from assistant.segments.model import SEGMENTS
from assistant.service.assistant import AssistantService
from assistant.service.studio import SAMPLE_TICKET, PreviewResult, Rendered, Sample
from assistant.ui.guard import guarded

DEFAULT_SEGMENTS = ["Champions", "New", "At Risk"]
ALL_SEGMENTS = "(all segments)"
AUDIT_HEADERS = ["#", "when", "template", "label", "from", "to", "share", "segment", "kind",
                 "by", "reason"]
OVERVIEW_HEADERS = ["template", "description", "variables", "labels", "latest",
                    "last change", "tests (latest)"]
TEST_HEADERS = ["case", "assertion", "passed", "detail", "output"]
EDIT_HEADERS = ["draft", "agent", "customer", "version", "saved", "deleted sentences"]
STUDIO_CSS = """
#tailor-studio-diff pre, .tailor-preview pre {white-space: pre-wrap; margin: 0;
  font-size: 0.85em; font-family: ui-monospace, monospace;}
.tailor-diff-add {background: #e6ffec; color: #116329;}
.tailor-diff-del {background: #ffebe9; color: #82071e;}
.tailor-diff-hunk {color: #0550ae;}
.tailor-preview {display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr));
  gap: 12px;}
.tailor-preview .card {border: 1px solid #d0d7de; border-radius: 8px; padding: 8px;}
.tailor-preview .role {font-weight: 600; font-size: 0.8em; text-transform: uppercase;
  color: #57606a; margin-top: 6px;}
.tailor-preview .out {background: #f6f8fa; border-radius: 6px; padding: 6px; margin-top: 6px;}
.tailor-preview .ok {color: #116329;} .tailor-preview .bad {color: #82071e;}
"""


# =========================================================================== formatting
def diff_html(diff: str) -> str:
    """A unified diff with added / removed lines coloured (escaped)."""
    if not diff.strip():
        return "<p><em>No differences.</em></p>"
    lines = []
    for line in diff.splitlines():
        css = ("tailor-diff-add" if line.startswith("+") and not line.startswith("+++") else
               "tailor-diff-del" if line.startswith("-") and not line.startswith("---") else
               "tailor-diff-hunk" if line.startswith("@@") else "")
        lines.append(f'<span class="{css}">{html.escape(line)}</span>' if css
                     else html.escape(line))
    return "<pre>" + "\n".join(lines) + "</pre>"


def problems_markdown(problems: list[Problem]) -> str:
    if not problems:
        return "✅ **Valid**: it can be saved."
    errors = [p for p in problems if p.level == "error"]
    head = (f"❌ **{len(errors)} error(s)**: fix them to save." if errors
            else "⚠️ **Warnings only**: it can be saved.")
    rows = [f"- {'❌' if p.level == 'error' else '⚠️'} `{p.where()}`: "
            f"{html.escape(p.message)}" + (f" *{html.escape(p.hint)}*" if p.hint else "")
            for p in problems]
    return "\n".join([head, *rows])


def error_markdown(err: AssistantError) -> str:
    field = getattr(err, "field", None)
    where = f" (field `{field}`)" if field else ""
    text = f"❌ **{html.escape(err.message)}**{where}"
    if err.hint:
        text += f"\n\n{html.escape(err.hint)}"
    problems = getattr(err, "problems", None)
    if problems:
        text += "\n\n" + problems_markdown(list(problems))
    return text


def _pct(x: float | None) -> str:
    return "100%" if x is None or x >= 1 else f"{x:.0%}"


def labels_text(labels: dict[str, Any]) -> str:
    parts = []
    for label, info in sorted(labels.items()):
        version = info["version"] if isinstance(info, dict) else info
        extra = ""
        if isinstance(info, dict) and label != PRODUCTION:
            extra = f" {_pct(info.get('share'))}" + (
                f" of {info['segment']}" if info.get("segment") else "")
        parts.append(f"{label}→v{version}{extra}")
    return ", ".join(parts)


def overview_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [[i["name"], i["description"][:90], ", ".join(i["variables"]),
             labels_text({k: v for k, v in i["serving"].items()} or i["labels"]),
             f"v{i['latest_version']}", f"{i['last_change'][:16]} by {i['last_author']}",
             i["latest_tests"]] for i in items]


def audit_rows(events: list[Any]) -> list[list[Any]]:
    return [[e.id, e.created_at[:19], e.name, e.label,
             f"v{e.from_version}" if e.from_version else "", f"v{e.to_version}"
             if e.to_version else "(removed)", _pct(e.share) if e.share is not None else "",
             e.segment or "", e.kind + (" OVERRIDE" if e.override else ""), e.actor, e.reason]
            for e in reversed(events)]


def test_rows(run: TestRun) -> list[list[Any]]:
    return [[r.case, r.assertion, "✅" if r.passed else "❌", r.detail[:160],
             r.output[:200]] for r in run.results]


def run_markdown(run: TestRun) -> str:
    mark = "✅ all pass" if run.passed else "❌ failing"
    return (f"**v{run.version}** on `{run.model}`: {run.cases_passed}/{run.cases_total} "
            f"cases, pass rate **{(run.pass_rate or 0):.0%}** ({mark}) · run #{run.id} by "
            f"{run.actor} at {run.created_at[:19]}")


def _stats(res: PreviewResult) -> str:
    bits = []
    if res.prompt_tokens is not None or res.completion_tokens is not None:
        bits.append(f"{res.prompt_tokens if res.prompt_tokens is not None else '?'} tokens "
                    f"in · {res.completion_tokens if res.completion_tokens is not None else '?'}"
                    " out")
    if res.latency_ms is not None:
        first = f", first token {res.ttft_ms:.0f} ms" if res.ttft_ms is not None else ""
        bits.append(f"{res.latency_ms:.0f} ms{first}")
    if res.grounded is not None:
        css = "ok" if res.grounded else "bad"
        mark = "✅ grounded" if res.grounded else "❌ not grounded"
        bits.append(f'<span class="{css}">{mark}: {html.escape(res.grounding)}</span>')
    if res.error:
        bits.append(f'<span class="bad">{html.escape(res.error)}</span>')
    return " · ".join(bits)


def preview_html(rendered: list[Rendered], results: dict[str, PreviewResult] | None = None,
                 notes: list[str] | None = None) -> str:
    """Side-by-side cards: each sample's rendered messages, and the model's reply."""
    results = results or {}
    head = "".join(f"<p><em>{html.escape(n)}</em></p>" for n in notes or [])
    if not rendered:
        return head + "<p><em>No samples to preview.</em></p>"
    cards = []
    for r in rendered:
        body = [f"<h4>{html.escape(r.sample.title)}</h4>"]
        if r.error:
            body.append(f'<p class="bad">{html.escape(r.error)}</p>')
        for m in r.messages:
            body.append(f'<div class="role">{html.escape(m.role)}</div>'
                        f"<pre>{html.escape(m.content)}</pre>")
        res = results.get(r.sample.key)
        if res is not None:
            body.append('<div class="role">model reply</div>'
                        f'<div class="out"><pre>{html.escape(res.text) or "…"}</pre></div>'
                        f"<p><small>{_stats(res)}</small></p>")
        cards.append(f'<div class="card">{"".join(body)}</div>')
    return head + f'<div class="tailor-preview">{"".join(cards)}</div>'


def header_markdown(v: Any) -> str:
    return (f"**{v.name}** · editing from **v{v.version}** "
            f"({', '.join(v.labels) or 'no label'}) · {html.escape(v.note)} · by {v.author} "
            f"at {v.created_at[:16]}")


def metrics_figure(versions: dict[str, dict[str, Any]]) -> go.Figure:
    """Per version: like rate and grounding failures (%), and median latency (ms)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Rates per version (%)",
                                                        "Median latency (ms)"))
    names = list(versions)
    like = [_rate(v.get("like_rate")) for v in versions.values()]
    ground = [_rate(v.get("grounding_fail_rate")) for v in versions.values()]
    fig.add_trace(go.Bar(name="like rate", x=names, y=like), row=1, col=1)
    fig.add_trace(go.Bar(name="grounding failures", x=names, y=ground), row=1, col=1)
    fig.add_trace(go.Bar(name="latency p50", x=names,
                         y=[v.get("latency_ms_p50") for v in versions.values()],
                         showlegend=False), row=1, col=2)
    fig.update_layout(barmode="group", height=280, margin=dict(l=30, r=10, t=40, b=30),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def _rate(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def edits_rows(edits: list[dict[str, Any]]) -> list[list[Any]]:
    return [[e["id"], e["agent"], e["customer_id"] or "", e["version"], e["updated_at"][:16],
             " | ".join(e["removed"])[:200]] for e in edits]


def _version_choices(history: list[Any]) -> list[tuple[str, int]]:
    return [(f"v{v.version}" + (f" ({', '.join(v.labels)})" if v.labels else "")
             + f" · {v.note[:40]}", v.version) for v in reversed(history)]


def _json_object(text: str, what: str) -> dict[str, Any]:
    text = (text or "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}).",
                         'Example: {"temperature": 0.3}') from None
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object.", 'Example: {"temperature": 0.3}')
    return value


# =========================================================================== the tab
def build_studio_tab(service: AssistantService):
    """Build the tab inside an open Blocks; returns (load fn, inputs, outputs)."""
    def studio(request: gr.Request):
        user = service.require_role(request.username, "ops")
        return service.studio, user.name

    # -- loading a template ---------------------------------------------------------
    @guarded
    def load(name: str | None, request: gr.Request):
        try:
            st, _ = studio(request)
            names = st.names()
            name = name if name in names else (names[0] if names else None)
            overview = overview_rows(st.overview())
            if name is None:
                return (gr.update(choices=[], value=None), overview, "*No templates.*", "",
                        None, "", gr.update(choices=[]), gr.update(choices=[]),
                        gr.update(choices=[]), "", *_rollout_outputs(st, None))
            latest = st.version(name)
            history = st.history(name)
            choices = _version_choices(history)
            prod = next((v.version for v in history if PRODUCTION in v.labels), latest.version)
            tests_yaml = _tests_yaml(st.tests(name))
            header = header_markdown(latest)
            return (gr.update(choices=names, value=name), overview, header, latest.body,
                    latest.version, problems_markdown(list(latest.problems)),
                    gr.update(choices=choices, value=prod),
                    gr.update(choices=choices, value=latest.version),
                    gr.update(choices=choices, value=latest.version), tests_yaml,
                    *_rollout_outputs(st, name))
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None

    def _rollout_outputs(st, name: str | None) -> tuple:
        if name is None:
            return ("", "", go.Figure(), [], edits_rows([]))
        labels = st.rollout(name)["labels"]
        serving = "\n".join(
            f"- **{label}** → v{info['version']}"
            + ("" if label == PRODUCTION else
               f" · {_pct(info['share'])} of sessions"
               + (f" in segment **{info['segment']}**" if info["segment"] else ""))
            + f" · since {info['updated_at'][:19]}"
            for label, info in sorted(labels.items())) or "*No labels.*"
        metrics = st.metrics(name)
        text = metrics["table"] or "*No traffic logged for this template yet.*"
        if metrics.get("comparison_markdown"):
            prod, other = metrics["compared"]
            staged = labels.get(STAGING, {}).get("version")
            label = "staging" if other == f"v{staged}" else "an earlier version"
            within = (f", sessions in segment **{metrics['segment']}**"
                      if metrics.get("segment") else "")
            text += (f"\n\n**Production ({prod}) against {label} ({other}){within}**\n\n"
                     + metrics["comparison_markdown"])
        edits = st.agent_edits()  # always support_draft: shown whatever template is open
        return (serving, text, metrics_figure(metrics["versions"]), audit_rows(st.audit(name)),
                edits_rows(edits))

    def _tests_yaml(cases: list[Any]) -> str:
        if not cases:
            return "cases: []\n"
        return dump_body({"cases": [c.model_dump(by_alias=True) for c in cases]})

    # -- editing ---------------------------------------------------------------------
    @guarded
    def check(name: str, body: str, against: int | None, request: gr.Request):
        try:
            st, _ = studio(request)
            if not name:
                return "", ""
            problems = problems_markdown(st.validate(name, body or ""))
            diff = diff_html(st.diff(name, body or "", int(against))) if against else ""
            return problems, diff
        except AssistantError as err:
            return error_markdown(err), gr.update()

    @guarded
    def save(name: str, body: str, note: str, base: int | None, request: gr.Request):
        try:
            st, actor = studio(request)
            v = st.save(name, body or "", note=note, base_version=base, actor=actor)
        except ConflictError as err:
            return (error_markdown(err) + "\n\n**What changed meanwhile** (below: the latest "
                    "version against your edit).", gr.update(), diff_html(err.diff),
                    gr.update(), gr.update(), gr.update(), gr.update(), gr.update())
        except AssistantError as err:
            return (error_markdown(err), gr.update(), gr.update(), gr.update(), gr.update(),
                    gr.update(), gr.update(), gr.update())
        choices = _version_choices(st.history(name))
        return (f"✅ Saved **v{v.version}** of {name} ({html.escape(v.note)}). It serves "
                "nobody yet: label it in **Rollout**.", v.version, "", header_markdown(v),
                gr.update(choices=choices), gr.update(choices=choices, value=v.version),
                gr.update(choices=choices, value=v.version), "")

    # -- preview -----------------------------------------------------------------------
    def _samples(st, name: str, segments: list[str], ticket: str, seed: int
                 ) -> tuple[list[Sample], list[str]]:
        return st.samples(name, segments or None,
                          ticket=(ticket or "").strip() or _default_ticket(), seed=int(seed or 0))

    @guarded
    def render(name: str, body: str, segments: list[str], ticket: str, seed: int,
               request: gr.Request):
        try:
            st, _ = studio(request)
            samples, notes = _samples(st, name, segments, ticket, seed)
            return preview_html(st.render(name, body or "", samples), notes=notes)
        except AssistantError as err:
            return f"<p class='bad'>{html.escape(err.for_user())}</p>"

    @guarded
    def run(name: str, body: str, segments: list[str], ticket: str, seed: int,
            request: gr.Request) -> Iterator[str]:
        try:
            st, _ = studio(request)
            samples, notes = _samples(st, name, segments, ticket, seed)
            rendered = st.render(name, body or "", samples)
        except AssistantError as err:
            yield f"<p class='bad'>{html.escape(err.for_user())}</p>"
            return
        results: dict[str, PreviewResult] = {}
        for r in rendered:
            if r.error:
                continue
            preview = st.run_preview(name, body or "", r.sample)
            results[r.sample.key] = preview.result
            for _ in preview:
                yield preview_html(rendered, results, notes)
            yield preview_html(rendered, results, notes)
        yield preview_html(rendered, results, notes)

    # -- tests --------------------------------------------------------------------------
    @guarded
    def save_tests(name: str, text: str, request: gr.Request) -> str:
        try:
            st, actor = studio(request)
            cases = st.set_tests(name, text or "", actor=actor)
            return (f"✅ Saved {len(cases)} test case(s) for {name}. Runs of earlier test "
                    "sets no longer count for promotion: run them again.")
        except AssistantError as err:
            return error_markdown(err)

    @guarded
    def run_tests(name: str, version: int | None, request: gr.Request):
        try:
            st, actor = studio(request)
            run_ = st.run_tests(name, int(version) if version else None, actor=actor)
            return run_markdown(run_), test_rows(run_)
        except AssistantError as err:
            return error_markdown(err), []

    # -- rollout ------------------------------------------------------------------------
    def _after(st, name: str, message: str):
        return (message, *_rollout_outputs(st, name), overview_rows(st.overview()))

    def _fail(err: AssistantError):
        return (error_markdown(err), *(gr.update() for _ in range(len(rollout_outs) + 1)))

    @guarded
    def stage(name: str, version: int | None, share: float, segment: str | None,
              request: gr.Request):
        try:
            st, actor = studio(request)
            if not version:
                raise TemplateValidationError(name, [Problem("version", "Pick a version.")])
            seg = None if not segment or segment == ALL_SEGMENTS else segment
            event = st.set_label(name, STAGING, int(version), actor=actor,
                                 share=float(share) / 100, segment=seg)
            msg = (f"✅ staging → v{version} for {share:.0f}% of sessions"
                   + (f" in {seg}" if seg else "") if event else "Nothing changed.")
            return _after(st, name, msg)
        except AssistantError as err:
            return _fail(err)

    @guarded
    def set_production(name: str, version: int | None, override: bool, reason: str,
                       request: gr.Request):
        try:
            st, actor = studio(request)
            if not version:
                raise TemplateValidationError(name, [Problem("version", "Pick a version.")])
            event = st.set_label(name, PRODUCTION, int(version), actor=actor,
                                 override=bool(override), reason=reason or "")
            return _after(st, name, f"✅ production → v{version}" if event
                          else "Nothing changed.")
        except AssistantError as err:
            return _fail(err)

    @guarded
    def promote(name: str, override: bool, reason: str, request: gr.Request):
        try:
            st, actor = studio(request)
            event = st.promote_staging(name, actor=actor, override=bool(override),
                                       reason=reason or "")
            return _after(st, name, f"✅ staging promoted: production → v{event.to_version}"
                          if event else "Nothing changed.")
        except AssistantError as err:
            return _fail(err)

    def rollback(label: str):
        @guarded
        def go(name: str, reason: str, request: gr.Request):
            try:
                st, actor = studio(request)
                event = st.rollback(name, actor=actor, reason=reason or "", label=label)
                return _after(st, name, f"↩️ {label} rolled back: v{event.from_version} → "
                              f"v{event.to_version}")
            except AssistantError as err:
                return _fail(err)
        return go

    @guarded
    def stop_staging(name: str, reason: str, request: gr.Request):
        try:
            st, actor = studio(request)
            st.remove_label(name, STAGING, actor=actor, reason=reason or "staging stopped")
            return _after(st, name, "⏹ staging removed: every session gets production.")
        except AssistantError as err:
            return _fail(err)

    @guarded
    def refresh(name: str, request: gr.Request):
        try:
            st, _ = studio(request)
            return _after(st, name, "")
        except AssistantError as err:
            return _fail(err)

    # -- agents' edits -----------------------------------------------------------------
    @guarded
    def make_case(draft_id: str, request: gr.Request):
        try:
            st, actor = studio(request)
            case = st.case_from_draft((draft_id or "").strip(), actor=actor)
            return (f"✅ Added test case **{html.escape(case.name)}** to support_draft "
                    f"({len(case.assert_)} assertions).", _tests_yaml(st.tests("support_draft")))
        except AssistantError as err:
            return error_markdown(err), gr.update()

    @guarded
    def pick_edit(evt: gr.SelectData) -> str:
        """A click on a row of agents' edits picks its draft."""
        row = getattr(evt, "row_value", None) or []
        return str(row[0]) if row else gr.update()

    # -- layout ----------------------------------------------------------------------------
    base = gr.State(None)
    with gr.Row():
        template = gr.Dropdown(label="Template", choices=_names(service), interactive=True,
                               scale=1, allow_custom_value=True,
                               elem_id="tailor-studio-template")
        header = gr.Markdown("", elem_id="tailor-studio-header")
    with gr.Accordion("All templates", open=False):
        overview = gr.Dataframe(headers=OVERVIEW_HEADERS, interactive=False, wrap=True,
                                elem_id="tailor-studio-overview")
    with gr.Tabs():
        with gr.Tab("Edit", id="studio-edit"):
            with gr.Row():
                with gr.Column(scale=3):
                    editor = gr.Code(language="yaml", lines=24, max_lines=40,
                                     interactive=True, label="Template (YAML: messages, "
                                     "variables, parameters, texts)",
                                     elem_id="tailor-studio-editor")
                with gr.Column(scale=2):
                    validation = gr.Markdown("", elem_id="tailor-studio-validation")
                    against = gr.Dropdown(label="Diff against", choices=[], interactive=True,
                                          allow_custom_value=True,
                                          elem_id="tailor-studio-against")
                    diff = gr.HTML("", elem_id="tailor-studio-diff")
            with gr.Row():
                note = gr.Textbox(label="Note (required: what changed and why)", scale=4,
                                  elem_id="tailor-studio-note")
                save_btn = gr.Button("Save new version", variant="primary", scale=1,
                                     elem_id="tailor-studio-save")
            save_status = gr.Markdown("", elem_id="tailor-studio-save-status")
        with gr.Tab("Preview", id="studio-preview"):
            gr.Markdown("The editor's text (saved or not) rendered for a real customer of "
                        "each segment; **Run** sends it to the configured model.")
            with gr.Row():
                segments = gr.CheckboxGroup(label="Segments", value=DEFAULT_SEGMENTS,
                                            choices=_segment_choices(),
                                            elem_id="tailor-studio-segments", scale=3)
                seed = gr.Number(label="Sample", value=0, precision=0, minimum=0, scale=1)
            ticket = gr.Textbox(label="Ticket (support template only)", value=_default_ticket(),
                                lines=2)
            with gr.Row():
                render_btn = gr.Button("Render", elem_id="tailor-studio-render")
                run_btn = gr.Button("Run on model", variant="primary",
                                    elem_id="tailor-studio-run")
                stop_btn = gr.Button("Stop")
            preview = gr.HTML("", elem_id="tailor-studio-preview")
        with gr.Tab("Tests", id="studio-tests"):
            tests = gr.Code(language="yaml", lines=16, max_lines=30, interactive=True,
                            label="Test cases (vars + assert: contains, not_contains, regex, "
                            "max_length, json_schema, grounding, no_prompt_leak)",
                            elem_id="tailor-studio-tests")
            with gr.Row():
                save_tests_btn = gr.Button("Save tests")
                test_version = gr.Dropdown(label="Run on version", choices=[],
                                           interactive=True, allow_custom_value=True,
                                           elem_id="tailor-studio-test-version")
                run_tests_btn = gr.Button("Run tests", variant="primary",
                                          elem_id="tailor-studio-run-tests")
            tests_status = gr.Markdown("", elem_id="tailor-studio-tests-status")
            results = gr.Dataframe(headers=TEST_HEADERS, interactive=False, wrap=True,
                                   elem_id="tailor-studio-results")
        with gr.Tab("Rollout", id="studio-rollout"):
            serving = gr.Markdown("", elem_id="tailor-studio-serving")
            with gr.Row():
                version = gr.Dropdown(label="Version", choices=[], interactive=True,
                                      allow_custom_value=True,
                                      elem_id="tailor-studio-version")
                share = gr.Slider(0, 100, value=50, step=5, label="Staging share of sessions %",
                                  elem_id="tailor-studio-share")
                segment = gr.Dropdown(label="Only segment", value=ALL_SEGMENTS,
                                      choices=[ALL_SEGMENTS, *_segment_choices()])
            with gr.Row():
                stage_btn = gr.Button("Send to staging", elem_id="tailor-studio-stage")
                promote_btn = gr.Button("Promote staging → production", variant="primary",
                                        elem_id="tailor-studio-promote")
                prod_btn = gr.Button("Set production to this version",
                                     elem_id="tailor-studio-set-production")
            with gr.Row():
                override = gr.Checkbox(label="Override failing tests (logged)", value=False)
                reason = gr.Textbox(label="Reason (needed for an override or a rollback)",
                                    scale=3, elem_id="tailor-studio-reason")
            with gr.Row():
                rb_prod = gr.Button("Roll back production", variant="stop",
                                    elem_id="tailor-studio-rollback")
                rb_stage = gr.Button("Roll back staging")
                stop_stage = gr.Button("Stop staging")
                refresh_btn = gr.Button("Refresh metrics")
            rollout_status = gr.Markdown("", elem_id="tailor-studio-rollout-status")
            metrics = gr.Markdown("", elem_id="tailor-studio-metrics")
            chart = gr.Plot(show_label=False, elem_id="tailor-studio-chart")
            gr.Markdown("**Audit log** (newest first)")
            audit = gr.Dataframe(headers=AUDIT_HEADERS, interactive=False, wrap=True,
                                 elem_id="tailor-studio-audit")
        with gr.Tab("Agents' edits", id="studio-edits"):
            gr.Markdown("Support drafts that agents changed before saving. A draft's edit "
                        "becomes a test case of **support_draft**: the same customer and "
                        "ticket; the sentences the agent deleted must not come back.")
            edits = gr.Dataframe(headers=EDIT_HEADERS, interactive=False, wrap=True,
                                 elem_id="tailor-studio-edits")
            with gr.Row():
                draft_id = gr.Textbox(label="Draft id (click a row above)", scale=3,
                                      elem_id="tailor-studio-draft-id")
                case_btn = gr.Button("Make a test case")
            case_status = gr.Markdown("")

    rollout_outs = [serving, metrics, chart, audit, edits]
    load_outs = [template, overview, header, editor, base, validation, against, version,
                 test_version, tests, *rollout_outs]
    template.input(load, [template], load_outs, api_name="studio_open",
                   api_visibility="undocumented")
    editor.change(check, [template, editor, against], [validation, diff],
                  trigger_mode="always_last", show_progress="hidden",
                  api_name="studio_check", api_visibility="undocumented")
    against.change(check, [template, editor, against], [validation, diff],
                   show_progress="hidden", api_visibility="undocumented")
    save_btn.click(save, [template, editor, note, base],
                   [save_status, base, diff, header, against, test_version, version, note],
                   api_name="studio_save", api_visibility="undocumented")
    pargs = [template, editor, segments, ticket, seed]
    render_btn.click(render, pargs, [preview], api_name="studio_render",
                     api_visibility="undocumented")
    running = run_btn.click(run, pargs, [preview], api_name="studio_run",
                            api_visibility="undocumented")
    stop_btn.click(None, None, None, cancels=[running])
    save_tests_btn.click(save_tests, [template, tests], [tests_status],
                         api_name="studio_save_tests", api_visibility="undocumented")
    run_tests_btn.click(run_tests, [template, test_version], [tests_status, results],
                        api_name="studio_run_tests", api_visibility="undocumented")
    after = [rollout_status, *rollout_outs, overview]
    stage_btn.click(stage, [template, version, share, segment], after,
                    api_name="studio_stage", api_visibility="undocumented")
    prod_btn.click(set_production, [template, version, override, reason], after,
                   api_name="studio_set_production", api_visibility="undocumented")
    promote_btn.click(promote, [template, override, reason], after,
                      api_name="studio_promote", api_visibility="undocumented")
    rb_prod.click(rollback(PRODUCTION), [template, reason], after,
                  api_name="studio_rollback", api_visibility="undocumented")
    rb_stage.click(rollback(STAGING), [template, reason], after,
                   api_name="studio_rollback_staging", api_visibility="undocumented")
    stop_stage.click(stop_staging, [template, reason], after,
                     api_name="studio_stop_staging", api_visibility="undocumented")
    refresh_btn.click(refresh, [template], after, api_name="studio_refresh",
                      api_visibility="undocumented")
    case_btn.click(make_case, [draft_id], [case_status, tests], api_name="studio_case",
                   api_visibility="undocumented")
    edits.select(pick_edit, None, [draft_id], api_visibility="undocumented")
    _build_api(service)

    @guarded
    def first_load(name: str | None, request: gr.Request):
        """On page load: the first template, or nothing for a user without the ops role
        (the tab shows the refusal instead)."""
        user = service.users.get(request.username or "")
        if user is None or not has_role(user, "ops"):
            return tuple(gr.update() for _ in load_outs)
        return load(name, request)

    return first_load, [template], load_outs


def _names(service: AssistantService) -> list[str]:
    """Template names at build time (the load event refreshes them per session)."""
    try:
        return service.studio.names()
    except AssistantError:
        return []


def _segment_choices() -> list[str]:
    return list(SEGMENTS)


def _default_ticket() -> str:
    return SAMPLE_TICKET


# =========================================================================== API (ops)
def _build_api(service: AssistantService) -> None:
    """``/prompts``, ``/prompt``, ``/prompt_save``, ``/prompt_label``, ``/prompt_test``,
    ``/prompt_promote`` (staging -> production), ``/prompt_rollback``, ``/prompt_audit`` for
    gradio_client; each checks the ops role. Bad input comes back
    as ``{"ok": false, "error", "hint", "field", "problems"?, "conflict"?}``."""
    def st(request: gr.Request):
        user = service.require_role(request.username, "ops")
        return service.studio, user.name

    def failure(err: AssistantError) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error": err.message, "hint": err.hint,
                               "field": getattr(err, "field", None)}
        problems = getattr(err, "problems", None)
        if problems:
            out["problems"] = [{"field": p.field, "message": p.message, "line": p.line,
                                "level": p.level, "hint": p.hint} for p in problems]
        if isinstance(err, ConflictError):
            out["conflict"] = {"latest_version": err.latest_version, "diff": err.diff,
                               "latest_author": err.latest.author}
        return out

    def role_checked(fn):
        def wrapped(*args, request: gr.Request):
            try:
                studio, actor = st(request)
            except AssistantError as err:
                raise gr.Error(err.for_user()) from None
            try:
                return fn(studio, actor, *args)
            except AssistantError as err:
                return failure(err)
        return wrapped

    @guarded
    def prompts(request: gr.Request) -> list[dict[str, Any]]:
        try:
            return st(request)[0].overview()
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None

    @guarded
    def prompt(name: str, which: str, request: gr.Request) -> dict[str, Any]:
        def go(studio, _actor, name, which):
            which = (which or "").strip()
            if not which or which == "latest":
                return {"ok": True, **studio.get(name)}
            if which.lstrip("v").isdigit():
                return {"ok": True, **studio.get(name, int(which.lstrip("v")))}
            return {"ok": True, **studio.get(name, label=which)}
        return role_checked(go)(name, which, request=request)

    @guarded
    def prompt_save(name: str, text: str, params: str, note: str, base: str,
                    request: gr.Request) -> dict[str, Any]:
        def go(studio, actor, name, text, params, note, base):
            body = studio.with_parameters(name, text, _json_object(params, "params"))
            base_s = (str(base) if base is not None else "").strip()
            if base_s and not base_s.lstrip("v").isdigit():
                raise InputError(f"base version '{base_s}' is not a number.",
                                 "Pass the version your edit started from, e.g. 3.")
            v = studio.save(name, body, note=note, actor=actor,
                            base_version=int(base_s.lstrip("v")) if base_s else None)
            return {"ok": True, **v.as_dict()}
        return role_checked(go)(name, text, params, note, base, request=request)

    @guarded
    def prompt_label(name: str, version: float, label: str, share: float, segment: str,
                     reason: str, override: bool, request: gr.Request) -> dict[str, Any]:
        def go(studio, actor, name, version, label, share, segment, reason, override):
            event = studio.set_label(name, (label or "").strip(), int(version), actor=actor,
                                     share=float(share if share is not None else 1.0),
                                     segment=(segment or "").strip() or None,
                                     override=bool(override), reason=reason or "")
            return {"ok": True, "changed": event is not None,
                    "event": event.describe() if event else None,
                    "labels": studio.rollout(name)["labels"]}
        return role_checked(go)(name, version, label, share, segment, reason, override,
                                request=request)

    @guarded
    def prompt_rollback(name: str, label: str, reason: str, request: gr.Request
                        ) -> dict[str, Any]:
        def go(studio, actor, name, label, reason):
            event = studio.rollback(name, actor=actor, reason=reason or "",
                                    label=(label or PRODUCTION).strip())
            return {"ok": True, "event": event.describe(),
                    "labels": studio.rollout(name)["labels"]}
        return role_checked(go)(name, label, reason, request=request)

    @guarded
    def prompt_promote(name: str, reason: str, override: bool, request: gr.Request
                       ) -> dict[str, Any]:
        def go(studio, actor, name, reason, override):
            event = studio.promote_staging(name, actor=actor, override=bool(override),
                                           reason=reason or "")
            return {"ok": True, "event": event.describe() if event else None,
                    "labels": studio.rollout(name)["labels"]}
        return role_checked(go)(name, reason, override, request=request)

    @guarded
    def prompt_test(name: str, version: str, request: gr.Request) -> dict[str, Any]:
        def go(studio, actor, name, version):
            v = (str(version) if version is not None else "").strip().lstrip("v")
            run_ = studio.run_tests(name, int(v) if v.isdigit() else None, actor=actor)
            return {"ok": True, **run_.as_dict()}
        return role_checked(go)(name, version, request=request)

    @guarded
    def prompt_audit(name: str, request: gr.Request) -> dict[str, Any]:
        def go(studio, _actor, name):
            return {"ok": True, "events": [e.describe()
                                           for e in studio.audit((name or "").strip() or None)]}
        return role_checked(go)(name, request=request)

    t1, t2, t3, t4, t5 = (gr.Textbox(visible=False) for _ in range(5))
    n1 = gr.Number(visible=False)
    n2 = gr.Number(visible=False, value=1.0)
    cb = gr.Checkbox(visible=False)
    out = gr.JSON(visible=False)
    b = [gr.Button(visible=False) for _ in range(8)]
    b[0].click(prompts, None, [out], api_name="prompts")
    b[1].click(prompt, [t1, t2], [out], api_name="prompt")
    b[2].click(prompt_save, [t1, t2, t3, t4, t5], [out], api_name="prompt_save")
    b[3].click(prompt_label, [t1, n1, t2, n2, t3, t4, cb], [out], api_name="prompt_label")
    b[4].click(prompt_test, [t1, t2], [out], api_name="prompt_test")
    b[5].click(prompt_rollback, [t1, t2, t3], [out], api_name="prompt_rollback")
    b[6].click(prompt_audit, [t1], [out], api_name="prompt_audit")
    b[7].click(prompt_promote, [t1, t2, cb], [out], api_name="prompt_promote")
