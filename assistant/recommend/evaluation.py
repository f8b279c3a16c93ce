"""Offline evaluation of the recommenders: split a user-item file (``interactions.py``), tune
the hybrid on a validation split inside the training data, and score every recommender with
ranking metrics (``ranking.py``) on the test data.

**Splits.** ``chronological``: train before the split date, test from it on; the returning
table has the users present in both periods, the cold-start table the users first seen in the
test period. ``random-per-user``: per user with at least two items, a seeded random
``test_fraction`` of their distinct items is held out (no cold start: every user trains).

**Relevance.** The distinct items a user has in the test data. With already-bought items
excluded, the items they had in training are removed from both the lists and the relevant
set (a user with nothing new is left out of that table).

**Tuning** (no peeking at the test data): the training data is split again the same way
(chronological: a validation period as long as the test period, capped at half the training
span, just before the split date; random: another random hold-out). Components are fitted on
the inner training part, the hybrid's weights are chosen by coordinate ascent on NDCG@k over
the validation users (per mode: returning, returning new items, cold start), then everything
is refitted on the whole training data and scored once on the test data.

**Cold start.** A user unseen in training is served only from what the questionnaire would
know: their answers derived from their own test-period orders the way
``segments/answers.py`` derives them (interests = product groups with >= 20% of their
spend, budget band, buyer type, region), with the survey noise of ``answers.AnswerNoise``
(seeded), and a segment predicted from those answers by the segment classifier trained on
the training customers.

**Metrics**: see ``ranking.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from assistant.core.errors import InputError
from assistant.orders.catalog import assign_groups, build_catalog, load_group_rules
from assistant.orders.features import build_features
from assistant.recommend.algorithms import (
    HALF_LIFE_DAYS,
    NON_PRODUCT_GROUPS,
    RECOMMENDERS,
    HybridRecommender,
    QueryBatch,
    TrainingData,
    default_components,
    profiles_from_features,
    top_k,
)
from assistant.recommend.interactions import InteractionData
from assistant.recommend.ranking import (
    hit_matrix,
    mmr,
    ndcg_from_hits,
    ranking_metrics,
    relevant_counts,
)
from assistant.segments.answers import (
    INTEREST_PREFIX,
    INTEREST_SHARE,
    AnswerNoise,
    add_noise,
    true_answers,
)
from assistant.segments.model import fit_classifier, rfm_scores, training_rows

Progress = Callable[[str, float], None]
SPLITS = ("chronological", "random-per-user")
_CHUNK = 512  # queries scored at once (bounds memory at large catalogs)
_TUNE_USERS = 1500  # validation users used for tuning (a seeded sample when more)
_TUNE_CANDIDATES = 100  # per component and user: the candidates the blend is tuned on
_MIN_GAIN = 0.001  # NDCG@k a weight change must add on the validation users
_GRID = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)
#: latent factors of the ALS model tried on the validation split (the best NDCG@k wins)
FACTOR_GRID = (16, 32, 64, 128)


def _noop(stage: str, done: float) -> None:
    return None


# --------------------------------------------------------------------------- splits


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    kind: str
    detail: dict[str, Any]


def chronological_split(events: pd.DataFrame, split_date: str | pd.Timestamp) -> Split:
    """Train before ``split_date``, test from it on."""
    if split_date is None or not events["time"].notna().any():
        raise InputError("A chronological split needs a time column; this file has none.",
                         "Map one with --map time=COLUMN, or use --split random-per-user.")
    try:
        date = pd.Timestamp(split_date)
    except (ValueError, TypeError):
        raise InputError(f"--split-date {split_date!r} is not a date.",
                         "Write it as YYYY-MM-DD, e.g. --split-date 2011-09-01.") from None
    first, last = events["time"].min(), events["time"].max()
    if not first < date <= last:
        raise InputError(
            f"--split-date {date.date()} leaves one side empty: the data runs from "
            f"{first.date()} to {last.date()}.",
            "Choose a date inside that range (e.g. three quarters of the way through).")
    before = (events["time"] < date).to_numpy()
    return Split(events[before], events[~before], "chronological",
                 {"split_date": str(date.date())})


def random_per_user_split(events: pd.DataFrame, test_fraction: float = 0.25,
                          seed: int = 0) -> Split:
    """Per user with >= 2 distinct items, a random ``test_fraction`` of them (at least one)
    held out with all their events."""
    if not 0 < test_fraction < 1:
        raise InputError(f"--test-fraction {test_fraction} is not between 0 and 1.",
                         "Pass e.g. --test-fraction 0.25.")
    pairs = events[["user", "item"]].drop_duplicates()
    rng = np.random.default_rng(seed)
    pairs = pairs.iloc[rng.permutation(len(pairs))]
    rank = pairs.groupby("user", sort=False).cumcount().to_numpy()
    size = pairs.groupby("user", sort=False)["item"].transform("size").to_numpy()
    n_test = np.where(size >= 2, np.maximum(np.floor(size * test_fraction + 0.5), 1), 0)
    held = pairs[rank < n_test]
    key = pd.MultiIndex.from_frame(events[["user", "item"]])
    is_test = key.isin(pd.MultiIndex.from_frame(held))
    return Split(events[~is_test], events[is_test], "random-per-user",
                 {"test_fraction": test_fraction, "seed": seed})


def make_split(events: pd.DataFrame, kind: str, *, split_date: str | None = None,
               test_fraction: float = 0.25, seed: int = 0) -> Split:
    if kind == "chronological":
        if split_date is None and events["time"].notna().any():
            split_date = str(events["time"].quantile(0.75).normalize().date())
        return chronological_split(events, split_date)
    if kind == "random-per-user":
        return random_per_user_split(events, test_fraction, seed)
    raise InputError(f"Unknown split {kind!r}.", "Use one of: " + ", ".join(SPLITS) + ".")


def validation_split(train: pd.DataFrame, split: Split, seed: int) -> Split:
    """The same kind of split inside the training data (for tuning)."""
    if split.kind == "chronological":
        end = pd.Timestamp(split.detail["split_date"])
        first = train["time"].min()
        test_span = split.test["time"].max() - end
        start = max(end - test_span, first + (end - first) / 2).normalize()
        if not first < start <= train["time"].max():
            start = train["time"].quantile(0.75).normalize()
        return chronological_split(train, start)
    return random_per_user_split(train, split.detail["test_fraction"], seed + 1)




# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """What the recommenders are fitted with for one training period."""

    data: TrainingData
    features: pd.DataFrame | None = None  # per-customer features (orders only)
    segments: pd.Series | None = None

    @cached_property
    def classifier(self) -> Any:
        """Segment classifier on answers, fitted on first use (the cold start needs it)."""
        if self.features is None or self.segments is None:
            return None
        return _segment_classifier(self.features, self.segments)


def build_context(data: InteractionData, train: pd.DataFrame, *,
                  half_life_days: float | None = HALF_LIFE_DAYS) -> Context:
    """Training data (interactions per pair, catalog, profiles) from one training period."""
    pairs = _pairs(train)
    catalog = _catalog(data, train)
    features = segments = None
    if data.kind == "orders":
        features, segments = _features_and_segments(_orders_of(data, train),
                                                     train["time"].max())
        profiles = profiles_from_features(features, segments)
    else:
        profiles = _generic_profiles(train, catalog, activity=True)
    frame = pairs.assign(time=pairs["last"])
    training = TrainingData.build(frame, catalog, profiles, half_life_days=half_life_days)
    return Context(training, features, segments)


def _pairs(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): weight = distinct orders (or the rating), last time."""
    ev = events.drop_duplicates(["user", "item", "order"])
    grouped = ev.groupby(["user", "item"], sort=False)
    rated = ev["weight"].ne(1.0).any()
    weight = grouped["weight"].last() if rated else grouped.size().astype(float)
    return pd.DataFrame({"weight": weight, "last": grouped["time"].max()}).reset_index()


def _catalog(data: InteractionData, train: pd.DataFrame) -> pd.DataFrame:
    if data.kind == "orders":
        return build_catalog(_orders_of(data, train))
    items = pd.Index(train["item"].unique())
    desc = (data.descriptions.reindex(items).fillna("") if data.descriptions is not None
            else pd.Series("", index=items))
    pop = train.drop_duplicates(["user", "item"]).groupby("item").size().reindex(items)
    return pd.DataFrame({"item": items, "description": desc.to_numpy(),
                         "typical_price": np.nan, "popularity": pop.to_numpy(),
                         "group": assign_groups(desc).to_numpy()})


def _orders_of(data: InteractionData, events: pd.DataFrame) -> pd.DataFrame:
    assert data.orders is not None
    start, end = events["time"].min(), events["time"].max()
    users = pd.Index(events["user"].unique())
    orders = data.orders
    keep = (orders["timestamp"] >= start) & (orders["timestamp"] <= end)
    keep &= orders["customer"].astype(str).isin(users)
    orders = orders[keep.to_numpy()]
    # a random split holds out (user, item) pairs: keep only the pairs of ``events``
    pairs = pd.MultiIndex.from_frame(events[["user", "item"]].drop_duplicates())
    key = pd.MultiIndex.from_arrays([orders["customer"].astype(str), orders["item"].astype(str)])
    return orders[key.isin(pairs)]


def _features_and_segments(orders: pd.DataFrame,
                           last: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
    features = build_features(orders, groups=sorted(load_group_rules().names),
                              reference_date=(last + pd.Timedelta(days=1)).normalize())
    features.index = features.index.astype(str)
    segments = (rfm_scores(features)["rfm_segment"] if len(features) >= 5
                else pd.Series(None, index=features.index, dtype=object))
    return features, segments


def _segment_classifier(features: pd.DataFrame, segments: pd.Series) -> Any:
    if segments.isna().all() or segments.nunique() < 2:
        return None
    rows = training_rows(features, segments)
    return fit_classifier(rows[rows["mode"] == "answers"])


def _generic_profiles(events: pd.DataFrame, catalog: pd.DataFrame, *,
                      activity: bool) -> pd.DataFrame:
    """Profiles without orders: interests = groups with >= 20% of a user's interactions;
    segment = activity tercile (light / regular / heavy) in the training data."""
    group = catalog.set_index("item")["group"].reindex(events["item"]).fillna("other")
    frame = pd.DataFrame({"user": events["user"].to_numpy(), "group": group.to_numpy()})
    share = pd.crosstab(frame["user"], frame["group"], normalize="index")
    share = share.drop(columns=[c for c in share if c in ("other", *NON_PRODUCT_GROUPS)])
    out = pd.DataFrame(index=share.index.astype(str))
    cols = np.asarray(share.columns, dtype=object)
    out["interests"] = [tuple(cols[r >= INTEREST_SHARE]) for r in share.to_numpy()]
    if activity:
        n = frame.groupby("user").size().reindex(share.index)
        ranks = n.rank(method="first", pct=True)
        out["segment"] = np.select([ranks <= 1 / 3, ranks <= 2 / 3], ["light", "regular"],
                                   "heavy")
    return out


def cold_profiles(data: InteractionData, events: pd.DataFrame, context: Context, *,
                  seed: int) -> pd.DataFrame:
    """What the questionnaire would know about new users: answers derived from their own
    events (``segments/answers.py``), with survey noise, and the segment those answers suggest."""
    if data.kind != "orders":
        profiles = _generic_profiles(events, context.data.catalog.reset_index(),
                                     activity=False)
        noisy = add_noise(_interest_frame(profiles), AnswerNoise(), seed=seed)
        profiles["interests"] = _interest_tuples(noisy)
        return profiles
    features, _ = _features_and_segments(_orders_of(data, events), events["time"].max())
    noisy = add_noise(true_answers(features), AnswerNoise(), seed=seed)
    out = pd.DataFrame(index=features.index.astype(str))
    out["interests"] = _interest_tuples(noisy)
    for key in ("spend_per_order", "buyer_type", "region"):
        out[key] = noisy[key].astype(object).where(noisy[key].notna(), None).to_numpy()
    out["segment"] = None
    if context.classifier is not None:
        pipe = context.classifier
        cols = list(pipe[0].feature_names_in_)
        frame = noisy.reindex(columns=cols)
        for c in cols:
            if c.startswith(INTEREST_PREFIX):
                frame[c] = frame[c].fillna(0.0)
        out["segment"] = pipe.predict(frame)
    return out


def _interest_frame(profiles: pd.DataFrame) -> pd.DataFrame:
    groups = sorted({g for v in profiles["interests"] for g in v})
    return pd.DataFrame({INTEREST_PREFIX + g: [float(g in v) for v in profiles["interests"]]
                         for g in groups}, index=profiles.index)


def _interest_tuples(answers: pd.DataFrame) -> list[tuple[str, ...]]:
    cols = [c for c in answers if c.startswith(INTEREST_PREFIX)]
    names = np.asarray([c.removeprefix(INTEREST_PREFIX) for c in cols], dtype=object)
    flags = answers[cols].to_numpy(dtype=float) > 0 if cols else np.zeros((len(answers), 0))
    return [tuple(names[r]) for r in flags.astype(bool)]


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    """Queries with their relevant items (one table of the report)."""

    batch: QueryBatch
    relevant: sp.csr_matrix

    @property
    def users(self) -> int:
        return self.batch.n


def returning_target(context: Context, test: pd.DataFrame, *, new_only: bool) -> Target:
    data = context.data
    # in training order (ascending user id), not in whatever order ``Index.intersection``
    # returns: tuning samples users by position, so the order must not depend on pandas
    users = data.users[data.users.isin(pd.unique(test["user"]))]
    idx = data.users.get_indexer(users)
    batch = QueryBatch.for_users(data, idx)
    relevant = _relevant(test, users, data.items)
    if new_only:
        relevant = relevant - relevant.multiply(batch.history.astype(bool))
        relevant.eliminate_zeros()
    keep = np.flatnonzero(np.diff(relevant.indptr) > 0)
    return Target(_take(batch, keep), relevant[keep])


def cold_target(context: Context, profiles: pd.DataFrame, test: pd.DataFrame) -> Target:
    data = context.data
    users = pd.Index(profiles.index.astype(str))
    relevant = _relevant(test, users, data.items)
    keep = np.flatnonzero(np.diff(relevant.indptr) > 0)
    batch = QueryBatch.for_profiles(data, profiles.iloc[keep])
    return Target(batch, relevant[keep])


def _relevant(test: pd.DataFrame, users: pd.Index, items: pd.Index) -> sp.csr_matrix:
    ev = test[test["user"].isin(users)]
    rows = users.get_indexer(ev["user"])
    cols = items.get_indexer(ev["item"])
    ok = cols >= 0  # items never seen in training cannot be recommended by anyone
    m = sp.csr_matrix((np.ones(ok.sum()), (rows[ok], cols[ok])), shape=(len(users), len(items)))
    m.data[:] = 1.0
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _take(batch: QueryBatch, rows: np.ndarray) -> QueryBatch:
    return QueryBatch(batch.history[rows], batch.recency[rows], batch.user_index[rows],
                      batch.profiles.iloc[rows].reset_index(drop=True), batch.blocked[rows])


# --------------------------------------------------------------------------- scoring


def component_scores(model: HybridRecommender, batch: QueryBatch,
                     names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    names = list(names or model.components_)
    out = {n: np.empty((batch.n, len(model.data_.items)), dtype=np.float32) for n in names}
    for start in range(0, batch.n, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, batch.n))
        part = _take(batch, rows)
        for n in names:
            out[n][rows] = model.components_[n].score(part)
    return out


def _rank_all(model: HybridRecommender, target: Target, scores: dict[str, np.ndarray],
              k: int, exclude_seen: bool, mode: str,
              diversity: Sequence[float] = ()) -> dict[str, np.ndarray]:
    """Top-k lists of every component and of the hybrid (weights of ``mode``); with
    ``diversity`` levels, the hybrid re-ranked by MMR at each (``hybrid+mmr<level>``)."""
    lists = {}
    for name, s in scores.items():
        lists[name] = model.components_[name].rank(target.batch, k, exclude_seen=exclude_seen,
                                                    scores=s)
    blend = sum(w * scores[n] for n, w in model.weights_[mode].items() if w and n in scores)
    lists["hybrid"] = model.rank(target.batch, k, exclude_seen=exclude_seen, scores=blend)
    vectors = getattr(model.components_.get("content"), "item_vectors_", None)
    if diversity and vectors is not None:
        masked = model._masked(blend, target.batch, exclude_seen)
        for level in diversity:
            rows = [mmr(row, vectors, k, 1.0 - level) for row in masked]
            lists[f"hybrid+mmr{level:g}"] = np.array(
                [np.pad(r, (0, k - len(r)), constant_values=-1) for r in rows], dtype=np.intp)
    return lists


# --------------------------------------------------------------------------- tuning


def tune_weights(model: HybridRecommender, target: Target, mode: str, *, k: int,
                 exclude_seen: bool, seed: int = 0,
                 min_gain: float = _MIN_GAIN) -> tuple[dict[str, float], float]:
    """Hybrid weights for ``mode`` on ``target``'s users (a seeded sample of at most
    ``_TUNE_USERS``): start from the best single component, then coordinate ascent over
    ``_GRID``, keeping a change only when NDCG@k improves by more than ``min_gain`` (so a
    component joins the blend only when it clearly helps). Returns (weights, NDCG@k)."""
    names = _mode_components(model, mode, exclude_seen)
    if target.users == 0 or not names:
        return dict(model.weights_[mode]), float("nan")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(target.users, min(target.users, _TUNE_USERS), replace=False))
    sub = Target(_take(target.batch, rows), target.relevant[rows])
    scores = component_scores(model, sub.batch, names)
    cand, gathered, hits_at, n_rel = _candidates(model, sub, scores, exclude_seen)

    def value(w: dict[str, float]) -> float:
        blend = sum(w[n] * gathered[n] for n in names if w[n]) + cand
        top = top_k(blend, k)
        return ndcg_from_hits(np.take_along_axis(hits_at, top, axis=1), n_rel, k)

    singles = {n: value({m: float(m == n) for m in names}) for n in names}
    first = max(names, key=lambda n: singles[n])
    weights = {n: float(n == first) for n in names}
    best = singles[first]
    for _ in range(4):
        improved = False
        for n in names:
            for g in _GRID:
                trial = {**weights, n: g}
                if not any(trial.values()):
                    continue
                v = value(trial)
                if v > best + min_gain:
                    best, weights, improved = v, trial, True
        if not improved:
            break
    return {n: weights.get(n, 0.0) for n in model.components_}, best


def _mode_components(model: HybridRecommender, mode: str, exclude_seen: bool) -> list[str]:
    """Components that can score in ``mode`` (no history: no repeat, item-kNN, ALS)."""
    skip = {"repeat"} if exclude_seen or mode == "cold" else set()
    if mode == "cold":
        skip |= {"item_knn", "als"}
    return [n for n in model.components_ if n not in skip]


def _candidates(model: HybridRecommender, target: Target, scores: dict[str, np.ndarray],
                exclude_seen: bool) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray,
                                             np.ndarray]:
    """Per user, the union of each component's top candidates: (base score with the
    popularity tie-break and -inf for masked / padding slots, gathered component scores,
    relevance at each slot, number of relevant items)."""
    batch = target.batch
    tops = [model.rank(batch, _TUNE_CANDIDATES, exclude_seen=exclude_seen, scores=s)
            for s in scores.values()]
    idx = np.sort(np.hstack(tops), axis=1)
    dup = np.zeros(idx.shape, dtype=bool)
    dup[:, 1:] = idx[:, 1:] == idx[:, :-1]
    zero = np.zeros((batch.n, len(model.data_.items)))
    base = np.take_along_axis(model._masked(zero, batch, exclude_seen), idx, axis=1)
    base[dup] = -np.inf
    gathered = {n: np.take_along_axis(s, idx, axis=1).astype(np.float64)
                for n, s in scores.items()}
    hits = hit_matrix(idx, target.relevant)
    return base, gathered, hits, relevant_counts(target.relevant)


# --------------------------------------------------------------------------- evaluate


def evaluate(data: InteractionData, *, split: str = "chronological",
             split_date: str | None = None, test_fraction: float = 0.25, k: int = 10,
             exclude_seen: Sequence[bool] = (False, True), seed: int = 0,
             embedder: Any = None, cache_dir: Path | None = None,
             progress: Progress | None = None,
             diversity: Sequence[float] = (), without: Sequence[str] = ()) -> dict[str, Any]:
    """The whole offline evaluation (see the module docstring). Returns the report.
    ``diversity``: MMR levels (0-1, the weight of difference) whose re-ranked hybrid is
    reported beside the others, for the accuracy / diversity trade-off. ``without``:
    components left out of the hybrid and the tables (an ablation: does it help?)."""
    progress = progress or _noop
    _check_without(without)
    if k < 1:
        raise InputError(f"--k {k} must be at least 1.", "Pass e.g. --k 10.")
    outer = make_split(data.events, split, split_date=split_date, test_fraction=test_fraction,
                       seed=seed)
    _check_split(outer)
    progress("tuning the hybrid on a validation split", 0.05)
    try:
        inner = validation_split(outer.train, outer, seed)
        weights, val_scores, params = tune_hybrid(data, inner, k, exclude_seen, seed,
                                                  embedder, cache_dir, progress,
                                                  without=without)
        validation: dict[str, Any] = {"split": inner.detail, "ndcg": val_scores}
    except InputError as err:  # too little training data to carve a validation split
        weights, params, validation = None, {}, {"split": {}, "ndcg": {},
                                                 "note": f"default weights: {err.message}"}
    progress("fitting on the training data", 0.55)
    context = build_context(data, outer.train)
    model = _fitted_hybrid(context, weights, embedder, cache_dir, params, without)
    report: dict[str, Any] = {
        "data": data.summary(), "k": k,
        "split": {"kind": outer.kind, **outer.detail,
                  "train_interactions": int(len(outer.train)),
                  "test_interactions": int(len(outer.test)),
                  "train_users": int(len(context.data.users)),
                  "items": int(context.data.candidates.sum())},
        "validation": validation,
        "weights": model.weights_, "params": params, "users": {},
    }
    for i, excl in enumerate(exclude_seen):
        progress(f"scoring returning users ({'new items' if excl else 'repeats allowed'})",
                 0.65 + 0.1 * i)
        key = "recommenders_new_items" if excl else "recommenders"
        target = returning_target(context, outer.test, new_only=excl)
        report["users"][key] = target.users
        report[key] = _table(model, target, k, excl,
                             "returning_new" if excl else "returning", diversity)
    progress("scoring the cold start", 0.9)
    report["cold_start"], report["users"]["cold_start"] = _cold_table(
        data, context, model, outer, k, seed, diversity)
    progress("done", 1.0)
    return _finite(report)


def _finite(value: Any) -> Any:
    """NaN -> None everywhere (the report is printed as strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _check_without(without: Sequence[str]) -> None:
    names = [c.name for c in default_components()]
    unknown = [n for n in without if n not in names]
    if unknown:
        raise InputError(f"--without {', '.join(unknown)}: no such recommender.",
                         "Leave out any of: " + ", ".join(names) + ".")
    if set(names) <= set(without):
        raise InputError("--without leaves no recommender to evaluate.",
                         "Leave out fewer: " + ", ".join(names) + ".")


def _check_split(split: Split) -> None:
    both = set(split.train["user"]) & set(split.test["user"])
    if not both:
        raise InputError("No user has interactions on both sides of the split, so nothing "
                         "can be evaluated for returning users.",
                         "Move --split-date, or use --split random-per-user.")


def _fitted_hybrid(context: Context, weights: dict[str, dict[str, float]] | None,
                   embedder: Any, cache_dir: Path | None,
                   params: dict[str, dict[str, Any]] | None = None,
                   without: Sequence[str] = ()) -> HybridRecommender:
    comps = [c for c in default_components(embedder, cache_dir, params) if c.name not in without]
    model = HybridRecommender(comps, weights)
    model.fit_data(context.data)
    return model


def _choose_factors(model: HybridRecommender, target: Target, k: int, exclude_seen: bool,
                    seed: int) -> tuple[int, dict[int, float]]:
    """The ALS size with the best NDCG@k on the validation users (a seeded sample); the
    model's ALS component is left fitted with it. Returns (factors, NDCG@k per size)."""
    als = model.components_.get("als")
    if als is None or target.users == 0:
        return getattr(als, "factors", 0), {}
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(target.users, min(target.users, _TUNE_USERS), replace=False))
    sub = Target(_take(target.batch, rows), target.relevant[rows])
    found: dict[int, float] = {}
    fitted = {}
    for f in FACTOR_GRID:  # the model's own size is fitted already
        comp = als if f == als.factors else type(als)(
            **{**als.get_params(), "factors": f}).fit_data(model.data_)
        top = comp.rank(sub.batch, k, exclude_seen=exclude_seen)
        found[f] = ndcg_from_hits(hit_matrix(top, sub.relevant), relevant_counts(sub.relevant), k)
        fitted[f] = comp
    best = max(FACTOR_GRID, key=lambda f: (found[f], -f))
    model.components_["als"] = fitted[best]
    return best, found


def tune_hybrid(data: InteractionData, inner: Split, k: int, exclude_seen: Sequence[bool],
                seed: int, embedder: Any, cache_dir: Path | None,
                progress: Progress, *, without: Sequence[str] = ()
                ) -> tuple[dict[str, dict[str, float]], dict[str, Any], dict[str, dict[str, Any]]]:
    """Fit on ``inner.train``, choose the ALS size and each mode's weights on
    ``inner.test``. Returns (weights, validation scores, component parameters)."""
    context = build_context(data, inner.train)
    model = _fitted_hybrid(context, None, embedder, cache_dir, without=without)
    weights = {m: dict(w) for m, w in model.weights_.items()}
    scores: dict[str, Any] = {}
    params: dict[str, dict[str, Any]] = {}
    if "als" in model.components_:
        progress("choosing the ALS size", 0.15)
        excl = True in exclude_seen
        target = returning_target(context, inner.test, new_only=excl)
        factors, by_size = _choose_factors(model, target, k, excl, seed)
        params["als"] = {"factors": factors}
        scores["als_factors"] = {str(f): v for f, v in by_size.items()}
    for excl in (False, True):
        mode = "returning_new" if excl else "returning"
        if excl not in exclude_seen:
            continue
        progress(f"tuning weights ({mode})", 0.2 + 0.1 * excl)
        target = returning_target(context, inner.test, new_only=excl)
        weights[mode], scores[mode] = tune_weights(model, target, mode, k=k,
                                                   exclude_seen=excl, seed=seed)
    if inner.kind == "chronological":
        progress("tuning weights (cold start)", 0.4)
        target = _cold_target_for(data, context, inner, seed + 7)
        if target is not None and target.users:
            weights["cold"], scores["cold"] = tune_weights(model, target, "cold", k=k,
                                                           exclude_seen=False, seed=seed)
    return weights, scores, params


def _cold_target_for(data: InteractionData, context: Context, split: Split,
                     seed: int) -> Target | None:
    new = ~split.test["user"].isin(context.data.users)
    events = split.test[new.to_numpy()]
    if events.empty:
        return None
    profiles = cold_profiles(data, events, context, seed=seed)
    return cold_target(context, profiles, events)


def _table(model: HybridRecommender, target: Target, k: int, exclude_seen: bool,
           mode: str, diversity: Sequence[float] = ()) -> dict[str, dict[str, float]]:
    if target.users == 0:
        return {}
    names = list(model.components_)
    if mode == "cold":
        names = _mode_components(model, mode, exclude_seen)
    lists: dict[str, list[np.ndarray]] = {}
    for start in range(0, target.users, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, target.users))
        part = Target(_take(target.batch, rows), target.relevant[rows])
        scores = component_scores(model, part.batch, names)
        for name, top in _rank_all(model, part, scores, k, exclude_seen, mode,
                                   diversity).items():
            lists.setdefault(name, []).append(top)
    data = model.data_
    content = model.components_.get("content")
    vectors = getattr(content, "item_vectors_", None)
    if vectors is not None and not vectors.any():
        vectors = None  # no descriptions (e.g. MovieLens ids): diversity means nothing
    out = {}
    for name, chunks in lists.items():
        out[name] = ranking_metrics(np.vstack(chunks), target.relevant, k,
                                    popularity=data.popularity, n_users=len(data.users),
                                    n_items=int(data.candidates.sum()), vectors=vectors)
    return out


def _cold_table(data: InteractionData, context: Context, model: HybridRecommender,
                split: Split, k: int, seed: int, diversity: Sequence[float] = ()
                ) -> tuple[dict[str, dict[str, float]], int]:
    if split.kind != "chronological":
        return {}, 0
    target = _cold_target_for(data, context, split, seed + 11)
    if target is None or target.users == 0:
        return {}, 0
    return _table(model, target, k, False, "cold", diversity), target.users


# --------------------------------------------------------------------------- text report

LABELS = {name: cls.label for name, cls in RECOMMENDERS.items()}


def format_report(report: dict[str, Any]) -> str:
    """The report as plain-text tables (one per setting, plus the cold start)."""
    k = report["k"]
    split = report["split"]
    lines = [f"data: {report['data']['source']} ({report['data']['kind']}): "
             f"{report['data']['interactions']:,} interactions, {report['data']['users']:,} "
             f"users, {report['data']['items']:,} items",
             "split: " + ", ".join(f"{key} {v}" for key, v in split.items())]
    titles = {"recommenders": "returning users, already-bought items allowed",
              "recommenders_new_items": "returning users, already-bought items excluded",
              "cold_start": "cold start (users unseen in training; questionnaire answers only)"}
    for key, title in titles.items():
        if key not in report:
            continue
        users = report["users"].get(key, 0)
        lines.append("")
        lines.append(f"{title}: {users:,} users, k={k}")
        if not report[key]:
            lines.append("  (none: " + ("a random split keeps every user in training)"
                                        if split["kind"] != "chronological" else "no users)"))
            continue
        lines.extend(_text_table(report[key]))
        if key == "recommenders" and split["kind"] != "chronological":
            lines.append("  (a random split holds out items the user never had in training, "
                         "so already-bought items can only take up room here)")
        if key == "recommenders_new_items" and "repeat" in report[key]:
            lines.append("  (own past purchases: nothing is left once bought items are excluded; "
                         "its lists are the popularity fallback)")
    lines.append("")
    validation = report["validation"]
    lines.append("hybrid weights (tuned on the validation split "
                 + ", ".join(f"{key} {v}" for key, v in validation["split"].items()) + "):"
                 if validation["split"] else f"hybrid weights ({validation.get('note')}):")
    for mode, w in report["weights"].items():
        shown = ", ".join(f"{n} {v:g}" for n, v in w.items() if v)
        val = report["validation"]["ndcg"].get(mode)
        extra = f" (validation NDCG@{k} {val:.3f})" if val is not None else ""
        lines.append(f"  {mode}: {shown}{extra}")
    return "\n".join(lines)


def _text_table(table: dict[str, dict[str, float]]) -> list[str]:
    metrics = list(next(iter(table.values())))
    width = max(len(LABELS.get(n, n)) for n in table) + 2
    head = "  " + "recommender".ljust(width) + "".join(f"{m:>13}" for m in metrics)
    rows = [head, "  " + "-" * (len(head) - 2)]
    best = {m: max(v[m] for v in table.values()) for m in metrics}
    for name, vals in table.items():
        cells = "".join(
            f"{vals[m]:>12.3f}{'*' if vals[m] == best[m] and m != 'novelty' else ' '}"
            for m in metrics)
        rows.append("  " + LABELS.get(name, name).ljust(width) + cells)
    rows.append("  (* best in column)")
    return rows
