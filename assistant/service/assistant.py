"""AssistantService: the one facade the UI, the CLI and HTTP clients call.

It builds the shared parts (``parts.py``) and the use cases, and hands each call to its use
case: ``chat.py`` (one path for every message: ``turn``), ``guided.py`` (the
questionnaire and the card), ``shopping.py`` (recommendations, the personal message,
reactions, profiles), ``staff.py`` (roles, desk, segments, studio) and ``bootstrap.py``
(first-run builds). The facade holds no logic of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from assistant.core.config import Settings
from assistant.core.schemas import ChatMessage
from assistant.infra.llm import ChatModel, LLMClient, build_model
from assistant.infra.store import Store
from assistant.infra.users import User, UserStore
from assistant.infra.vectors import VectorStore
from assistant.prompts.serving import ProductionTemplates
from assistant.prompts.templates import ServedTemplates, TemplateRegistry
from assistant.questionnaire.wording import Wording
from assistant.recommend.personal import Recommendations
from assistant.recommend.profiles import ProfileIndex
from assistant.segments.model import Progress, SegmentModel
from assistant.service.bootstrap import Bootstrap
from assistant.service.chat import CHAT_TEMPLATE, Chat
from assistant.service.guided import EXTRACTION_TEMPLATE, Guided
from assistant.service.insights import Insights
from assistant.service.limits import RateLimiter
from assistant.service.parts import WORDING_TEMPLATE, Parts
from assistant.service.privacy import Privacy
from assistant.service.results import Card, GuidedReply, QuestionView, Suggestions, TurnUpdate
from assistant.service.shopping import RECOMMEND_TEMPLATE, Shopping, keep_profile
from assistant.service.simulation import Simulation
from assistant.service.staff import Staff
from assistant.service.studio import PromptStudio
from assistant.support.desk import DraftRun, SupportDesk
from assistant.support.helpbase import HelpBase

DRAFT_TEMPLATE = "support_draft"


class AssistantService:
    JUST_CHAT = Guided.JUST_CHAT

    def __init__(self, settings: Settings, store: Store, templates: ServedTemplates,
                 llm: LLMClient) -> None:
        self.settings = settings
        self.store = store
        self.templates = templates
        self.llm = llm
        self.parts = Parts(settings, store, templates, llm)
        self.spec = self.parts.spec
        self.guided = Guided(self.parts, on_change=partial(keep_profile, self.parts))
        self.shopping = Shopping(self.parts, self.guided)
        self.staff = Staff(self.parts)
        self.chats = Chat(self.parts, self.guided, self.shopping,
                          customer_facts=lambda cid: self.staff.desk.customer_facts(cid))
        self.bootstrap = Bootstrap(self.parts, self.staff)
        self.privacy = Privacy(self.parts)
        self.insights = Insights(self.parts)
        self.experiments = self.parts.experiments
        self.simulation = Simulation(self.parts)
        self._api_calls = RateLimiter(settings.requests_per_minute, store=store)

    @classmethod
    def from_settings(cls, settings: Settings, model: ChatModel | None = None) -> AssistantService:
        """Build every part from settings; templates are validated here (fail fast)."""
        shipped = TemplateRegistry(settings.prompts_dir)  # the files: file:line errors first
        for name in (CHAT_TEMPLATE, WORDING_TEMPLATE, EXTRACTION_TEMPLATE, RECOMMEND_TEMPLATE,
                     DRAFT_TEMPLATE):
            shipped.get(name)
        store = Store.from_settings(settings)
        # what runs: the version labelled production in SQLite (seeded from the files),
        # re-checked every 2 s, the last good one kept if the store is unreadable
        templates = ProductionTemplates.from_settings(settings, store)
        Wording(templates.get(WORDING_TEMPLATE))
        model = model or build_model(settings)
        llm = LLMClient(model, store, redact=settings.redacts)
        service = cls(settings, store, templates, llm)
        service.parts.meanings  # noqa: B018 - data/segment_meanings.yaml checked at start
        service.parts.extractor  # noqa: B018 - data/vocabulary.yaml checked at start
        return service

    # -- the model ----------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load what the first reply needs (the local model) before serving."""
        self.llm.warm_up()

    def model_label(self) -> str:
        """Short, for the public UI: which model answers and whether it runs on this
        machine; never a server's address (``describe`` has it, for the log)."""
        m = self.llm.model
        where = "on this machine" if m.provider == "local" else (
            "an OpenAI-compatible server" if m.provider == "openai" else m.provider)
        return f"{m.model} ({where})"

    def describe(self) -> str:
        m = self.llm.model
        return f"provider={m.provider} model={m.model}" + (f" {m.origin}" if m.origin else "")

    # -- chat (chat.py) -------------------------------------------------------------------
    def new_session(self) -> str:
        return self.chats.new_session()

    def resume(self, session_id: str | None) -> tuple[str, list[ChatMessage]]:
        return self.chats.resume(session_id)

    def history(self, session_id: str) -> list[ChatMessage]:
        return self.store.messages(session_id)

    def turn(self, session_id: str, text: str) -> Iterator[TurnUpdate]:
        return self.chats.turn(session_id, text)

    def respond(self, session_id: str, text: str) -> Iterator[str]:
        return self.chats.respond(session_id, text)

    def chat(self, session_id: str, text: str) -> Iterator[str]:
        return self.chats.chat(session_id, text)

    def retry(self, session_id: str) -> Iterator[str]:
        return self.chats.retry(session_id)

    def suggestions(self, session_id: str) -> Iterator[TurnUpdate]:
        return self.chats.suggestions(session_id)

    def feedback(self, session_id: str, index: int, liked: bool) -> ChatMessage:
        return self.chats.feedback(session_id, index, liked)

    def rate_chat(self, session_id: str, score: int) -> None:
        self.chats.rate_chat(session_id, score)

    # -- the guided questionnaire (guided.py) -----------------------------------------------
    def questionnaire(self, session_id: str, text: str | None = None) -> GuidedReply:
        """Start or continue the questionnaire (no chat messages saved)."""
        return self.guided.step(self.guided.open(session_id), text)

    def questionnaire_active(self, session_id: str) -> bool:
        state = self.guided.peek(session_id)
        return state is None or not (state.confirmed or state.dismissed)

    def suggestion_due(self, session_id: str) -> bool:
        state = self.guided.peek(session_id)
        return state is not None and state.confirmed and not state.suggested

    def guided_view(self, session_id: str) -> GuidedReply:
        return self.guided.view(session_id)

    def pending_question(self, session_id: str) -> QuestionView:
        return self.guided.pending_question(session_id)

    def profile(self, session_id: str) -> Card:
        """The "what we know" card of a session (``/profile``)."""
        return self.guided.card(self.guided.open(session_id))

    def answer(self, session_id: str, question_id: str, value: Any) -> GuidedReply:
        return self.guided.answer(session_id, question_id, value)

    def questionnaire_edit(self, session_id: str, question_id: str, value: Any
                           ) -> GuidedReply:
        return self.guided.edit(session_id, question_id, value)

    def identify(self, session_id: str, who: str, proof: str = "", *,
                 client: str | None = None) -> GuidedReply:
        """Link the session to a customer once a proof holds (service/identity.py)."""
        return self.guided.identify(session_id, who, proof, client=client)

    # -- personal data (privacy.py) ----------------------------------------------------------
    def privacy_notice(self) -> str:
        return self.privacy.notice()

    def my_data(self, session_id: str) -> dict[str, Any]:
        """Everything stored for this session (and its verified customer), as JSON."""
        return self.privacy.export_session(session_id)

    def erase(self, session_id: str) -> dict[str, int]:
        """Erase this session's data (and, when it proved who it is, the customer's)."""
        return self.privacy.erase_session(session_id, with_customer=True)

    def forget_conversation(self, session_id: str) -> dict[str, int]:
        """The chat's bin icon: erase this session only."""
        return self.privacy.erase_session(session_id)

    def apply_retention(self) -> dict[str, int] | None:
        """Erase sessions idle longer than TAILOR_RETENTION_DAYS and desk drafts older than
        TAILOR_DRAFT_RETENTION_DAYS (None: neither is set)."""
        days, draft_days = self.settings.retention_days, self.settings.draft_retention_days
        if not days and not draft_days:
            return None
        counts = self.privacy.purge(days) if days else {}
        if draft_days:
            counts["drafts"] = counts.get("drafts", 0) + self.privacy.purge_drafts(draft_days)
        return counts

    def expire_sessions(self) -> int:
        """Delete sessions nobody wrote in, idle for an hour (they hold no personal data)."""
        return self.privacy.forget_empty_sessions(1.0)

    # -- shopping (shopping.py) --------------------------------------------------------------
    def recommend(self, session_id: str, k: int | None = None) -> Suggestions:
        return self.shopping.recommend(session_id, k)

    def suggest(self, session_id: str) -> Iterator[str]:
        """The personal message with the cards as text deltas (``REPLACE`` starts over)."""
        _, stream = self.shopping.suggest(session_id)
        return stream

    def shown_recommendations(self, session_id: str) -> list[dict[str, Any]]:
        return self.shopping.shown(session_id)

    def item_feedback(self, session_id: str, item: str, value: str) -> Suggestions:
        return self.shopping.item_feedback(session_id, item, value)

    def item_details(self, session_id: str, item: str) -> dict[str, Any]:
        """A card's "Show me": the product's details (logged as a click)."""
        return self.shopping.item_details(session_id, item)

    def similar_customers(self, session_id: str, k: int = 5,
                          same_segment: bool = False) -> list[dict[str, Any]]:
        return self.shopping.similar_customers(session_id, k, same_segment)

    def search_products(self, text: str, k: int = 10) -> list[str]:
        return self.shopping.search_products(text, k)

    def recommender(self) -> Recommendations:
        return self.parts.recommender()

    def recommender_ready(self) -> bool:
        return self.parts.recommender_ready()

    def orders(self) -> pd.DataFrame:
        return self.parts.orders()

    @property
    def vectors(self) -> VectorStore:
        return self.parts.vectors

    def profile_index(self) -> ProfileIndex:
        return self.parts.profile_index()

    # -- staff (staff.py) ---------------------------------------------------------------------
    @property
    def users(self) -> UserStore:
        return self.staff.users

    def authenticate(self, name: str, password: str) -> bool:
        return self.staff.authenticate(name, password)

    def login_wait(self, client: str | None) -> float:
        return self.staff.login_wait(client)

    def login_failed(self, client: str | None) -> None:
        self.staff.login_failed(client)

    def allow_call(self, client: str) -> bool:
        """Count an API call of a client address; False when it is over
        ``TAILOR_REQUESTS_PER_MINUTE`` (counted in the store: one limit for all processes)."""
        return self._api_calls.hit(client)

    def require_role(self, name: str | None, role: str) -> User:
        return self.staff.require_role(name, role)

    def studio_for(self, actor: str | None) -> tuple[PromptStudio, str]:
        return self.staff.studio_for(actor)

    @property
    def desk(self) -> SupportDesk:
        return self.staff.desk

    def help_base(self) -> HelpBase:
        return self.parts.help_base()

    def desk_customer(self, actor: str | None, customer_id: str) -> dict[str, Any]:
        return self.staff.desk_customer(actor, customer_id)

    def start_draft(self, *, agent: str, customer_id: str | None, ticket: str,
                    tone: str = "neutral", revise: str | None = None,
                    previous: str | None = None) -> DraftRun:
        return self.staff.start_draft(agent=agent, customer_id=customer_id, ticket=ticket,
                                      tone=tone, revise=revise, previous=previous)

    def save_final_draft(self, draft_id: str, agent: str, text: str) -> dict[str, Any]:
        return self.staff.save_final_draft(draft_id, agent, text)

    def resolve_ticket(self, actor: str | None, draft_id: str) -> dict[str, Any]:
        """Mark a sent draft's ticket resolved (agent role)."""
        return self.staff.resolve_ticket(actor, draft_id)

    def rate_draft(self, actor: str | None, draft_id: str, liked: bool, reason: str = ""
                   ) -> dict[str, Any]:
        return self.staff.rate_draft(actor, draft_id, liked, reason)

    def segment_model(self) -> SegmentModel:
        return self.parts.segment_model()

    def has_segments(self) -> bool:
        return self.parts.has_segments()

    def rebuild_segments(self, orders_path: Path, mapping: dict[str, str] | None = None,
                         progress: Progress = None) -> dict[str, Any]:
        return self.staff.rebuild_segments(orders_path, mapping, progress)

    def segments_dashboard(self, actor: str | None) -> dict[str, Any]:
        return self.staff.segments_dashboard(actor)

    def staff_rebuild_segments(self, actor: str | None, orders_path: Path,
                               mapping: dict[str, str] | None = None,
                               progress: Progress = None) -> dict[str, Any]:
        return self.staff.staff_rebuild_segments(actor, orders_path, mapping, progress)

    def segment_of_customer(self, actor: str | None, customer_id: str) -> dict[str, Any]:
        return self.staff.segment_of_customer(actor, customer_id)

    def segment_from_answers(self, actor: str | None, answers: dict[str, Any],
                             customer_id: str | None = None) -> dict[str, Any]:
        return self.staff.segment_from_answers(actor, answers, customer_id)

    # -- insights (insights.py) ------------------------------------------------------------
    def insights_report(self, actor: str | None, kind: str, **options: Any) -> dict[str, Any]:
        """An outcome report for a signed-in ops user (the Insights tab, the staff API); the
        CLI calls ``self.insights`` directly (the shell user holds the data files)."""
        self.staff.require_role(actor, "ops")
        return self.insights.report(kind, **options)

    # -- experiments (experiments.py) --------------------------------------------------------
    def experiment_start(self, actor: str | None, name: str, arms: dict[str, str], *,
                         metric: str | None = None, base_rate: float, mde: float,
                         share: float = 1.0, kind: str = "recommender",
                         segment: str | None = None) -> dict[str, Any]:
        who = self.staff.require_role(actor, "ops").name
        return self.experiments.start(who, name, arms, metric=metric, base_rate=base_rate,
                                      mde=mde, share=share, kind=kind, segment=segment)

    def experiment_status(self, actor: str | None, name: str | None = None) -> dict[str, Any]:
        self.staff.require_role(actor, "ops")
        return self.experiments.status(name)

    def simulate_traffic(self, actor: str | None, *, sessions: int,
                         progress: Callable[[str, float], None] | None = None
                         ) -> dict[str, Any]:
        self.staff.require_role(actor, "ops")
        return self.simulation.run(sessions=sessions, progress=progress)

    def simulate_exposures(self, actor: str | None, *, customers: int,
                           progress: Callable[[str, float], None] | None = None
                           ) -> dict[str, Any]:
        """Simulated desk exposures for the running policy experiment (an A/A check)."""
        self.staff.require_role(actor, "ops")
        return self.simulation.exposures(customers=customers, progress=progress)

    def experiment_stop(self, actor: str | None, name: str, reason: str = "") -> dict[str, Any]:
        who = self.staff.require_role(actor, "ops").name
        return self.experiments.stop(who, name, reason)

    # -- first run (bootstrap.py) ----------------------------------------------------------
    @property
    def build_status(self) -> dict[str, str]:
        return self.bootstrap.status

    def first_run_builds(self) -> dict[str, str]:
        return self.bootstrap.first_run_builds()

    def run_build_step(self, step: str, build: Callable[[], bool]) -> None:
        self.bootstrap.run_step(step, build)

    def ensure_segments(self) -> dict[str, Any] | None:
        return self.bootstrap.ensure_segments()

    def ensure_help(self) -> dict[str, Any]:
        return self.bootstrap.ensure_help()

    def ensure_catalog_index(self) -> int:
        return self.bootstrap.ensure_catalog_index()

    def ensure_customer_profiles(self) -> int:
        return self.bootstrap.ensure_customer_profiles()

    def index_customer_profiles(self) -> int:
        return self.bootstrap.index_customer_profiles()
