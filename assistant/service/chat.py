"""The chat: one path for every message (``turn``), whoever sends it: the browser, the
``/chat`` API and ``assistant chat`` all call it and only format what it yields.

While the guided questionnaire runs, a message is its answer; once the person confirms the
summary, the recommendations follow in the same turn (ranked once, the cards and the
message from the same list). After the questionnaire (confirmed or "Just chat"), the model
answers, streamed. The conversation is saved as it goes: the person's message before the
reply, the reply when it is complete (a stopped one with what was written).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator

from assistant.core.errors import AssistantError, InputError
from assistant.core.schemas import ChatMessage, Message
from assistant.core.text import clean_message
from assistant.prompts.grounding import Facts
from assistant.service.guided import Guided, Visit
from assistant.service.limits import RateLimiter
from assistant.service.parts import Parts
from assistant.service.results import TurnUpdate
from assistant.service.shopping import REPLACE, Shopping
from assistant.support.checks import check_draft
from assistant.support.compose import Composed, compose_answer
from assistant.support.context import CustomerFacts
from assistant.support.injection import detect_injection
from assistant.support.routing import CHAT, SHOPPING, SUPPORT, Route

log = logging.getLogger(__name__)

CHAT_TEMPLATE = "chat"
# history sent to the model, newest first, until this many characters (small local context)
HISTORY_CHARS = 3000
PICKING = "Picking a few things for you…"
# a support question takes over a questionnaire turn only when the router is this sure
SUPPORT_DURING_QUESTIONS = 0.7
INTENT_MIN = 0.3  # below: the help base is searched across every intent
_GREETING = re.compile(r"^\W*(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening)|"
                       r"greetings|yo)\b", re.IGNORECASE)
_THANKS = re.compile(r"\b(?:thanks|thank you|cheers|ta)\b", re.IGNORECASE)
_HOW_ARE_YOU = re.compile(r"\bhow are (?:you|u)\b|\bhow'?s it going\b", re.IGNORECASE)
_BOT = re.compile(r"\b(?:are you (?:a )?(?:bot|robot|human|real|ai)|who are you|your name)\b",
                  re.IGNORECASE)


def small_talk_line(text: str) -> str | None:
    """A short, fixed reply to small talk (no model: nothing it could invent); None when
    the message is not one of these kinds."""
    if _BOT.search(text):
        return "I'm the shop's assistant (a program, not a person), here to help you find " \
               "something you'll love."
    if _HOW_ARE_YOU.search(text):
        return "I'm well, thank you! Happy to help you find something."
    if _THANKS.search(text):
        return "You're welcome!"
    if _GREETING.search(text):
        return "Hello! Nice to meet you."
    return None


STEERING_LINE = ("I can't change how I work or make offers, but I'm glad to help you find "
                 "something or answer questions about orders and delivery.")
CHAT_FALLBACK = ("I'm the shop's assistant: I can help you find something you'll love, or "
                 "answer questions about orders, delivery and returns. What are you looking "
                 "for today?")
NO_HELP = ("Sorry, I can't look that up right now. Please try again in a moment, or ask "
           "our support team.")


def fold(text: str, chunk: str) -> str:
    """A streamed chunk added to the text so far (``REPLACE`` starts over)."""
    return chunk.removeprefix(REPLACE) if chunk.startswith(REPLACE) else text + chunk


def final_text(stream: Iterable[str]) -> str:
    """The text a stream of chunks ends with."""
    text = ""
    for chunk in stream:
        text = fold(text, chunk)
    return text


class Chat:
    def __init__(self, parts: Parts, guided: Guided, shopping: Shopping,
                 customer_facts: Callable[[str], CustomerFacts] | None = None) -> None:
        self.parts = parts
        self.guided = guided
        self.shopping = shopping
        self.customer_facts = customer_facts  # a linked customer's orders (the desk's)
        # per session, counted in the store: shared by every app process
        self.pace = RateLimiter(parts.settings.messages_per_minute, store=parts.store)

    # -- sessions ---------------------------------------------------------------------
    def new_session(self) -> str:
        return self.parts.store.create_session().id

    def resume(self, session_id: str | None) -> tuple[str, list[ChatMessage]]:
        """The session and its conversation; an unknown or empty id starts a new one."""
        store = self.parts.store
        if session_id and store.get_session(session_id):
            return session_id, store.messages(session_id)
        return self.new_session(), []

    # -- one message --------------------------------------------------------------------
    def turn(self, session_id: str, text: str) -> Iterator[TurnUpdate]:
        """Handle one message: an ``InputError`` before anything is saved when it cannot be
        used; then updates until the last one (``done``). The message is routed first: a
        support question gets a help-base answer (and the questionnaire resumes), shopping
        goes to the questionnaire or, after it, to new suggestions; small talk after the
        questionnaire goes to the model."""
        text = clean_message(text, limit=self.parts.settings.max_message_chars)
        visit = self.guided.open(session_id)
        if not self.pace.hit(session_id):
            raise InputError("You are sending messages faster than we can read them.",
                             "Please wait a moment, then send it again (nothing was lost).")
        route = self.route(visit, text)
        if route is not None and route.kind == SUPPORT:
            yield self.support(session_id, visit, text, route)
            return
        steering = bool(detect_injection(text))
        if visit.active and (steering or (
                route is not None and route.kind == CHAT and small_talk_line(text)
                and self.guided.would_fail(visit, text))):
            # an attempt to steer the assistant is answered politely and nothing is taken
            yield self.small_talk(session_id, visit, text,
                                  STEERING_LINE if steering else small_talk_line(text))
            return
        if not visit.active:
            if route is not None and route.kind == SHOPPING and not steering:
                yield from self.shop(session_id, visit, text)
                return
            reply = ""
            for delta in self.chat(session_id, text):
                reply = fold(reply, delta)
                yield TurnUpdate(session_id=session_id, replies=[reply])
            yield TurnUpdate(session_id=session_id, replies=[reply] if reply else [],
                             done=True)
            return
        store = self.parts.store
        store.add_message(session_id, "user", text)
        out = self.guided.reply(visit, text)
        store.add_message(session_id, "assistant", out.turn.message)
        first = TurnUpdate(session_id=session_id, replies=[out.turn.message],
                           quick_replies=self.guided.quick_replies(visit, out.turn),
                           card=out.card, progress=out.turn.progress, guided=True,
                           kind="recommendation" if visit.suggestion_due else "question",
                           facts_captured=[{"question": q, "value": v}
                                           for q, v in out.turn.captured.items()],
                           question=out.turn.question_id, done=not visit.suggestion_due)
        yield first
        if visit.suggestion_due:
            yield from self.suggestions(session_id, visit, first)

    # -- routing ------------------------------------------------------------------------
    def route(self, visit: Visit, text: str) -> Route | None:
        """What kind of message this is (None without a trained router: the chat then runs
        as before). While the questionnaire runs, only a clear support question leaves it:
        an answer to the pending question stays an answer."""
        router = self.parts.router()
        if router is None:
            return None
        route = router.route(text, facts=bool(visit.engine.extractor.extract(text)))
        if visit.active and route.kind == SUPPORT and (
                route.confidence < SUPPORT_DURING_QUESTIONS or len(text.split()) < 3):
            return None
        return route

    def small_talk(self, session_id: str, visit: Visit, text: str,
                   line: str | None) -> TurnUpdate:
        """Small talk while the questionnaire runs ("hi!", "thanks"), or a message that
        tries to steer the assistant: a fixed line and the pending question again; no
        failure counted, nothing taken from the message."""
        store = self.parts.store
        store.add_message(session_id, "user", text)
        turn = visit.engine.start(visit.state)
        self.guided.save(visit)
        reply = f"{line or ''}\n\n{turn.ask or turn.message}".strip()
        store.add_message(session_id, "assistant", reply)
        return TurnUpdate(session_id=session_id, replies=[reply],
                          quick_replies=self.guided.quick_replies(visit, turn), kind=CHAT,
                          question=turn.question_id, progress=turn.progress, guided=True,
                          done=True)

    def support(self, session_id: str, visit: Visit, text: str, route: Route) -> TurnUpdate:
        """A help-base answer (filled with a linked customer's order facts, its source
        named); then, while the questionnaire runs, the question it was waiting on."""
        store = self.parts.store
        store.add_message(session_id, "user", text)
        answer = self.help_answer(visit, text, route)
        replies = [f"{answer.text}\n\n{answer.source}" if answer else NO_HELP]
        quick: list[str] = []
        question = None
        if visit.active:
            turn = visit.engine.start(visit.state)
            self.guided.save(visit)
            ask = turn.ask or turn.message
            replies.append(f"Now, back to your questions: {ask}" if visit.started and turn.ask
                           else turn.message)
            quick = self.guided.quick_replies(visit, turn)
            question = turn.question_id
        for reply in replies:
            store.add_message(session_id, "assistant", reply)
        return TurnUpdate(session_id=session_id, replies=replies, quick_replies=quick,
                          kind="support", intent=answer.intent if answer else route.intent,
                          intent_confidence=route.intent_confidence,
                          citations=answer.citations if answer else [], question=question,
                          done=True)

    def help_answer(self, visit: Visit, text: str, route: Route) -> Composed | None:
        """The best help passage for the message, composed for the person (None when the
        help base cannot be searched)."""
        intent = route.intent if route.intent_confidence >= INTENT_MIN else None
        try:
            base = self.parts.help_base()
            if intent is not None and intent not in base.intents():
                intent = None
            hits = base.search(text, k=1, intent=intent)
        except AssistantError as err:
            log.warning("no help answer: %s", err.message)
            return None
        if not hits:
            return None
        customer = None
        cid = visit.state.customer_id
        if cid and self.customer_facts is not None:
            try:
                customer = self.customer_facts(cid)
            except AssistantError:
                customer = None
        return compose_answer(hits[0], customer, intent)

    def shop(self, session_id: str, visit: Visit, text: str) -> Iterator[TurnUpdate]:
        """After the questionnaire: the facts a message states, then suggestions for them."""
        store = self.parts.store
        store.add_message(session_id, "user", text)
        ack, captured, card = self.guided.absorb(visit, text)
        if ack:
            store.add_message(session_id, "assistant", ack)
        before = TurnUpdate(session_id=session_id, replies=[ack] if ack else [], card=card,
                            kind="recommendation",
                            facts_captured=[{"question": q, "value": v}
                                            for q, v in captured.items()])
        yield before
        yield from self.suggestions(session_id, visit, before)

    def suggestions(self, session_id: str, visit: Visit | None = None,
                    before: TurnUpdate | None = None) -> Iterator[TurnUpdate]:
        """The cards and their message (after a confirmed summary, or "Show suggestions")."""
        head = before.replies if before else []
        # the card was drawn with the answer before: later updates leave it as it is
        base = (before or TurnUpdate(session_id=session_id)).model_copy(
            update={"card": None, "progress": None})
        yield base.model_copy(update={"working": PICKING, "done": False})
        cards, stream = self.shopping.suggest(session_id, visit, before.card if before else None)
        text = ""
        for chunk in stream:
            text = fold(text, chunk)
            yield base.model_copy(update={"replies": [*head, text], "done": False})
        yield base.model_copy(update={"replies": [*head, text], "items": cards.items,
                                      "done": True})

    def respond(self, session_id: str, text: str) -> Iterator[str]:
        """``turn`` as text deltas, for a terminal: the model's free-chat reply streams; the
        recommendation message comes whole once checked (it may be replaced while it
        streams, which a terminal cannot undo)."""
        shown = ""
        for update in self.turn(session_id, text):
            if update.working or (len(update.replies) > 1 and not update.done):
                continue
            full = update.text
            delta = full[len(shown):] if full.startswith(shown) else REPLACE + full
            if delta:
                yield delta
            shown = full

    # -- free chat with the model -------------------------------------------------------
    def _model_reply(self, session_id: str) -> Iterator[str]:
        """The model's reply to the conversation so far, as text deltas (``REPLACE`` starts
        over). A stream cut short is tried once more; a reply that states products, prices,
        order facts, discounts or promises (nothing of the kind is in its context) or a
        model that fails after its retries is replaced by the standard reply."""
        store, parts = self.parts.store, self.parts
        msgs = store.messages(session_id)
        last = msgs[-1]
        history: list[Message] = []
        budget = HISTORY_CHARS
        for m in reversed(msgs[:-1]):
            budget -= len(m.content)
            if budget < 0:
                break
            history.insert(0, Message(role=m.role, content=m.content))
        saved = store.load_profile(session_id)
        tpl = parts.templates.route(CHAT_TEMPLATE, session_id,
                                    segment=saved["segment"] if saved else None)
        prompt = tpl.render(shop_name=parts.settings.shop_name, history=history,
                            message=last.content)
        shown = ""
        for attempt in range(2):
            gen = parts.llm.generate(prompt, tpl.parameters, template_name=tpl.name,
                                     template_version=tpl.version, session_id=session_id)
            try:
                for delta in gen:
                    shown += delta
                    yield delta
            except AssistantError as err:
                log.warning("chat reply failed (%s)", err.message)
            finally:
                # a stopped reply keeps what was written (the reader closed the stream)
                if gen.outcome == "stopped" and gen.text.strip():
                    store.add_message(session_id, "assistant", gen.text.strip(),
                                      status="stopped", llm_call_id=gen.call_id)
            if gen.outcome == "ok":
                reasons = self.reply_problems(gen.text)
                if not reasons:
                    store.add_message(session_id, "assistant", gen.text.strip() or "…",
                                      status="ok", llm_call_id=gen.call_id)
                    return
                log.info("chat reply replaced: %s", "; ".join(reasons))
                break
            cut = gen.error is not None and (bool(gen.text) or "before it was finished"
                                             in gen.error.message)
            if attempt == 0 and cut:
                if shown:
                    yield REPLACE
                shown = ""
                continue  # a cut stream: once more
            break
        yield REPLACE + CHAT_FALLBACK
        store.add_message(session_id, "assistant", CHAT_FALLBACK, status="fallback",
                          llm_call_id=gen.call_id)

    def reply_problems(self, text: str) -> list[str]:
        """What a free-chat reply must not state (its context holds no products, prices,
        order facts or offers): the grounding flags against empty facts."""
        flags = check_draft(text, Facts(catalog=self.parts.catalog_names()), citations=0)
        return [f"{f['kind']} '{f['text']}'" for f in flags]

    def chat(self, session_id: str, text: str) -> Iterator[str]:
        """The part of a turn after the questionnaire: the message saved, the model's reply
        streamed as text deltas (``turn`` calls it; so do tests of the model path)."""
        text = clean_message(text, limit=self.parts.settings.max_message_chars)
        self.parts.store.add_message(session_id, "user", text)
        yield from self._model_reply(session_id)

    def retry(self, session_id: str) -> Iterator[str]:
        """Regenerate the last reply (the old one is kept, marked superseded)."""
        store = self.parts.store
        msgs = store.messages(session_id)
        if msgs and msgs[-1].role == "assistant":
            store.supersede(msgs[-1].id)
            msgs = msgs[:-1]
        if not msgs:
            raise InputError("There is nothing to retry yet.", "Send a message first.")
        yield from self._model_reply(session_id)

    def feedback(self, session_id: str, index: int, liked: bool) -> ChatMessage:
        msgs = self.parts.store.messages(session_id)
        if not 0 <= index < len(msgs) or msgs[index].role != "assistant":
            raise InputError("Only the assistant's replies can be rated.",
                             "Use the thumbs under a reply.")
        self.parts.store.add_feedback(msgs[index].id, 1 if liked else -1)
        return msgs[index]

    def rate_chat(self, session_id: str, score: int) -> None:
        """The person's 1-5 rating of the conversation, into the event log with their
        segment (a session that said nothing yet cannot rate)."""
        visit = self.guided.open(session_id)
        if not self.parts.store.messages(session_id):
            raise InputError("There is no conversation to rate yet.",
                             "Chat first, then rate how helpful it was.")
        self.parts.events.satisfaction(session_id, score,
                                       segment=self.guided.card(visit).segment_name)
