"""AssistantService: the one API the UI, the CLI and HTTP clients call."""

from __future__ import annotations

import json
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from assistant.core.config import Settings
from assistant.core.errors import AssistantError, InputError, unexpected_error
from assistant.core.schemas import ChatMessage, Message
from assistant.infra.embeddings import MiniLMEmbedder
from assistant.infra.llm import ChatModel, LLMClient, build_model
from assistant.infra.store import Store
from assistant.infra.users import User, UserStore, has_role
from assistant.infra.vectors import VectorStore
from assistant.orders.ingest import load_orders, read_table
from assistant.prompts.templates import ServedTemplates, TemplateRegistry
from assistant.prompts.versions import ProductionTemplates
from assistant.questionnaire.engine import (
    SOURCE_CONFIDENCE,
    Questionnaire,
    QuestionnaireState,
    Turn,
    Wording,
    answers_for_classifier,
    check_phrasing,
    describe_questions,
    load_spec,
    parse_extraction,
)
from assistant.recommend.personal import CATALOG, FEEDBACK_VALUES, Profile, Recommendations
from assistant.recommend.profiles import ProfileIndex
from assistant.segments.model import (
    ASK_ORDER,
    Progress,
    SegmentModel,
    build_segment_model,
    dashboard_data,
)
from assistant.service.samples import ShopSamples
from assistant.service.studio import PromptStudio
from assistant.support.desk import DraftRun, SupportDesk
from assistant.support.helpbase import HelpBase, build_helpbase
from assistant.support.intents import IntentClassifier, train_intents

log = logging.getLogger(__name__)

CHAT_TEMPLATE = "chat"
WORDING_TEMPLATE = "questionnaire"
EXTRACTION_TEMPLATE = "answer_extraction"
RECOMMEND_TEMPLATE = "recommendation"
DRAFT_TEMPLATE = "support_draft"
# a streamed chunk starting with this replaces everything streamed before it
REPLACE = "\x00replace\x00"
# history sent to the model, newest first, until this many characters (small local context)
HISTORY_CHARS = 3000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060-\u2064]")


def final_text(stream: Iterator[str]) -> str:
    """The text a stream ends with (a REPLACE chunk replaces what came before)."""
    text = ""
    for chunk in stream:
        text = chunk.removeprefix(REPLACE) if chunk.startswith(REPLACE) else text + chunk
    return text


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
    def __init__(self, settings: Settings, store: Store,
                 templates: ServedTemplates,
                 llm: LLMClient) -> None:
        self.settings = settings
        self.store = store
        self.templates = templates
        self.llm = llm
        self.spec = load_spec()
        self._segments: SegmentModel | None = None
        self._segments_lock = threading.Lock()
        self._phrased: dict[tuple[str, str], str] = {}  # (question, template version)
        self._embedder = None  # loaded on first phrasing check
        self._orders: pd.DataFrame | None = None
        self._recs: Recommendations | None = None
        self._profiles: ProfileIndex | None = None
        self._help: HelpBase | None = None
        self._intents: IntentClassifier | None = None
        self._data_lock = threading.Lock()
        #: first-run background builds (``first_run_builds``): step -> "running", "ready",
        #: "not needed" or "failed: <message> <hint>", readable as is
        self.build_status: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, model: ChatModel | None = None) -> AssistantService:
        """Build every part from settings; templates are validated here (fail fast)."""
        shipped = TemplateRegistry(settings.prompts_dir)  # the files: file:line errors first
        for name in (CHAT_TEMPLATE, WORDING_TEMPLATE, EXTRACTION_TEMPLATE, RECOMMEND_TEMPLATE,
                     DRAFT_TEMPLATE):
            shipped.get(name)
        store = Store(settings.db_path)
        # what runs: the version labelled production in SQLite (seeded from the files),
        # re-checked every 2 s, the last good one kept if the store is unreadable
        templates = ProductionTemplates.from_settings(settings, store)
        Wording(templates.get(WORDING_TEMPLATE))
        model = model or build_model(settings)
        return cls(settings, store, templates, LLMClient(model, store))

    # -- staff (Agent desk, Segments, Prompt studio) ------------------------------------
    @cached_property
    def users(self) -> UserStore:
        return UserStore.from_settings(self.settings)

    def authenticate(self, name: str, password: str) -> bool:
        """Gradio's login check for the staff app: any known user with the right password
        (what each role may do is checked per action by ``require_role``)."""
        try:
            return self.users.verify(name, password) is not None
        except AssistantError:
            return False

    def require_role(self, name: str | None, role: str) -> User:
        """The signed-in staff user, if they hold ``role`` (admin holds every role)."""
        user = self.users.get(name) if name else None
        if user is None:
            raise InputError("Please sign in.", "Open /staff/ and sign in with your account.")
        if not has_role(user, role):
            raise InputError(
                f"Your account '{user.name}' has the role {user.role}; this needs {role}.",
                f"Ask an admin: assistant users add NAME --role {role} (or sign in with an "
                f"{role} account).")
        return user

    @cached_property
    def studio(self) -> PromptStudio:
        """The prompt studio (role ops): versions, preview, tests, rollout, metrics. It gets
        the narrow parts it uses, never the service itself."""
        versions = (self.templates.versions
                    if isinstance(self.templates, ProductionTemplates) else None)
        samples = ShopSamples(segments=self.segment_model, recommender=self.recommender,
                              desk=lambda: self.desk, spec=self.spec, settings=self.settings)
        return PromptStudio(versions, self.templates, self.llm, self.store, samples)

    # -- Agent desk (support drafts) -------------------------------------------------
    @cached_property
    def desk(self) -> SupportDesk:
        """Drafting with the customer's facts, help passages, intent and segment policy."""
        return SupportDesk(self.settings, self.store, self.templates, self.llm,
                           segments=self.segment_model, help_base=self.help_base(),
                           intents=self._intent_classifier, orders=self.orders)

    def help_base(self) -> HelpBase:
        if self._help is None:
            self._help = HelpBase(self.vectors)
        return self._help

    def _intent_classifier(self) -> IntentClassifier:
        with self._data_lock:
            if self._intents is None:
                self._intents = IntentClassifier.load(self.settings.artifacts_dir)
            return self._intents

    def ensure_help(self) -> dict[str, Any]:
        """First run: the help base in Chroma and the intent classifier, when missing."""
        out: dict[str, Any] = {}
        if not self.help_base().count():
            out["help"] = build_helpbase(self.help_base())
        try:
            self._intent_classifier()
        except AssistantError:
            out["intents"] = train_intents(self.settings.artifacts_dir)
        return out

    # Staff operations take the acting user first and check the role themselves: a front
    # end cannot forget it (agent: the desk; ops: segments; admin holds every role).
    def desk_customer(self, actor: str | None, customer_id: str) -> dict[str, Any]:
        """The Agent desk sidebar (``/customer``), with the customer's recommendations."""
        self.require_role(actor, "agent")
        out = self.desk.customer(customer_id)
        try:
            recs = self.recommender().recommend(
                Profile(customer_id=str(out["id"]), segment=out.get("segment")), 5,
                exclude_seen=self.settings.exclude_seen)
            out["recommendations"] = [{**r.as_dict(), "id": r.item} for r in recs]
        except AssistantError as err:
            out["recommendations"] = []
            out.setdefault("notes", []).append(f"recommendations: {err.message}")
        return out

    def start_draft(self, *, agent: str, customer_id: str | None, ticket: str,
                    tone: str = "neutral", revise: str | None = None,
                    previous: str | None = None) -> DraftRun:
        """A streamed draft by the signed-in ``agent`` (role agent)."""
        agent = self.require_role(agent, "agent").name
        return self.desk.start_draft(agent=agent, customer_id=customer_id, ticket=ticket,
                                     tone=tone, revise=revise, previous=previous)

    def save_final_draft(self, draft_id: str, agent: str, text: str) -> dict[str, Any]:
        agent = self.require_role(agent, "agent").name
        return self.desk.save_final(draft_id, agent, text)

    def rate_draft(self, actor: str | None, draft_id: str, liked: bool, reason: str = ""
                   ) -> dict[str, Any]:
        self.require_role(actor, "agent")
        return self.desk.feedback(draft_id, liked, reason)

    def warm_up(self) -> None:
        """Load what the first reply needs (the local model) before serving."""
        self.llm.warm_up()

    def model_label(self) -> str:
        """Short, for the UI: which model answers and whether it runs on this machine."""
        m = self.llm.model
        return f"{m.model} ({m.provider}, {m.location})"

    def describe(self) -> str:
        m = self.llm.model
        return f"provider={m.provider} model={m.model}" + (f" {m.origin}" if m.origin else "")

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
        tpl = self.templates.route(CHAT_TEMPLATE, session_id, segment=self._segment_of(session_id))
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
        with self._data_lock:
            self._recs = None  # refit with the new segments' profiles on next use
        return summary

    # -- first run (in the background after start) ----------------------------------------
    def first_run_builds(self) -> dict[str, str]:
        """What the first visitors need, built once: segments from the shop's orders, the
        recommender with its product and profile indexes, the help base and the intent
        classifier. Meant for a background thread: a failing step is logged (with its
        traceback when unexpected) and recorded in ``build_status``; the next steps still
        run, nothing is raised, the app keeps serving."""

        def segments() -> bool:
            summary = self.ensure_segments()
            if summary:
                log.info("segments built: %s customers, %s", summary["customers"],
                         summary["segments"])
            return bool(summary)

        def recommendations() -> bool:
            self.recommender()
            log.info("recommender ready; %s products indexed for search",
                     self.ensure_catalog_index() or "all")
            n = self.ensure_customer_profiles()
            if n:
                log.info("indexed %s customer profiles in Chroma", n)
            return True

        def help_base() -> bool:
            built = self.ensure_help()
            if built:
                log.info("help base and intent classifier ready: %s", sorted(built))
            return bool(built)

        for step, build in (("segments", segments), ("recommendations", recommendations),
                            ("help base", help_base)):
            self.run_build_step(step, build)
        return dict(self.build_status)

    def run_build_step(self, step: str, build: Callable[[], bool]) -> None:
        """Run one background build; its outcome goes to ``build_status[step]``. Never
        raises (an exception here would end the thread unseen)."""
        self.build_status[step] = "running"
        try:
            did = build()
        except AssistantError as err:
            log.warning("%s not built: %s (%s)", step, err.message, err.hint)
            self.build_status[step] = f"failed: {err.message} {err.hint}".strip()
            return
        except Exception as exc:  # noqa: BLE001 - the edge of a background thread
            err = unexpected_error(exc, f"building the {step} in the background", log=log)
            self.build_status[step] = f"failed: {err.message} {err.hint}"
            return
        self.build_status[step] = "ready" if did else "not needed"

    def ensure_segments(self) -> dict[str, Any] | None:
        """First run: build segments when none exist, from the orders everything else uses
        (``TAILOR_ORDERS``, default the shipped real data)."""
        orders = self.settings.orders_path
        if self.has_segments() or not orders.exists():
            return None
        log.info("building segments from %s (first run)", orders)
        return self.rebuild_segments(orders)

    def segments_dashboard(self, actor: str | None) -> dict[str, Any]:
        self.require_role(actor, "ops")
        return dashboard_data(self.segment_model())

    def staff_rebuild_segments(self, actor: str | None, orders_path: Path,
                               mapping: dict[str, str] | None = None,
                               progress: Progress = None) -> dict[str, Any]:
        """``rebuild_segments`` for a signed-in ops user (the Segments tab's upload)."""
        self.require_role(actor, "ops")
        return self.rebuild_segments(orders_path, mapping, progress)

    def segment_of_customer(self, actor: str | None, customer_id: str) -> dict[str, Any]:
        self.require_role(actor, "ops")
        return self.segment_model().of_customer(customer_id)

    def segment_from_answers(self, actor: str | None, answers: dict[str, Any],
                             customer_id: str | None = None) -> dict[str, Any]:
        self.require_role(actor, "ops")
        return self.segment_model().from_answers(answers, customer_id)

    # -- guided questionnaire --------------------------------------------------------
    # the chat runs the questionnaire first; these words leave it for free chat
    JUST_CHAT = "Just chat"
    _JUST_CHAT_WORDS = {"just chat", "skip the questions", "stop the questions"}

    def _wording(self) -> Wording:
        return Wording(self.templates.get(WORDING_TEMPLATE))

    def _questionnaire(self, segments: SegmentModel | None) -> Questionnaire:
        planner = segments.planner(self.settings.segment_confidence) if segments else None
        if planner is None:
            return Questionnaire(self.spec, wording=self._wording())

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

        return Questionnaire(self.spec, chooser, wording=self._wording())

    def _segments_or_none(self) -> SegmentModel | None:
        try:
            return self.segment_model()
        except AssistantError:
            return None

    def _load_state(self, session_id: str) -> QuestionnaireState:
        if not self.store.get_session(session_id):
            raise InputError("Unknown session.", "Reload the page to start a new one.")
        saved = self.store.load_questionnaire(session_id)
        return QuestionnaireState.model_validate_json(saved) if saved else QuestionnaireState()

    def _save_state(self, session_id: str, state: QuestionnaireState) -> None:
        self.store.save_questionnaire(session_id, state.model_dump_json())

    def _out(self, session_id: str, engine: Questionnaire, state: QuestionnaireState,
             turn: Turn, segments: SegmentModel | None) -> dict[str, Any]:
        turn = self._phrase(session_id, engine, turn)
        return {"turn": turn.model_dump(), "card": self._card(engine, state, segments)}

    def questionnaire(self, session_id: str, text: str | None = None) -> dict[str, Any]:
        """Start or continue the guided questionnaire of a session; the state is saved after
        every answer, so a restart resumes at the same question. Returns the turn plus the
        "what we know" card (facts with their source, and the segment)."""
        state = self._load_state(session_id)
        segments = self._segments_or_none()
        engine = self._questionnaire(segments)
        if text is None:
            turn = engine.start(state)
        else:
            turn = engine.handle(state, text, self._extract(session_id, engine, state, text))
            turn = self._link_by_email(engine, state, segments, turn)
        self._save_state(session_id, state)
        out = self._out(session_id, engine, state, turn, segments)
        self._update_profile(session_id, state, out["card"])
        return out

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
            state = self._load_state(session_id)
            segments = self._segments_or_none()
            engine = self._questionnaire(segments)
            turn = engine.dismiss(state)
            self._save_state(session_id, state)
            out = {"turn": turn.model_dump(), "card": self._card(engine, state, segments)}
        else:
            out = self.questionnaire(session_id, text)
        self.store.add_message(session_id, "assistant", out["turn"]["message"])
        return out

    def respond(self, session_id: str, text: str) -> Iterator[str]:
        """What the chat box does: an answer while the questionnaire runs (one chunk: the
        next question; after the confirmed summary, the recommendations follow), else a
        streamed model reply."""
        if self.questionnaire_active(session_id):
            yield self.guided_reply(session_id, text)["turn"]["message"]
            if self.suggestion_due(session_id):
                yield "\n\n" + final_text(self.suggest(session_id))
            return
        yield from self.chat(session_id, text)

    def suggestion_due(self, session_id: str) -> bool:
        """The summary was just confirmed and no recommendations were shown yet."""
        saved = self.store.load_questionnaire(session_id)
        if not saved:
            return False
        state = QuestionnaireState.model_validate_json(saved)
        return state.confirmed and not state.suggested

    def recommender_ready(self) -> bool:
        return self._recs is not None

    def shown_recommendations(self, session_id: str) -> list[dict[str, Any]]:
        """On reload: the cards again, once they were shown (and the model is ready)."""
        saved = self.store.load_questionnaire(session_id)
        if not saved or not self.recommender_ready():
            return []
        if not QuestionnaireState.model_validate_json(saved).suggested:
            return []
        try:
            return self.recommend(session_id)["items"]
        except AssistantError:
            return []

    def pending_question(self, session_id: str) -> dict[str, Any]:
        """The question waiting for an answer (``/question``): id, text, type, options,
        progress; ``id`` is None at the summary or after the questionnaire."""
        state = self._load_state(session_id)
        segments = self._segments_or_none()
        engine = self._questionnaire(segments)
        turn = engine.start(state) if not (state.confirmed or state.dismissed) else None
        self._save_state(session_id, state)
        progress = engine.progress(state).model_dump()
        if turn is None or turn.question_id is None:
            return {"id": None, "text": turn.message if turn else "", "type": None,
                    "options": [], "quick_replies": turn.quick_replies if turn else [],
                    "progress": progress, "done": True,
                    "confirmed": state.confirmed, "dismissed": state.dismissed}
        q = self.spec.question(turn.question_id)
        return {"id": q.id, "text": self._phrase(session_id, engine, turn).ask or q.text,
                "type": q.type, "required": q.required,
                "options": [{"value": o.value, "label": o.display} for o in q.options],
                "quick_replies": turn.quick_replies, "help": q.help, "example": q.example,
                "progress": progress, "done": False, "confirmed": False, "dismissed": False}

    def profile(self, session_id: str) -> dict[str, Any]:
        """The "what we know" card of a session (``/profile``)."""
        state = self._load_state(session_id)
        segments = self._segments_or_none()
        engine = self._questionnaire(segments)
        return self._card(engine, state, segments)

    def answer(self, session_id: str, question_id: str, value: Any) -> dict[str, Any]:
        """A direct answer to one question (``/answer``): the pending question is answered
        like a chat message; any other shown question is edited. Saved in the chat too."""
        state = self._load_state(session_id)
        if question_id not in self.spec.ids:
            raise InputError(f"There is no question '{question_id}'.",
                             "Ask /question for the pending one; ids: "
                             + ", ".join(self.spec.ids) + ".")
        text = value if isinstance(value, str) else json.dumps(value)
        if not self.store.load_questionnaire(session_id):  # a first, direct answer
            self.guided_view(session_id)
            state = self._load_state(session_id)
        if state.current == question_id and not state.pending and isinstance(value, str):
            return self.guided_reply(session_id, value)
        out = self.questionnaire_edit(session_id, question_id, value)
        self.store.add_message(session_id, "user", f"{question_id}: {text}"[:500])
        self.store.add_message(session_id, "assistant", out["turn"]["message"])
        return out

    def identify(self, session_id: str, who: str) -> dict[str, Any]:
        """Link a returning customer to their orders, by customer number or email: the
        questions their behaviour answers are filled in (source "observed", or "inferred"
        for rules over orders) and not asked; the segment uses both."""
        state = self._load_state(session_id)
        segments = self.segment_model()
        customer_id = self.customer_by_email(who) if "@" in who else who.strip()
        engine = self._questionnaire(segments)
        filled = self._fill_observed(engine, state, segments, customer_id)
        turn = engine.start(state)
        self._save_state(session_id, state)
        message = self._wording()("identified", count=filled)
        turn.message = f"{message}\n\n{turn.ask or turn.message}".strip()
        self.store.add_message(session_id, "assistant", turn.message)
        out = self._out(session_id, engine, state, turn, segments)
        self._update_profile(session_id, state, out["card"])
        return out

    # facts a rule over the order history guesses (not what the person did)
    _INFERRED = {"buyer_type", "interests"}

    def _fill_observed(self, engine: Questionnaire, state: QuestionnaireState,
                       segments: SegmentModel, customer_id: str) -> int:
        observed = segments.observed_answers(customer_id)  # InputError when unknown
        state.customer_id = customer_id
        filled = 0
        for q in ASK_ORDER:  # order_frequency before last_order, which depends on it
            value = observed.get(q)
            if value in (None, "", []) or not engine.is_shown(state, q):
                continue
            source = "inferred" if q in self._INFERRED else "observed"
            turn = engine.edit(state, q, value, source=source)
            filled += 0 if turn.error else 1
        return filled

    def customer_by_email(self, email: str) -> str:
        """The customer number of an email in the shop's customer list (ops provide it:
        customer_emails.csv with customer_id,email)."""
        path = self.settings.customer_emails_path
        email = email.strip().lower()
        if not path.exists():
            raise InputError("This shop has not loaded customer emails yet.",
                             "Use your customer number instead (it is on your invoices).")
        table = read_table(path)
        if not {"customer_id", "email"} <= set(table.columns):
            raise InputError(f"{path.name} needs the columns customer_id and email.",
                             "Ask the shop to fix the customer list.")
        hits = table.loc[table["email"].astype(str).str.strip().str.lower() == email,
                         "customer_id"]
        if hits.empty:
            raise InputError("No customer with that email.",
                             "Check the spelling, or use your customer number.")
        return str(hits.iloc[0]).strip().removesuffix(".0")

    def _link_by_email(self, engine: Questionnaire, state: QuestionnaireState,
                       segments: SegmentModel | None, turn: Turn) -> Turn:
        """An email answer that belongs to a known customer links their orders."""
        email = state.answers.get("email")
        if not email or state.customer_id or segments is None:
            return turn
        try:
            customer_id = self.customer_by_email(str(email))
            filled = self._fill_observed(engine, state, segments, customer_id)
        except InputError:
            return turn
        nxt = engine.start(state)
        nxt.message = (f"{turn.prefix}\n\n" if turn.prefix else "") + \
            self._wording()("identified", count=filled) + f"\n\n{nxt.ask or nxt.message}"
        return nxt

    def questionnaire_edit(self, session_id: str, question_id: str, value: Any
                           ) -> dict[str, Any]:
        """Edit one fact from the card (or the summary)."""
        if not self.store.load_questionnaire(session_id):
            raise InputError("There is no questionnaire in this session yet.",
                             "Start it first.")
        state = self._load_state(session_id)
        segments = self._segments_or_none()
        engine = self._questionnaire(segments)
        turn = engine.edit(state, question_id, value)
        self._save_state(session_id, state)
        out = self._out(session_id, engine, state, turn, segments)
        self._update_profile(session_id, state, out["card"])
        return out

    def _card(self, engine: Questionnaire, state: QuestionnaireState,
              segments: SegmentModel | None) -> dict[str, Any]:
        facts = [{"question": item.question_id, "label": item.question, "answer": item.answer,
                  "value": state.answers[item.question_id], "source": item.source,
                  "confidence": SOURCE_CONFIDENCE.get(item.source, 1.0)}
                 for item in engine.summary(state) if item.question_id in state.answers]
        progress = engine.progress(state)
        card: dict[str, Any] = {"facts": facts, "segment": None,
                                "answered": progress.answered, "total": progress.total,
                                "customer_id": state.customer_id}
        answers = answers_for_classifier(state)
        if segments and (answers or state.customer_id):
            card["segment"] = segments.from_answers(answers, state.customer_id)
        return card

    # -- profiles and recommendations -------------------------------------------------
    def orders(self) -> pd.DataFrame:
        """The shop's clean orders (loaded once; TAILOR_ORDERS, default the shipped data)."""
        with self._data_lock:
            if self._orders is None:
                self._orders = load_orders(self.settings.orders_path).orders
            return self._orders

    def recommender(self) -> Recommendations:
        """The fitted recommender (built on first use; a few seconds on the shipped data)."""
        orders = self.orders()
        segments = self._segments_or_none()
        with self._data_lock:
            if self._recs is None:
                customers = segments.customers if segments else None
                self._recs = Recommendations.fit(orders, customers, self.settings.cache_dir)
            return self._recs

    @cached_property
    def vectors(self) -> VectorStore:
        """The Chroma collections (profiles, customers, catalog, help passages)."""
        return VectorStore.from_settings(self.settings)

    def profile_index(self) -> ProfileIndex:
        if self._profiles is None:
            self._profiles = ProfileIndex(self.vectors, self.spec)
        return self._profiles

    def ensure_catalog_index(self) -> int:
        """The product descriptions in Chroma (content retrieval), once."""
        if self.vectors.count(CATALOG):
            return 0
        return self.recommender().index_catalog(self.vectors)

    def search_products(self, text: str, k: int = 10) -> list[str]:
        """Item ids whose description is nearest to ``text`` (Chroma; [] before indexing)."""
        if not text.strip() or not self.vectors.count(CATALOG):
            return []
        return [h["id"] for h in self.vectors.query(CATALOG, text, k=k)]

    def _update_profile(self, session_id: str, state: QuestionnaireState,
                        card: dict[str, Any]) -> None:
        """Every change of a person's answers: the profile in SQLite and in Chroma. A
        failure here is logged and never breaks the chat."""
        segment = (card.get("segment") or {}).get("segment")
        liked = [i for i, v in self.store.item_feedback(session_id).items() if v == "like"]
        names = self._item_names(liked)
        facts = {f["question"]: {"value": f["value"], "source": f["source"],
                                 "confidence": f["confidence"]} for f in card["facts"]}
        behaviour = None
        if state.customer_id and (seg := self._segments_or_none()):
            try:
                row = seg.behaviour_of(state.customer_id)
                behaviour = {k: row[k] for k in ("recency_days", "frequency", "monetary")
                             if k in row}
            except InputError:
                behaviour = None
        try:
            document = self.profile_index().upsert_session(
                session_id, dict(state.answers), segment=segment,
                customer_id=state.customer_id, liked=names)
            self.store.save_profile(session_id, document=document, facts=facts,
                                    customer_id=state.customer_id, segment=segment,
                                    behaviour=behaviour)
        except Exception:  # noqa: BLE001 - the profile index must not break the chat
            log.exception("could not update the profile of session %s", session_id)

    def _item_names(self, items: list[str]) -> list[str]:
        if not items or self._recs is None:
            return []
        cat = self._recs.catalog.set_index("item")["description"]
        return [str(cat.get(i, i)).lower() for i in items]

    def _segment_of(self, session_id: str) -> str | None:
        """The session's segment as last saved with its profile (None before any answer)."""
        saved = self.store.load_profile(session_id)
        return saved["segment"] if saved else None

    def _rec_profile(self, session_id: str) -> Profile:
        state = self._load_state(session_id)
        segments = self._segments_or_none()
        card = self._card(self._questionnaire(segments), state, segments)
        saved = self.store.load_profile(session_id)
        return Profile(answers=dict(state.answers),
                       segment=(card.get("segment") or {}).get("segment"),
                       customer_id=state.customer_id,
                       feedback=self.store.item_feedback(session_id),
                       description=saved["document"] if saved else "")

    def recommend(self, session_id: str, k: int | None = None) -> dict[str, Any]:
        """Cards for a session (``/recommend``): items with id, name, price, score, reasons.
        ``popular`` is true when nothing is known yet (the items are then labelled so)."""
        profile = self._rec_profile(session_id)
        recs = self.recommender().recommend(profile, k or self.settings.recommendations,
                                            exclude_seen=self.settings.exclude_seen,
                                            search=self.search_products)
        items = [{**r.as_dict(), "id": r.item} for r in recs]
        return {"items": items, "popular": not profile.known or all(r.fallback for r in recs)}

    def suggest(self, session_id: str) -> Iterator[str]:
        """The personal message with the cards, streamed; saved in the conversation. The
        model's text is shown only when grounding passes; otherwise the deterministic
        message (same items, same reasons) replaces it, and the failure is logged."""
        engine = self.recommender()
        state = self._load_state(session_id)
        if state.confirmed and not state.suggested:
            state.suggested = True
            self._save_state(session_id, state)
        profile = self._rec_profile(session_id)
        recs = engine.recommend(profile, self.settings.recommendations,
                                exclude_seen=self.settings.exclude_seen,
                                search=self.search_products)
        tpl = self.templates.route(RECOMMEND_TEMPLATE, session_id, segment=profile.segment)
        popular = not profile.known or all(r.fallback for r in recs)
        fallback = engine.fallback_message(tpl, recs, popular)
        if popular or not recs:
            self.store.add_message(session_id, "assistant", fallback)
            yield fallback
            return
        variables, _ = engine.message_context(profile, recs, self.settings.shop_name)
        prompt = tpl.render(**variables)
        gen = self.llm.generate(prompt, tpl.parameters, template_name=tpl.name,
                                template_version=tpl.version, session_id=session_id)
        text = ""
        try:
            for delta in gen:
                text += delta
                yield delta
        except AssistantError as err:
            log.warning("recommendation message failed (%s); deterministic message", err)
            text = ""
        verdict = engine.check_message(text, recs) if text.strip() else None
        if gen.call_id is not None:
            self.store.set_grounding(gen.call_id, "ok" if verdict and verdict.ok else
                                     verdict.summary() if verdict else "no text")
        if verdict is None or not verdict.ok:
            if verdict is not None:
                log.info("grounding failed for %s %s: %s", tpl.name, tpl.version,
                         verdict.summary())
            yield REPLACE + fallback
            text = fallback
        self.store.add_message(session_id, "assistant", text.strip(), llm_call_id=gen.call_id)

    def item_feedback(self, session_id: str, item: str, value: str) -> dict[str, Any]:
        """Like / dislike / not for me on a card: saved, the profile updated, and the next
        recommendations (a disliked item never comes back)."""
        if value not in FEEDBACK_VALUES:
            raise InputError(f"'{value}' is not a reaction.",
                             "Use one of: " + ", ".join(FEEDBACK_VALUES) + ".")
        if not self.store.get_session(session_id):
            raise InputError("Unknown session.", "Reload the page to start a new one.")
        if item not in self.recommender().item_ids:
            raise InputError(f"There is no item '{item}'.", "Use an id from /recommend.")
        self.store.add_item_feedback(session_id, item, value)
        state = self._load_state(session_id)
        segments = self._segments_or_none()
        self._update_profile(session_id, state,
                             self._card(self._questionnaire(segments), state, segments))
        return self.recommend(session_id)

    def similar_customers(self, session_id: str, k: int = 5,
                          same_segment: bool = False) -> list[dict[str, Any]]:
        """Known customers whose profile is nearest to this session's (Chroma), optionally
        only within the same segment (a metadata filter)."""
        saved = self.store.load_profile(session_id)
        if not saved:
            return []
        where = {"segment": saved["segment"]} if same_segment and saved["segment"] else None
        return [{"customer_id": cid, "similarity": round(sim, 4)}
                for cid, sim in self.profile_index().similar_customers(saved["document"], k,
                                                                       where)]

    def ensure_customer_profiles(self) -> int:
        """Index the customers' profiles once (0 when already there or no segments)."""
        if not self.has_segments() or self.profile_index().customers_indexed():
            return 0
        return self.index_customer_profiles()

    def index_customer_profiles(self) -> int:
        """(Re)index the profiles of the order data's customers in Chroma."""
        segments = self.segment_model()
        return self.profile_index().index_customers(segments.customers, self.orders())

    # -- the model's part in the questionnaire (only when configured) ----------------
    def _phrase(self, session_id: str, engine: Questionnaire, turn: Turn) -> Turn:
        """Let the model phrase the question; keep the spec's text when it fails or drifts."""
        if not (self.settings.questionnaire_uses_model and turn.question_id and turn.ask):
            return turn
        q = self.spec.question(turn.question_id)
        if q.type == "number":  # the range is part of the meaning: keep it exact
            return turn
        tpl = self.templates.get(WORDING_TEMPLATE)
        key = (q.id, tpl.version)
        phrased = self._phrased.get(key)
        if phrased is None:
            try:
                raw = self.llm.complete(tpl.render(shop_name=self.settings.shop_name,
                                                   question=q.text), tpl.parameters,
                                        template_name=tpl.name, template_version=tpl.version,
                                        session_id=session_id)
                phrased = check_phrasing(q.text, raw, self._similarity)
            except AssistantError as err:
                log.warning("question phrasing failed (%s); showing the spec's text", err)
                phrased = ""
            self._phrased[key] = phrased
        if not phrased:
            return turn
        message = f"{turn.prefix}\n\n{phrased}".strip() if turn.prefix else phrased
        return turn.model_copy(update={"message": message, "ask": phrased})

    def _similarity(self, a: str, b: str) -> float:
        if self._embedder is None:
            self._embedder = MiniLMEmbedder()
        va, vb = self._embedder.embed([a, b])
        return float(va @ vb)

    def _extract(self, session_id: str, engine: Questionnaire, state: QuestionnaireState,
                 text: str) -> dict[str, Any] | None:
        """Several answers from one sentence, read by the model (None when off or failed;
        the engine checks every value)."""
        if not (self.settings.questionnaire_uses_model and state.current and not state.done
                and len(text.split()) >= 4):
            return None
        open_qs = [qid for qid in engine.eligible(state)
                   if qid not in state.answers and qid not in state.skipped]
        tpl = self.templates.get(EXTRACTION_TEMPLATE)
        try:
            raw = self.llm.complete(
                tpl.render(questions=describe_questions(self.spec, open_qs), message=text),
                tpl.parameters, template_name=tpl.name, template_version=tpl.version,
                session_id=session_id)
        except AssistantError as err:
            log.warning("answer extraction failed (%s); using the parser only", err)
            return None
        return parse_extraction(raw, open_qs)

    def feedback(self, session_id: str, index: int, liked: bool) -> ChatMessage:
        msgs = self.store.messages(session_id)
        if not 0 <= index < len(msgs) or msgs[index].role != "assistant":
            raise InputError("Only the assistant's replies can be rated.",
                             "Use the thumbs under a reply.")
        self.store.add_feedback(msgs[index].id, 1 if liked else -1)
        return msgs[index]
