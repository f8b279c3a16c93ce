"""The Agent desk tab (staff app, role ``agent``): open a customer, paste a ticket, get a
streamed, cited draft with unsupported claims highlighted; re-tone, shorten, lengthen,
regenerate, edit in place, save as final, rate. The callbacks are module-level functions taking
the service (the builder binds it), so tests call them without a browser: they unpack state,
call the service (which checks the agent role) and format; the drafting itself is
``support.SupportDesk`` behind ``service``."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import gradio as gr

from assistant.core.errors import AssistantError
from assistant.core.text import inert_markdown
from assistant.service.assistant import AssistantService
from assistant.ui.guard import bind, guarded

TONES = ["neutral", "friendlier", "more formal"]
EMPTY_SIDEBAR = ("### Customer\n*Type a customer number from the order data (e.g. 17850) and "
                 "press Open, or draft from the ticket alone.*")


def _md_text(text: str) -> str:
    """Customer-supplied text shown in Markdown: inert (no HTML, links or images)."""
    return inert_markdown(text)


def _items(items: Any) -> str:
    """"3 items: Hand Warmer Union Jack, Red Polka Dot…" for an order's product names."""
    if not isinstance(items, list):
        return html.escape(str(items))
    names = ", ".join(html.escape(str(i).title()) for i in items[:2])
    more = f" +{len(items) - 2} more" if len(items) > 2 else ""
    return f"{len(items)}: {names}{more}"


def sidebar_markdown(c: dict[str, Any]) -> str:
    """The customer sidebar: segment, RFM, recent orders, answers, drafts."""
    lines = [f"### Customer {html.escape(str(c.get('id', '')))}"]
    if c.get("segment"):
        lines.append(f"**{c['segment']}** · {c.get('probability', 0):.0%} sure")
        lines += [f"- {_md_text(r)}" for r in c.get("reasons", [])[:3]]
    rfm = c.get("rfm") or {}
    if rfm:
        lines.append(f"\n**RFM** R{rfm.get('r')} F{rfm.get('f')} M{rfm.get('m')} · "
                     f"last order {rfm.get('recency_days', '?')} days ago · "
                     f"{rfm.get('frequency', '?')} orders · £{rfm.get('monetary', 0):,.2f}")
    value = c.get("value")
    if value:
        lines.append(f"\n**Next {value['horizon_days']:.0f} days (predicted)** "
                     f"{value['expected_purchases']:.1f} days with an order · "
                     f"£{value['expected_value']:,.0f} · churn risk "
                     + (f"{value['churn_risk']:.0%}" if value.get("repeat_buyer")
                        else "not estimated (no repeat purchase yet)"))
    orders = c.get("recent_orders") or []
    if orders:
        lines.append("\n**Recent orders**\n\n| order | date | items | amount |\n|---|---|---|---|")
        for o in orders:
            flag = " (returned)" if o.get("returned") else ""
            lines.append(f"| {o['order_id']}{flag} | {str(o['date'])[:10]} | "
                         f"{_items(o['items'])} | £{o['amount']:,.2f} |")
    answers = c.get("answers") or []
    if answers:
        lines.append("\n**Said in the chat**")
        for a in answers:
            facts = a.get("facts", a) if isinstance(a, dict) else {}
            for key, value in list(facts.items())[:8]:
                said = value.get("value") if isinstance(value, dict) else value
                lines.append(f"- {html.escape(str(key))}: {_md_text(str(said))}")
    recs = c.get("recommendations") or []
    if recs:
        lines.append("\n**Recommended now**")
        lines += [f"- {_md_text(r['name'])} · £{r['price']:.2f}" for r in recs[:5]
                  if r.get("price") is not None]
    drafts = c.get("drafts") or []
    if drafts:
        lines.append("\n**Earlier drafts**")
        lines += [f"- #{d['id']} {str(d.get('created_at', ''))[:16]} · {d.get('intent', '')} · "
                  f"{d.get('status', '')}" for d in drafts[:5]]
    return "\n".join(lines)


def check_spans(text: str, flags: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """HighlightedText value: the draft split into plain and flagged spans."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    for f in sorted(flags, key=lambda f: f.get("start", 0)):
        start, end = int(f.get("start", -1)), int(f.get("end", -1))
        if start < pos or end > len(text) or start < 0:
            continue
        if start > pos:
            out.append((text[pos:start], None))
        out.append((text[start:end], f"{f['kind']}: {f['reason']}"))
        pos = end
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def citations_markdown(citations: list[dict[str, Any]]) -> str:
    if not citations:
        return "*No help passages were used.*"
    parts = []
    for c in citations:
        parts.append(f"**[{c['n']}] {html.escape(c.get('title', ''))}** "
                     f"(*{c.get('intent', '')}*)\n\n{_md_text(c.get('text', ''))}")
    return "\n\n---\n\n".join(parts)


def status_markdown(result: dict[str, Any]) -> str:
    bits = [f"**Status: {result.get('status', '?')}**"]
    if result.get("resolved_at"):
        bits.append(f"ticket resolved by {html.escape(str(result.get('resolved_by')))}")
    if result.get("intent"):
        bits.append(f"intent *{result['intent']}* ({result.get('intent_confidence', 0):.0%})")
    flags = result.get("flags") or []
    if flags:
        bits.append(f"⚠️ {len(flags)} unsupported claim(s) highlighted below: check before "
                    "sending")
    else:
        bits.append("✓ every checked claim is supported")
    if result.get("shown"):
        which = "the model's rewrite" if result["shown"] == "polished" else "the composed draft"
        bits.append(f"showing {which}: {html.escape(result.get('shown_reason') or '')}")
    if result.get("injection"):
        bits.append("⚠️ the ticket tries to instruct the assistant ("
                    + ", ".join(html.escape(p) for p in result.get("injection_phrases", [])[:3])
                    + "): check the draft does not follow it")
    bits.append(f"template {result.get('template_version', '')} · {result.get('model', '')}")
    return " · ".join(bits)


# ----------------------------------------------------------------------------- callbacks
# Module-level, the service first (the builder binds it with ``guard.bind``): tests call
# them without a browser. The service checks the role (agent) of ``request.username``.


@guarded
def open_customer(service: AssistantService, customer_id: str, request: gr.Request
                  ) -> tuple[str, str]:
    """(sidebar, the customer the drafts are for): the sidebar of an existing customer."""
    cid = (customer_id or "").strip()
    if not cid:
        return EMPTY_SIDEBAR, ""
    try:
        return sidebar_markdown(service.desk_customer(request.username, cid)), cid
    except AssistantError as err:
        gr.Warning(err.for_user())
        return EMPTY_SIDEBAR, ""


def _write(service: AssistantService, customer: str, ticket: str, tone: str,
           revise: str | None, previous: str, request: gr.Request) -> Iterator[tuple]:
    """Stream a draft into (text, check, status, citations, draft id, original)."""
    try:
        run = service.start_draft(agent=request.username, customer_id=customer or None,
                                  ticket=ticket, tone=tone or "neutral", revise=revise,
                                  previous=previous or None)
    except AssistantError as err:
        gr.Warning(err.for_user())
        yield (gr.skip(),) * 6
        return
    text, finished = "", False
    try:
        for delta in run:
            text += delta
            yield (text, [(text, None)], "*Writing…*", gr.skip(), None, gr.skip())
        finished = True
    except AssistantError as err:
        gr.Warning(err.for_user())
        yield (text, [(text, None)], f"**Failed:** {err.message}", gr.skip(), None, "")
        return
    finally:
        if not finished:  # cancelled: the ticket changed (or Stop): the draft is stale
            run.cancel()
    result = run.result
    yield (result["text"], check_spans(result["text"], result["flags"]),
           status_markdown(result), citations_markdown(result["citations"]),
           result["id"], result["text"])


@guarded
def draft(service: AssistantService, customer: str, ticket: str, tone: str,
          request: gr.Request) -> Iterator[tuple]:
    """Draft reply: a new draft for the ticket."""
    yield from _write(service, customer, ticket, tone, None, "", request)


@guarded
def revise(service: AssistantService, kind: str, customer: str, ticket: str, tone: str,
           previous: str, request: gr.Request) -> Iterator[tuple]:
    """Shorter, Longer, Regenerate (``kind``, bound by the builder): a revision of
    ``previous``."""
    yield from _write(service, customer, ticket, tone, kind, previous, request)


@guarded
def save(service: AssistantService, draft_id: str | None, text: str, request: gr.Request
         ) -> str:
    """Save as final: the (edited) draft text; the new status line."""
    if not draft_id:
        gr.Warning("Draft a reply first.")
        return gr.skip()
    try:
        out = service.save_final_draft(draft_id, request.username, text)
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.skip()
    gr.Info("Saved as final.")
    return status_markdown(out)


@guarded
def resolve(service: AssistantService, draft_id: str | None, request: gr.Request) -> str:
    """Mark the ticket resolved (after the reply was saved as final); the status line."""
    if not draft_id:
        gr.Warning("Draft a reply first.")
        return gr.skip()
    try:
        out = service.resolve_ticket(request.username, draft_id)
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.skip()
    gr.Info("Ticket marked resolved.")
    return status_markdown(out)


@guarded
def rate(service: AssistantService, liked: bool, draft_id: str | None, reason: str,
         request: gr.Request) -> None:
    """Good draft / Needs work (``liked``, bound by the builder), with an optional reason."""
    if not draft_id:
        gr.Warning("Draft a reply first.")
        return
    try:
        service.rate_draft(request.username, draft_id, liked, reason or "")
    except AssistantError as err:
        gr.Warning(err.for_user())
        return
    gr.Info("Thanks: feedback saved.")


@guarded
def api_customer(service: AssistantService, customer_id: str, request: gr.Request
                 ) -> dict[str, Any]:
    """Sidebar JSON of a customer (agent role)."""
    try:
        return service.desk_customer(request.username, customer_id.strip())
    except AssistantError as err:
        raise gr.Error(err.for_user()) from None


@guarded
def api_draft(service: AssistantService, customer_id: str, ticket: str, tone: str,
              request: gr.Request) -> dict[str, Any]:
    """A complete draft as JSON: text, citations, intent, flags, template version."""
    try:
        run = service.start_draft(agent=request.username,
                                  customer_id=customer_id.strip() or None,
                                  ticket=ticket, tone=(tone or "neutral").strip())
        return run.collect()
    except AssistantError as err:
        raise gr.Error(err.for_user()) from None


# ----------------------------------------------------------------------------- the tab


def build_desk_tab(service: AssistantService) -> None:
    """Render the tab inside the current Blocks and wire its events."""
    draft_id = gr.State(None)
    original = gr.State("")
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            with gr.Row():
                cust = gr.Textbox(label="Customer number", placeholder="17850", scale=3,
                                  elem_id="tailor-desk-customer")
                open_btn = gr.Button("Open", scale=1, min_width=70)
            current = gr.State("")
            sidebar = gr.Markdown(EMPTY_SIDEBAR, elem_id="tailor-desk-sidebar")
        with gr.Column(scale=3):
            ticket = gr.Textbox(label="Ticket (pasted from the customer)", lines=6,
                                max_lines=14, elem_id="tailor-ticket",
                                placeholder="Hi, my order hasn't arrived yet…")
            tone = gr.Radio(TONES, value="neutral", label="Tone")
            with gr.Row():
                draft_btn = gr.Button("Draft reply", variant="primary")
                shorter = gr.Button("Shorter")
                longer = gr.Button("Longer")
                regen = gr.Button("Regenerate")
            status = gr.Markdown("", elem_id="tailor-draft-status")
            text = gr.Textbox(label="Draft (edit in place, then save as final)", lines=8,
                              max_lines=20, interactive=True, buttons=["copy"],
                              elem_id="tailor-draft")
            check = gr.HighlightedText(label="Checked against the customer's records",
                                       combine_adjacent=False, show_legend=False,
                                       elem_id="tailor-draft-check")
            with gr.Accordion("Sources [n] used in the draft", open=False):
                cites = gr.Markdown("*No draft yet.*", elem_id="tailor-draft-citations")
            with gr.Row():
                save_btn = gr.Button("Save as final", variant="primary")
                resolved_btn = gr.Button("Ticket resolved", elem_id="tailor-draft-resolved")
                up = gr.Button("Good draft")
                down = gr.Button("Needs work")
                reason = gr.Textbox(show_label=False, placeholder="Why? (optional)", scale=2)

    outs = [text, check, status, cites, draft_id, original]
    hidden = {"api_visibility": "undocumented"}
    open_btn.click(bind(open_customer, service), [cust], [sidebar, current],
                   api_name="desk_open", **hidden)
    cust.submit(bind(open_customer, service), [cust], [sidebar, current],
                api_name="desk_open_enter", **hidden)
    runs = [draft_btn.click(bind(draft, service), [current, ticket, tone], outs,
                            api_name="desk_draft", **hidden)]
    for button, kind in ((shorter, "shorter"), (longer, "longer"), (regen, "regenerate")):
        runs.append(button.click(bind(revise, service, kind), [current, ticket, tone, text],
                                 outs, api_name=f"desk_{kind}", **hidden))
    # the ticket changed while a draft was being written: that draft is stale
    ticket.change(None, None, None, cancels=runs, api_name="desk_ticket_changed", **hidden)
    save_btn.click(bind(save, service), [draft_id, text], [status], api_name="desk_save",
                   **hidden)
    resolved_btn.click(bind(resolve, service), [draft_id], [status],
                       api_name="desk_resolved", **hidden)
    up.click(bind(rate, service, True), [draft_id, reason], None, api_name="desk_like",
             **hidden)
    down.click(bind(rate, service, False), [draft_id, reason], None, api_name="desk_dislike",
               **hidden)
    # API-only (gradio_client, agent role)
    api_in = gr.Textbox(visible=False)
    api_ticket = gr.Textbox(visible=False)
    api_tone = gr.Textbox(visible=False)
    api_out = gr.JSON(visible=False)
    api_c = gr.Button(visible=False)
    api_d = gr.Button(visible=False)
    api_c.click(bind(api_customer, service), [api_in], [api_out], api_name="customer")
    api_d.click(bind(api_draft, service), [api_in, api_ticket, api_tone], [api_out],
                api_name="draft")
