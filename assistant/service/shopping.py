"""Shopping: recommendation cards for a session, the personal message that comes with
them (the model writes it, grounding checks it, a deterministic text replaces it when it
fails), reactions to cards, a card's details ("Show me"), and the person's profile in SQLite
and Chroma."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from assistant.core.errors import AssistantError, InputError
from assistant.prompts.templates import PromptTemplate
from assistant.questionnaire.state import QuestionnaireState
from assistant.recommend.algorithms import Recommendation
from assistant.recommend.personal import CATALOG, FEEDBACK_VALUES, Profile
from assistant.service.experiments import Assignment
from assistant.service.guided import Guided, Visit
from assistant.service.parts import Parts
from assistant.service.results import Card, Suggestions

log = logging.getLogger(__name__)

RECOMMEND_TEMPLATE = "recommendation"
BOUGHT_WITH = 3  # items "often bought with" a product in its details
# a streamed chunk starting with this replaces everything streamed before it
REPLACE = "\x00replace\x00"


def keep_profile(parts: Parts, session_id: str, state: QuestionnaireState, card: Card) -> None:
    """Every change of a person's answers: the profile in SQLite now, in Chroma in the
    background (``Parts.profile_writer``). A failure here is logged and never breaks the
    chat."""
    store = parts.store
    segment = card.segment_name
    liked = [i for i, v in store.item_feedback(session_id).items() if v == "like"]
    names = parts.item_names(liked)
    facts = {f.question: {"value": f.value, "source": f.source, "confidence": f.confidence}
             for f in card.facts}
    behaviour = None
    if state.customer_id and (seg := parts.segments_or_none()):
        try:
            row = seg.behaviour_of(state.customer_id)
            behaviour = {k: row[k] for k in ("recency_days", "frequency", "monetary")
                         if k in row}
        except InputError:
            behaviour = None
    try:
        document, meta = parts.profile_index().session_record(
            dict(state.answers), segment=segment, customer_id=state.customer_id, liked=names)
        store.save_profile(session_id, document=document, facts=facts,
                           customer_id=state.customer_id, segment=segment,
                           behaviour=behaviour)
        parts.profile_writer().submit(session_id, document, meta)  # embedded in the background
    except Exception:  # noqa: BLE001 - the profile index must not break the chat
        log.exception("could not update the profile of session %s", session_id)


class Shopping:
    def __init__(self, parts: Parts, guided: Guided) -> None:
        self.parts = parts
        self.guided = guided

    # -- ranking ----------------------------------------------------------------------
    def profile(self, visit: Visit, card: Card | None = None) -> Profile:
        """What the recommender knows of a session (the card's segment, not a new guess)."""
        card = card or self.guided.card(visit)
        saved = self.parts.store.load_profile(visit.session_id)
        return Profile(answers=dict(visit.state.answers), segment=card.segment_name,
                       customer_id=visit.state.customer_id,
                       feedback=self.parts.store.item_feedback(visit.session_id),
                       description=saved["document"] if saved else "")

    def rank(self, profile: Profile, k: int | None = None, *,
             arm: Assignment | None = None) -> list[Recommendation]:
        settings = self.parts.settings
        engine = (self.parts.experiments.engine(arm) if arm is not None
                  else self.parts.recommender())
        return engine.recommend(profile, k or settings.recommendations,
                                exclude_seen=settings.exclude_seen,
                                search=self.search_products, diversity=settings.diversity,
                                people=self.similar_people)

    @staticmethod
    def cards(profile: Profile, recs: list[Recommendation]) -> Suggestions:
        return Suggestions(items=[{**r.as_dict(), "id": r.item} for r in recs],
                           popular=not profile.known or all(r.fallback for r in recs))

    def recommend(self, session_id: str, k: int | None = None) -> Suggestions:
        """Cards for a session (``/recommend``)."""
        profile = self.profile(self.guided.open(session_id))
        return self._show(session_id, profile, k)[1]

    def _show(self, session_id: str, profile: Profile, k: int | None = None,
              template_version: str | None = None) -> tuple[list[Recommendation], Suggestions]:
        """Rank for a session (with its experiment arm, if it is in one) and log the list
        as impressions, with the recommender variant: the experiment's ``name/arm``; else
        popular while nothing is known, else the hybrid and where its weights come from."""
        arm = self.parts.experiments.assign(session_id)
        recs = self.rank(profile, k, arm=arm)
        cards = self.cards(profile, recs)
        variant = (arm.variant if arm is not None else "popular" if cards.popular
                   else f"hybrid ({self.parts.served_weights()['source']})")
        self.parts.events.impressions(session_id, [c["id"] for c in cards.items],
                                      variant=variant, segment=profile.segment,
                                      customer_id=profile.customer_id,
                                      template_version=template_version)
        return recs, cards

    def shown(self, session_id: str) -> list[dict[str, Any]]:
        """On reload: the cards again, once they were shown (and the model is ready)."""
        state = self.guided.peek(session_id)
        if state is None or not self.parts.recommender_ready() or not state.suggested:
            return []
        try:
            return self.recommend(session_id).items
        except AssistantError:
            return []

    # -- the personal message ---------------------------------------------------------------
    def suggest(self, session_id: str, visit: Visit | None = None, card: Card | None = None
                ) -> tuple[Suggestions, Iterator[str]]:
        """Rank once; the cards, and the message that goes with them as a stream of text
        deltas (a chunk starting with ``REPLACE`` replaces what came before). The message is
        saved in the conversation when the stream ends."""
        self.parts.recommender()  # fitted before anything is marked as shown
        visit = visit or self.guided.open(session_id)
        if visit.suggestion_due:
            visit.state.suggested = True
            self.guided.save(visit)
        profile = self.profile(visit, card)
        tpl = self.parts.templates.route(RECOMMEND_TEMPLATE, session_id,
                                         segment=profile.segment)
        recs, cards = self._show(session_id, profile, template_version=tpl.version)
        return cards, self._message(session_id, profile, recs, cards.popular, tpl)

    def _message(self, session_id: str, profile: Profile, recs: list[Recommendation],
                 popular: bool, tpl: PromptTemplate) -> Iterator[str]:
        """The model's text is shown only when grounding passes; otherwise the deterministic
        message (same items, same reasons) replaces it, and the failure is logged."""
        parts = self.parts
        engine = parts.recommender()
        fallback = engine.fallback_message(tpl, recs, popular)
        if popular or not recs:
            parts.store.add_message(session_id, "assistant", fallback)
            yield fallback
            return
        variables, _ = engine.message_context(profile, recs, parts.settings.shop_name)
        gen = parts.llm.generate(tpl.render(**variables), tpl.parameters,
                                 template_name=tpl.name, template_version=tpl.version,
                                 session_id=session_id)
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
            parts.store.set_grounding(gen.call_id, "ok" if verdict and verdict.ok else
                                      verdict.summary() if verdict else "no text")
        if verdict is None or not verdict.ok:
            if verdict is not None:
                log.info("grounding failed for %s %s: %s", tpl.name, tpl.version,
                         verdict.summary())
            yield REPLACE + fallback
            text = fallback
        parts.store.add_message(session_id, "assistant", text.strip(), llm_call_id=gen.call_id)

    # -- reactions ------------------------------------------------------------------------
    def item_feedback(self, session_id: str, item: str, value: str) -> Suggestions:
        """Like / dislike / not for me on a card: saved, the profile updated, and the next
        recommendations (a disliked item never comes back)."""
        if value not in FEEDBACK_VALUES:
            raise InputError(f"'{value}' is not a reaction.",
                             "Use one of: " + ", ".join(FEEDBACK_VALUES) + ".")
        visit = self.guided.open(session_id)
        if item not in self.parts.recommender().item_ids:
            raise InputError(f"There is no item '{item}'.", "Use an id from /recommend.")
        self.parts.store.add_item_feedback(session_id, item, value)
        card = self.guided.card(visit)
        self.parts.events.reaction(session_id, item, value, segment=card.segment_name,
                                   customer_id=visit.state.customer_id)
        keep_profile(self.parts, session_id, visit.state, card)
        return self._show(session_id, self.profile(visit, card))[1]

    def item_details(self, session_id: str, item: str) -> dict[str, Any]:
        """A card's "Show me": the product from the catalog (name, typical price, group,
        how many customers bought it) and the items most often bought with it. Logged as a
        ``click``, which the funnel counts as engagement with the card."""
        visit = self.guided.open(session_id)
        engine = self.parts.recommender()
        if item not in engine.item_ids:
            raise InputError(f"There is no item '{item}'.", "Use an id from /recommend.")
        details = engine.details(item, BOUGHT_WITH)
        card = self.guided.card(visit)
        self.parts.events.click(session_id, item, segment=card.segment_name,
                                customer_id=visit.state.customer_id)
        return details

    # -- search and similar people ------------------------------------------------------
    def search_products(self, text: str, k: int = 10) -> list[str]:
        """Item ids whose description is nearest to ``text`` (Chroma; [] before indexing)."""
        vectors = self.parts.vectors
        if not text.strip() or not vectors.count(CATALOG):
            return []
        return [h["id"] for h in vectors.query(CATALOG, text, k=k)]

    def similar_people(self, document: str, k: int) -> list[tuple[str, float]]:
        """Known customers whose profile text is nearest to ``document`` (Chroma; [] before
        the customers are indexed, or when Chroma fails: the list then comes from the
        answers alone, and the failure is logged)."""
        try:
            return self.parts.profile_index().similar_customers(document, k)
        except Exception:  # noqa: BLE001 - a recommendation must not fail for a Chroma hiccup
            log.warning("similar people from Chroma failed; answers only", exc_info=True)
            return []

    def similar_customers(self, session_id: str, k: int = 5,
                          same_segment: bool = False) -> list[dict[str, Any]]:
        """Known customers whose profile is nearest to this session's (Chroma), optionally
        only within the same segment (a metadata filter)."""
        saved = self.parts.store.load_profile(session_id)
        if not saved:
            return []
        where = {"segment": saved["segment"]} if same_segment and saved["segment"] else None
        return [{"customer_id": cid, "similarity": round(sim, 4)}
                for cid, sim in self.parts.profile_index().similar_customers(
                    saved["document"], k, where)]
