"""The public end-user app (Chat): ``create_chat_app(service)`` returns Blocks without
launching; ``ui/server.py`` mounts it at ``/`` beside the staff app at ``/staff``.

Per-browser state lives in ``gr.State`` (the session id) mirrored into ``gr.BrowserState``
(encrypted localStorage), so a page reload or an app restart resumes the conversation from
SQLite. API clients (gradio_client) get one session per client: ``/chat`` sends a message
and returns the reply; ``/session`` and ``/resume`` tell and switch the session.

Every callback is a module-level function whose first argument is the service (bound with
``guard.bind``), so tests call them without a browser. A message, typed or clicked, goes
through ``service.turn`` and the callbacks only draw what it yields.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.core.errors import AssistantError, InputError
from assistant.core.text import clean_message
from assistant.service.assistant import AssistantService
from assistant.service.chat import fold
from assistant.service.results import GuidedReply, TurnUpdate
from assistant.ui.chat import (
    card_markdown,
    error_bubble,
    feedback_values,
    item_markdown,
    rec_markdown,
    to_chatbot,
    with_options,
)
from assistant.ui.guard import bind

log = logging.getLogger(__name__)

READY = "Type a message and press Enter"
CSS = """
#tailor-status {opacity: 0.75; font-size: 0.85em}
"""
REACTED = {"like": "Noted: more like this.", "dislike": "Noted: less like this.",
           "not_for_me": "Removed: it won't come back."}


def _browser_secret(data_dir: Path) -> str:
    """A fixed secret per data dir, so the encrypted browser state survives restarts."""
    path = data_dir / "browser_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


# -- drawing: service results -> component values -----------------------------------------
def card_of(out: GuidedReply) -> str:
    return card_markdown(out.card.model_dump(), out.turn.progress.model_dump())


def guided_chat(service: AssistantService, sid: str, out: GuidedReply) -> list:
    """The saved conversation, with the quick replies of a running questionnaire."""
    replies = [*out.turn.quick_replies, service.JUST_CHAT] \
        if service.questionnaire_active(sid) else []
    return with_options(to_chatbot(service.history(sid)), replies)


def draw(history: list, update: TurnUpdate) -> list:
    """The chat after one update of a turn: its replies (and a working note) after the
    history the turn started from."""
    bubbles: list[dict[str, Any]] = [{"role": "assistant", "content": r}
                                     for r in update.replies]
    if update.working:
        bubbles.append({"role": "assistant", "content": "",
                        "metadata": {"title": update.working, "status": "pending"}})
    return with_options([*history, *bubbles], update.quick_replies)


def play(updates: Iterator[TurnUpdate], history: list) -> Iterator[tuple]:
    """A turn drawn as it happens: (chat, card, cards) per update; a failure shows in the
    chat after whatever was already written."""
    shown = list(history)
    try:
        for update in updates:
            shown = draw(history, update)
            card = card_markdown(update.card.model_dump(),
                                 update.progress.model_dump() if update.progress else None) \
                if update.card else gr.skip()
            yield shown, card, update.items if update.items is not None else gr.skip()
    except AssistantError as err:
        settled = [m for m in shown if not (m.get("metadata") or {}).get("status")]
        yield [*settled, error_bubble(err)], gr.skip(), gr.skip()


# -- chat callbacks ------------------------------------------------------------------------
def restore(service: AssistantService, saved_id: str | None):
    """Page load: bring back this browser's conversation (and the questionnaire's current
    question), then open the input (it stays closed until then, so a first message cannot
    race the restored session)."""
    sid, _ = service.resume(saved_id)
    out = service.guided_view(sid) if service.questionnaire_active(sid) else \
        service.questionnaire(sid)
    msgs = service.history(sid)
    history = guided_chat(service, sid, out)
    return (sid, gr.Chatbot(value=history, feedback_value=feedback_values(msgs)),
            sid, gr.Textbox(interactive=True, placeholder=READY), gr.Button(interactive=True),
            card_of(out), service.shown_recommendations(sid))


def accept(service: AssistantService, text: str, sid: str | None, history: list):
    """Show the person's message at once; an unusable one stays in the box."""
    sid = sid or service.new_session()
    try:
        cleaned = clean_message(text, limit=service.settings.max_message_chars)
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.Textbox(value=text), history, sid, sid, ""
    history = [*(history or []), {"role": "user", "content": cleaned}]
    return gr.Textbox(value=""), history, sid, sid, cleaned


def respond(service: AssistantService, pending: str, sid: str, history: list
            ) -> Iterator[tuple]:
    """The accepted message's turn, drawn as it streams."""
    if not pending:  # the message was refused: leave the chat as it is
        yield gr.skip(), gr.skip(), gr.skip()
        return
    yield from play(service.turn(sid, pending), history)


def pick(service: AssistantService, sid: str | None, history: list, evt: gr.SelectData
         ) -> Iterator[tuple]:
    """A quick reply was clicked: it is the person's answer."""
    value = str(evt.value)
    history = [*(history or []), {"role": "user", "content": value}]
    if not sid:
        yield history, gr.skip(), gr.skip()
        return
    if not service.questionnaire_active(sid):
        yield history[:-1], gr.skip(), gr.skip()
        return
    yield from play(service.turn(sid, value), history)


def suggest_now(service: AssistantService, sid: str | None, history: list
                ) -> Iterator[tuple[list, list]]:
    """"Show suggestions": the cards and their message."""
    if not sid:
        yield gr.skip(), gr.skip()
        return
    for chat, _card, items in play(service.suggestions(sid), list(history or [])):
        yield chat, items


def react(service: AssistantService, sid: str | None, item: str, value: str) -> list:
    try:
        out = service.item_feedback(sid or "", item, value)
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.skip()
    gr.Info(REACTED[value])
    return out.items


def show_item(service: AssistantService, sid: str | None, item: str) -> str:
    """A card's "Show me": the product's details (the service logs it as a click)."""
    try:
        details = service.item_details(sid or "", item)
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.skip()
    return item_markdown(details)


def client_of(request: gr.Request | None) -> str | None:
    """The caller's address (rate limits count per address as well as per session)."""
    client = getattr(request, "client", None) if request is not None else None
    return getattr(client, "host", None)


def identify(service: AssistantService, sid: str | None, who: str, proof: str,
             request: gr.Request) -> tuple[list, str, str]:
    """Link the session's orders: a customer number with an order number, or an email
    (a code is sent) and then the code. The proof box is emptied either way."""
    if not sid or not (who or "").strip():
        gr.Warning("Type your customer number (e.g. 17850) or the email you order with.")
        return gr.skip(), gr.skip(), gr.skip()
    try:
        out = service.identify(sid, who, proof or "", client=client_of(request))
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.skip(), gr.skip(), ""
    return guided_chat(service, sid, out), card_of(out), ""


def edit_fact(service: AssistantService, sid: str | None, question: str, value: str
              ) -> tuple[list, str]:
    if not sid or not question or not (value or "").strip():
        gr.Warning("Pick a fact and type its new value.")
        return gr.skip(), gr.skip()
    try:
        out = service.questionnaire_edit(sid, question, value)
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.skip(), gr.skip()
    gr.Info(out.turn.message[:200])
    return guided_chat(service, sid, out), card_of(out)


def retry(service: AssistantService, sid: str | None, history: list) -> Iterator[list]:
    if not sid or service.questionnaire_active(sid):
        yield gr.skip()
        return
    msgs = service.history(sid)
    if msgs and msgs[-1].role == "assistant":
        msgs = msgs[:-1]
    base = to_chatbot(msgs)
    reply = ""
    try:
        for delta in service.retry(sid):
            reply = fold(reply, delta)
            yield [*base, {"role": "assistant", "content": reply}]
    except AssistantError as err:
        yield [*base, *([{"role": "assistant", "content": reply}] if reply else []),
               error_bubble(err)]


def clear(service: AssistantService, sid: str | None):
    """The bin icon: this conversation is erased (its messages, facts, profile and
    reactions), and a new one starts."""
    if sid:
        try:
            service.forget_conversation(sid)
        except AssistantError as err:  # already gone: nothing to erase
            log.info("clear: %s", err.message)
    return fresh_chat(service)


def fresh_chat(service: AssistantService) -> tuple:
    """A new session with its first question: (session, saved, chat, card, cards)."""
    new = service.new_session()
    out = service.guided_view(new)
    return new, new, guided_chat(service, new, out), card_of(out), []


EXPORT_KEEP_S = 600  # an export file (and Gradio's copy of it) is deleted after this


def download_data(service: AssistantService, sid: str | None) -> Any:
    """"Download my data": everything stored for this session, as a JSON file."""
    if not sid:
        gr.Warning("There is no data yet: nothing was said in this chat.")
        return gr.skip()
    try:
        data = service.my_data(sid)
    except AssistantError as err:
        gr.Warning(err.for_user())
        return gr.skip()
    exports = Path(tempfile.gettempdir()) / "tailor-exports"
    for old in exports.glob("*/my-data.json"):  # earlier exports: personal data, not kept
        if time.time() - old.stat().st_mtime > EXPORT_KEEP_S:
            shutil.rmtree(old.parent, ignore_errors=True)
    exports.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=exports))
    path = folder / "my-data.json"
    path.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False),
                    encoding="utf-8")
    return gr.update(value=str(path), visible=True)


def erase_data(service: AssistantService, sid: str | None):
    """"Erase my data": this session's data (and, once linked with proof, what the app
    stored about the customer) is deleted for good; a new, empty chat starts."""
    if sid:
        try:
            counts = service.erase(sid)
        except AssistantError as err:
            gr.Warning(err.for_user())
        else:
            gr.Info(f"Erased: {counts.get('messages', 0)} messages, your card and profile.")
    return *fresh_chat(service), gr.update(value=None, visible=False)


def no_details() -> str:
    """After the bin or "Erase my data": the last product's details go with the chat."""
    return ""


def like(service: AssistantService, sid: str | None, data: gr.LikeData):
    if not sid or not isinstance(data.liked, bool) or not isinstance(data.index, int):
        return
    try:
        service.feedback(sid, data.index, data.liked)
    except AssistantError as err:
        gr.Warning(err.for_user())


RATING_LABEL = "How helpful was this chat? (1 = not at all, 5 = very)"


def parse_rating(value: str | int | None) -> int:
    """The rating control's value as 1-5 (an ``InputError`` for anything else)."""
    try:
        score = int(str(value).strip())
    except ValueError:
        score = 0
    if score not in (1, 2, 3, 4, 5):
        raise InputError(f"{value!r} is not a rating from 1 to 5.",
                         "Pick 1 (not helpful) to 5 (very helpful).")
    return score


def rate(service: AssistantService, sid: str | None, value: str | None) -> None:
    """The chat's 1-5 rating (a change of the control; cleared choices are ignored)."""
    if not sid or not value:
        return
    try:
        service.rate_chat(sid, parse_rating(value))
    except AssistantError as err:
        gr.Warning(err.for_user())
        return
    gr.Info("Thank you for rating this chat.")


# -- the HTTP API (gradio_client): one session per client --------------------------------------
def api(call: Callable[[AssistantService, str, Any], Any]
        ) -> Callable[..., tuple[Any, str]]:
    """An API endpoint from ``call(service, sid, *inputs)``: the client's session (created
    on first use) goes last in and out; a result with ``model_dump`` is sent as JSON; an
    ``AssistantError`` becomes the client's error message with its hint."""
    def endpoint(service: AssistantService, *args: Any) -> tuple[Any, str]:
        *inputs, sid = args
        sid = sid or service.new_session()
        try:
            out = call(service, sid, *inputs)
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None
        return (out.model_dump() if hasattr(out, "model_dump") else out), sid

    endpoint.__name__ = endpoint.__qualname__ = f"api_{call.__name__}"
    endpoint.__doc__ = call.__doc__
    return endpoint


def api_chat(service: AssistantService, message: str, sid: str | None
             ) -> Iterator[tuple[str, str]]:
    """Send a message in this client's session, as the chat box does: while the guided
    questionnaire runs the reply is its next question ("Just chat" leaves it); after it,
    the model's reply streams. Returns the full reply."""
    sid = sid or service.new_session()
    try:
        for update in service.turn(sid, message):
            yield update.text, sid
    except AssistantError as err:
        raise gr.Error(err.for_user()) from None


def turn(service: AssistantService, sid: str, message: str) -> Any:
    """Send a message in this client's session and get the whole turn as JSON: ``text``,
    ``kind`` (question | support | recommendation | chat), ``intent`` and
    ``intent_confidence`` (support), ``citations`` (help passages used),
    ``facts_captured`` ([{question, value}] taken from the message), ``question`` (the id
    now pending, or null) and ``items`` (recommendations, when they follow)."""
    last = None
    facts: list[dict[str, Any]] = []
    for update in service.turn(sid, message):
        facts = update.facts_captured or facts
        last = update
    if last is None:
        raise AssistantError("There was no reply to that message.", "Send it again.")
    return last.result(facts)


def questionnaire(service: AssistantService, sid: str, message: str) -> dict[str, Any]:
    """The guided questionnaire for this client's session: an empty message starts or
    repeats the current question; returns the turn and the "what we know" card (as
    /profile: the segment's meaning for the person, not the staff's name)."""
    out = service.questionnaire(sid, message if message.strip() else None)
    return out.model_dump(exclude={"card": {"segment"}})


def api_link(service: AssistantService, who: str, proof: str, sid: str | None,
             request: gr.Request) -> tuple[dict[str, Any], str]:
    """Link this client's session to a customer's orders: ``who`` is the customer number
    (``proof``: the number of one of their orders) or an email (no ``proof``: a 6-digit code
    is sent to it if it is on the shop's list; then the code as ``proof``). Returns
    {"linked", "message", "card"}; a failed proof is an error, the same whatever was wrong."""
    sid = sid or service.new_session()
    try:
        out = service.identify(sid, who, proof or "", client=client_of(request))
    except AssistantError as err:
        raise gr.Error(err.for_user()) from None
    card = out.card.model_dump(exclude={"segment"})
    return {"linked": bool(card.get("customer_id")), "message": out.turn.message,
            "card": card}, sid


def my_data(service: AssistantService, sid: str) -> Any:
    """Everything stored for this client's session (and its verified customer): messages,
    facts with their sources, profile, reactions, feedback, model-call metrics."""
    return service.my_data(sid)


def api_erase(service: AssistantService, sid: str | None) -> tuple[dict[str, int], None]:
    """Erase this client's session data (and, once linked with proof, the customer's) for
    good; what was removed, per kind. The next call starts a new session."""
    if not sid:
        raise gr.Error("There is nothing to erase: this client has no session yet.")
    try:
        return service.erase(sid), None
    except AssistantError as err:
        raise gr.Error(err.for_user()) from None


def question(service: AssistantService, sid: str) -> Any:
    """The pending question of this client's session: id, text, type, options,
    progress (id is null at the summary or once the questionnaire is over)."""
    return service.pending_question(sid)


def profile(service: AssistantService, sid: str) -> Any:
    """The "what we know" card: facts with source and confidence, what the person's
    segment means for them (``meaning``; the staff's segment name is not sent),
    answered/total."""
    return service.profile(sid).model_dump(exclude={"segment"})


def answer(service: AssistantService, sid: str, question_id: str, value: str) -> str:
    """Answer one question directly (the pending one, or change an earlier answer);
    returns the reply, as /chat does."""
    return service.answer(sid, question_id.strip(), value).turn.message


def recommend(service: AssistantService, sid: str) -> Any:
    """Recommendations for this client's session: items with id, name, price, score,
    reasons (popular items, labelled so, while nothing is known)."""
    return service.recommend(sid)


def item_feedback(service: AssistantService, sid: str, item: str, value: str) -> Any:
    """like | dislike | not_for_me on an item; returns the new recommendations."""
    return service.item_feedback(sid, item.strip(), value.strip())


def item_details(service: AssistantService, sid: str, item: str) -> Any:
    """A product's details: item, name, typical price, group, customers who bought it and
    up to 3 items often bought with it ("Show me" on a card; counted as a click on it)."""
    return service.item_details(sid, item.strip())


def rate_chat(service: AssistantService, sid: str, value: str) -> str:
    """Rate this client's conversation 1-5 (how helpful it was); returns "ok"."""
    service.rate_chat(sid, parse_rating(value))
    return "ok"


def session(service: AssistantService, sid: str) -> str:
    """This client's session id (created on first use)."""
    return sid


def api_resume(service: AssistantService, session_id: str, sid: str | None
               ) -> tuple[list[dict], str]:
    """Switch this client to an earlier session; returns its conversation."""
    sid, msgs = service.resume(session_id.strip() or None)
    return [m.model_dump(include={"role", "content", "status"}) for m in msgs], sid


# -- layout ---------------------------------------------------------------------------------
def create_chat_app(service: AssistantService) -> gr.Blocks:
    # Gradio's copies of files sent to the browser (exports of personal data) are deleted
    # after EXPORT_KEEP_S
    with gr.Blocks(title="Tailor", delete_cache=(EXPORT_KEEP_S, EXPORT_KEEP_S)) as demo:
        state = {"session": gr.State(None), "pending": gr.State(""), "recs": gr.State([]),
                 "saved": gr.BrowserState(None, storage_key="tailor-session",
                                          secret=_browser_secret(service.settings.data_dir))}
        gr.Markdown(f"## {service.settings.shop_name} · Tailor")
        with gr.Row():
            with gr.Column(scale=3):
                chat = _chat_column(service)
            with gr.Column(scale=2, min_width=260):
                side = _side_column(service, state["session"], state["recs"])
        _wire_chat(service, demo, state, chat, side)
        _wire_api(service, state["session"])
    return demo


def _chat_column(service: AssistantService) -> dict[str, Any]:
    shop = service.settings.shop_name
    chatbot = gr.Chatbot(
        elem_id="tailor-chat", label=f"{shop} assistant", height=520, buttons=["copy"],
        placeholder="**Hello!** Ask about gifts, occasions or your order. "
        "Your conversation is saved: come back any time.")
    with gr.Row():
        box = gr.Textbox(elem_id="tailor-input", show_label=False, scale=8,
                         placeholder="Loading your conversation…", interactive=False,
                         autofocus=True, max_lines=6)
        send = gr.Button("Send", variant="primary", scale=1, min_width=80, interactive=False)
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=80)
    gr.Markdown(f"Replies are written by {service.model_label()} and can be wrong. "
                "Thumbs up/down under a reply help us improve. Staff: [sign in](/staff/).",
                elem_id="tailor-status")
    rating = gr.Radio(["1", "2", "3", "4", "5"], label=RATING_LABEL, elem_id="tailor-rating")
    return {"chatbot": chatbot, "box": box, "send": send, "stop": stop, "rating": rating}


def _side_column(service: AssistantService, session: gr.State, recs: gr.State
                 ) -> dict[str, Any]:
    card = gr.Markdown("### What we know", elem_id="tailor-card")
    with gr.Accordion("Ordered from us before?", open=False):
        cust_id = gr.Textbox(label="Customer number or email", placeholder="17850",
                             elem_id="tailor-customer-id")
        proof = gr.Textbox(label="Proof: one of your order numbers, or the code we email you",
                           placeholder="536365", type="password", elem_id="tailor-proof")
        link_btn = gr.Button("Use my order history")
        gr.Markdown("*With an email and no proof, we send a code to it.*")
    with gr.Accordion("Change a fact", open=False):
        fact_q = gr.Dropdown(choices=[(q.text[:60], q.id) for q in service.spec.questions],
                             label="Fact")
        fact_v = gr.Textbox(label="New value", placeholder="e.g. about £50")
        fact_btn = gr.Button("Update")
    gr.Markdown("### Suggestions for you")
    suggest_btn = gr.Button("Show suggestions", size="sm", elem_id="tailor-suggest")
    on_react = bind(react, service)
    on_show = bind(show_item, service)

    @gr.render(inputs=[recs, session])
    def cards(items: list, sid: str | None):
        if not items:
            gr.Markdown("*Answer a few questions (or press Show suggestions) and "
                        "I'll pick things for you.*", elem_id="tailor-recs-empty")
            return
        for item in items:
            with gr.Group(elem_classes=["tailor-rec"]):
                gr.Markdown(rec_markdown(item))
                with gr.Row():
                    for label, value in (("More like this", "like"),
                                         ("Less like this", "dislike"),
                                         ("Not for me", "not_for_me")):
                        btn = gr.Button(label, size="sm", min_width=40)
                        btn.click(on_react, [session, gr.State(item["id"]), gr.State(value)],
                                  [recs], api_visibility="undocumented")
                    show = gr.Button("Show me", size="sm", min_width=40)
                    show.click(on_show, [session, gr.State(item["id"])], [details],
                               api_visibility="undocumented")

    details = gr.Markdown(elem_id="tailor-item-details")

    with gr.Accordion("Your data", open=False):
        gr.Markdown(service.privacy_notice(), elem_id="tailor-privacy")
        with gr.Row():
            download_btn = gr.Button("Download my data", size="sm")
            erase_btn = gr.Button("Erase my data", size="sm", variant="stop")
        export = gr.File(label="Your data (JSON)", visible=False, elem_id="tailor-export")
    return {"card": card, "cust_id": cust_id, "proof": proof, "link_btn": link_btn,
            "download_btn": download_btn, "erase_btn": erase_btn, "export": export,
            "fact_q": fact_q,
            "fact_v": fact_v, "fact_btn": fact_btn, "suggest_btn": suggest_btn,
            "details": details}


def _wire_chat(service: AssistantService, demo: gr.Blocks, state: dict[str, Any],
               chat: dict[str, Any], side: dict[str, Any]) -> None:
    """The browser's events (hidden from the API page; every one has an api_name)."""
    session, saved, pending, recs = (state[k] for k in ("session", "saved", "pending", "recs"))
    chatbot, box, send, card = chat["chatbot"], chat["box"], chat["send"], side["card"]
    hidden = {"api_visibility": "undocumented"}
    demo.load(bind(restore, service), [saved],
              [session, chatbot, saved, box, send, card, recs], api_name="restore",
              queue=False, **hidden)
    runs = []
    for trigger, name in ((box.submit, "submit"), (send.click, "send")):
        accepted = trigger(bind(accept, service), [box, session, chatbot],
                           [box, chatbot, session, saved, pending],
                           api_name=f"{name}_accept", **hidden)
        runs.append(accepted.then(bind(respond, service), [pending, session, chatbot],
                                  [chatbot, card, recs], api_name=f"{name}_respond", **hidden))
    runs.append(chatbot.retry(bind(retry, service), [session, chatbot], [chatbot],
                              api_name="retry", **hidden))
    chat["stop"].click(None, None, None, cancels=runs, api_name="stop", **hidden)
    cleared = chatbot.clear(bind(clear, service), [session],
                            [session, saved, chatbot, card, recs], api_name="clear", **hidden)
    chatbot.option_select(bind(pick, service), [session, chatbot], [chatbot, card, recs],
                          api_name="pick", **hidden)
    side["suggest_btn"].click(bind(suggest_now, service), [session, chatbot], [chatbot, recs],
                              api_name="suggest", **hidden)
    side["fact_btn"].click(bind(edit_fact, service), [session, side["fact_q"], side["fact_v"]],
                           [chatbot, card], api_name="edit_fact", **hidden)
    side["link_btn"].click(bind(identify, service), [session, side["cust_id"], side["proof"]],
                           [chatbot, card, side["proof"]], api_name="identify", **hidden)
    chatbot.like(bind(like, service), [session], None, api_name="like", **hidden)
    chat["rating"].input(bind(rate, service), [session, chat["rating"]], None,
                         api_name="rate", **hidden)
    side["download_btn"].click(bind(download_data, service), [session], [side["export"]],
                               api_name="download_data", **hidden)
    erased = side["erase_btn"].click(bind(erase_data, service), [session],
                                     [session, saved, chatbot, card, recs, side["export"]],
                                     api_name="erase_data", **hidden)
    for name, event in (("clear", cleared), ("erase_data", erased)):  # a new chat
        event.then(bind(no_details), None, [side["details"]], api_name=f"{name}_details",
                   **hidden)


def _wire_api(service: AssistantService, sid: gr.State) -> None:
    """The API-only events, on hidden components."""
    text_in, qid_in = gr.Textbox(visible=False), gr.Textbox(visible=False)
    text_out, json_out = gr.Textbox(visible=False), gr.JSON(visible=False)
    endpoints: list[tuple[Callable[..., Any], list[Any], Any, str]] = [
        (api_chat, [text_in], text_out, "chat"),
        (api(turn), [text_in], json_out, "turn"),
        (api(session), [], text_out, "session"),
        (api_resume, [text_in], json_out, "resume"),
        (api(questionnaire), [text_in], json_out, "questionnaire"),
        (api(question), [], json_out, "question"),
        (api(profile), [], json_out, "profile"),
        (api(answer), [qid_in, text_in], text_out, "answer"),
        (api(recommend), [], json_out, "recommend"),
        (api(item_feedback), [qid_in, text_in], json_out, "item_feedback"),
        (api(item_details), [text_in], json_out, "item_details"),
        (api(rate_chat), [text_in], text_out, "rate_chat"),
        (api(my_data), [], json_out, "my_data"),
        (api_erase, [], json_out, "erase"),
    ]
    gr.Button(visible=False).click(bind(api_link, service), [qid_in, text_in, sid],
                                   [json_out, sid], api_name="link")
    for fn, inputs, output, name in endpoints:
        gr.Button(visible=False).click(bind(fn, service), [*inputs, sid], [output, sid],
                                       api_name=name)

