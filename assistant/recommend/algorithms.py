"""Recommenders: which items to show a person, and why. Code decides the items; no model does.

Every recommender follows scikit-learn's conventions: ``__init__`` stores parameters,
``fit(interactions, catalog=None, profiles=None)`` returns self, learned attributes end in
``_``. Then ``recommend(query, k=10, exclude_seen=True)`` gives ranked ``Recommendation``s
with human reasons and the score part of each component.

Inputs to ``fit``:

- ``interactions``: one row per event or per (user, item) pair, columns ``user``, ``item`` and
  optionally ``weight`` (a purchase count or a rating; 1 per row when absent; summed per pair).
- ``catalog`` (optional): ``item``, ``description``, ``group``, ``typical_price`` (the frame
  ``catalog.build_catalog`` makes). Items without a description get "" (content scores 0 for
  them, so they rank by the other signals), items without a group ``other``. Items of a
  non-product group (``fees``: postage, bank charges, ...) are never recommended.
- ``profiles`` (optional): indexed by user, columns ``segment``, ``interests`` (list of
  product groups or free words), ``spend_per_order``, ``buyer_type``, ``region`` (the
  questionnaire's options, see ``segments/answers.py``). ``profiles_from_features`` makes it.

A ``Query`` is a returning customer (``user`` known to the model: their history is used), a
cold start (``interests``, ``answers``, ``segment`` from the questionnaire, no history), or
both (a known customer who also said something, or ``liked`` items from the session).

Components (scores >= 0 per item, divided by the query's best score so each lies in [0, 1]):

==================  =======================================================================
``popularity``      distinct customers who bought the item
``segment``         the same within the person's segment (shrunk to overall popularity)
``repeat``          the person's own purchases: times bought (recent purchases count more)
``item_knn``        cosine co-purchase similarity to what the person bought
``content``         MiniLM cosine of the catalog description to the stated interests and to
                    the descriptions of what the person bought
``similar``         user-kNN: what the most similar customers bought; on purchase vectors for
                    a returning customer, on answer vectors (interests, budget, buyer type,
                    region) for a cold start
``als``             matrix factorization (implicit's ALS): latent tastes of people and items
``hybrid``          a weighted sum of the normalised components; one weight set per mode
                    (returning with repeats, returning new items only, cold start), tuned on
                    a validation split by ``evaluation.tune_hybrid``
==================  =======================================================================

Session feedback (``Query.liked`` / ``less`` / ``disliked``) reaches the hybrid as one more
part, ``feedback``: "more like this" lifts an item's neighbours (``neighbours``: the closer
of co-purchase and description), "less like this" pushes the item and its neighbours down,
"not for me" blocks the item. Evaluation batches carry no feedback, so it never changes a
measured number.

Ties (and queries a component knows nothing about) are ranked by overall popularity; an item
chosen only by that rule is marked ``fallback`` and says so in its reasons. Items tied on
that too come in ascending item id (``top_k``), so every list is the same on any numpy or
pandas version; neighbour sets (item-kNN, similar profiles) break ties by id the same way.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from assistant.core.errors import InputError
from assistant.infra.embeddings import MiniLMEmbedder
from assistant.orders.catalog import assign_groups, load_group_rules
from assistant.segments.answers import (
    CATEGORICAL_QUESTIONS,
    INTEREST_PREFIX,
    ORDINAL_QUESTIONS,
    true_answers,
)

NON_PRODUCT_GROUPS = frozenset({"fees"})
OTHER_GROUP = "other"
#: Hybrid weight sets: returning customer with repeats allowed, returning customer with
#: already-bought items excluded, cold start (no history).
MODES = ("returning", "returning_new", "cold")
#: Answers used for cold-start similarity (interests come on top, one column per group).
ANSWER_KEYS = ("spend_per_order", "buyer_type", "region")
#: A purchase this many days before the last one in the data counts half (``recency``).
HALF_LIFE_DAYS = 90.0
_TIE_BREAK = 1e-9
#: session feedback: "more like this" lifts an item's neighbours by this share of the best
#: score, "less like this" pushes the item and its neighbours down by this share; two
#: descriptions are neighbours from this MiniLM cosine up (measured: tests/test_recommend.py)
FEEDBACK_BOOST = 0.5
FEEDBACK_DROP = 1.0
CONTENT_NEIGHBOUR = 0.6
_MATCH_COSINE = 0.45  # a description this close to stated words "matches" them (MiniLM)


class Embedder(Protocol):
    model_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Query:
    """Who to recommend for. Everything is optional; an empty query gets popular items."""

    user: str | None = None  # a customer id the model was fitted with (history used)
    interests: tuple[str, ...] = ()  # product groups ("candles_lights") or free words
    answers: Mapping[str, Any] = field(default_factory=dict)  # questionnaire answers by id
    segment: str | None = None
    liked: tuple[str, ...] = ()  # "more like this": history, and their neighbours go up
    disliked: tuple[str, ...] = ()  # items never to show ("not for me")
    less: tuple[str, ...] = ()  # "less like this": these and their neighbours go down
    # nearest customers by profile text (Chroma, ``profiles.ProfileIndex``): (id, similarity)
    people: tuple[tuple[str, float], ...] = ()


@dataclass
class Recommendation:
    item: str
    description: str
    price: float | None
    group: str
    score: float
    reasons: list[str]
    parts: dict[str, float]
    fallback: bool = False  # chosen only because it is popular (nothing else known)

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.item, "name": self.description, "price": self.price,
                "group": self.group, "score": round(self.score, 6), "reasons": self.reasons,
                "parts": {k: round(v, 6) for k, v in self.parts.items()},
                "fallback": self.fallback}


# --------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """Interactions as a users x items matrix, aligned catalog and profiles."""

    users: pd.Index
    items: pd.Index
    matrix: sp.csr_matrix  # users x items, summed weights
    catalog: pd.DataFrame  # index = items: description, group, typical_price
    profiles: pd.DataFrame  # index = users: segment, interests, spend_per_order, ...
    recency: sp.csr_matrix | None = None  # users x items, recency-decayed purchase counts

    @cached_property
    def binary(self) -> sp.csr_matrix:
        """1 where the user has the item (computed once; do not modify)."""
        out = self.matrix.copy()
        out.data = np.ones_like(out.data)
        return out

    @cached_property
    def popularity(self) -> np.ndarray:
        """Distinct users per item."""
        return np.asarray(self.binary.sum(axis=0)).ravel()

    @cached_property
    def candidates(self) -> np.ndarray:
        """Items that may be recommended (not postage, fees, ...)."""
        return ~self.catalog["group"].isin(NON_PRODUCT_GROUPS).to_numpy()

    @cached_property
    def descriptions(self) -> np.ndarray:
        return self.catalog["description"].to_numpy(dtype=object)

    @cached_property
    def groups(self) -> np.ndarray:
        return self.catalog["group"].to_numpy(dtype=object)

    @cached_property
    def prices(self) -> np.ndarray:
        return self.catalog["typical_price"].to_numpy(dtype=np.float64)

    @classmethod
    def build(cls, interactions: pd.DataFrame, catalog: pd.DataFrame | None = None,
              profiles: pd.DataFrame | None = None, *,
              half_life_days: float | None = None) -> TrainingData:
        _check_interactions(interactions)
        frame = pd.DataFrame({
            "user": interactions["user"].astype("string").to_numpy(),
            "item": interactions["item"].astype("string").to_numpy(),
            "weight": (interactions["weight"].astype("float64").to_numpy()
                       if "weight" in interactions else 1.0),
        })
        extra = (catalog["item"].astype("string") if catalog is not None and len(catalog)
                 else pd.Series([], dtype="string"))
        users = pd.Index(np.unique(frame["user"].to_numpy(dtype=str)), name="user")
        items = pd.Index(np.unique(np.concatenate([frame["item"].to_numpy(dtype=str),
                                                   extra.to_numpy(dtype=str)])), name="item")
        rows = users.get_indexer(frame["user"].to_numpy(dtype=str))
        cols = items.get_indexer(frame["item"].to_numpy(dtype=str))
        shape = (len(users), len(items))
        matrix = sp.csr_matrix((frame["weight"].to_numpy(), (rows, cols)), shape=shape)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        recency = None
        time = pd.to_datetime(interactions["time"]) if "time" in interactions else None
        if half_life_days and time is not None and time.notna().any():
            # days before the last event (an event without a time counts as the latest)
            age = ((time.max() - time) / pd.Timedelta(days=1)).fillna(0.0).to_numpy()
            decayed = frame["weight"].to_numpy() * np.power(0.5, age / half_life_days)
            recency = sp.csr_matrix((decayed, (rows, cols)), shape=shape)
            recency.sum_duplicates()
        return cls(users, items, matrix, _align_catalog(catalog, items),
                   _align_profiles(profiles, users), recency)


@lru_cache(maxsize=4096)
def interest_group(words: str) -> str | None:
    """The product group a person's own words name ("candles" -> candles_lights), by the
    rules in data/product_groups.yaml; None when no group matches."""
    group = str(assign_groups(pd.Series([str(words)])).iat[0])
    return None if group in (OTHER_GROUP, *NON_PRODUCT_GROUPS) else group


def _check_interactions(interactions: pd.DataFrame) -> None:
    missing = [c for c in ("user", "item") if c not in interactions]
    if missing:
        raise InputError(
            f"The interactions have no column {' or '.join(missing)}; columns found: "
            f"{', '.join(map(str, interactions.columns))}.",
            "Pass a frame with user and item columns (and optionally weight, time).",
        )
    if interactions.empty:
        raise InputError("There are no interactions to learn from.",
                         "Load a file with at least one user-item row.")


def _align_catalog(catalog: pd.DataFrame | None, items: pd.Index) -> pd.DataFrame:
    out = pd.DataFrame(index=items)
    src = pd.DataFrame()
    if catalog is not None and len(catalog):
        src = catalog.drop_duplicates("item")
        src = src.set_index(src["item"].astype(str).to_numpy())
    desc = src["description"] if "description" in src else pd.Series(dtype="string")
    out["description"] = desc.reindex(items).astype("string").fillna("").to_numpy()
    if "group" in src:
        groups = src["group"].reindex(items).astype("string").fillna(OTHER_GROUP)
    else:
        groups = assign_groups(out["description"])
    out["group"] = groups.to_numpy()
    price = src["typical_price"] if "typical_price" in src else pd.Series(dtype="float64")
    out["typical_price"] = price.reindex(items).astype("float64").to_numpy()
    return out


def _align_profiles(profiles: pd.DataFrame | None, users: pd.Index) -> pd.DataFrame:
    out = pd.DataFrame(index=users)
    src = profiles if profiles is not None else pd.DataFrame()
    if len(src):
        src = src[~src.index.duplicated()]
        src.index = src.index.astype(str)
    for col in ("segment", *ANSWER_KEYS):
        values = src[col].reindex(users) if col in src else pd.Series(None, index=users)
        out[col] = values.astype(object).where(values.notna(), None).to_numpy()
    interests = src["interests"].reindex(users) if "interests" in src else None
    out["interests"] = [tuple(v) if isinstance(v, list | tuple | np.ndarray) else ()
                        for v in (interests if interests is not None else [None] * len(users))]
    return out


def interactions_from_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """``fit``'s interactions from ``behaviour.load_orders``' frame: one row per (customer,
    item) bought, ``weight`` = distinct orders with it, ``time`` = the last one. Returns are
    left out; non-product lines are kept here and never recommended (catalog group)."""
    bought = orders.loc[~orders["is_return"].astype(bool),
                        ["customer", "item", "order_id", "timestamp"]]
    bought = bought.drop_duplicates(["customer", "item", "order_id"])
    grouped = bought.groupby(["customer", "item"], sort=False, observed=True)
    out = pd.DataFrame({"weight": grouped.size().astype(float),
                        "time": grouped["timestamp"].max()}).reset_index()
    return out.rename(columns={"customer": "user"}).astype({"user": str, "item": str})


def profiles_from_features(features: pd.DataFrame,
                           segments: pd.Series | None = None) -> pd.DataFrame:
    """Per-customer profiles from a features frame (``features.build_features``, or
    ``SegmentModel.customers``): the answers their orders imply (``answers.true_answers``)
    and their segment (``segments``, else a ``rfm_segment`` column when there is one)."""
    answers = true_answers(features)
    groups = [c.removeprefix(INTEREST_PREFIX) for c in answers if c.startswith(INTEREST_PREFIX)]
    flags = answers[[INTEREST_PREFIX + g for g in groups]].to_numpy() > 0
    out = pd.DataFrame(index=features.index.astype(str))
    if segments is None and "rfm_segment" in features:
        segments = features["rfm_segment"]
    out["segment"] = (segments.reindex(features.index).to_numpy() if segments is not None
                      else None)
    out["interests"] = [tuple(np.asarray(groups, dtype=object)[row]) for row in flags]
    for key in ANSWER_KEYS:
        out[key] = answers[key].to_numpy()
    return out


# --------------------------------------------------------------------------- query batches


@dataclass
class QueryBatch:
    """Queries resolved against the training data (one row per query)."""

    history: sp.csr_matrix  # n x items, weights of what each person bought or liked
    recency: sp.csr_matrix  # n x items, recency-decayed history (= history without times)
    user_index: np.ndarray  # row in the training matrix, -1 when unknown
    profiles: pd.DataFrame  # segment, interests, spend_per_order, buyer_type, region
    blocked: sp.csr_matrix  # n x items, items never to show (disliked)
    liked: sp.csr_matrix | None = None  # n x items: "more like this" in the session
    less: sp.csr_matrix | None = None  # n x items: "less like this" in the session
    people: sp.csr_matrix | None = None  # n x users: nearest customers by profile text

    @property
    def n(self) -> int:
        return self.history.shape[0]

    def without_history(self) -> QueryBatch:
        empty = sp.csr_matrix(self.history.shape, dtype=np.float64)
        return QueryBatch(empty, empty, self.user_index, self.profiles, self.blocked,
                          people=self.people)

    def has_history(self) -> np.ndarray:
        return np.diff(self.history.indptr) > 0

    @classmethod
    def for_users(cls, data: TrainingData, user_index: np.ndarray) -> QueryBatch:
        """Returning customers (rows of the training matrix), with their own profiles."""
        user_index = np.asarray(user_index, dtype=np.intp)
        history = data.matrix[user_index]
        recency = data.recency[user_index] if data.recency is not None else history
        profiles = data.profiles.iloc[user_index].reset_index(drop=True)
        empty = sp.csr_matrix(history.shape, dtype=np.float64)
        return cls(history, recency, user_index, profiles, empty)

    @classmethod
    def for_profiles(cls, data: TrainingData, profiles: pd.DataFrame) -> QueryBatch:
        """Cold starts: people known only by their answers (no history)."""
        aligned = _align_profiles(profiles, pd.Index(profiles.index.astype(str)))
        empty = sp.csr_matrix((len(aligned), len(data.items)), dtype=np.float64)
        return cls(empty, empty, np.full(len(aligned), -1, dtype=np.intp),
                   aligned.reset_index(drop=True), empty)

    @classmethod
    def from_queries(cls, data: TrainingData, queries: Sequence[Query]) -> QueryBatch:
        n_items = len(data.items)
        user_index = np.array([data.users.get_indexer([q.user])[0] if q.user is not None
                               else -1 for q in queries], dtype=np.intp)
        rec_src = data.recency if data.recency is not None else data.matrix
        hist_rows, rec_rows, block_rows, profiles = [], [], [], []
        liked_rows, less_rows, people_rows = [], [], []
        for q, u in zip(queries, user_index, strict=True):
            liked = _one_hot(_item_positions(data, q.liked), n_items)
            own = (data.matrix[u], rec_src[u]) if u >= 0 else (_one_hot([], n_items),) * 2
            hist_rows.append(own[0] + liked)
            rec_rows.append(own[1] + liked)
            block_rows.append(_one_hot(_item_positions(data, q.disliked), n_items))
            liked_rows.append(liked)
            less_rows.append(_one_hot(_item_positions(data, q.less), n_items))
            people_rows.append(people_row(data, q.people))
            profiles.append(_query_profile(data, q, int(u)))
        frame = pd.DataFrame(profiles, columns=["segment", *ANSWER_KEYS, "interests"])
        return cls(sp.vstack(hist_rows, format="csr"), sp.vstack(rec_rows, format="csr"),
                   user_index, frame, sp.vstack(block_rows, format="csr"),
                   sp.vstack(liked_rows, format="csr"), sp.vstack(less_rows, format="csr"),
                   sp.vstack(people_rows, format="csr"))


def people_row(data: TrainingData, people: Sequence[tuple[str, float]]) -> sp.csr_matrix:
    """(1, users): the similarity of each given customer (ids unknown to the model and
    similarities <= 0 are left out)."""
    ids = [str(p) for p, _ in people]
    pos = data.users.get_indexer(ids) if ids else np.zeros(0, dtype=np.intp)
    sims = np.array([float(s) for _, s in people], dtype=np.float64)
    keep = (pos >= 0) & (sims > 0) if len(ids) else np.zeros(0, dtype=bool)
    row = sp.csr_matrix((sims[keep], (np.zeros(int(keep.sum()), np.intp), pos[keep])),
                        shape=(1, len(data.users)))
    row.sum_duplicates()
    return row


def _one_hot(positions: Sequence[int] | np.ndarray, n: int) -> sp.csr_matrix:
    positions = np.unique(np.asarray(positions, dtype=np.intp))
    return sp.csr_matrix((np.ones(len(positions)), (np.zeros(len(positions), np.intp),
                                                    positions)), shape=(1, n))


def _item_positions(data: TrainingData, items: Sequence[str]) -> np.ndarray:
    pos = data.items.get_indexer([str(i) for i in items])
    return pos[pos >= 0]


def _query_profile(data: TrainingData, q: Query, user_index: int) -> dict[str, Any]:
    base = (data.profiles.iloc[user_index].to_dict() if user_index >= 0
            else {"segment": None, "interests": (), **dict.fromkeys(ANSWER_KEYS)})
    out = dict(base)
    for key in ANSWER_KEYS:
        if q.answers.get(key):
            out[key] = q.answers[key]
    if q.segment:
        out["segment"] = q.segment
    interests = q.interests or tuple(q.answers.get("interests", ()) or ())
    if interests:
        out["interests"] = tuple(str(i) for i in interests)
    return out


# --------------------------------------------------------------------------- base class


class Recommender(BaseEstimator):
    """Base: subclasses implement ``_fit(data)``, ``score(batch)`` and ``_reasons``.
    ``get_params`` / ``set_params`` are scikit-learn's (from ``__init__``'s arguments)."""

    name: ClassVar[str] = "recommender"
    label: ClassVar[str] = "recommender"

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame | None = None,
            profiles: pd.DataFrame | None = None) -> Recommender:
        """Learn from interactions (see the module docstring for the frames)."""
        half_life = getattr(self, "half_life_days", HALF_LIFE_DAYS)
        data = TrainingData.build(interactions, catalog, profiles, half_life_days=half_life)
        return self.fit_data(data)

    def fit_data(self, data: TrainingData) -> Recommender:
        """Fit on already-built training data (shared by the hybrid's components)."""
        self.data_ = data
        self.popularity_ = data.popularity.astype(np.float64)
        self.candidates_ = data.candidates
        self._fit(data)
        return self

    def _fit(self, data: TrainingData) -> None:
        return None

    def _norm(self, scores: np.ndarray) -> np.ndarray:
        """Non-candidates (fees, ...) to 0, then each row divided by its maximum."""
        scores = np.asarray(scores, dtype=np.float32)
        scores[:, ~self.candidates_] = 0.0
        return _row_max_normalize(scores)

    def score(self, batch: QueryBatch) -> np.ndarray:
        """(n queries, n items) float32 in [0, 1]: each row divided by its maximum."""
        raise NotImplementedError

    def _reasons(self, batch: QueryBatch, row: int, items: np.ndarray) -> list[list[str]]:
        raise NotImplementedError

    # ----------------------------------------------------------------- ranking

    def rank(self, batch: QueryBatch, k: int, *, exclude_seen: bool,
             scores: np.ndarray | None = None) -> np.ndarray:
        """Top-k item positions per query (n, k), best first."""
        scores = self.score(batch) if scores is None else scores
        return top_k(self._masked(scores, batch, exclude_seen), k)

    def _masked(self, scores: np.ndarray, batch: QueryBatch, exclude_seen: bool) -> np.ndarray:
        pop = self.popularity_ / max(self.popularity_.max(), 1.0)
        out = scores.astype(np.float64) + _TIE_BREAK * pop
        out[:, ~self.candidates_] = -np.inf
        block = batch.blocked
        if exclude_seen:
            block = block + batch.history
        block = block.tocoo()
        out[block.row, block.col] = -np.inf
        return out

    def recommend(self, query: Query | str, k: int = 10, *,
                  exclude_seen: bool = True) -> list[Recommendation]:
        """Ranked items with reasons and score parts for one person."""
        if isinstance(query, str):
            query = Query(user=query)
        batch = QueryBatch.from_queries(self.data_, [query])
        parts = self.score_parts(batch, exclude_seen=exclude_seen)
        total = sum(parts.values())
        masked = self._masked(total, batch, exclude_seen)
        top = top_k(masked, k)[0]
        top = top[np.isfinite(masked[0, top])]
        reasons = self.reasons(batch, 0, top, parts)
        data = self.data_
        out = []
        for pos, why in zip(top, reasons, strict=True):
            score = float(total[0, pos])
            price = data.prices[pos]
            item_parts = {n: float(p[0, pos]) for n, p in parts.items()}
            fallback = score <= 0 or (self.name != "popularity" and all(
                v <= 0 for n, v in item_parts.items() if n != "popularity"))
            out.append(Recommendation(
                item=str(data.items[pos]), description=str(data.descriptions[pos]),
                price=None if np.isnan(price) else round(float(price), 2),
                group=str(data.groups[pos]), score=score,
                reasons=[self._fallback_reason(pos)] if fallback else why,
                parts=item_parts, fallback=fallback))
        return out

    def score_parts(self, batch: QueryBatch, *, exclude_seen: bool) -> dict[str, np.ndarray]:
        """Score per component (a single recommender is its own only part)."""
        return {self.name: self.score(batch)}

    def reasons(self, batch: QueryBatch, row: int, items: np.ndarray,
                parts: dict[str, np.ndarray]) -> list[list[str]]:
        return self._reasons(batch, row, items)

    def _fallback_reason(self, pos: int) -> str:
        return (f"popular: bought by {int(self.popularity_[pos]):,} customers "
                "(we know too little about you yet)")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column positions of the k largest values per row, largest first.

    Deterministic whatever the numpy version: equal scores are ordered by column position,
    i.e. by ascending item id (``TrainingData.items`` is sorted), at the k-th place too,
    where ``argpartition`` alone picks any of the tied columns (its choice changed between
    numpy releases). NaN ranks as -inf."""
    scores = np.asarray(scores)
    n, m = scores.shape
    k = min(k, m)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.intp)
    cols = top_k_columns(scores, k)  # ascending column per row
    # stable sort: ties keep ascending column (item id) order
    order = np.argsort(-np.take_along_axis(scores, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


def top_k_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) positions of each row's k largest values, in ascending column order (not by
    score). Of the values equal to a row's k-th largest, the lowest columns are taken, so
    the set chosen does not depend on how ``np.partition`` orders ties. ``k`` <= columns."""
    scores = np.asarray(scores)
    n, m = scores.shape
    if k <= 0:
        return np.zeros((n, 0), dtype=np.intp)
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores)
    kth = np.partition(scores, m - k, axis=1)[:, m - k, None]  # a value: ties cannot matter
    chosen = scores > kth
    tied = scores == kth
    need = k - chosen.sum(axis=1)
    # rows with more ties at the k-th value than places left: the lowest columns win
    crowded = np.flatnonzero(tied.sum(axis=1) > need)
    if crowded.size:
        rank = np.cumsum(tied[crowded], axis=1, dtype=np.int32)
        tied[crowded] &= rank <= need[crowded, None]
    chosen |= tied
    return np.nonzero(chosen)[1].reshape(n, k).astype(np.intp, copy=False)


def _row_max_normalize(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float32)
    peak = scores.max(axis=1, keepdims=True) if scores.size else scores
    np.divide(scores, peak, out=scores, where=peak > 0)
    return np.clip(scores, 0.0, 1.0, out=scores)


def _dense(m: sp.spmatrix | np.ndarray) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def _times(n: float) -> str:
    return {1: "once", 2: "twice"}.get(int(n), f"{int(n)} times")


# --------------------------------------------------------------------------- components


class PopularityRecommender(Recommender):
    """The same list for everyone: items bought by the most customers."""

    name = "popularity"
    label = "popularity"

    def score(self, batch: QueryBatch) -> np.ndarray:
        row = self._norm(self.popularity_[None, :])
        return np.repeat(row, batch.n, axis=0)

    def _reasons(self, batch: QueryBatch, row: int, items: np.ndarray) -> list[list[str]]:
        return [[f"popular: bought by {int(self.popularity_[i]):,} customers"] for i in items]


class SegmentPopularityRecommender(Recommender):
    """Items bought by the most customers of the person's segment. ``shrinkage``: pseudo
    customers with overall tastes added to each segment (small segments lean on the whole)."""

    name = "segment"
    label = "popularity in segment"

    def __init__(self, shrinkage: float = 10.0) -> None:
        self.shrinkage = shrinkage

    def _fit(self, data: TrainingData) -> None:
        segments = data.profiles["segment"].astype(object)
        self.segments_ = sorted({s for s in segments if s is not None})
        share = self.popularity_ / max(len(data.users), 1)
        table = {}
        binary = data.binary
        for seg in self.segments_:
            members = np.flatnonzero((segments == seg).to_numpy())
            counts = np.asarray(binary[members].sum(axis=0)).ravel()
            table[seg] = ((counts + self.shrinkage * share) / (len(members) + self.shrinkage),
                          counts, len(members))
        self.table_ = table

    def score(self, batch: QueryBatch) -> np.ndarray:
        overall = self.popularity_ / max(len(self.data_.users), 1)
        out = np.empty((batch.n, len(overall)), dtype=np.float32)
        for i, seg in enumerate(batch.profiles["segment"]):
            out[i] = self.table_[seg][0] if seg in self.table_ else overall
        return self._norm(out)

    def _reasons(self, batch: QueryBatch, row: int, items: np.ndarray) -> list[list[str]]:
        seg = batch.profiles["segment"].iat[row]
        if seg not in self.table_:
            return [[f"popular: bought by {int(self.popularity_[i]):,} customers"] for i in items]
        _, counts, size = self.table_[seg]
        return [[f"popular with {seg} ({int(counts[i])} of {size:,} bought it)"]
                if counts[i] else [f"popular overall; a fit for {seg}"] for i in items]


class RepeatRecommender(Recommender):
    """The person's own purchases again, most bought first. ``half_life_days``: a purchase
    that many days before the end of the training data counts half (None: counts only)."""

    name = "repeat"
    label = "own past purchases"

    def __init__(self, half_life_days: float | None = HALF_LIFE_DAYS) -> None:
        self.half_life_days = half_life_days

    def score(self, batch: QueryBatch) -> np.ndarray:
        return self._norm(_dense(batch.recency))

    def _reasons(self, batch: QueryBatch, row: int, items: np.ndarray) -> list[list[str]]:
        counts = _dense(batch.history[row]).ravel()
        return [[f"you bought this {_times(counts[i])}"] if counts[i] else [] for i in items]


class ItemKNNRecommender(Recommender):
    """Items often bought by the same customers as the person's items: cosine over the
    customers who bought them, each item keeping its ``n_neighbors`` most similar, raised to
    ``power`` (> 1 favours the closest pairs), summed over the distinct items bought.
    Defaults measured on a validation split (20 and 2 beat 100 and 1)."""

    name = "item_knn"
    label = "item-kNN (co-purchase)"

    def __init__(self, n_neighbors: int = 20, power: float = 2.0) -> None:
        self.n_neighbors = n_neighbors
        self.power = power

    def _fit(self, data: TrainingData) -> None:
        sim = _topk_similarity(normalize(data.binary.T.tocsr()), self.n_neighbors)
        sim.data = np.power(sim.data, self.power)
        self.similarity_ = sim

    def score(self, batch: QueryBatch) -> np.ndarray:
        hist = batch.history.astype(bool).astype(np.float32)
        return self._norm(_dense(hist @ self.similarity_))

    def _reasons(self, batch: QueryBatch, row: int, items: np.ndarray) -> list[list[str]]:
        hist = batch.history[row]
        if hist.nnz == 0:
            return [[] for _ in items]
        contrib = _dense(self.similarity_[hist.indices][:, items])  # history x items
        best = hist.indices[contrib.argmax(axis=0)]
        names = self.data_.descriptions
        return [[f"often bought with {_name(names, self.data_.items, b)}"] if contrib[:, j].max()
                > 0 else [] for j, b in enumerate(best)]


def _name(descriptions: np.ndarray, items: pd.Index, pos: int) -> str:
    return str(descriptions[pos]) or f"item {items[pos]}"


def _topk_similarity(rows: sp.csr_matrix, k: int, chunk: int = 2048) -> sp.csr_matrix:
    """Cosine similarity of L2-normalised rows, each row keeping its k largest (no self)."""
    n = rows.shape[0]
    k = max(min(k, n - 1), 0)
    indptr, indices, data = [0], [], []
    rows_t = rows.T.tocsc()
    for start in range(0, n, chunk):
        block = _dense(rows[start:start + chunk] @ rows_t).astype(np.float32)
        block[np.arange(block.shape[0]), np.arange(start, start + block.shape[0])] = 0.0
        # ties at the k-th similarity: the lowest item positions (ascending item id)
        idx = top_k_columns(block, k)
        vals = np.take_along_axis(block, idx, axis=1)
        for r in range(block.shape[0]):
            keep = vals[r] > 0
            indices.append(idx[r][keep])
            data.append(vals[r][keep])
            indptr.append(indptr[-1] + int(keep.sum()))
    cat = (np.concatenate(indices) if indices else np.zeros(0, dtype=np.intp),
           np.concatenate(data) if data else np.zeros(0, dtype=np.float32))
    return sp.csr_matrix((cat[1], cat[0], np.asarray(indptr)), shape=(n, n))


class SimilarProfilesRecommender(Recommender):
    """User-kNN: what the ``n_neighbors`` most similar customers bought, weighted by
    similarity. Returning customers are compared on purchase vectors (cosine), cold starts
    on answer vectors (interests weighted ``interest_weight``, budget, buyer type, region);
    a cold start whose query brings ``people`` (nearest customers by profile text, from
    Chroma) adds what they bought at ``people_weight`` (0.5: NDCG@10 +2.1 % on the Online
    Retail cold start, ``bench/similar_people.py``; the words of a person's own that no
    answer option holds reach the list this way).
    With ``recent`` (default), purchase vectors are the recency-decayed counts, for finding
    neighbours and for what they bring (as in TIFU-kNN, Hu et al. 2020), else 0/1."""

    name = "similar"
    label = "similar profiles"

    def __init__(self, n_neighbors: int = 50, interest_weight: float = 2.0,
                 recent: bool = True, people_weight: float = 0.5) -> None:
        self.n_neighbors = n_neighbors
        self.interest_weight = interest_weight
        self.recent = recent
        self.people_weight = people_weight

    def _vectors(self, matrix: sp.csr_matrix, recency: sp.csr_matrix | None) -> sp.csr_matrix:
        if self.recent and recency is not None:
            return normalize(recency)
        return normalize(matrix.astype(bool).astype(np.float64))

    def _fit(self, data: TrainingData) -> None:
        self.users_normed_ = self._vectors(data.matrix, data.recency)
        self.groups_ = sorted(set(data.catalog["group"]) - NON_PRODUCT_GROUPS)
        self.answers_ = self._answer_matrix(data.profiles)
        # transposed once here, not on every request
        self._users_t = self.users_normed_.T.tocsr()
        self._answers_t = self.answers_.T.tocsr()

    def _answer_matrix(self, profiles: pd.DataFrame) -> sp.csr_matrix:
        cols: list[np.ndarray] = []
        group_pos = {g: i for i, g in enumerate(self.groups_)}
        interests = np.zeros((len(profiles), len(self.groups_)), dtype=np.float32)
        for r, values in enumerate(profiles["interests"]):
            for said in values:
                g = said if said in group_pos else interest_group(said)
                if g in group_pos:
                    interests[r, group_pos[g]] = self.interest_weight
        cols.append(interests)
        options = {**ORDINAL_QUESTIONS, **CATEGORICAL_QUESTIONS}
        for key in ANSWER_KEYS:
            said = profiles[key].to_numpy(dtype=object)
            cols.append(np.stack([(said == o) for o in options[key]], axis=1).astype(np.float32))
        return normalize(sp.csr_matrix(np.hstack(cols)))

    def _neighbours(self, batch: QueryBatch) -> sp.csr_matrix:
        """(n queries, n users) similarity of each query's nearest customers."""
        sims = _dense(self._vectors(batch.history, batch.recency) @ self._users_t)
        cold = ~batch.has_history()
        if cold.any():
            answers = self._answer_matrix(batch.profiles.iloc[np.flatnonzero(cold)])
            sims[cold] = _dense(answers @ self._answers_t)
        own = batch.user_index >= 0
        sims[np.flatnonzero(own), batch.user_index[own]] = 0.0
        k = min(self.n_neighbors, sims.shape[1])
        # ties at the k-th similarity: the lowest user positions (ascending customer id)
        idx = top_k_columns(sims, k)
        vals = np.take_along_axis(sims, idx, axis=1)
        rows = np.repeat(np.arange(batch.n), k)
        out = sp.csr_matrix((vals.ravel(), (rows, idx.ravel())), shape=sims.shape)
        out.eliminate_zeros()
        return out

    def score(self, batch: QueryBatch) -> np.ndarray:
        scores = self._norm(_dense(self._neighbours(batch) @ self.users_normed_))
        people = self._people(batch)
        if people is not None and self.people_weight:
            rows = np.flatnonzero(np.diff(people.indptr) > 0)
            extra = self._norm(_dense(people[rows] @ self.users_normed_))
            scores[rows] = self._norm(scores[rows] + self.people_weight * extra)
        return scores

    @staticmethod
    def _people(batch: QueryBatch) -> sp.csr_matrix | None:
        """The text-nearest customers of the cold starts (None when no query has any)."""
        if batch.people is None or not batch.people.nnz:
            return None
        cold = (~batch.has_history()).astype(np.float64)  # returning: purchase vectors
        people = (sp.diags(cold) @ batch.people).tocsr()
        people.eliminate_zeros()
        return people if people.nnz else None

    def _reasons(self, batch: QueryBatch, row: int, items: np.ndarray) -> list[list[str]]:
        one = _batch_row(batch, row)
        near = self._neighbours(one)
        people = self._people(one)
        if people is not None:
            near = (near + people).tocsr()
        who = self.data_.binary[near.indices][:, items]
        counts = np.asarray(who.sum(axis=0)).ravel()
        like = ("customers with orders like yours" if batch.has_history()[row]
                else "customers who answered like you")
        return [[f"bought by {int(c)} of the {near.nnz} {like}"] if c else [] for c in counts]


def _batch_row(batch: QueryBatch, row: int) -> QueryBatch:
    sl = slice(row, row + 1)
    return QueryBatch(batch.history[sl], batch.recency[sl], batch.user_index[sl],
                      batch.profiles.iloc[sl].reset_index(drop=True), batch.blocked[sl],
                      batch.liked[sl] if batch.liked is not None else None,
                      batch.less[sl] if batch.less is not None else None,
                      batch.people[sl] if batch.people is not None else None)


class ContentRecommender(Recommender):
    """Catalog descriptions embedded (MiniLM by default) and compared by cosine with the
    person's stated interests (a product group's label, or their own words) and with the
    descriptions of what they bought. Items with no description score 0 here.
    ``group_bonus``: added when the item's group is one the person named."""

    name = "content"
    label = "content (interests)"

    def __init__(self, embedder: Embedder | None = None, *, group_bonus: float = 0.2,
                 cache_dir: Path | None = None) -> None:
        self.embedder = embedder
        self.group_bonus = group_bonus
        self.cache_dir = cache_dir

    def _embedder(self) -> Embedder:
        if self.embedder is None:
            self.embedder = MiniLMEmbedder()
        return self.embedder

    def _fit(self, data: TrainingData) -> None:
        desc = data.catalog["description"].astype(str).tolist()
        self.item_vectors_ = _embed_cached(self._embedder(), desc, self.cache_dir)
        self.item_vectors_[np.array([not d for d in desc], dtype=bool)] = 0.0
        self._vectors_t = np.ascontiguousarray(self.item_vectors_.T)
        self.item_groups_ = data.catalog["group"].to_numpy(dtype=object)
        try:
            rules = load_group_rules()
            labels = {r.name: r.label for r in rules.rules}
        except Exception:  # noqa: BLE001 - labels are cosmetic; the names still work
            labels = {}
        self.group_labels_ = {g: labels.get(g, g.replace("_", " ")) for g in
                              set(self.item_groups_)}
        self._text_vectors: dict[str, np.ndarray] = {}
        self._score_memo: dict[tuple[str, str | None], np.ndarray] = {}

    def _texts(self, interests: Sequence[str]) -> list[tuple[str, str, str | None]]:
        """(text to embed, words to quote, group) per interest."""
        out = []
        by_label = {v.lower(): k for k, v in self.group_labels_.items()}
        for raw in interests:
            word = str(raw).strip()
            group = word if word in self.group_labels_ else by_label.get(word.lower())
            if group in NON_PRODUCT_GROUPS:
                continue
            text = self.group_labels_[group] if group else word
            if text:
                out.append((text, text.lower() if group else word, group))
        return out

    def _vectors(self, texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._text_vectors]
        if new:
            for t, v in zip(new, self._embedder().embed(new), strict=True):
                self._text_vectors[t] = v
        return np.stack([self._text_vectors[t] for t in texts]) if texts else np.zeros(
            (0, self.item_vectors_.shape[1]), dtype=np.float32)

    def _interest_scores(self, interests: Sequence[str]) -> np.ndarray | None:
        """max over interests of (cosine, clipped at 0, + the group bonus for a group)."""
        parsed = self._texts(interests)
        if not parsed:
            return None
        return np.max([self._text_scores(t, g) for t, _, g in parsed], axis=0)

    def _text_scores(self, text: str, group: str | None) -> np.ndarray:
        key = (text, group)
        if key not in self._score_memo:
            sims = np.clip(self._vectors([text])[0] @ self.item_vectors_.T, 0.0, None)
            if group and self.group_bonus:
                sims = sims + self.group_bonus * (self.item_groups_ == group)
            self._score_memo[key] = sims.astype(np.float32)
        return self._score_memo[key]

    def score(self, batch: QueryBatch) -> np.ndarray:
        out = np.zeros((batch.n, len(self.item_vectors_)), dtype=np.float32)
        has = batch.has_history()
        if has.any():
            hist = batch.history[np.flatnonzero(has)].copy()
            hist.data = np.log1p(hist.data)
            centroid = normalize(_dense(hist @ self.item_vectors_)).astype(np.float32)
            out[has] = np.clip(centroid @ self._vectors_t, 0.0, None)
        cache: dict[tuple[str, ...], np.ndarray | None] = {}
        for i, interests in enumerate(batch.profiles["interests"]):
            key = tuple(interests)
            if key not in cache:
                cache[key] = self._interest_scores(key)
            if cache[key] is not None:
                out[i] = out[i] + cache[key] if has[i] else cache[key]
        return self._norm(out)

    def _reasons(self, batch: QueryBatch, row: int, items: np.ndarray) -> list[list[str]]:
        reasons: list[list[str]] = [[] for _ in items]
        vecs = self.item_vectors_[items]
        parsed = self._texts(batch.profiles["interests"].iat[row])
        if parsed:
            sims = self._vectors([t for t, _, _ in parsed]) @ vecs.T  # interests x items
            for j in range(len(items)):
                best = int(sims[:, j].argmax())
                group_hit = [w for _, w, g in parsed if g and g == self.item_groups_[items[j]]]
                if group_hit:
                    reasons[j].append(f"matches '{group_hit[0]}'")
                elif sims[best, j] > _MATCH_COSINE:
                    reasons[j].append(f"matches '{parsed[best][1]}'")
        hist = batch.history[row]
        if hist.nnz:
            sims = self.item_vectors_[hist.indices] @ vecs.T
            names = self.data_.descriptions
            for j in range(len(items)):
                b = int(sims[:, j].argmax())
                if sims[b, j] > 0.5 and hist.indices[b] != items[j] and not reasons[j]:
                    reasons[j].append(f"like the {names[hist.indices[b]]} you bought")
        return reasons


class FactorizationRecommender(Recommender):
    """Matrix factorization for implicit feedback: ``implicit``'s alternating least squares
    (Hu, Koren & Volinsky 2008) on who bought what (0/1, confidence ``alpha``). Items and
    people get ``factors`` latent tastes; a person's tastes are solved from their history at
    query time (so session "more like this" items count, and a person unseen in training
    with a history is served too); no history: scores 0. ``factors`` is chosen on the
    validation split by ``evaluation`` (``FACTOR_GRID``; 64 on Online Retail, 16 on
    MovieLens 100k); ``regularization`` and ``alpha`` were set on MovieLens 100k."""

    name = "als"
    label = "matrix factorization (ALS)"

    def __init__(self, factors: int = 64, regularization: float = 0.01, alpha: float = 2.0,
                 iterations: int = 15, seed: int = 0) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed

    def _fit(self, data: TrainingData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares  # lazy: import cost, one module

        with threadpool_limits(1, "blas"):  # implicit parallelises itself (OpenMP)
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.seed, num_threads=0)
            model.fit(data.binary.astype(np.float32), show_progress=False)
        self.item_factors_ = np.asarray(model.item_factors)
        self._factors64 = self.item_factors_.astype(np.float64)  # the per-request solve's
        y = self._factors64
        self.gram_ = y.T @ y + self.regularization * np.eye(y.shape[1])  # YtY + reg I

    def user_factors(self, batch: QueryBatch) -> np.ndarray:
        """(n, factors): each query's tastes, the ALS least-squares step against its 0/1
        history, as ``implicit`` solves it (confidence ``alpha`` for a bought item, 1 with
        preference 0 for the rest): (YtY + (alpha - 1) Y_h'Y_h + reg I) x = alpha sum Y_h.
        Solved here in numpy: one small system per query, no thread pool per request."""
        out = np.zeros((batch.n, self.item_factors_.shape[1]), dtype=np.float32)
        hist = batch.history.tocsr()
        for row in np.flatnonzero(batch.has_history()):
            own = self._factors64[hist.indices[hist.indptr[row]:hist.indptr[row + 1]]]
            a = self.gram_ + (self.alpha - 1.0) * (own.T @ own)
            out[row] = np.linalg.solve(a, self.alpha * own.sum(axis=0))
        return out

    def score(self, batch: QueryBatch) -> np.ndarray:
        scores = self.user_factors(batch) @ self.item_factors_.T
        return self._norm(np.clip(scores, 0.0, None))

    def _reasons(self, batch: QueryBatch, row: int, items: np.ndarray) -> list[list[str]]:
        hist = batch.history[row]
        if hist.nnz == 0:
            return [[] for _ in items]
        # the bought item whose tastes are closest to each recommended one
        own = self.item_factors_[hist.indices]
        fit = own @ self.item_factors_[items].T  # history x items
        best = hist.indices[fit.argmax(axis=0)]
        names = self.data_.descriptions
        return [[f"fits your taste for {_name(names, self.data_.items, b)}"]
                if fit[:, j].max() > 0 and b != items[j] else [] for j, b in enumerate(best)]


_MEMO: dict[str, dict[str, np.ndarray]] = {}  # model id -> text -> vector (this process)


def _embed_cached(embedder: Embedder, texts: list[str], cache_dir: Path | None) -> np.ndarray:
    """Embeddings of ``texts`` ("" -> zeros). Vectors are remembered per model id in this
    process and, with ``cache_dir``, in ``embeddings-<model>.npz`` there, so refits on the
    same catalog embed only new descriptions."""
    model = str(getattr(embedder, "model_id", type(embedder).__name__))
    memo = _MEMO.setdefault(model, {})
    path = None
    if cache_dir is not None:
        safe = hashlib.sha256(model.encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"embeddings-{safe}.npz"
        if path.exists() and not memo:
            with np.load(path, allow_pickle=False) as saved:
                memo.update(zip(saved["texts"].tolist(), saved["vectors"], strict=True))
    missing = [t for t in dict.fromkeys(texts) if t and t not in memo]
    if missing:
        memo.update(zip(missing, embedder.embed(missing), strict=True))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(memo)
            np.savez(path, texts=np.array(keys), vectors=np.stack([memo[t] for t in keys]))
    dim = len(next(iter(memo.values()))) if memo else 384
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        if t:
            out[i] = memo[t]
    return out


# --------------------------------------------------------------------------- hybrid

#: Weights tuned by ``evaluation.tune_weights`` on the Online Retail data (training before
#: 2011-05-24, validation 2011-05-24..2011-08-31); ``assistant recommend evaluate`` retunes
#: them for any data set.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "returning": {"repeat": 0.75, "similar": 1.0, "als": 0.35},
    "returning_new": {"item_knn": 1.0, "similar": 0.5, "als": 0.2},
    "cold": {"popularity": 0.2, "similar": 1.0},
}


def default_components(embedder: Embedder | None = None, cache_dir: Path | None = None,
                       params: Mapping[str, Mapping[str, Any]] | None = None
                       ) -> list[Recommender]:
    """The hybrid's components; ``params``: component name -> parameters to set (a tuned
    ALS size, say)."""
    comps = [PopularityRecommender(), SegmentPopularityRecommender(), RepeatRecommender(),
             ItemKNNRecommender(), ContentRecommender(embedder, cache_dir=cache_dir),
             SimilarProfilesRecommender(), FactorizationRecommender()]
    for comp in comps:
        comp.set_params(**(params or {}).get(comp.name, {}))
    return comps


class HybridRecommender(Recommender):
    """Weighted sum of the components' normalised scores. ``weights``: mode -> component ->
    weight (modes: ``MODES``); a query with no history uses ``cold``, otherwise
    ``returning_new`` when already-bought items are excluded, else ``returning``."""

    name = "hybrid"
    label = "hybrid"

    def __init__(self, components: Sequence[Recommender] | None = None,
                 weights: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.components = components
        self.weights = weights

    def _fit(self, data: TrainingData) -> None:
        comps = list(self.components) if self.components is not None else default_components()
        self.components_ = {c.name: c.fit_data(data) for c in comps}
        self.weights_ = {m: {n: float((self.weights or DEFAULT_WEIGHTS).get(m, {}).get(n, 0.0))
                             for n in self.components_} for m in MODES}

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame | None = None,
            profiles: pd.DataFrame | None = None) -> HybridRecommender:
        repeat = [c for c in self.components or [] if isinstance(c, RepeatRecommender)]
        half_life = repeat[0].half_life_days if repeat else HALF_LIFE_DAYS
        self.fit_data(TrainingData.build(interactions, catalog, profiles,
                                         half_life_days=half_life))
        return self

    def with_weights(self, weights: Mapping[str, Mapping[str, float]]) -> HybridRecommender:
        """The same fitted components under other weights (an experiment's arm): a shallow
        copy, so nothing is refitted and this model is unchanged."""
        other = copy.copy(self)
        other.weights = weights
        other.weights_ = {m: {n: float(weights.get(m, {}).get(n, 0.0))
                              for n in self.components_} for m in MODES}
        return other

    def component_scores(self, batch: QueryBatch) -> dict[str, np.ndarray]:
        return {n: c.score(batch) for n, c in self.components_.items()}

    def score_parts(self, batch: QueryBatch, *, exclude_seen: bool,
                    scores: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Weighted score of each component with a weight in the queries' modes."""
        modes = self.modes(batch, exclude_seen)
        parts = {}
        for name, comp in self.components_.items():
            w = np.array([self.weights_[m][name] for m in modes], dtype=np.float32)[:, None]
            if w.any():
                parts[name] = (comp.score(batch) if scores is None else scores[name]) * w
        parts = parts or {"popularity": np.zeros((batch.n, len(self.data_.items)), np.float32)}
        feedback = self._feedback_part(batch, sum(parts.values()))
        if feedback is not None:
            parts["feedback"] = feedback
        return parts

    def neighbours(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """(len(positions), items) in [0, 1]: how close each item is to each given one, the
        closer of co-purchase (item-kNN) and description (content: cosine from
        ``CONTENT_NEIGHBOUR`` up); an item is 1 to itself."""
        positions = np.asarray(positions, dtype=np.intp)
        out = np.zeros((len(positions), len(self.data_.items)), dtype=np.float32)
        knn = self.components_.get("item_knn")
        if knn is not None and len(positions):
            co = _dense(knn.similarity_[positions])
            out = np.maximum(out, co / np.maximum(co.max(axis=1, keepdims=True), 1e-9))
        content = self.components_.get("content")
        vectors = getattr(content, "item_vectors_", None)
        if vectors is not None and len(positions):
            cos = vectors[positions] @ vectors.T
            out = np.maximum(out, np.where(cos >= CONTENT_NEIGHBOUR, cos, 0.0))
        out[np.arange(len(positions)), positions] = 1.0
        return out

    def _feedback_part(self, batch: QueryBatch, total: np.ndarray) -> np.ndarray | None:
        """"More like this" lifts an item's neighbours, "less like this" pushes the item
        and its neighbours down, in proportion to the row's best score."""
        if batch.liked is None or batch.less is None or not (batch.liked.nnz or batch.less.nnz):
            return None
        part = np.zeros_like(total, dtype=np.float32)
        for row in range(batch.n):
            liked, less = batch.liked[row].indices, batch.less[row].indices
            if not (len(liked) or len(less)):
                continue
            top = max(float(total[row].max()), 1e-6)
            if len(liked):
                part[row] += FEEDBACK_BOOST * top * self.neighbours(liked).max(axis=0)
            if len(less):
                part[row] -= FEEDBACK_DROP * top * self.neighbours(less).max(axis=0)
        part[:, ~self.candidates_] = 0.0
        return part

    def modes(self, batch: QueryBatch, exclude_seen: bool) -> list[str]:
        warm = "returning_new" if exclude_seen else "returning"
        return [warm if h else "cold" for h in batch.has_history()]

    def score(self, batch: QueryBatch, *, exclude_seen: bool = True) -> np.ndarray:
        return sum(self.score_parts(batch, exclude_seen=exclude_seen).values())

    def rank(self, batch: QueryBatch, k: int, *, exclude_seen: bool,
             scores: np.ndarray | None = None) -> np.ndarray:
        scores = self.score(batch, exclude_seen=exclude_seen) if scores is None else scores
        return top_k(self._masked(scores, batch, exclude_seen), k)

    def reasons(self, batch: QueryBatch, row: int, items: np.ndarray,
                parts: dict[str, np.ndarray]) -> list[list[str]]:
        """Each item's reasons from the components that gave it the most (largest first,
        those with at least 15% of its score), then the interest it matches; at most three."""
        per_comp = {n: self.components_[n]._reasons(batch, row, items) for n in parts
                    if n in self.components_}
        if "feedback" in parts:
            per_comp["feedback"] = self._feedback_reasons(batch, row, items)
        content = self.components_.get("content")
        matches = (content._reasons(_batch_row(batch, row).without_history(), 0, items)
                   if content is not None and len(batch.profiles["interests"].iat[row])
                   else [[] for _ in items])
        out = []
        for j, pos in enumerate(items):
            share = {n: float(p[row, pos]) for n, p in parts.items()}
            total = sum(share.values())
            ranked = sorted((n for n in share if total > 0 and share[n] >= 0.15 * total),
                            key=lambda n: -share[n])
            why: list[str] = []
            for n in ranked:
                why.extend(r for r in per_comp[n][j] if r not in why)
            why.extend(r for r in matches[j] if r not in why)
            out.append(why[:3])
        return out

    def _feedback_reasons(self, batch: QueryBatch, row: int, items: np.ndarray
                          ) -> list[list[str]]:
        liked = batch.liked[row].indices if batch.liked is not None else []
        if not len(liked):
            return [[] for _ in items]
        near = self.neighbours(liked)[:, items]  # liked x items
        best = np.asarray(liked)[near.argmax(axis=0)]
        names = self.data_.descriptions
        return [[f"like the {_name(names, self.data_.items, b).lower()} you liked"]
                if near[:, j].max() > 0 and b != items[j] else [] for j, b in enumerate(best)]


#: Every recommender by name, for the CLI and the evaluation.
RECOMMENDERS: dict[str, type[Recommender]] = {
    c.name: c for c in (PopularityRecommender, SegmentPopularityRecommender, RepeatRecommender,
                        ItemKNNRecommender, ContentRecommender, SimilarProfilesRecommender,
                        FactorizationRecommender, HybridRecommender)
}
