"""The guided questionnaire of a chat session: what a person answers, what their orders
answer for them (a linked customer), the "what we know" card, and the model's optional
part (phrasing questions, reading several answers from one sentence).

A message is handled on a ``Visit``: the session's questionnaire state read once, the
segment model and the engine built once (the engine is cached per segment model and
wording version), saved once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.core.errors import AssistantError, InputError
from assistant.core.text import clean_message
from assistant.questionnaire.assist import check_phrasing, describe_questions, parse_extraction
from assistant.questionnaire.engine import Questionnaire
from assistant.questionnaire.extraction import describe
from assistant.questionnaire.state import (
    SOURCE_CONFIDENCE,
    QuestionnaireState,
    Turn,
    answers_for_classifier,
)
from assistant.segments.model import ASK_ORDER, SegmentModel
from assistant.service.parts import WORDING_TEMPLATE, Parts
from assistant.service.results import Card, Fact, GuidedReply, QuestionView

log = logging.getLogger(__name__)

EXTRACTION_TEMPLATE = "answer_extraction"
# facts a rule over the order history guesses (not what the person did)
INFERRED = {"buyer_type", "interests"}


@dataclass
class Visit:
    """One session's questionnaire, loaded for one message."""

    session_id: str
    state: QuestionnaireState
    segments: SegmentModel | None
    engine: Questionnaire
    started: bool  # a state had been saved before this visit

    @property
    def active(self) -> bool:
        """The questionnaire still takes the chat's messages (not started counts)."""
        return not (self.state.confirmed or self.state.dismissed)

    @property
    def suggestion_due(self) -> bool:
        """The summary was confirmed and no recommendations were shown yet."""
        return self.state.confirmed and not self.state.suggested


class Guided:
    # the chat runs the questionnaire first; these words leave it for free chat
    JUST_CHAT = "Just chat"
    JUST_CHAT_WORDS = {"just chat", "skip the questions", "stop the questions"}

    def __init__(self, parts: Parts,
                 on_change: Callable[[str, QuestionnaireState, Card], None]) -> None:
        self.parts = parts
        self.on_change = on_change  # the profile follows every change of the answers
        # the engine of the segments and wording in use: (segments, wording version, engine)
        self._engine: tuple[SegmentModel | None, str, Questionnaire] | None = None
        self._phrased: dict[tuple[str, str], str] = {}  # (question, template version)

    # -- loading and saving -----------------------------------------------------------
    def open(self, session_id: str) -> Visit:
        """The session's questionnaire; ``InputError`` for an unknown session."""
        store = self.parts.store
        if not store.get_session(session_id):
            raise InputError("Unknown session.", "Reload the page to start a new one.")
        saved = store.load_questionnaire(session_id)
        state = QuestionnaireState.model_validate_json(saved) if saved else QuestionnaireState()
        segments = self.parts.segments_or_none()
        return Visit(session_id, state, segments, self.engine(segments), bool(saved))

    def peek(self, session_id: str) -> QuestionnaireState | None:
        """The saved state without checks (None before the questionnaire started)."""
        saved = self.parts.store.load_questionnaire(session_id)
        return QuestionnaireState.model_validate_json(saved) if saved else None

    def save(self, visit: Visit) -> None:
        self.parts.store.save_questionnaire(visit.session_id, visit.state.model_dump_json())
        visit.started = True

    def engine(self, segments: SegmentModel | None) -> Questionnaire:
        """The engine for these segments and the wording served now (built once each)."""
        wording = self.parts.wording()
        cached = self._engine
        if cached and cached[0] is segments and cached[1] == wording.template.version:
            return cached[2]
        engine = self._build_engine(segments, wording)
        self._engine = (segments, wording.template.version, engine)
        return engine

    def _build_engine(self, segments: SegmentModel | None, wording: Any) -> Questionnaire:
        spec = self.parts.spec
        planner = segments.planner(self.parts.settings.segment_confidence) if segments else None
        if planner is None:
            return Questionnaire(spec, wording=wording, extractor=self.parts.extractor)

        def chooser(state: QuestionnaireState, candidates: list[str]) -> str | None:
            """Segment questions by information gain until the segment is confident, then
            the rest in spec order; None (stop) when only segment questions remain."""
            answers = answers_for_classifier(state)
            segment_qs = [c for c in candidates if c in ASK_ORDER]
            best = planner.next_question(answers, segment_qs) if segment_qs else None
            if best is not None:
                return best
            others = [c for c in candidates if c not in ASK_ORDER]
            return others[0] if others else None

        return Questionnaire(spec, chooser, wording=wording, extractor=self.parts.extractor)

    # -- the card -----------------------------------------------------------------------
    def card(self, visit: Visit) -> Card:
        """What we know: facts with their source and confidence, and the segment."""
        state, engine = visit.state, visit.engine
        facts = [Fact(question=item.question_id, label=item.question, answer=item.answer,
                      value=state.answers[item.question_id], source=item.source,
                      confidence=SOURCE_CONFIDENCE.get(item.source, 1.0))
                 for item in engine.summary(state) if item.question_id in state.answers]
        progress = engine.progress(state)
        card = Card(facts=facts, answered=progress.answered, total=progress.total,
                    customer_id=state.customer_id)
        answers = answers_for_classifier(state)
        if visit.segments and (answers or state.customer_id):
            card.segment = visit.segments.from_answers(answers, state.customer_id)
            # what the segment means is told once it rests on how they shop (their orders,
            # or how often they order), not on a guess from their interests alone
            if state.customer_id or "order_frequency" in answers:
                card.meaning = self.parts.meanings.for_customer(card.segment_name)
        return card

    def quick_replies(self, visit: Visit, turn: Turn) -> list[str]:
        """Quick replies while the questionnaire runs, plus the way out to free chat."""
        return [*turn.quick_replies, self.JUST_CHAT] if visit.active else []

    # -- steps ------------------------------------------------------------------------------
    def finish(self, visit: Visit, turn: Turn, *, changed: bool = True) -> GuidedReply:
        """Save the state, phrase the question, build the card once; the profile follows."""
        self.save(visit)
        turn = self.phrase(visit.session_id, turn)
        card = self.card(visit)
        if changed:
            self.on_change(visit.session_id, visit.state, card)
        return GuidedReply(turn=turn, card=card)

    def step(self, visit: Visit, text: str | None = None) -> GuidedReply:
        """Start or continue: no text repeats the current question, else it is an answer."""
        if text is None:
            turn = visit.engine.start(visit.state)
        else:
            extracted = self.extract(visit, text)
            turn = visit.engine.handle(visit.state, text, extracted)
        return self.finish(visit, turn)

    def reply(self, visit: Visit, text: str) -> GuidedReply:
        """One chat message while the questionnaire runs ("Just chat" leaves it)."""
        if text.strip().lower() in self.JUST_CHAT_WORDS:
            turn = visit.engine.dismiss(visit.state)
            self.save(visit)
            return GuidedReply(turn=turn, card=self.card(visit))
        return self.step(visit, text)

    def would_fail(self, visit: Visit, text: str) -> bool:
        """Whether the questionnaire would not understand this message at all (tried on a
        copy of the state: nothing is changed)."""
        trial = visit.state.model_copy(deep=True)
        turn = visit.engine.handle(trial, text)
        return bool(turn.error) and not turn.captured

    def absorb(self, visit: Visit, text: str) -> tuple[str, dict[str, Any], Card]:
        """Facts a message states after the questionnaire, stored (the profile follows):
        (the acknowledgement, {question: value}, the card)."""
        found = visit.engine.absorb(visit.state, text)
        self.save(visit)
        card = self.card(visit)
        if not found:
            return "", {}, card
        self.on_change(visit.session_id, visit.state, card)
        ack = visit.engine.say("ack", answer=describe(self.parts.spec, found))
        return ack, {qid: f.value for qid, f in found.items()}, card

    def view(self, session_id: str) -> GuidedReply:
        """On (re)load: the current question with its card. A new session's first question
        is saved as its first message."""
        fresh = not self.parts.store.messages(session_id)
        out = self.step(self.open(session_id))
        if fresh:
            self.parts.store.add_message(session_id, "assistant", out.turn.message)
        return out

    def pending_question(self, session_id: str) -> QuestionView:
        """The question waiting for an answer (``/question``)."""
        visit = self.open(session_id)
        state, engine = visit.state, visit.engine
        turn = engine.start(state) if visit.active else None
        self.save(visit)
        progress = engine.progress(state)
        if turn is None or turn.question_id is None:
            return QuestionView(text=turn.message if turn else "",
                                quick_replies=turn.quick_replies if turn else [],
                                progress=progress, done=True, confirmed=state.confirmed,
                                dismissed=state.dismissed)
        q = self.parts.spec.question(turn.question_id)
        return QuestionView(id=q.id, text=self.phrase(session_id, turn).ask or q.text,
                            type=q.type, required=q.required,
                            options=[{"value": o.value, "label": o.display}
                                     for o in q.options],
                            quick_replies=turn.quick_replies, help=q.help, example=q.example,
                            progress=progress)

    def answer(self, session_id: str, question_id: str, value: Any) -> GuidedReply:
        """A direct answer to one question (``/answer``): the pending question is answered
        like a chat message; any other shown question is edited. Saved in the chat too."""
        spec, store = self.parts.spec, self.parts.store
        visit = self.open(session_id)
        if question_id not in spec.ids:
            raise InputError(f"There is no question '{question_id}'.",
                             "Ask /question for the pending one; ids: "
                             + ", ".join(spec.ids) + ".")
        text = value if isinstance(value, str) else json.dumps(value)
        if not visit.started:  # a first, direct answer
            self.view(session_id)
            visit = self.open(session_id)
        if visit.state.current == question_id and not visit.state.pending \
                and isinstance(value, str):
            text = clean_message(value, limit=self.parts.settings.max_message_chars)
            store.add_message(session_id, "user", text)
            out = self.reply(visit, text)
        else:
            out = self.finish(visit, visit.engine.edit(visit.state, question_id, value))
            store.add_message(session_id, "user", f"{question_id}: {text}"[:500])
        store.add_message(session_id, "assistant", out.turn.message)
        return out

    def edit(self, session_id: str, question_id: str, value: Any) -> GuidedReply:
        """Edit one fact from the card (or the summary)."""
        visit = self.open(session_id)
        if not visit.started:
            raise InputError("There is no questionnaire in this session yet.",
                             "Start it first.")
        return self.finish(visit, visit.engine.edit(visit.state, question_id, value))

    # -- returning customers ----------------------------------------------------------
    def identify(self, session_id: str, who: str, proof: str = "", *,
                 client: str | None = None) -> GuidedReply:
        """Link a returning customer to their orders once they prove who they are (a
        customer number with one of their order numbers, or an email with the code sent to
        it: service/identity.py). Then the questions their behaviour answers are filled in
        (source "observed", or "inferred" for rules over orders) and not asked; the segment
        uses both. Before the proof nothing of the customer's orders is read."""
        visit = self.open(session_id)
        result = self.parts.identity.verify(session_id, who, proof, client=client)
        if result.customer_id is None:  # a code was sent (or not: the same words)
            turn = visit.engine.start(visit.state)
            turn.message = f"{result.message}\n\n{turn.ask or turn.message}".strip()
            self.parts.store.add_message(session_id, "assistant", result.message)
            return self.finish(visit, turn, changed=False)
        segments = self.parts.segment_model()
        visit.segments, visit.engine = segments, self.engine(segments)
        filled = self._fill_observed(visit, result.customer_id)
        turn = visit.engine.start(visit.state)
        message = self.parts.wording()("identified", count=filled)
        turn.message = f"{message}\n\n{turn.ask or turn.message}".strip()
        self.parts.store.add_message(session_id, "assistant", turn.message)
        return self.finish(visit, turn)

    def _fill_observed(self, visit: Visit, customer_id: str) -> int:
        assert visit.segments is not None
        observed = visit.segments.observed_answers(customer_id)  # InputError when unknown
        visit.state.customer_id = customer_id
        filled = 0
        for q in ASK_ORDER:  # order_frequency before last_order, which depends on it
            value = observed.get(q)
            if value in (None, "", []) or not visit.engine.is_shown(visit.state, q):
                continue
            source = "inferred" if q in INFERRED else "observed"
            turn = visit.engine.edit(visit.state, q, value, source=source)
            filled += 0 if turn.error else 1
        return filled

    # -- the model's part (only when configured) ----------------------------------------
    def phrase(self, session_id: str, turn: Turn) -> Turn:
        """Let the model phrase the question; keep the spec's text when it fails or drifts."""
        settings, spec = self.parts.settings, self.parts.spec
        if not (settings.questionnaire_uses_model and turn.question_id and turn.ask):
            return turn
        q = spec.question(turn.question_id)
        if q.type == "number":  # the range is part of the meaning: keep it exact
            return turn
        tpl = self.parts.templates.get(WORDING_TEMPLATE)
        key = (q.id, tpl.version)
        phrased = self._phrased.get(key)
        if phrased is None:
            try:
                raw = self.parts.llm.complete(
                    tpl.render(shop_name=settings.shop_name, question=q.text), tpl.parameters,
                    template_name=tpl.name, template_version=tpl.version,
                    session_id=session_id)
                phrased = check_phrasing(q.text, raw, self.parts.similarity)
            except AssistantError as err:
                log.warning("question phrasing failed (%s); showing the spec's text", err)
                phrased = ""
            self._phrased[key] = phrased
        if not phrased:
            return turn
        message = f"{turn.prefix}\n\n{phrased}".strip() if turn.prefix else phrased
        return turn.model_copy(update={"message": message, "ask": phrased})

    def extract(self, visit: Visit, text: str) -> dict[str, Any] | None:
        """Several answers from one sentence, read by the model (None when off or failed;
        the engine checks every value)."""
        state, engine = visit.state, visit.engine
        if not (self.parts.settings.questionnaire_uses_model and state.current
                and not state.done and len(text.split()) >= 4):
            return None
        open_qs = [qid for qid in engine.eligible(state)
                   if qid not in state.answers and qid not in state.skipped]
        tpl = self.parts.templates.get(EXTRACTION_TEMPLATE)
        try:
            raw = self.parts.llm.complete(
                tpl.render(questions=describe_questions(self.parts.spec, open_qs),
                           message=text),
                tpl.parameters, template_name=tpl.name, template_version=tpl.version,
                session_id=visit.session_id)
        except AssistantError as err:
            log.warning("answer extraction failed (%s); using the parser only", err)
            return None
        return parse_extraction(raw, open_qs)
