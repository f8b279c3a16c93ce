"""Recommendations for a person in the chat: the fitted hybrid recommender over the shop's
orders, a query built from their profile (answers, segment, linked customer, reactions to
earlier cards), a budget-aware re-rank, and the personal message written by the model and
checked by ``prompts/grounding.py`` (the deterministic message replaces it when the check fails).

``Recommendations.fit(orders, customers)`` takes a few seconds on the shipped data; the
service builds one lazily (in the background at start)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from assistant.core.errors import InputError
from assistant.infra.vectors import VectorStore
from assistant.orders.catalog import build_catalog
from assistant.prompts.grounding import Candidate, Facts, Verdict, check
from assistant.prompts.templates import PromptTemplate
from assistant.recommend.algorithms import (
    HybridRecommender,
    Query,
    Recommendation,
    default_components,
    interactions_from_orders,
    profiles_from_features,
)
from assistant.recommend.ranking import mmr

log = logging.getLogger(__name__)

ANSWER_KEYS = ("spend_per_order", "buyer_type", "region")
CATALOG = "catalog"  # Chroma collection of product descriptions (content retrieval)
NOTE_MATCHES = 20  # catalog neighbours of a person's own words that count as a match
PEOPLE = 100  # nearest customers by profile text a new visitor's list draws on (measured)
FEEDBACK_VALUES = ("like", "dislike", "not_for_me")


@dataclass
class Profile:
    """What the recommender needs to know about a person."""

    answers: dict[str, Any] = field(default_factory=dict)  # questionnaire answers by id
    segment: str | None = None
    customer_id: str | None = None
    feedback: dict[str, str] = field(default_factory=dict)  # item -> like|dislike|not_for_me
    description: str = ""  # the profile in words (for the message)

    @property
    def known(self) -> bool:
        return bool(self.answers or self.customer_id or self.feedback)


def budget_limit(answers: dict[str, Any]) -> float | None:
    """The most a person said they want to spend on one item (their budget's upper end)."""
    budget = answers.get("budget")
    if isinstance(budget, dict):
        return float(budget.get("max") or budget.get("min") or 0) or None
    if isinstance(budget, int | float):
        return float(budget)
    return None


def _product(item: str, name: Any, price: Any, group: Any) -> dict[str, Any]:
    return {"item": item, "name": str(name),
            "price": float(price) if pd.notna(price) else None, "group": str(group)}


class Recommendations:
    def __init__(self, model: HybridRecommender, catalog: pd.DataFrame) -> None:
        self.model = model
        self.catalog = catalog
        self.names = [str(d) for d in catalog["description"].dropna()]
        self.customers = set(model.data_.users.astype(str))
        self.item_ids = frozenset(catalog["item"].astype(str))

    def with_weights(self, weights: dict[str, dict[str, float]]) -> Recommendations:
        """The same recommender under other hybrid weights (an experiment's arm)."""
        return type(self)(self.model.with_weights(weights), self.catalog)

    @classmethod
    def fit(cls, orders: pd.DataFrame, customers: pd.DataFrame | None,
            cache_dir: Path | None = None, *,
            weights: dict[str, dict[str, float]] | None = None,
            params: dict[str, dict[str, Any]] | None = None) -> Recommendations:
        """The hybrid on ``orders``; ``weights`` / ``params``: tuned for this shop
        (``recommend/tuning.py``), else the built-in ones."""
        catalog = build_catalog(orders)
        profiles = profiles_from_features(customers) if customers is not None else None
        model = HybridRecommender(default_components(cache_dir=cache_dir, params=params),
                                  weights)
        model.fit(interactions_from_orders(orders), catalog, profiles)
        return cls(model, catalog)

    def query(self, profile: Profile,
              people: Callable[[str, int], list[tuple[str, float]]] | None = None) -> Query:
        """``people``: (profile text, k) -> the nearest real customers (Chroma), asked only
        for a new visitor (no purchases, nothing liked) who has answered something."""
        def said(value: str) -> tuple[str, ...]:
            return tuple(i for i, v in profile.feedback.items() if v == value)

        known = profile.customer_id if profile.customer_id in self.customers else None
        answers = {k: profile.answers[k] for k in ANSWER_KEYS if k in profile.answers}
        near: tuple[tuple[str, float], ...] = ()
        if (people is not None and known is None and profile.answers and profile.description
                and not said("like")):
            near = tuple(people(profile.description, PEOPLE))
        # "more like this" lifts the item's neighbours, "less like this" pushes the item and
        # its neighbours down, "not for me" blocks the item (algorithms.HybridRecommender)
        return Query(user=known, interests=tuple(profile.answers.get("interests") or ()),
                     answers=answers, segment=profile.segment, liked=said("like"),
                     less=said("dislike"), disliked=said("not_for_me"), people=near)

    # -- the catalog in Chroma (content retrieval) -------------------------------------
    def index_catalog(self, store: VectorStore) -> int:
        """Product descriptions into Chroma, with the vectors the content recommender
        already computed (nothing is embedded twice); metadata: group, price, popularity."""
        content = self.model.components_.get("content")
        vectors = getattr(content, "item_vectors_", None)
        data = self.model.data_
        keep = [i for i, d in enumerate(data.descriptions) if str(d).strip()]
        ids = [str(data.items[i]) for i in keep]
        docs = [str(data.descriptions[i]) for i in keep]
        prices = data.catalog["typical_price"].to_numpy(dtype=float)
        metas = [{"group": str(data.groups[i]),
                  "price": float(prices[i]) if prices[i] == prices[i] else -1.0,
                  "popularity": int(data.popularity[i])} for i in keep]
        store.drop(CATALOG)
        return store.upsert(CATALOG, ids, docs, metas,
                            embeddings=vectors[keep] if vectors is not None else None)

    def recommend(self, profile: Profile, k: int = 5, *, exclude_seen: bool = True,
                  search: Callable[[str, int], list[str]] | None = None,
                  diversity: float = 0.0,
                  people: Callable[[str, int], list[tuple[str, float]]] | None = None
                  ) -> list[Recommendation]:
        """Top k for a person; items matching their own words (``search``: the catalog in
        Chroma) and within their budget come first, and say so. ``diversity`` (0-1): MMR
        re-ranking, the weight of being unlike the items above (0: by score only).
        ``people``: the nearest customers by profile text, for a new visitor (``query``)."""
        recs = self.model.recommend(self.query(profile, people), k=k * 4,
                                    exclude_seen=exclude_seen)
        if diversity > 0:
            recs = self._diverse(recs, diversity)
        notes = str(profile.answers.get("anything_else") or "").strip()
        if notes and search is not None:
            recs = self._said_first(profile, notes, search(notes, NOTE_MATCHES), recs,
                                    exclude_seen=exclude_seen)
        limit = budget_limit(profile.answers)
        if limit is not None:
            within = [r for r in recs if r.price is not None and r.price <= limit]
            for r in within:
                r.reasons.append(f"within your budget of £{limit:,.0f}")
            recs = within + [r for r in recs if r not in within]
        return recs[:k]

    def _diverse(self, recs: list[Recommendation], diversity: float) -> list[Recommendation]:
        vectors = getattr(self.model.components_.get("content"), "item_vectors_", None)
        if vectors is None or len(recs) < 3:
            return recs
        items = self.model.data_.items
        pos = items.get_indexer([r.item for r in recs])
        scores = np.full(len(items), -np.inf)
        scores[pos] = [r.score for r in recs]
        order = mmr(scores, vectors, len(recs), 1.0 - diversity, pool=len(recs))
        by_pos = dict(zip(pos, recs, strict=True))
        return [by_pos[p] for p in order]

    def _said_first(self, profile: Profile, notes: str, matches: list[str],
                    recs: list[Recommendation], *, exclude_seen: bool,
                    n: int = 2) -> list[Recommendation]:
        """Up to ``n`` catalog items matching the person's own words go first."""
        blocked = {i for i, v in profile.feedback.items() if v != "like"}
        if exclude_seen:
            blocked |= self.bought(profile.customer_id)
        quoted = notes if len(notes) <= 40 else notes[:37] + "…"
        ranked = {r.item: r for r in recs}
        picked: list[Recommendation] = []
        for item in matches:
            if item in blocked or any(p.item == item for p in picked):
                continue
            rec = ranked.get(item) or self._item(item)
            if rec is None:
                continue
            rec.reasons.insert(0, f"matches what you said: '{quoted}'")
            picked.append(rec)
            if len(picked) == n:
                break
        return picked + [r for r in recs if r not in picked]

    def bought(self, customer_id: str | None) -> set[str]:
        data = self.model.data_
        if not customer_id or customer_id not in self.customers:
            return set()
        row = data.users.get_loc(customer_id)
        return {str(i) for i in data.items[data.binary[row].indices]}

    def details(self, item: str, n: int = 3) -> dict[str, Any]:
        """A product as its card's "Show me" shows it: id, name, typical price (None:
        unknown), group, how many customers bought it, and the ``n`` products most often
        bought by those customers (nearest in the fitted item-kNN co-purchase similarity;
        nothing is recomputed; [] without that component)."""
        rows = self.catalog.loc[self.catalog["item"].astype(str) == item]
        if rows.empty:
            raise InputError(f"There is no item '{item}'.", "Use an id from /recommend.")
        row = rows.iloc[0]
        return {**_product(item, row["description"], row["typical_price"], row["group"]),
                "customers": int(row["popularity"]), "bought_with": self._bought_with(item, n)}

    def _bought_with(self, item: str, n: int) -> list[dict[str, Any]]:
        data = self.model.data_
        knn = self.model.components_.get("item_knn")
        similarity = getattr(knn, "similarity_", None)
        if similarity is None or item not in data.items:
            return []
        row = similarity[data.items.get_loc(item)]
        near = sorted((-float(v), int(p)) for p, v in zip(row.indices, row.data, strict=True)
                      if v > 0 and data.candidates[p])
        return [_product(str(data.items[p]), data.descriptions[p], data.prices[p],
                         data.groups[p]) for _, p in near[:n]]

    def _item(self, item: str) -> Recommendation | None:
        rows = self.catalog.loc[self.catalog["item"].astype(str) == item]
        if rows.empty or rows.iloc[0]["group"] == "fees":
            return None
        row = rows.iloc[0]
        price = float(row["typical_price"]) if pd.notna(row["typical_price"]) else None
        return Recommendation(item=item, description=str(row["description"]), price=price,
                              group=str(row["group"]), score=0.0, reasons=[],
                              parts={"search": 1.0})

    # -- the message ---------------------------------------------------------------
    @staticmethod
    def items_for_template(recs: list[Recommendation]) -> list[dict[str, str]]:
        return [{"name": r.description.title() if r.description.isupper() else r.description,
                 "price": f"{r.price:.2f}" if r.price is not None else "?",
                 "reason": "; ".join(r.reasons[:2]) or "popular with our customers"}
                for r in recs]

    def fallback_message(self, template: PromptTemplate, recs: list[Recommendation],
                         popular: bool) -> str:
        return template.text("fallback", items=self.items_for_template(recs),
                             popular=popular).strip()

    def message_context(self, profile: Profile, recs: list[Recommendation], shop_name: str
                        ) -> tuple[dict[str, Any], Facts]:
        """(the recommendation template's variables, the facts its text is checked against)
        for a person's items: what the chat renders, and what the prompt studio previews."""
        variables = dict(shop_name=shop_name, profile=profile.description or "(nothing yet)",
                         items=self.items_for_template(recs), popular=False)
        return variables, self._facts(recs)

    def check_message(self, text: str, recs: list[Recommendation]) -> Verdict:
        return check(text, self._facts(recs))

    def _facts(self, recs: list[Recommendation]) -> Facts:
        return Facts(products=[Candidate(r.description, r.price) for r in recs],
                     catalog=self.names)
