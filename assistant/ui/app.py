"""The public end-user app (Chat): ``create_chat_app(service)`` returns Blocks without
launching; ``ui/server.py`` mounts it at ``/`` beside the staff app at ``/staff``.

Per-browser state lives in ``gr.State`` (the session id) mirrored into ``gr.BrowserState``
(encrypted localStorage), so a page reload or an app restart resumes the conversation from
SQLite. API clients (gradio_client) get one session per client: ``/chat`` sends a message
and returns the reply; ``/session`` and ``/resume`` tell and switch the session.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from assistant.core.errors import AssistantError
from assistant.service.assistant import REPLACE, AssistantService, clean_message
from assistant.ui.chat import (
    card_markdown,
    error_bubble,
    feedback_values,
    rec_markdown,
    to_chatbot,
    with_options,
)
from assistant.ui.guard import guarded

log = logging.getLogger(__name__)

READY = "Type a message and press Enter"
CSS = """
#tailor-status {opacity: 0.75; font-size: 0.85em}
"""


def _browser_secret(data_dir: Path) -> str:
    """A fixed secret per data dir, so the encrypted browser state survives restarts."""
    path = data_dir / "browser_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def create_chat_app(service: AssistantService) -> gr.Blocks:
    limit = service.settings.max_message_chars
    FACT_CHOICES = [(q.text[:60], q.id) for q in service.spec.questions]  # noqa: N806

    # -- callbacks: unpack state, call the service, format the result -------------
    @guarded
    def restore(saved_id: str | None):
        """Page load: bring back this browser's conversation (and the questionnaire's current
        question), then open the input (it stays closed until then, so a first message
        cannot race the restored session)."""
        sid, _ = service.resume(saved_id)
        guided = service.guided_view(sid) if service.questionnaire_active(sid) else \
            service.questionnaire(sid)
        msgs = service.history(sid)
        history = with_options(to_chatbot(msgs), _replies(sid, guided))
        return (sid, gr.Chatbot(value=history, feedback_value=feedback_values(msgs)),
                sid, gr.Textbox(interactive=True, placeholder=READY),
                gr.Button(interactive=True),
                card_markdown(guided["card"], guided["turn"].get("progress")),
                service.shown_recommendations(sid))

    @guarded
    def accept(text: str, sid: str | None, history: list):
        """Show the person's message at once; an unusable one stays in the box."""
        sid = sid or service.new_session()
        try:
            cleaned = clean_message(text, limit=limit)
        except AssistantError as err:
            gr.Warning(err.for_user())
            return gr.Textbox(value=text), history, sid, sid, ""
        history = [*(history or []), {"role": "user", "content": cleaned}]
        return gr.Textbox(value=""), history, sid, sid, cleaned

    @guarded
    def respond(pending: str, sid: str, history: list) -> Iterator[tuple]:
        if not pending:  # the message was refused: leave the chat as it is
            yield gr.skip(), gr.skip(), gr.skip()
            return
        if service.questionnaire_active(sid):
            yield from _guided_then_suggest(sid, pending, history)
            return
        for update in _stream(service.chat(sid, pending), history):
            yield update, gr.skip(), gr.skip()

    def _guided_then_suggest(sid: str, text: str, history: list) -> Iterator[tuple]:
        """An answer; after a confirmed summary, the recommendations follow."""
        chat, card_md = _guided(sid, text, history)
        yield chat, card_md, gr.skip()
        if service.suggestion_due(sid):
            for shown, items in _suggest(sid, chat):
                yield shown, gr.skip(), items

    def _guided(sid: str, text: str, history: list) -> tuple[list, str]:
        try:
            out = service.guided_reply(sid, text)
        except AssistantError as err:
            return [*history, error_bubble(err)], gr.skip()
        bot = {"role": "assistant", "content": out["turn"]["message"]}
        return (with_options([*history, bot], _replies(sid, out)),
                card_markdown(out["card"], out["turn"].get("progress")))

    @guarded
    def suggest_now(sid: str | None, history: list) -> Iterator[tuple[list, list]]:
        if not sid:
            yield gr.skip(), gr.skip()
            return
        yield from _suggest(sid, history)

    def _suggest(sid: str, history: list) -> Iterator[tuple[list, list]]:
        history = list(history or [])
        waiting = {"role": "assistant", "content": "",
                   "metadata": {"title": "Picking a few things for you…", "status": "pending"}}
        yield [*history, waiting], gr.skip()
        try:
            items = service.recommend(sid)["items"]
            text = ""
            for chunk in service.suggest(sid):
                text = chunk.removeprefix(REPLACE) if chunk.startswith(REPLACE) else text + chunk
                yield [*history, {"role": "assistant", "content": text}], gr.skip()
        except AssistantError as err:
            yield [*history, error_bubble(err)], gr.skip()
            return
        yield [*history, {"role": "assistant", "content": text}], items

    @guarded
    def react(sid: str | None, item: str, value: str) -> list:
        try:
            out = service.item_feedback(sid or "", item, value)
        except AssistantError as err:
            gr.Warning(err.for_user())
            return gr.skip()
        gr.Info({"like": "Noted: more like this.", "dislike": "Noted: less like this.",
                 "not_for_me": "Removed: it won't come back."}[value])
        return out["items"]

    @guarded
    def api_recommend(sid: str | None) -> tuple[dict, str]:
        """Recommendations for this client's session: items with id, name, price, score,
        reasons (popular items, labelled so, while nothing is known)."""
        sid = sid or service.new_session()
        try:
            return service.recommend(sid), sid
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None

    @guarded
    def api_item_feedback(item: str, value: str, sid: str | None) -> tuple[dict, str]:
        """like | dislike | not_for_me on an item; returns the new recommendations."""
        sid = sid or service.new_session()
        try:
            return service.item_feedback(sid, item.strip(), value.strip()), sid
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None

    def _replies(sid: str, guided: dict) -> list[str]:
        """Quick replies while the questionnaire runs, plus the way out to free chat."""
        if not service.questionnaire_active(sid):
            return []
        return [*guided["turn"]["quick_replies"], service.JUST_CHAT]

    @guarded
    def identify(sid: str | None, customer_id: str) -> tuple[list, str]:
        if not sid or not (customer_id or "").strip():
            gr.Warning("Type your customer number (e.g. 17850) or the email you order with.")
            return gr.skip(), gr.skip()
        try:
            out = service.identify(sid, customer_id)
        except AssistantError as err:
            gr.Warning(err.for_user())
            return gr.skip(), gr.skip()
        msgs = service.history(sid)
        return (with_options(to_chatbot(msgs), _replies(sid, out)),
                card_markdown(out["card"], out["turn"].get("progress")))

    @guarded
    def pick(sid: str | None, history: list, evt: gr.SelectData) -> Iterator[tuple]:
        """A quick reply was clicked: it is the person's answer."""
        value = str(evt.value)
        history = [*(history or []), {"role": "user", "content": value}]
        if not sid:
            yield history, gr.skip(), gr.skip()
            return
        if not service.questionnaire_active(sid):
            yield history[:-1], gr.skip(), gr.skip()
            return
        yield from _guided_then_suggest(sid, value, history)

    @guarded
    def edit_fact(sid: str | None, question: str, value: str) -> tuple[list, str]:
        if not sid or not question or not (value or "").strip():
            gr.Warning("Pick a fact and type its new value.")
            return gr.skip(), gr.skip()
        try:
            out = service.questionnaire_edit(sid, question, value)
        except AssistantError as err:
            gr.Warning(err.for_user())
            return gr.skip(), gr.skip()
        msgs = service.history(sid)
        gr.Info(out["turn"]["message"][:200])
        return (with_options(to_chatbot(msgs), _replies(sid, out)),
                card_markdown(out["card"], out["turn"].get("progress")))

    @guarded
    def retry(sid: str | None, history: list) -> Iterator[list]:
        if not sid or service.questionnaire_active(sid):
            yield gr.skip()
            return
        msgs = service.history(sid)
        if msgs and msgs[-1].role == "assistant":
            msgs = msgs[:-1]
        yield from _stream(service.retry(sid), to_chatbot(msgs))

    def _stream(deltas: Iterator[str], history: list) -> Iterator[list]:
        history = list(history or [])
        reply = ""
        try:
            for delta in deltas:
                reply += delta
                yield [*history, {"role": "assistant", "content": reply}]
        except AssistantError as err:
            yield [*history, *([{"role": "assistant", "content": reply}] if reply else []),
                   error_bubble(err)]

    @guarded
    def clear(sid: str | None):
        new = service.new_session()
        guided = service.guided_view(new)
        history = with_options(to_chatbot(service.history(new)), _replies(new, guided))
        return (new, new, history, card_markdown(guided["card"], guided["turn"].get("progress")),
                [])

    @guarded
    def like(sid: str | None, data: gr.LikeData):
        if not sid or not isinstance(data.liked, bool) or not isinstance(data.index, int):
            return
        try:
            service.feedback(sid, data.index, data.liked)
        except AssistantError as err:
            gr.Warning(err.for_user())

    @guarded
    def api_chat(message: str, sid: str | None) -> Iterator[tuple[str, str]]:
        """Send a message in this client's session, as the chat box does: while the guided
        questionnaire runs the reply is its next question ("Just chat" leaves it); after it,
        the model's reply streams. Returns the full reply."""
        sid = sid or service.new_session()
        reply = ""
        try:
            for delta in service.respond(sid, message):
                reply += delta
                yield reply, sid
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None
        yield reply, sid

    @guarded
    def api_questionnaire(message: str, sid: str | None) -> tuple[dict, str]:
        """The guided questionnaire for this client's session: an empty message starts or
        repeats the current question; returns the turn and the "what we know" card."""
        sid = sid or service.new_session()
        try:
            return service.questionnaire(sid, message if message.strip() else None), sid
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None

    @guarded
    def api_question(sid: str | None) -> tuple[dict, str]:
        """The pending question of this client's session: id, text, type, options,
        progress (id is null at the summary or once the questionnaire is over)."""
        sid = sid or service.new_session()
        try:
            return service.pending_question(sid), sid
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None

    @guarded
    def api_profile(sid: str | None) -> tuple[dict, str]:
        """The "what we know" card: facts with source and confidence, the segment with its
        probability and reasons, answered/total."""
        sid = sid or service.new_session()
        try:
            return service.profile(sid), sid
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None

    @guarded
    def api_answer(question_id: str, value: str, sid: str | None) -> tuple[str, str]:
        """Answer one question directly (the pending one, or change an earlier answer);
        returns the reply, as /chat does."""
        sid = sid or service.new_session()
        try:
            return service.answer(sid, question_id.strip(), value)["turn"]["message"], sid
        except AssistantError as err:
            raise gr.Error(err.for_user()) from None

    @guarded
    def api_session(sid: str | None) -> tuple[str, str]:
        """This client's session id (created on first use)."""
        sid = sid or service.new_session()
        return sid, sid

    @guarded
    def api_resume(session_id: str, sid: str | None) -> tuple[list[dict], str]:
        """Switch this client to an earlier session; returns its conversation."""
        sid, msgs = service.resume(session_id.strip() or None)
        return [m.model_dump(include={"role", "content", "status"}) for m in msgs], sid

    # -- layout -------------------------------------------------------------------
    with gr.Blocks(title="Tailor") as demo:
        session = gr.State(None)
        saved = gr.BrowserState(None, storage_key="tailor-session",
                                secret=_browser_secret(service.settings.data_dir))
        pending = gr.State("")
        recs = gr.State([])
        gr.Markdown(f"## {service.settings.shop_name} · Tailor")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    elem_id="tailor-chat",
                    label=f"{service.settings.shop_name} assistant",
                    height=520,
                    buttons=["copy"],
                    placeholder="**Hello!** Ask about gifts, occasions or your order. "
                    "Your conversation is saved: come back any time.",
                )
                with gr.Row():
                    box = gr.Textbox(elem_id="tailor-input", show_label=False, scale=8,
                                     placeholder="Loading your conversation…",
                                     interactive=False, autofocus=True, max_lines=6)
                    send = gr.Button("Send", variant="primary", scale=1, min_width=80,
                                     interactive=False)
                    stop = gr.Button("Stop", variant="stop", scale=1, min_width=80)
                gr.Markdown(f"Replies are written by {service.model_label()} and can be wrong. "
                            "Thumbs up/down under a reply help us improve. "
                            "Staff: [sign in](/staff/).",
                            elem_id="tailor-status")
            with gr.Column(scale=2, min_width=260):
                card = gr.Markdown("### What we know", elem_id="tailor-card")
                with gr.Accordion("Ordered from us before?", open=False):
                    cust_id = gr.Textbox(label="Customer number or email",
                                         placeholder="17850", elem_id="tailor-customer-id")
                    link_btn = gr.Button("Use my order history")
                with gr.Accordion("Change a fact", open=False):
                    fact_q = gr.Dropdown(choices=FACT_CHOICES, label="Fact")
                    fact_v = gr.Textbox(label="New value", placeholder="e.g. about £50")
                    fact_btn = gr.Button("Update")
                gr.Markdown("### Suggestions for you")
                suggest_btn = gr.Button("Show suggestions", size="sm",
                                        elem_id="tailor-suggest")

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
                                    btn.click(react, [session, gr.State(item["id"]),
                                                      gr.State(value)], [recs],
                                              api_visibility="undocumented")
        # hidden components behind the API-only events
        api_in = gr.Textbox(visible=False)
        api_out = gr.Textbox(visible=False)
        api_qid = gr.Textbox(visible=False)
        api_json = gr.JSON(visible=False)
        api_chat_btn = gr.Button(visible=False)
        api_session_btn = gr.Button(visible=False)
        api_resume_btn = gr.Button(visible=False)
        api_questionnaire_btn = gr.Button(visible=False)
        api_question_btn = gr.Button(visible=False)
        api_profile_btn = gr.Button(visible=False)
        api_answer_btn = gr.Button(visible=False)
        api_recommend_btn = gr.Button(visible=False)
        api_item_btn = gr.Button(visible=False)

        # -- events (every one has an api_name) ---------------------------------
        demo.load(restore, [saved], [session, chatbot, saved, box, send, card, recs],
                  api_name="restore",
                  api_visibility="undocumented", queue=False)
        hidden = {"api_visibility": "undocumented"}
        runs = []
        for trigger, name in ((box.submit, "submit"), (send.click, "send")):
            accepted = trigger(accept, [box, session, chatbot],
                               [box, chatbot, session, saved, pending],
                               api_name=f"{name}_accept", **hidden)
            runs.append(accepted.then(respond, [pending, session, chatbot],
                                      [chatbot, card, recs], api_name=f"{name}_respond",
                                      **hidden))
        runs.append(chatbot.retry(retry, [session, chatbot], [chatbot], api_name="retry",
                                  **hidden))
        stop.click(None, None, None, cancels=runs, api_name="stop", **hidden)
        chatbot.clear(clear, [session], [session, saved, chatbot, card, recs], api_name="clear",
                      **hidden)
        chatbot.option_select(pick, [session, chatbot], [chatbot, card, recs],
                              api_name="pick", **hidden)
        suggest_btn.click(suggest_now, [session, chatbot], [chatbot, recs], api_name="suggest",
                          **hidden)
        fact_btn.click(edit_fact, [session, fact_q, fact_v], [chatbot, card],
                       api_name="edit_fact", **hidden)
        link_btn.click(identify, [session, cust_id], [chatbot, card], api_name="identify")
        chatbot.like(like, [session], None, api_name="like", **hidden)

        api_chat_btn.click(api_chat, [api_in, session], [api_out, session], api_name="chat")
        api_session_btn.click(api_session, [session], [api_out, session], api_name="session")
        api_resume_btn.click(api_resume, [api_in, session], [api_json, session],
                             api_name="resume")
        api_questionnaire_btn.click(api_questionnaire, [api_in, session], [api_json, session],
                                    api_name="questionnaire")
        api_question_btn.click(api_question, [session], [api_json, session], api_name="question")
        api_profile_btn.click(api_profile, [session], [api_json, session], api_name="profile")
        api_answer_btn.click(api_answer, [api_qid, api_in, session], [api_out, session],
                             api_name="answer")
        api_recommend_btn.click(api_recommend, [session], [api_json, session],
                                api_name="recommend")
        api_item_btn.click(api_item_feedback, [api_qid, api_in, session], [api_json, session],
                           api_name="item_feedback")
    return demo
