"""The parts every use case shares, each built once on first use: the segment model, the
orders, the fitted recommender, the Chroma collections, the help base and the intent
classifier. The use cases (``chat``, ``guided``, ``shopping``, ``staff``, ``bootstrap``)
receive this object, never the service facade, so none of them can reach another's state.
"""

from __future__ import annotations

import threading
import time
from functools import cached_property
from typing import Any

import pandas as pd

from assistant.core.config import Settings
from assistant.core.errors import AssistantError, InputError
from assistant.infra.artifacts import current_bundle_path
from assistant.infra.embeddings import MiniLMEmbedder
from assistant.infra.llm import LLMClient
from assistant.infra.mail import outbox_for
from assistant.infra.store import Store
from assistant.infra.vectors import VectorStore
from assistant.insights.value import CustomerValue, customer_value
from assistant.orders.ingest import load_orders
from assistant.prompts.templates import ServedTemplates
from assistant.questionnaire.extraction import FactExtractor, load_vocabulary
from assistant.questionnaire.spec import QuestionnaireSpec, load_spec
from assistant.questionnaire.wording import Wording
from assistant.recommend.personal import Recommendations
from assistant.recommend.profiles import ProfileIndex, ProfileWriter
from assistant.recommend.tuning import served_weights
from assistant.segments.meanings import SegmentMeanings, load_meanings
from assistant.segments.model import SEGMENTS_KIND, SegmentModel
from assistant.service.events import EventLog
from assistant.service.experiments import Experiments
from assistant.service.identity import Identity
from assistant.service.limits import AttemptLimiter
from assistant.support.helpbase import HelpBase
from assistant.support.intents import IntentClassifier
from assistant.support.policies import Policies, load_policies
from assistant.support.routing import Router

WORDING_TEMPLATE = "questionnaire"
VALUE_HORIZON = 90  # days the predicted customer value looks ahead
#: how often a process looks whether another one rebuilt the segments (shared artefacts)
FOLLOW_SECONDS = 2.0


class Parts:
    def __init__(self, settings: Settings, store: Store, templates: ServedTemplates,
                 llm: LLMClient, spec: QuestionnaireSpec | None = None) -> None:
        self.settings = settings
        self.store = store
        self.templates = templates
        self.llm = llm
        self.spec = spec or load_spec()
        self._segments: SegmentModel | None = None
        self._segments_lock = threading.Lock()
        self._segments_from: object = None  # the bundle folder loaded
        self._segments_checked = 0.0
        self._orders: pd.DataFrame | None = None
        self._orders_sha256: str | None = None  # of the file the orders were read from
        self._recs: Recommendations | None = None
        self._served: dict[str, Any] | None = None
        self._profiles: ProfileIndex | None = None
        self._profile_writer: ProfileWriter | None = None
        self._help: HelpBase | None = None
        self._intents: IntentClassifier | None = None
        self._router: Router | None = None
        self._embedder: MiniLMEmbedder | None = None  # loaded on first similarity check
        self._names: tuple[Recommendations, list[str]] | None = None  # product names
        self._data_lock = threading.Lock()
        self._value: tuple[pd.DataFrame, CustomerValue] | None = None  # (of these orders, fit)
        self._value_lock = threading.Lock()

    def customer_value(self) -> CustomerValue:
        """The predicted value and churn risk of every customer (BG/NBD + Gamma-Gamma,
        ``insights/value.py``), fitted once per orders file on first use."""
        orders = self.orders()
        with self._value_lock:
            if self._value is None or self._value[0] is not orders:
                self._value = (orders, customer_value(orders, horizon_days=VALUE_HORIZON))
            return self._value[1]

    @cached_property
    def experiments(self) -> Experiments:
        """Experiments between recommender variants or support policies."""
        return Experiments(self)

    @cached_property
    def policies(self) -> Policies:
        """The support policies per segment and their variants (``data/policies.yaml``)."""
        return load_policies()

    @cached_property
    def events(self) -> EventLog:
        """The event log (impressions, reactions, clicks, chat ratings, exposures)."""
        return EventLog(self.store)

    # -- segments -------------------------------------------------------------------
    def segment_model(self) -> SegmentModel:
        """The segments in use (loaded once; replaced after a rebuild, this process's or,
        through the shared artefacts directory, another one's)."""
        self._follow_rebuilds()
        with self._segments_lock:
            if self._segments is None:
                self._segments_from = current_bundle_path(self.settings.artifacts_dir,
                                                          SEGMENTS_KIND)
                self._segments = SegmentModel.load(self.settings.artifacts_dir)
            if self._segments is None:
                raise InputError(
                    "No segments have been built yet.",
                    "Run: assistant segments build --orders data/online_retail.csv.gz "
                    "(or Rebuild in the Segments tab).",
                )
            return self._segments

    def segments_or_none(self) -> SegmentModel | None:
        try:
            return self.segment_model()
        except AssistantError:
            return None

    def has_segments(self) -> bool:
        return self.segments_or_none() is not None

    def _follow_rebuilds(self) -> None:
        """When the segments pointer names another bundle than the one loaded (another app
        process rebuilt them), drop the models so the new ones load; looked at most every
        ``FOLLOW_SECONDS``."""
        now = time.monotonic()
        if self._segments is None or now - self._segments_checked < FOLLOW_SECONDS:
            return
        self._segments_checked = now
        try:
            current = current_bundle_path(self.settings.artifacts_dir, SEGMENTS_KIND)
        except AssistantError:
            return  # a bad pointer: keep serving what is loaded
        if current != self._segments_from:
            self.forget_models()

    def forget_models(self) -> None:
        """After a segments rebuild: load the new segments, refit the recommender on use."""
        with self._segments_lock:
            self._segments = None
        with self._data_lock:
            self._recs = None
            self._served = None

    # -- orders and recommendations ---------------------------------------------------
    def orders(self) -> pd.DataFrame:
        """The shop's clean orders (loaded once; TAILOR_ORDERS, default the shipped data)."""
        with self._data_lock:
            if self._orders is None:
                ingest = load_orders(self.settings.orders_path)
                self._orders, self._orders_sha256 = ingest.orders, ingest.source_hash
            return self._orders

    def recommender(self) -> Recommendations:
        """The fitted recommender (built on first use; a few seconds on the shipped data)."""
        orders = self.orders()
        segments = self.segments_or_none()
        with self._data_lock:
            if self._recs is None:
                customers = segments.customers if segments else None
                served = self.served_weights()
                self._recs = Recommendations.fit(orders, customers, self.settings.cache_dir,
                                                 weights=served["weights"],
                                                 params=served["params"])
                self._served = served
            return self._recs

    def served_weights(self) -> dict[str, Any]:
        """The hybrid's weights in use (or about to be): tuned for the orders file served
        now, else the built-in ones, with the reason (``recommend/tuning.py``)."""
        if self._recs is not None and self._served is not None:
            return self._served
        return served_weights(self.settings.artifacts_dir, self.settings.orders_path,
                              self._orders_sha256)

    def recommender_ready(self) -> bool:
        return self._recs is not None

    def item_names(self, items: list[str]) -> list[str]:
        """Lower-case product names of item ids (empty before the recommender is fitted)."""
        if not items or self._recs is None:
            return []
        cat = self._recs.catalog.set_index("item")["description"]
        return [str(cat.get(i, i)).lower() for i in items]

    # -- Chroma, help base, intents -------------------------------------------------
    @cached_property
    def vectors(self) -> VectorStore:
        """The Chroma collections (profiles, customers, catalog, help passages)."""
        return VectorStore.from_settings(self.settings)

    def profile_index(self) -> ProfileIndex:
        if self._profiles is None:
            self._profiles = ProfileIndex(self.vectors, self.spec)
        return self._profiles

    def profile_writer(self) -> ProfileWriter:
        """Session profiles to Chroma in the background (``flush`` waits for them)."""
        with self._data_lock:
            if self._profile_writer is None:
                self._profile_writer = ProfileWriter(self.profile_index())
            return self._profile_writer

    def help_base(self) -> HelpBase:
        if self._help is None:
            self._help = HelpBase(self.vectors)
        return self._help

    def intent_classifier(self) -> IntentClassifier:
        with self._data_lock:
            if self._intents is None:
                self._intents = IntentClassifier.load(self.settings.artifacts_dir)
            return self._intents

    def catalog_names(self) -> list[str]:
        """The shop's product names (multi-word, upper-case, as in the order file) once the
        recommender is fitted (at first start), else none: a check never waits for the
        order file. A text that names one its context did not give is flagged."""
        recs = self._recs
        if recs is None:
            return []
        if self._names is None or self._names[0] is not recs:
            names = recs.catalog["description"].dropna().astype(str).str.strip()
            self._names = (recs, sorted({n for n in names
                                         if len(n.split()) > 1 and n.upper() == n}))
        return self._names[1]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts' MiniLM embeddings (the local model in the
        wheel): how close a model's rewording stays to the vetted text."""
        if self._embedder is None:
            self._embedder = MiniLMEmbedder()
        va, vb = self._embedder.embed([a, b])
        return float(va @ vb)

    def router(self) -> Router | None:
        """The customer chat's message router (None until trained: the chat then runs as
        before, every message to the questionnaire)."""
        if self._router is None:
            try:
                intents = self.intent_classifier()
            except AssistantError:
                intents = None
            try:
                router = Router.load(self.settings.artifacts_dir, intents)
            except AssistantError:
                return None
            with self._data_lock:
                self._router = router
        return self._router

    @cached_property
    def identity(self) -> Identity:
        """Proofs that a visitor is a customer (service/identity.py)."""
        return Identity(self.settings, self.store, self.orders, outbox_for(self.settings),
                        AttemptLimiter(self.store, self.settings.lockout_minutes))

    @cached_property
    def extractor(self) -> FactExtractor:
        """The fact reader of the spec and data/vocabulary.yaml, checked against the spec
        (an unknown question or option stops the start with file:line)."""
        return FactExtractor(self.spec, load_vocabulary(self.spec))

    @cached_property
    def meanings(self) -> SegmentMeanings:
        """What each segment means to a customer (data/segment_meanings.yaml)."""
        return load_meanings()

    # -- templates ------------------------------------------------------------------
    def wording(self) -> Wording:
        """The questionnaire's texts as served now (ops may change them)."""
        return Wording(self.templates.get(WORDING_TEMPLATE))
