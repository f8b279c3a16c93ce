"""AssistantService: the one API the UI, the CLI and HTTP clients call."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.config import REPO_ROOT, Settings
from assistant.errors import AssistantError, InputError
from assistant.llm import ChatModel, LLMClient, build_model
from assistant.prompts import TemplateRegistry
from assistant.questionnaire import (
    Questionnaire,
    QuestionnaireState,
    answers_for_classifier,
    load_spec,
)
from assistant.schemas import ChatMessage, Message
from assistant.segmentation import (
    ASK_ORDER,
    Progress,
    SegmentModel,
    build_segment_model,
    dashboard_data,
)
from assistant.store import Store

log = logging.getLogger(__name__)

CHAT_TEMPLATE = "chat"
DEFAULT_ORDERS = REPO_ROOT / "data" / "online_retail.csv.gz"  # shipped real data
# history sent to the model, newest first, until this many characters (small local context)
HISTORY_CHARS = 3000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060-\u2064]")


def clean_message(text: str | None, *, limit: int) -> str:
    """Normalize a chat message or explain why it cannot be used."""
    text = unicodedata.normalize("NFC", text or "")
    text = _CONTROL.sub("", text).replace("\r\n", "\n").strip()
    if not text:
        raise InputError("Your message is empty.", "Type a question or a few words, then send.")
    if len(text) > limit:
        raise InputError(
            f"Your message is {len(text):,} characters long; the limit is {limit:,}.",
            "Shorten it, or send the most important part first. Nothing was sent.",
        )
    return text


class AssistantService:
    def __init__(self, settings: Settings, store: Store, templates: TemplateRegistry,
                 llm: LLMClient) -> None:
        self.settings = settings
        self.store = store
        self.templates = templates
        self.llm = llm
        self.spec = load_spec()
        self._segments: SegmentModel | None = None
        self._segments_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, model: ChatModel | None = None) -> AssistantService:
        """Build every part from settings; templates are validated here (fail fast)."""
        templates = TemplateRegistry(settings.prompts_dir)
        templates.get(CHAT_TEMPLATE)
        store = Store(settings.db_path)
        model = model or build_model(settings)
        where = (settings.openai_base_url or "api.openai.com") if model.provider == "openai" else ""
        return cls(settings, store, templates, LLMClient(model, store, where=where))

    def warm_up(self) -> None:
        """Load what the first reply needs (the local model) before serving."""
        self.llm.warm_up()

    def model_label(self) -> str:
        """Short, for the UI: which model answers and whether it runs on this machine."""
        m = self.llm.model
        where = "on this machine" if m.provider == "local" else self.llm.where
        return f"{m.model} ({m.provider}, {where})"

    def describe(self) -> str:
        m = self.llm.model
        extra = f" at {self.llm.where}" if m.provider == "openai" else ""
        path = getattr(m, "path", None)
        if path:
            extra = f" from {path}"
        return f"provider={m.provider} model={m.model}{extra}"

    # -- sessions ---------------------------------------------------------------
    def new_session(self) -> str:
        return self.store.create_session().id

    def resume(self, session_id: str | None) -> tuple[str, list[ChatMessage]]:
        """The session and its conversation; an unknown or empty id starts a new one."""
        if session_id and self.store.get_session(session_id):
            return session_id, self.store.messages(session_id)
        return self.new_session(), []

    def history(self, session_id: str) -> list[ChatMessage]:
        return self.store.messages(session_id)

    # -- chat -------------------------------------------------------------------
    def chat(self, session_id: str, text: str) -> Iterator[str]:
        """Save the person's message, then stream the reply (text deltas). Raises
        InputError before saving anything when the message cannot be used."""
        text = clean_message(text, limit=self.settings.max_message_chars)
        self.store.add_message(session_id, "user", text)
        yield from self._reply(session_id)

    def retry(self, session_id: str) -> Iterator[str]:
        """Regenerate the last reply (the old one is kept, marked superseded)."""
        msgs = self.store.messages(session_id)
        if msgs and msgs[-1].role == "assistant":
            self.store.supersede(msgs[-1].id)
            msgs = msgs[:-1]
        if not msgs:
            raise InputError("There is nothing to retry yet.", "Send a message first.")
        yield from self._reply(session_id)

    def _reply(self, session_id: str) -> Iterator[str]:
        msgs = self.store.messages(session_id)
        last = msgs[-1]
        history: list[Message] = []
        budget = HISTORY_CHARS
        for m in reversed(msgs[:-1]):
            budget -= len(m.content)
            if budget < 0:
                break
            history.insert(0, Message(role=m.role, content=m.content))
        tpl = self.templates.get(CHAT_TEMPLATE)
        prompt = tpl.render(shop_name=self.settings.shop_name, history=history,
                            message=last.content)
        gen = self.llm.generate(prompt, tpl.parameters, template_name=tpl.name,
                                template_version=tpl.version, session_id=session_id)
        try:
            yield from gen
        finally:
            # a stopped reply keeps what was written; a failed one is not saved (Retry)
            if gen.outcome == "ok" or (gen.outcome == "stopped" and gen.text.strip()):
                text = gen.text.strip() or "…"
                self.store.add_message(session_id, "assistant", text, status=gen.outcome,
                                       llm_call_id=gen.call_id)

    # -- segments -----------------------------------------------------------------
    def segment_model(self) -> SegmentModel:
        """The segments in use (loaded once; replaced after a rebuild)."""
        with self._segments_lock:
            if self._segments is None:
                self._segments = SegmentModel.load(self.settings.artifacts_dir)
            if self._segments is None:
                raise InputError(
                    "No segments have been built yet.",
                    "Run: assistant segments build --orders data/online_retail.csv.gz "
                    "(or Rebuild in the Segments tab).",
                )
            return self._segments

    def has_segments(self) -> bool:
        try:
            self.segment_model()
        except InputError:
            return False
        return True

    def rebuild_segments(self, orders_path: Path, mapping: dict[str, str] | None = None,
                         progress: Progress = None) -> dict[str, Any]:
        """Build new segments; the ones in use stay until the new build has succeeded."""
        summary = build_segment_model(Path(orders_path), self.settings.artifacts_dir,
                                      mapping=mapping, progress=progress)
        with self._segments_lock:
            self._segments = None
        return summary

    def ensure_segments(self) -> dict[str, Any] | None:
        """First run: build segments from the shipped real orders when none exist."""
        if self.has_segments() or not DEFAULT_ORDERS.exists():
            return None
        log.info("building segments from %s (first run)", DEFAULT_ORDERS)
        return self.rebuild_segments(DEFAULT_ORDERS)

    def segments_dashboard(self) -> dict[str, Any]:
        return dashboard_data(self.segment_model())

    def segment_of_customer(self, customer_id: str) -> dict[str, Any]:
        return self.segment_model().of_customer(customer_id)

    def segment_from_answers(self, answers: dict[str, Any],
                             customer_id: str | None = None) -> dict[str, Any]:
        return self.segment_model().from_answers(answers, customer_id)

    # -- guided questionnaire --------------------------------------------------------
    def _questionnaire(self, segments: SegmentModel | None) -> Questionnaire:
        planner = segments.planner(self.settings.segment_confidence) if segments else None
        if planner is None:
            return Questionnaire(self.spec)

        def chooser(state: QuestionnaireState, candidates: list[str]) -> str | None:
            """Segment questions by information gain until the segment is confident, then
            the rest in spec order; None (stop) when only segment questions remain."""
            answers = answers_for_classifier(state)
            segment_qs = [c for c in candidates if c in ASK_ORDER]
            if segment_qs and planner.next_question(answers, segment_qs) is not None:
                gains = planner.gains(answers, segment_qs)
                return max(gains, key=gains.__getitem__)
            others = [c for c in candidates if c not in ASK_ORDER]
            return others[0] if others else None

        return Questionnaire(self.spec, chooser)

    def _segments_or_none(self) -> SegmentModel | None:
        try:
            return self.segment_model()
        except AssistantError:
            return None

    def questionnaire(self, session_id: str, text: str | None = None) -> dict[str, Any]:
        """Start or continue the guided questionnaire of a session; the state is saved after
        every answer, so a restart resumes at the same question. Returns the turn plus the
        "what we know" card (facts with their source, and the segment)."""
        if not self.store.get_session(session_id):
            raise InputError("Unknown session.", "Reload the page to start a new one.")
        saved = self.store.load_questionnaire(session_id)
        state = QuestionnaireState.model_validate_json(saved) if saved else QuestionnaireState()
        segments = self._segments_or_none()
        engine = self._questionnaire(segments)
        turn = engine.start(state) if text is None else engine.handle(state, text)
        self.store.save_questionnaire(session_id, state.model_dump_json())
        return {"turn": turn.model_dump(), "card": self._card(engine, state, segments)}

    # the chat runs the questionnaire first; these words leave it for free chat
    JUST_CHAT = "Just chat"
    _JUST_CHAT_WORDS = {"just chat", "skip the questions", "stop the questions"}

    def questionnaire_active(self, session_id: str) -> bool:
        saved = self.store.load_questionnaire(session_id)
        if not saved:
            return True
        state = QuestionnaireState.model_validate_json(saved)
        return not (state.confirmed or state.dismissed)

    def guided_view(self, session_id: str) -> dict[str, Any]:
        """For the chat on (re)load: the current question with its quick replies and the
        card. A new session's first question is saved as its first message."""
        fresh = not self.store.messages(session_id)
        out = self.questionnaire(session_id)
        if fresh:
            self.store.add_message(session_id, "assistant", out["turn"]["message"])
        return out

    def guided_reply(self, session_id: str, text: str) -> dict[str, Any]:
        """One chat message while the questionnaire runs: saved with the reply."""
        text = clean_message(text, limit=self.settings.max_message_chars)
        self.store.add_message(session_id, "user", text)
        if text.strip().lower() in self._JUST_CHAT_WORDS:
            saved = self.store.load_questionnaire(session_id)
            state = QuestionnaireState.model_validate_json(saved) if saved else \
                QuestionnaireState()
            state.dismissed = True
            self.store.save_questionnaire(session_id, state.model_dump_json())
            message = ("Sure, let's just chat. Ask me anything; what you told me so far is "
                       "kept on the card.")
            self.store.add_message(session_id, "assistant", message)
            card = self._card(self._questionnaire(self._segments_or_none()), state,
                              self._segments_or_none())
            return {"turn": {"message": message, "quick_replies": [], "done": True,
                             "confirmed": False, "question_id": None,
                             "progress": {"answered": len(state.answers),
                                          "total": len(state.answers)}},
                    "card": card}
        out = self.questionnaire(session_id, text)
        self.store.add_message(session_id, "assistant", out["turn"]["message"])
        return out

    def identify(self, session_id: str, customer_id: str) -> dict[str, Any]:
        """Link a returning customer to their orders: the questions their behaviour answers
        are filled in (source "observed") and not asked; the segment uses both."""
        if not self.store.get_session(session_id):
            raise InputError("Unknown session.", "Reload the page to start a new one.")
        segments = self.segment_model()
        observed = segments.observed_answers(customer_id.strip())
        saved = self.store.load_questionnaire(session_id)
        state = QuestionnaireState.model_validate_json(saved) if saved else QuestionnaireState()
        engine = self._questionnaire(segments)
        state.customer_id = customer_id.strip()
        filled = 0
        turn = engine.start(state)
        for q in ASK_ORDER:  # order_frequency before last_order, which depends on it
            value = observed.get(q)
            if value in (None, "", []):
                continue
            try:
                turn = engine.edit(state, q, value, source="observed")
            except InputError:  # not shown for these answers
                continue
            filled += 0 if turn.error else 1
        self.store.save_questionnaire(session_id, state.model_dump_json())
        message = (f"Welcome back! I found your order history and filled in {filled} "
                   "answers from it (marked \"from your orders\" on the card). "
                   + (self.spec.question(turn.question_id).text if turn.question_id else ""))
        self.store.add_message(session_id, "assistant", message.strip())
        return {"turn": {**turn.model_dump(), "message": message.strip()},
                "card": self._card(engine, state, segments)}

    def questionnaire_edit(self, session_id: str, question_id: str, value: str) -> dict[str, Any]:
        """Edit one fact from the card (or the summary)."""
        saved = self.store.load_questionnaire(session_id)
        if not saved:
            raise InputError("There is no questionnaire in this session yet.",
                             "Start it first.")
        state = QuestionnaireState.model_validate_json(saved)
        segments = self._segments_or_none()
        engine = self._questionnaire(segments)
        turn = engine.edit(state, question_id, value)
        self.store.save_questionnaire(session_id, state.model_dump_json())
        return {"turn": turn.model_dump(), "card": self._card(engine, state, segments)}

    def _card(self, engine: Questionnaire, state: QuestionnaireState,
              segments: SegmentModel | None) -> dict[str, Any]:
        facts = [{"question": item.question_id, "answer": item.answer, "source": item.source}
                 for item in engine.summary(state) if item.question_id in state.answers]
        card: dict[str, Any] = {"facts": facts, "segment": None}
        answers = answers_for_classifier(state)
        if segments and (answers or state.customer_id):
            card["segment"] = segments.from_answers(answers, state.customer_id)
        return card

    def feedback(self, session_id: str, index: int, liked: bool) -> ChatMessage:
        msgs = self.store.messages(session_id)
        if not 0 <= index < len(msgs) or msgs[index].role != "assistant":
            raise InputError("Only the assistant's replies can be rated.",
                             "Use the thumbs under a reply.")
        self.store.add_feedback(msgs[index].id, 1 if liked else -1)
        return msgs[index]
