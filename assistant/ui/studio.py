"""The Prompt studio tab (staff app, role ``ops``): templates with their labels; a YAML
editor with live validation and a diff against any version; save with a note (a conflict
shows what changed meanwhile); per-segment preview and a streamed run on the model; tests;
staged rollout with per-version metrics and the audit log; agents' edits as test cases.
The callbacks are module-level functions taking the service (the builder binds it), so tests
call them without a browser; each gets the studio through ``service.studio_for`` (the ops
role is checked at the service) and formats. Plus the ``/prompt*`` API."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from functools import wraps
from types import SimpleNamespace
from typing import Any, TypeVar

import gradio as gr
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from assistant.core.errors import AssistantError, InputError
from assistant.prompts.cases import TestRun
from assistant.prompts.checks import Problem, TemplateValidationError
from assistant.prompts.records import ConflictError, dump_body
from assistant.prompts.versions import PRODUCTION, STAGING
from assistant.segments.model import SEGMENTS
from assistant.service.assistant import AssistantService
from assistant.service.studio import SAMPLE_TICKET, PreviewResult, PromptStudio, Rendered
from assistant.ui.guard import bind, guarded

F = TypeVar("F", bound=Callable[..., Any])

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


def _tests_yaml(cases: list[Any]) -> str:
    if not cases:
        return "cases: []\n"
    return dump_body({"cases": [c.model_dump(by_alias=True) for c in cases]})


def serving_markdown(labels: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"- **{label}** → v{info['version']}"
        + ("" if label == PRODUCTION else
           f" · {_pct(info['share'])} of sessions"
           + (f" in segment **{info['segment']}**" if info["segment"] else ""))
        + f" · since {info['updated_at'][:19]}"
        for label, info in sorted(labels.items())) or "*No labels.*"


def _rollout_outputs(st: PromptStudio, name: str | None) -> tuple:
    """serving, metrics, chart, audit, edits (``ROLLOUT_OUTPUTS`` values)."""
    if name is None:
        return ("", "", go.Figure(), [], edits_rows([]))
    labels = st.rollout(name)["labels"]
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
    return (serving_markdown(labels), text, metrics_figure(metrics["versions"]),
            audit_rows(st.audit(name)), edits_rows(edits))


# =========================================================================== callbacks
# Module-level, taking the service first (the builder binds it): each gets the studio
# through ``service.studio_for`` (the ops role is checked there) and passes the checked
# user's name to the studio's writes. An ``AssistantError`` becomes the callback's own
# outputs through ``_failing``; anything else reaches ``guarded``.
ROLLOUT_OUTPUTS = 5  # serving, metrics, chart, audit, edits
LOAD_OUTPUTS = 10 + ROLLOUT_OUTPUTS


def _failing(failure: Callable[[AssistantError], Any]) -> Callable[[F], F]:
    """Decorate a callback: an ``AssistantError`` out of it returns ``failure(err)`` (the
    message in the callback's outputs) instead."""
    def decorate(fn: F) -> F:
        @wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except AssistantError as err:
                return failure(err)
        return call  # type: ignore[return-value]
    return decorate


def _raise(err: AssistantError) -> Any:
    """For callbacks with no message output: a Gradio error with the message and hint."""
    raise gr.Error(err.for_user()) from None


def _refusing(fn: F) -> F:
    """``fn`` with an ``AssistantError`` raised as that Gradio error."""
    return _failing(_raise)(fn)


def _bad_html(err: AssistantError) -> str:
    return f"<p class='bad'>{html.escape(err.for_user())}</p>"


def _keep(n: int) -> tuple:
    return tuple(gr.update() for _ in range(n))


def _rollout_failure(err: AssistantError) -> tuple:
    return (error_markdown(err), *_keep(ROLLOUT_OUTPUTS + 1))


def _save_failure(err: AssistantError) -> tuple:
    if isinstance(err, ConflictError):
        return (error_markdown(err) + "\n\n**What changed meanwhile** (below: the latest "
                "version against your edit).", gr.update(), diff_html(err.diff), *_keep(5))
    return (error_markdown(err), *_keep(7))


# -- loading a template ---------------------------------------------------------------
@guarded
@_refusing
def load(service: AssistantService, name: str | None, request: gr.Request) -> tuple:
    """Everything of one template (the first when ``name`` is unknown): ``LOAD_OUTPUTS``."""
    st, _ = service.studio_for(request.username)
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
    return (gr.update(choices=names, value=name), overview, header_markdown(latest),
            latest.body, latest.version, problems_markdown(list(latest.problems)),
            gr.update(choices=choices, value=prod),
            gr.update(choices=choices, value=latest.version),
            gr.update(choices=choices, value=latest.version), _tests_yaml(st.tests(name)),
            *_rollout_outputs(st, name))


@guarded
def first_load(service: AssistantService, name: str | None, request: gr.Request) -> tuple:
    """On page load: the first template, or nothing for a user without the ops role
    (the tab shows the refusal instead)."""
    try:
        service.require_role(request.username, "ops")
    except AssistantError:
        return _keep(LOAD_OUTPUTS)
    return load(service, name, request)


# -- editing --------------------------------------------------------------------------
@guarded
@_failing(lambda err: (error_markdown(err), gr.update()))
def check(service: AssistantService, name: str, body: str, against: int | None,
          request: gr.Request) -> tuple[str, str]:
    """Live validation of the editor's text, and its diff against a version."""
    st, _ = service.studio_for(request.username)
    if not name:
        return "", ""
    problems = problems_markdown(st.validate(name, body or ""))
    diff = diff_html(st.diff(name, body or "", int(against))) if against else ""
    return problems, diff


@guarded
@_failing(_save_failure)
def save(service: AssistantService, name: str, body: str, note: str, base: int | None,
         request: gr.Request) -> tuple:
    """Save a new version: status, base, diff, header, against, test version, version,
    note (a conflict shows what changed meanwhile)."""
    st, actor = service.studio_for(request.username)
    v = st.save(name, body or "", note=note, base_version=base, actor=actor)
    choices = _version_choices(st.history(name))
    return (f"✅ Saved **v{v.version}** of {name} ({html.escape(v.note)}). It serves "
            "nobody yet: label it in **Rollout**.", v.version, "", header_markdown(v),
            gr.update(choices=choices), gr.update(choices=choices, value=v.version),
            gr.update(choices=choices, value=v.version), "")


# -- preview --------------------------------------------------------------------------
def _rendered(service: AssistantService, request: gr.Request, name: str, body: str,
              segments: list[str], ticket: str, seed: int
              ) -> tuple[PromptStudio, list[Rendered], list[str]]:
    st, _ = service.studio_for(request.username)
    samples, notes = st.samples(name, segments or None,
                                ticket=(ticket or "").strip() or _default_ticket(),
                                seed=int(seed or 0))
    return st, st.render(name, body or "", samples), notes


@guarded
@_failing(_bad_html)
def render(service: AssistantService, name: str, body: str, segments: list[str],
           ticket: str, seed: int, request: gr.Request) -> str:
    _, rendered, notes = _rendered(service, request, name, body, segments, ticket, seed)
    return preview_html(rendered, notes=notes)


@guarded
def run(service: AssistantService, name: str, body: str, segments: list[str], ticket: str,
        seed: int, request: gr.Request) -> Iterator[str]:
    """Render, then stream each sample's reply from the model into its card."""
    try:
        st, rendered, notes = _rendered(service, request, name, body, segments, ticket,
                                        seed)
    except AssistantError as err:  # a stream: its failure is yielded, not returned
        yield _bad_html(err)
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


# -- tests ----------------------------------------------------------------------------
@guarded
@_failing(error_markdown)
def save_tests(service: AssistantService, name: str, text: str, request: gr.Request) -> str:
    st, actor = service.studio_for(request.username)
    cases = st.set_tests(name, text or "", actor=actor)
    return (f"✅ Saved {len(cases)} test case(s) for {name}. Runs of earlier test "
            "sets no longer count for promotion: run them again.")


@guarded
@_failing(lambda err: (error_markdown(err), []))
def run_tests(service: AssistantService, name: str, version: int | None,
              request: gr.Request) -> tuple[str, list[list[Any]]]:
    st, actor = service.studio_for(request.username)
    run_ = st.run_tests(name, int(version) if version else None, actor=actor)
    return run_markdown(run_), test_rows(run_)


# -- rollout: each returns (status, *rollout outputs, overview) -----------------------
def _after(st: PromptStudio, name: str, message: str) -> tuple:
    return (message, *_rollout_outputs(st, name), overview_rows(st.overview()))


def _picked(name: str, version: int | None) -> int:
    if not version:
        raise TemplateValidationError(name, [Problem("version", "Pick a version.")])
    return int(version)


@guarded
@_failing(_rollout_failure)
def stage(service: AssistantService, name: str, version: int | None, share: float,
          segment: str | None, request: gr.Request) -> tuple:
    st, actor = service.studio_for(request.username)
    picked = _picked(name, version)
    seg = None if not segment or segment == ALL_SEGMENTS else segment
    event = st.set_label(name, STAGING, picked, actor=actor, share=float(share) / 100,
                         segment=seg)
    msg = (f"✅ staging → v{version} for {share:.0f}% of sessions"
           + (f" in {seg}" if seg else "") if event else "Nothing changed.")
    return _after(st, name, msg)


@guarded
@_failing(_rollout_failure)
def set_production(service: AssistantService, name: str, version: int | None,
                   override: bool, reason: str, request: gr.Request) -> tuple:
    st, actor = service.studio_for(request.username)
    picked = _picked(name, version)
    event = st.set_label(name, PRODUCTION, picked, actor=actor, override=bool(override),
                         reason=reason or "")
    return _after(st, name, f"✅ production → v{version}" if event else "Nothing changed.")


@guarded
@_failing(_rollout_failure)
def promote(service: AssistantService, name: str, override: bool, reason: str,
            request: gr.Request) -> tuple:
    st, actor = service.studio_for(request.username)
    event = st.promote_staging(name, actor=actor, override=bool(override),
                               reason=reason or "")
    return _after(st, name, f"✅ staging promoted: production → v{event.to_version}"
                  if event else "Nothing changed.")


@guarded
@_failing(_rollout_failure)
def rollback(service: AssistantService, label: str, name: str, reason: str,
             request: gr.Request) -> tuple:
    """Roll ``label`` (production or staging; bound by the builder) back."""
    st, actor = service.studio_for(request.username)
    event = st.rollback(name, actor=actor, reason=reason or "", label=label)
    return _after(st, name, f"↩️ {label} rolled back: v{event.from_version} → "
                  f"v{event.to_version}")


@guarded
@_failing(_rollout_failure)
def stop_staging(service: AssistantService, name: str, reason: str,
                 request: gr.Request) -> tuple:
    st, actor = service.studio_for(request.username)
    st.remove_label(name, STAGING, actor=actor, reason=reason or "staging stopped")
    return _after(st, name, "⏹ staging removed: every session gets production.")


@guarded
@_failing(_rollout_failure)
def refresh(service: AssistantService, name: str, request: gr.Request) -> tuple:
    st, _ = service.studio_for(request.username)
    return _after(st, name, "")


# -- agents' edits --------------------------------------------------------------------
@guarded
@_failing(lambda err: (error_markdown(err), gr.update()))
def make_case(service: AssistantService, draft_id: str, request: gr.Request
              ) -> tuple[str, str]:
    st, actor = service.studio_for(request.username)
    case = st.case_from_draft((draft_id or "").strip(), actor=actor)
    return (f"✅ Added test case **{html.escape(case.name)}** to support_draft "
            f"({len(case.assert_)} assertions).", _tests_yaml(st.tests("support_draft")))


@guarded
def pick_edit(evt: gr.SelectData) -> str:
    """A click on a row of agents' edits picks its draft."""
    row = getattr(evt, "row_value", None) or []
    return str(row[0]) if row else gr.update()


# =========================================================================== the tab
def build_studio_tab(service: AssistantService):
    """Build the tab inside an open Blocks; returns (load fn, inputs, outputs)."""
    c = SimpleNamespace(base=gr.State(None))
    _header_section(c)
    with gr.Tabs():
        _edit_section(c)
        _preview_section(c)
        _tests_section(c)
        _rollout_section(c)
        _edits_section(c)
    load_outs = _wire(service, c)
    _build_api(service)
    return bind(first_load, service), [c.template], load_outs


def _header_section(c: SimpleNamespace) -> None:
    with gr.Row():
        # choices: the load event fills them for an ops user
        c.template = gr.Dropdown(label="Template", choices=[], interactive=True, scale=1,
                                 allow_custom_value=True, elem_id="tailor-studio-template")
        c.header = gr.Markdown("", elem_id="tailor-studio-header")
    with gr.Accordion("All templates", open=False):
        c.overview = gr.Dataframe(headers=OVERVIEW_HEADERS, interactive=False, wrap=True,
                                  elem_id="tailor-studio-overview")


def _edit_section(c: SimpleNamespace) -> None:
    with gr.Tab("Edit", id="studio-edit"):
        with gr.Row():
            with gr.Column(scale=3):
                c.editor = gr.Code(language="yaml", lines=24, max_lines=40,
                                   interactive=True, label="Template (YAML: messages, "
                                   "variables, parameters, texts)",
                                   elem_id="tailor-studio-editor")
            with gr.Column(scale=2):
                c.validation = gr.Markdown("", elem_id="tailor-studio-validation")
                c.against = gr.Dropdown(label="Diff against", choices=[], interactive=True,
                                        allow_custom_value=True,
                                        elem_id="tailor-studio-against")
                c.diff = gr.HTML("", elem_id="tailor-studio-diff")
        with gr.Row():
            c.note = gr.Textbox(label="Note (required: what changed and why)", scale=4,
                                elem_id="tailor-studio-note")
            c.save_btn = gr.Button("Save new version", variant="primary", scale=1,
                                   elem_id="tailor-studio-save")
        c.save_status = gr.Markdown("", elem_id="tailor-studio-save-status")


def _preview_section(c: SimpleNamespace) -> None:
    with gr.Tab("Preview", id="studio-preview"):
        gr.Markdown("The editor's text (saved or not) rendered for a real customer of "
                    "each segment; **Run** sends it to the configured model.")
        with gr.Row():
            c.segments = gr.CheckboxGroup(label="Segments", value=DEFAULT_SEGMENTS,
                                          choices=_segment_choices(),
                                          elem_id="tailor-studio-segments", scale=3)
            c.seed = gr.Number(label="Sample", value=0, precision=0, minimum=0, scale=1)
        c.ticket = gr.Textbox(label="Ticket (support template only)",
                              value=_default_ticket(), lines=2)
        with gr.Row():
            c.render_btn = gr.Button("Render", elem_id="tailor-studio-render")
            c.run_btn = gr.Button("Run on model", variant="primary",
                                  elem_id="tailor-studio-run")
            c.stop_btn = gr.Button("Stop")
        c.preview = gr.HTML("", elem_id="tailor-studio-preview")


def _tests_section(c: SimpleNamespace) -> None:
    with gr.Tab("Tests", id="studio-tests"):
        c.tests = gr.Code(language="yaml", lines=16, max_lines=30, interactive=True,
                          label="Test cases (vars + assert: contains, not_contains, regex, "
                          "max_length, json_schema, grounding, no_prompt_leak)",
                          elem_id="tailor-studio-tests")
        with gr.Row():
            c.save_tests_btn = gr.Button("Save tests")
            c.test_version = gr.Dropdown(label="Run on version", choices=[],
                                         interactive=True, allow_custom_value=True,
                                         elem_id="tailor-studio-test-version")
            c.run_tests_btn = gr.Button("Run tests", variant="primary",
                                        elem_id="tailor-studio-run-tests")
        c.tests_status = gr.Markdown("", elem_id="tailor-studio-tests-status")
        c.results = gr.Dataframe(headers=TEST_HEADERS, interactive=False, wrap=True,
                                 elem_id="tailor-studio-results")


def _rollout_section(c: SimpleNamespace) -> None:
    with gr.Tab("Rollout", id="studio-rollout"):
        c.serving = gr.Markdown("", elem_id="tailor-studio-serving")
        with gr.Row():
            c.version = gr.Dropdown(label="Version", choices=[], interactive=True,
                                    allow_custom_value=True,
                                    elem_id="tailor-studio-version")
            c.share = gr.Slider(0, 100, value=50, step=5, label="Staging share of sessions %",
                                elem_id="tailor-studio-share")
            c.segment = gr.Dropdown(label="Only segment", value=ALL_SEGMENTS,
                                    choices=[ALL_SEGMENTS, *_segment_choices()])
        with gr.Row():
            c.stage_btn = gr.Button("Send to staging", elem_id="tailor-studio-stage")
            c.promote_btn = gr.Button("Promote staging → production", variant="primary",
                                      elem_id="tailor-studio-promote")
            c.prod_btn = gr.Button("Set production to this version",
                                   elem_id="tailor-studio-set-production")
        with gr.Row():
            c.override = gr.Checkbox(label="Override failing tests (logged)", value=False)
            c.reason = gr.Textbox(label="Reason (needed for an override or a rollback)",
                                  scale=3, elem_id="tailor-studio-reason")
        with gr.Row():
            c.rb_prod = gr.Button("Roll back production", variant="stop",
                                  elem_id="tailor-studio-rollback")
            c.rb_stage = gr.Button("Roll back staging")
            c.stop_stage = gr.Button("Stop staging")
            c.refresh_btn = gr.Button("Refresh metrics")
        c.rollout_status = gr.Markdown("", elem_id="tailor-studio-rollout-status")
        c.metrics = gr.Markdown("", elem_id="tailor-studio-metrics")
        c.chart = gr.Plot(show_label=False, elem_id="tailor-studio-chart")
        gr.Markdown("**Audit log** (newest first)")
        c.audit = gr.Dataframe(headers=AUDIT_HEADERS, interactive=False, wrap=True,
                               elem_id="tailor-studio-audit")


def _edits_section(c: SimpleNamespace) -> None:
    with gr.Tab("Agents' edits", id="studio-edits"):
        gr.Markdown("Support drafts that agents changed before saving. A draft's edit "
                    "becomes a test case of **support_draft**: the same customer and "
                    "ticket; the sentences the agent deleted must not come back.")
        c.edits = gr.Dataframe(headers=EDIT_HEADERS, interactive=False, wrap=True,
                               elem_id="tailor-studio-edits")
        with gr.Row():
            c.draft_id = gr.Textbox(label="Draft id (click a row above)", scale=3,
                                    elem_id="tailor-studio-draft-id")
            c.case_btn = gr.Button("Make a test case")
        c.case_status = gr.Markdown("")


def _wire(service: AssistantService, c: SimpleNamespace) -> list[Any]:
    """The tab's events (each callback bound to the service); returns the load outputs."""
    def on(fn: Callable[..., Any], *first: Any) -> Callable[..., Any]:
        return bind(fn, service, *first)

    hidden = {"api_visibility": "undocumented"}
    rollout_outs = [c.serving, c.metrics, c.chart, c.audit, c.edits]
    load_outs = [c.template, c.overview, c.header, c.editor, c.base, c.validation,
                 c.against, c.version, c.test_version, c.tests, *rollout_outs]
    c.template.input(on(load), [c.template], load_outs, api_name="studio_open", **hidden)
    checked = [c.template, c.editor, c.against]
    c.editor.change(on(check), checked, [c.validation, c.diff], trigger_mode="always_last",
                    show_progress="hidden", api_name="studio_check", **hidden)
    c.against.change(on(check), checked, [c.validation, c.diff], show_progress="hidden",
                     **hidden)
    c.save_btn.click(on(save), [c.template, c.editor, c.note, c.base],
                     [c.save_status, c.base, c.diff, c.header, c.against, c.test_version,
                      c.version, c.note], api_name="studio_save", **hidden)
    pargs = [c.template, c.editor, c.segments, c.ticket, c.seed]
    c.render_btn.click(on(render), pargs, [c.preview], api_name="studio_render", **hidden)
    running = c.run_btn.click(on(run), pargs, [c.preview], api_name="studio_run", **hidden)
    c.stop_btn.click(None, None, None, cancels=[running])
    c.save_tests_btn.click(on(save_tests), [c.template, c.tests], [c.tests_status],
                           api_name="studio_save_tests", **hidden)
    c.run_tests_btn.click(on(run_tests), [c.template, c.test_version],
                          [c.tests_status, c.results], api_name="studio_run_tests", **hidden)
    after = [c.rollout_status, *rollout_outs, c.overview]
    c.stage_btn.click(on(stage), [c.template, c.version, c.share, c.segment], after,
                      api_name="studio_stage", **hidden)
    c.prod_btn.click(on(set_production), [c.template, c.version, c.override, c.reason],
                     after, api_name="studio_set_production", **hidden)
    c.promote_btn.click(on(promote), [c.template, c.override, c.reason], after,
                        api_name="studio_promote", **hidden)
    c.rb_prod.click(on(rollback, PRODUCTION), [c.template, c.reason], after,
                    api_name="studio_rollback", **hidden)
    c.rb_stage.click(on(rollback, STAGING), [c.template, c.reason], after,
                     api_name="studio_rollback_staging", **hidden)
    c.stop_stage.click(on(stop_staging), [c.template, c.reason], after,
                       api_name="studio_stop_staging", **hidden)
    c.refresh_btn.click(on(refresh), [c.template], after, api_name="studio_refresh", **hidden)
    c.case_btn.click(on(make_case), [c.draft_id], [c.case_status, c.tests],
                     api_name="studio_case", **hidden)
    c.edits.select(pick_edit, None, [c.draft_id], **hidden)
    return load_outs


def _segment_choices() -> list[str]:
    return list(SEGMENTS)


def _default_ticket() -> str:
    return SAMPLE_TICKET


# =========================================================================== API (ops)
def api_failure(err: AssistantError) -> dict[str, Any]:
    """Bad input as the API's answer: ``{"ok": false, "error", "hint", "field",
    "problems"?, "conflict"?}``."""
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


def _api(service: AssistantService, request: gr.Request,
         op: Callable[[PromptStudio, str], dict[str, Any]]) -> dict[str, Any]:
    """The edge of every ``/prompt*`` function: the ops role (a refusal is an error, for
    gradio_client to raise), then ``op(studio, actor)`` as ``{"ok": true, ...}``, or its
    bad input as ``api_failure``."""
    studio, actor = _refusing(service.studio_for)(request.username)
    try:
        return {"ok": True, **op(studio, actor)}
    except AssistantError as err:
        return api_failure(err)


@guarded
@_refusing
def prompts(service: AssistantService, request: gr.Request) -> list[dict[str, Any]]:
    st, _ = service.studio_for(request.username)
    return st.overview()


@guarded
def prompt(service: AssistantService, name: str, which: str, request: gr.Request
           ) -> dict[str, Any]:
    """One version: ``latest`` (or empty), a number (``3`` or ``v3``) or a label."""
    def op(studio: PromptStudio, _actor: str) -> dict[str, Any]:
        ref = (which or "").strip()
        if not ref or ref == "latest":
            return studio.get(name)
        if ref.lstrip("v").isdigit():
            return studio.get(name, int(ref.lstrip("v")))
        return studio.get(name, label=ref)
    return _api(service, request, op)


@guarded
def prompt_save(service: AssistantService, name: str, text: str, params: str, note: str,
                base: str, request: gr.Request) -> dict[str, Any]:
    def op(studio: PromptStudio, actor: str) -> dict[str, Any]:
        body = studio.with_parameters(name, text, _json_object(params, "params"))
        base_s = (str(base) if base is not None else "").strip()
        if base_s and not base_s.lstrip("v").isdigit():
            raise InputError(f"base version '{base_s}' is not a number.",
                             "Pass the version your edit started from, e.g. 3.")
        v = studio.save(name, body, note=note, actor=actor,
                        base_version=int(base_s.lstrip("v")) if base_s else None)
        return v.as_dict()
    return _api(service, request, op)


@guarded
def prompt_label(service: AssistantService, name: str, version: float, label: str,
                 share: float, segment: str, reason: str, override: bool,
                 request: gr.Request) -> dict[str, Any]:
    def op(studio: PromptStudio, actor: str) -> dict[str, Any]:
        event = studio.set_label(name, (label or "").strip(), int(version), actor=actor,
                                 share=float(share if share is not None else 1.0),
                                 segment=(segment or "").strip() or None,
                                 override=bool(override), reason=reason or "")
        return {"changed": event is not None, "event": event.describe() if event else None,
                "labels": studio.rollout(name)["labels"]}
    return _api(service, request, op)


@guarded
def prompt_rollback(service: AssistantService, name: str, label: str, reason: str,
                    request: gr.Request) -> dict[str, Any]:
    def op(studio: PromptStudio, actor: str) -> dict[str, Any]:
        event = studio.rollback(name, actor=actor, reason=reason or "",
                                label=(label or PRODUCTION).strip())
        return {"event": event.describe(), "labels": studio.rollout(name)["labels"]}
    return _api(service, request, op)


@guarded
def prompt_promote(service: AssistantService, name: str, reason: str, override: bool,
                   request: gr.Request) -> dict[str, Any]:
    def op(studio: PromptStudio, actor: str) -> dict[str, Any]:
        event = studio.promote_staging(name, actor=actor, override=bool(override),
                                       reason=reason or "")
        return {"event": event.describe() if event else None,
                "labels": studio.rollout(name)["labels"]}
    return _api(service, request, op)


@guarded
def prompt_test(service: AssistantService, name: str, version: str, request: gr.Request
                ) -> dict[str, Any]:
    def op(studio: PromptStudio, actor: str) -> dict[str, Any]:
        v = (str(version) if version is not None else "").strip().lstrip("v")
        return studio.run_tests(name, int(v) if v.isdigit() else None, actor=actor).as_dict()
    return _api(service, request, op)


@guarded
def prompt_audit(service: AssistantService, name: str, request: gr.Request
                 ) -> dict[str, Any]:
    def op(studio: PromptStudio, _actor: str) -> dict[str, Any]:
        return {"events": [e.describe() for e in studio.audit((name or "").strip() or None)]}
    return _api(service, request, op)


def _build_api(service: AssistantService) -> None:
    """``/prompts``, ``/prompt``, ``/prompt_save``, ``/prompt_label``, ``/prompt_test``,
    ``/prompt_promote`` (staging -> production), ``/prompt_rollback``, ``/prompt_audit`` for
    gradio_client; each checks the ops role. Bad input comes back as ``api_failure``."""
    t1, t2, t3, t4, t5 = (gr.Textbox(visible=False) for _ in range(5))
    n1 = gr.Number(visible=False)
    n2 = gr.Number(visible=False, value=1.0)
    cb = gr.Checkbox(visible=False)
    out = gr.JSON(visible=False)
    b = [gr.Button(visible=False) for _ in range(8)]
    b[0].click(bind(prompts, service), None, [out], api_name="prompts")
    b[1].click(bind(prompt, service), [t1, t2], [out], api_name="prompt")
    b[2].click(bind(prompt_save, service), [t1, t2, t3, t4, t5], [out],
               api_name="prompt_save")
    b[3].click(bind(prompt_label, service), [t1, n1, t2, n2, t3, t4, cb], [out],
               api_name="prompt_label")
    b[4].click(bind(prompt_test, service), [t1, t2], [out], api_name="prompt_test")
    b[5].click(bind(prompt_rollback, service), [t1, t2, t3], [out],
               api_name="prompt_rollback")
    b[6].click(bind(prompt_audit, service), [t1], [out], api_name="prompt_audit")
    b[7].click(bind(prompt_promote, service), [t1, t2, cb], [out], api_name="prompt_promote")
