"""Segments: RFM scores and names, clusters chosen by measurement, and the segment classifier
that places a person from questionnaire answers, behaviour, or both.

RFM names (R = recency score, FM = rounded mean of frequency and monetary scores, 1-5):

| R \\ FM | 1 | 2 | 3 | 4 | 5 |
|---|---|---|---|---|---|
| 5 | New | Potential Loyalists | Potential Loyalists | Champions | Champions |
| 4 | Promising | Potential Loyalists | Potential Loyalists | Loyal | Loyal |
| 3 | Need Attention | Need Attention | Need Attention | Loyal | Loyal |
| 2 | Hibernating | Hibernating | At Risk | At Risk | Can't Lose Them |
| 1 | Lost | Lost | At Risk | At Risk | Can't Lose Them |
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import entropy
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    davies_bouldin_score,
    f1_score,
    silhouette_score,
)
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from assistant.core.errors import InputError
from assistant.infra.artifacts import load_bundle, save_bundle
from assistant.orders.catalog import assign_groups, build_catalog, load_group_rules
from assistant.orders.features import build_features
from assistant.orders.features_duckdb import build_features_duckdb, choose_engine
from assistant.orders.ingest import load_orders
from assistant.segments.answers import (
    ANSWER_COLUMNS,
    INTEREST_PREFIX,
    AnswerNoise,
    add_noise,
    true_answers,
)

#: the order_frequency answer of someone ordering for the first time (a rule: New)
FIRST_ORDER = "first order"
SEGMENTS = ["Champions", "Loyal", "Potential Loyalists", "New", "Promising", "Need Attention",
            "At Risk", "Can't Lose Them", "Hibernating", "Lost"]
_RFM_MAP = {  # R score -> names for FM 1..5
    5: ["New", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal", "Loyal"],
    3: ["Need Attention", "Need Attention", "Need Attention", "Loyal", "Loyal"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    1: ["Lost", "Lost", "At Risk", "At Risk", "Can't Lose Them"],
}
CLUSTER_FEATURES = ["recency_days", "frequency", "monetary", "avg_basket_value", "tenure_days",
                    "distinct_items", "return_rate"]
BEHAVIOUR_FEATURES = ["recency_days", "frequency", "monetary", "tenure_days",
                      "avg_basket_value", "avg_items_per_order", "distinct_items",
                      "return_rate", "days_between_orders"]
MODES = ("both", "behaviour", "answers")


# --------------------------------------------------------------------------- RFM
def _score(values: pd.Series, *, reverse: bool = False) -> pd.Series:
    """Quintile score 1-5 (ties broken by order of appearance, as is usual for RFM)."""
    ranks = values.rank(method="first", ascending=not reverse)
    return pd.qcut(ranks, 5, labels=False).astype(int) + 1


def rfm_scores(features: pd.DataFrame) -> pd.DataFrame:
    """R, F, M scores 1-5 per customer, FM = round((F + M) / 2), and the segment name."""
    if len(features) < 5:
        raise InputError(f"RFM scoring needs at least 5 customers; the data has {len(features)}.",
                         "Use an orders file with more customers.")
    out = pd.DataFrame(index=features.index)
    out["r_score"] = _score(features["recency_days"], reverse=True)
    out["f_score"] = _score(features["frequency"])
    out["m_score"] = _score(features["monetary"])
    out["fm_score"] = np.floor((out["f_score"] + out["m_score"]) / 2 + 0.5).astype(int)
    table = np.array([_RFM_MAP[r] for r in (1, 2, 3, 4, 5)], dtype=object)
    out["rfm_segment"] = table[out["r_score"] - 1, out["fm_score"] - 1]
    return out


# --------------------------------------------------------------------------- clusters
def _cluster_matrix(features: pd.DataFrame) -> pd.DataFrame:
    return features[CLUSTER_FEATURES].clip(lower=0).fillna(0)


def cluster_pipeline(k: int, random_state: int = 0) -> Pipeline:
    return Pipeline([
        ("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
        ("scale", StandardScaler()),
        ("kmeans", KMeans(n_clusters=k, n_init=4, random_state=random_state)),
    ])


@dataclass
class ClusterResult:
    k: int
    pipeline: Pipeline
    labels: pd.Series
    scores: pd.DataFrame  # one row per k tried
    profiles: pd.DataFrame  # one row per cluster


# k starts at 3: silhouette nearly always prefers 2, which is too coarse to personalize
K_RANGE = range(3, 9)


def discover_clusters(features: pd.DataFrame, rfm: pd.DataFrame, k_range: range = K_RANGE,
                      *, sample: int = 3000, random_state: int = 0,
                      progress: Any = None) -> ClusterResult:
    """KMeans on log-scaled features, k chosen by silhouette (Davies-Bouldin reported)."""
    X = _cluster_matrix(features)
    rng = np.random.default_rng(random_state)
    idx = rng.choice(len(X), size=min(sample, len(X)), replace=False)
    rows = []
    for k in k_range:
        if k >= len(X):
            break
        pipe = cluster_pipeline(k, random_state).fit(X)
        Z = pipe[:-1].transform(X.iloc[idx])
        labels = pipe[-1].labels_[idx]
        rows.append({"k": k, "silhouette": float(silhouette_score(Z, labels)),
                     "davies_bouldin": float(davies_bouldin_score(Z, labels)),
                     "inertia": float(pipe[-1].inertia_)})
        if progress:
            progress(k)
    if not rows:
        raise InputError("Too few customers to form clusters.", "Use a larger orders file.")
    scores = pd.DataFrame(rows)
    # a tie on both scores goes to the smaller k (explicit, not left to the sort)
    best = int(scores.sort_values(["silhouette", "davies_bouldin", "k"],
                                  ascending=[False, True, True]).iloc[0]["k"])
    pipe = cluster_pipeline(best, random_state).fit(X)
    labels = pd.Series(pipe[-1].labels_, index=features.index, name="cluster")
    prof = features[CLUSTER_FEATURES].groupby(labels).median()
    prof.insert(0, "size", labels.value_counts().sort_index())
    prof["nearest_rfm"] = rfm["rfm_segment"].groupby(labels).agg(lambda s: s.mode().iloc[0])
    prof["name"] = [f"C{c}: mostly {n}" for c, n in zip(prof.index, prof["nearest_rfm"],
                                                        strict=True)]
    return ClusterResult(best, pipe, labels, scores, prof)


# --------------------------------------------------------------------------- classifier
def classifier_pipeline(categorical: list[str], binary: list[str], numeric: list[str],
                        *, log_numeric: bool = True) -> Pipeline:
    """Answers one-hot (unknown answers ignored), numeric behaviour log-scaled with
    missing-behaviour indicators, multinomial logistic regression."""
    numeric_steps: list[tuple[str, Any]] = []
    if log_numeric:
        numeric_steps.append(("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one")))
    numeric_steps += [("impute", SimpleImputer(strategy="median", add_indicator=True,
                                               keep_empty_features=True)),
                      ("scale", StandardScaler())]
    transformers: list[tuple[str, Any, list[str]]] = []
    if categorical:
        transformers.append(("said", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="(no answer)")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]), categorical))
    if binary:
        transformers.append(("interests", SimpleImputer(strategy="constant", fill_value=0,
                                                        keep_empty_features=True), binary))
    if numeric:
        transformers.append(("observed", Pipeline(numeric_steps), numeric))
    return Pipeline([
        ("features", ColumnTransformer(transformers, sparse_threshold=0)),
        # newton-cg converges in ~12 iterations here; lbfgs needed 440 (measured: 2 s vs 85 s)
        ("model", LogisticRegression(solver="newton-cg", max_iter=300, C=1.0)),
    ])


def behaviour_columns(features: pd.DataFrame) -> list[str]:
    return BEHAVIOUR_FEATURES + [c for c in features.columns if c.startswith("share_")]


def training_rows(features: pd.DataFrame, labels: pd.Series, *, noise: AnswerNoise | None = None,
                  seed: int = 0) -> pd.DataFrame:
    """Three rows per real customer: answers + behaviour, behaviour only, answers only.
    Answers are derived from the customer's own behaviour, with survey noise."""
    noise = noise or AnswerNoise()
    beh_cols = behaviour_columns(features)
    behaviour = features[beh_cols].clip(lower=0)
    frames = []
    for i, mode in enumerate(MODES):
        answers = add_noise(true_answers(features), noise, seed=seed + i)
        part = pd.concat([answers, behaviour], axis=1)
        if mode == "answers":
            part[beh_cols] = np.nan
        if mode == "behaviour":
            part[answers.columns] = np.nan
        part["mode"] = mode
        part["customer"] = features.index.to_numpy()
        part["segment"] = labels.reindex(features.index).to_numpy()
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def _columns(rows: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    categorical = [c for c in ANSWER_COLUMNS if c in rows]
    binary = [c for c in rows.columns if c.startswith(INTEREST_PREFIX)]
    numeric = [c for c in rows.columns if c in BEHAVIOUR_FEATURES or c.startswith("share_")]
    return categorical, binary, numeric


@dataclass
class ClassifierReport:
    classes: list[str]
    by_mode: dict[str, dict[str, float]]
    confusion: dict[str, list[list[int]]]
    baseline_accuracy: float
    folds: int

    def as_dict(self) -> dict[str, Any]:
        both = self.by_mode["both"]
        return {"accuracy": both["accuracy"], "macro_f1": both["macro_f1"],
                "brier": both["brier"], "baseline_accuracy": self.baseline_accuracy,
                "folds": self.folds, "classes": self.classes, "by_mode": self.by_mode,
                "confusion": self.confusion}


def evaluate_classifier(rows: pd.DataFrame, *, folds: int = 5, random_state: int = 0,
                        progress: Any = None, model: Any = None) -> ClassifierReport:
    """Cross-validation over held-out customers (all rows of a customer in one fold);
    ``model``: the classifier at the pipeline's end (default: logistic regression, C=1)."""
    categorical, binary, numeric = _columns(rows)
    X = rows[categorical + binary + numeric]
    y = rows["segment"].astype(str).to_numpy()
    classes = sorted(set(y))
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=random_state)
    proba = np.zeros((len(rows), len(classes)))
    for n, (train, test) in enumerate(cv.split(X, y, groups=rows["customer"])):
        pipe = classifier_pipeline(categorical, binary, numeric)
        if model is not None:
            pipe.set_params(model=clone(model))
        pipe.fit(X.iloc[train], y[train])
        cols = [classes.index(c) for c in pipe.classes_]
        proba[np.ix_(test, cols)] = pipe.predict_proba(X.iloc[test])
        if progress:
            progress(n + 1)
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    by_mode: dict[str, dict[str, float]] = {}
    confusion: dict[str, list[list[int]]] = {}
    for mode in MODES:
        m = (rows["mode"] == mode).to_numpy()
        by_mode[mode] = {
            "accuracy": float(accuracy_score(y[m], pred[m])),
            "macro_f1": float(f1_score(y[m], pred[m], average="macro", labels=classes,
                                       zero_division=0)),
            "brier": float(brier_score_loss(y[m], proba[m], labels=classes)),
            "rows": int(m.sum()),
        }
        confusion[mode] = confusion_matrix(y[m], pred[m], labels=classes).tolist()
    majority = pd.Series(y).value_counts(normalize=True).iloc[0]
    return ClassifierReport(classes, by_mode, confusion, float(majority), folds)


def fit_classifier(rows: pd.DataFrame, model: Any = None) -> Pipeline:
    categorical, binary, numeric = _columns(rows)
    pipe = classifier_pipeline(categorical, binary, numeric)
    if model is not None:
        pipe.set_params(model=clone(model))
    return pipe.fit(rows[categorical + binary + numeric], rows["segment"].astype(str))


#: A candidate more complex than the best simpler one must beat it by this much (macro-F1
#: on answers only) to be chosen: differences smaller than this were noise between folds.
SIMPLER_MARGIN = 0.01


def segment_candidates(random_state: int = 0) -> dict[str, Any]:
    """The answers -> segment classifiers ``build_segment_model`` chooses among, simplest
    first (``train_table``'s candidates but gradient boosting: on the shipped data its
    grouped CV took 150 s against 6 s for the logistic regression, for answers-only
    macro-F1 0.431 vs 0.422 and a worse Brier score, 0.564 vs 0.548)."""
    every = table_candidates(random_state)
    forest = RandomForestClassifier(n_estimators=100, min_samples_leaf=2,
                                    random_state=random_state, n_jobs=1)  # 200: same F1, 2x time
    return {"logistic C=1": every["logistic C=1"], "logistic C=0.1": every["logistic C=0.1"],
            "random forest": forest}


def choose_classifier(rows: pd.DataFrame, candidates: dict[str, Any], *, folds: int = 5,
                      random_state: int = 0, progress: Any = None
                      ) -> tuple[str, dict[str, ClassifierReport]]:
    """Every candidate cross-validated over held-out customers (the same folds); the winner
    has the best macro-F1 on answers only (the cold start: what the classifier is for in
    the chat), a more complex one winning only by ``SIMPLER_MARGIN`` or more."""
    reports: dict[str, ClassifierReport] = {}
    for i, (name, model) in enumerate(candidates.items()):
        def on_fold(n: int, i: int = i) -> None:
            if progress:
                progress(i * folds + n)
        reports[name] = evaluate_classifier(rows, folds=folds, random_state=random_state,
                                            progress=on_fold, model=model)
    names = list(reports)
    best = names[0]
    for name in names[1:]:
        if (reports[name].by_mode["answers"]["macro_f1"]
                >= reports[best].by_mode["answers"]["macro_f1"] + SIMPLER_MARGIN):
            best = name
    return best, reports


# --------------------------------------------------------------------------- prediction
@dataclass
class SegmentPrediction:
    segment: str
    probability: float
    reasons: list[str]
    probabilities: dict[str, float] = field(default_factory=dict)


def _reason_text(name: str) -> str:
    """The reason of one transformed feature ("said__region_Europe", "observed__frequency")."""
    block, _, feature = name.partition("__")
    if block == "said":
        q, _, answer = feature.rpartition("_")
        return _reason(q, answer)
    if feature.startswith("missingindicator_"):
        return "no order history yet"
    return _reason(feature)


def _reason(column: str, answer: Any = None) -> str:
    """The reason of one input column: an answer said, an interest named, a behaviour seen."""
    if column.startswith(INTEREST_PREFIX):
        return f"said interested in {column.removeprefix(INTEREST_PREFIX).replace('_', ' ')}"
    if answer is not None:
        return f"said {column.replace('_', ' ')}: {answer}"
    return f"observed {column.replace('_', ' ')}"


_TRANSFORMED: weakref.WeakKeyDictionary[Pipeline, OrderedDict[tuple[str, ...], np.ndarray]] = \
    weakref.WeakKeyDictionary()
_TRANSFORMED_LOCK = threading.Lock()
_TRANSFORMED_SIZE = 512


def transform_row(pipe: Pipeline, row: pd.DataFrame) -> np.ndarray:
    """The classifier's input transform of one row, remembered for the last rows seen: a
    chat turn asks for the same person's row twice (the question planner's posterior, then
    the card's segment), and the transform costs more than the model."""
    key = tuple(str(v) for v in row.iloc[0].tolist())
    with _TRANSFORMED_LOCK:
        cache = _TRANSFORMED.setdefault(pipe, OrderedDict())
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit
    transformed = pipe[:-1].transform(row)
    with _TRANSFORMED_LOCK:
        cache[key] = transformed
        if len(cache) > _TRANSFORMED_SIZE:
            cache.popitem(last=False)
    return transformed


def explain(pipe: Pipeline, row: pd.DataFrame, top: int = 3) -> SegmentPrediction:
    """Predict one row; reasons are the inputs that pushed it to the predicted class
    (coefficients for a linear model, occlusion for one without)."""
    transformed = transform_row(pipe, row)  # once: the pipeline's predict_proba would again
    proba = pipe[-1].predict_proba(transformed)[0]
    best = int(proba.argmax())
    reasons = (_coefficient_reasons(pipe, row, transformed[0], best, top)
               if hasattr(pipe[-1], "coef_") else _occlusion_reasons(pipe, row, proba, best))
    return SegmentPrediction(
        segment=str(pipe.classes_[best]), probability=float(proba[best]), reasons=reasons[:top],
        probabilities={str(c): float(p) for c, p in zip(pipe.classes_, proba, strict=True)})


def _coefficient_reasons(pipe: Pipeline, row: pd.DataFrame, Z: np.ndarray, best: int,
                         top: int) -> list[str]:
    """The largest positive contributions (coefficient x transformed value) to ``best``."""
    coef = pipe[-1].coef_[best]
    contrib = coef * Z
    names = pipe[:-1].get_feature_names_out()
    # largest contribution first; equal ones in feature order (stable, version-proof)
    order = np.lexsort((np.arange(len(contrib)), -contrib))
    unknown = {c for c in row.columns if row[c].isna().iloc[0]}
    reasons: list[str] = []
    for i in order[:top * 6]:
        block, _, feature = names[i].partition("__")
        if contrib[i] <= 0 or "(no answer)" in feature or (
                block == "observed" and feature in unknown):  # imputed, not observed
            continue
        text = _reason_text(names[i])
        if text not in reasons:
            reasons.append(text)
    return reasons


def _occlusion_reasons(pipe: Pipeline, row: pd.DataFrame, proba: np.ndarray,
                       best: int) -> list[str]:
    """Reasons for a model without coefficients (a forest): each known input is taken away
    in turn (an answer unsaid, an interest not named, a behaviour unobserved) and the drop
    in the predicted segment's probability is its contribution; the largest drops first."""
    known = [c for c in row.columns if pd.notna(row[c].iloc[0])
             and not (c.startswith(INTEREST_PREFIX) and float(row[c].iloc[0]) == 0.0)]
    reasons: list[str] = []
    if known:
        variants = row.loc[row.index.repeat(len(known))].reset_index(drop=True)
        for i, c in enumerate(known):
            variants.at[i, c] = 0.0 if c.startswith(INTEREST_PREFIX) else np.nan
        drop = proba[best] - pipe.predict_proba(variants)[:, best]
        for i in np.lexsort((np.arange(len(known)), -drop)):
            if drop[i] <= 0:
                break
            value = row[known[i]].iloc[0]
            text = _reason(known[i], value if known[i] in ANSWER_COLUMNS else None)
            if text not in reasons:
                reasons.append(text)
    return reasons


def input_row(pipe: Pipeline, answers: dict[str, Any] | None,
              behaviour: pd.Series | None) -> pd.DataFrame:
    """One row in the classifier's columns: answers (options or interest list) and behaviour
    (a features row) where known, missing elsewhere."""
    cols = list(pipe[0].feature_names_in_)
    row = {c: np.nan for c in cols}
    for key, value in (answers or {}).items():
        if key == "interests":
            for group in value or []:
                if f"{INTEREST_PREFIX}{group}" in row:
                    row[f"{INTEREST_PREFIX}{group}"] = 1.0
        elif key in row:
            row[key] = value
    if answers and "interests" in answers:
        for c in cols:
            if c.startswith(INTEREST_PREFIX) and np.isnan(row[c]):
                row[c] = 0.0
    if behaviour is not None:
        for c in cols:
            observed = c not in ANSWER_COLUMNS and not c.startswith(INTEREST_PREFIX)
            if observed and c in behaviour.index:
                row[c] = max(float(behaviour[c]), 0.0) if pd.notna(behaviour[c]) else np.nan
    frame = pd.DataFrame([row], columns=cols)
    for c in ANSWER_COLUMNS:
        if c in frame:
            frame[c] = frame[c].astype(object)
    return frame


# --------------------------------------------------------------------------- generic
def train_table(table: pd.DataFrame, label: str, *, folds: int = 5,
                random_state: int = 0) -> dict[str, Any]:
    """Cross-validate a classifier on any table (categorical columns one-hot, numeric
    scaled with missing indicators); compare with the majority-class baseline."""
    if label not in table:
        raise InputError(f"The table has no column '{label}'.",
                         f"Pick one of: {', '.join(map(str, table.columns))}.")
    data = table.dropna(subset=[label])
    y = data[label].astype(str)
    counts = y.value_counts()
    if len(counts) < 2:
        raise InputError(f"Column '{label}' has only one class.", "A classifier needs two or more.")
    folds = int(min(folds, counts.min()))
    if folds < 2:
        rare = min(str(c) for c in counts.index[counts == counts.min()])  # first by name
        raise InputError(f"Class '{rare}' has a single row; cross-validation needs "
                         "at least two per class.", "Add rows or merge rare classes.")
    X = data.drop(columns=[label])
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])
                   or pd.api.types.is_bool_dtype(X[c])]
    numeric = [c for c in X.columns if c not in categorical]
    X[categorical] = X[categorical].astype(object).where(X[categorical].notna(), np.nan)
    pipe = classifier_pipeline(categorical, [], numeric, log_numeric=False)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    scores: dict[str, dict[str, float]] = {}
    for name, model in table_candidates(random_state).items():
        candidate = clone(pipe).set_params(model=model)
        res = cross_validate(candidate, X, y, cv=cv, scoring=["accuracy", "f1_macro"])
        scores[name] = {"accuracy": float(res["test_accuracy"].mean()),
                        "macro_f1": float(res["test_f1_macro"].mean())}
    # the best macro-F1 wins; a tie goes to the simpler (earlier) candidate
    best = max(scores, key=lambda n: (round(scores[n]["macro_f1"], 6),
                                      -list(scores).index(n)))
    base = cross_validate(DummyClassifier(strategy="most_frequent"), X, y, cv=cv,
                          scoring=["accuracy", "f1_macro"])
    return {"rows": len(data), "classes": sorted(counts.index.tolist()), "folds": folds,
            "model": best, **scores[best], "candidates": scores,
            "baseline": {"accuracy": float(base["test_accuracy"].mean()),
                         "macro_f1": float(base["test_f1_macro"].mean())}}


def table_candidates(random_state: int = 0) -> dict[str, Any]:
    """The classifiers ``train_table`` chooses among by cross-validated macro-F1: logistic
    regression at three strengths of regularisation, gradient boosting and a random forest
    (decision trees, the classic segment classifier), simplest first."""
    def logistic(c: float) -> LogisticRegression:
        return LogisticRegression(solver="newton-cg", max_iter=300, C=c)

    return {"logistic C=1": logistic(1.0), "logistic C=0.1": logistic(0.1),
            "logistic C=0.01": logistic(0.01),
            "gradient boosting": HistGradientBoostingClassifier(random_state=random_state),
            "random forest": RandomForestClassifier(n_estimators=200, min_samples_leaf=2,
                                                    random_state=random_state, n_jobs=1)}


# --------------------------------------------------------------------------- build + use
SEGMENTS_KIND = "segments"
Progress = Any  # callable(stage: str, done: float) with done in [0, 1]


def _noop(stage: str, done: float) -> None:
    return None


def build_segment_model(orders_path: Path, artifacts_dir: Path, *,
                        mapping: dict[str, str] | None = None, return_prefix: str = "C",
                        reference_date: str | None = None,
                        k_range: range = K_RANGE, folds: int = 5,
                        progress: Progress = None, engine: str = "auto") -> dict[str, Any]:
    """Ingest -> features -> RFM + clusters -> classifier (evaluated, then fitted on all)
    -> a new artefact bundle. Returns the summary; nothing is replaced if a step fails.

    ``engine``: what reads the orders and computes the features: ``pandas`` (``load_orders``
    + ``build_features``), ``duckdb`` (``build_features_duckdb``: out of core, same
    features) or ``auto`` (``choose_engine``: by the file's size and the memory available).
    Everything after the features needs only one row per customer, and the product
    catalog, which each engine makes."""
    progress = progress or _noop
    engine_used, engine_why = choose_engine(Path(orders_path), engine)
    progress("reading orders", 0.0)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    rules = load_group_rules()
    rejects_path = artifacts_dir / "last-rejects.csv"
    if engine_used == "duckdb":
        progress("computing features (duckdb)", 0.05)
        features, info = build_features_duckdb(
            Path(orders_path), mapping=mapping, return_prefix=return_prefix,
            reference_date=reference_date, groups=sorted(rules.names), rules=rules,
            rejects_path=rejects_path, catalog=True)
        catalog = info["catalog"]
        counts = {k: info[k] for k in ("rows_read", "rows_used", "returns", "rejected")}
        source_hash = info["source_hash"]
    else:
        ingest = load_orders(Path(orders_path), mapping, return_prefix=return_prefix,
                             rejects_path=rejects_path)
        orders = ingest.orders
        orders["group"] = assign_groups(orders["description"], rules)
        progress("computing features", 0.15)
        features = build_features(orders, groups=sorted(rules.names),
                                  reference_date=reference_date)
        catalog = build_catalog(orders, rules)
        counts = {"rows_read": ingest.rows_read, "rows_used": ingest.rows_used,
                  "returns": ingest.returns, "rejected": ingest.rejected}
        source_hash = ingest.source_hash
        del orders, ingest  # the later steps need one row per customer only
    if len(features) < 20:
        raise InputError(f"Only {len(features)} customers have purchases; segments need 20+.",
                         "Use an orders file with more customers.")
    progress("scoring RFM", 0.25)
    rfm = rfm_scores(features)
    n_k = len(k_range)
    def on_k(k: int) -> None:
        progress(f"clustering (k={k})", 0.25 + 0.25 * (k - k_range.start + 1) / n_k)

    candidates = segment_candidates()
    total = folds * len(candidates)

    def on_fold(n: int) -> None:
        progress(f"choosing the classifier (fold {n}/{total})", 0.5 + 0.4 * n / total)

    clusters = discover_clusters(features, rfm, k_range, progress=on_k)
    rows = training_rows(features, rfm["rfm_segment"])
    chosen, reports = choose_classifier(rows, candidates, folds=folds, progress=on_fold)
    report = reports[chosen]
    progress("fitting classifier", 0.9)
    classifier = fit_classifier(rows, candidates[chosen])
    customers = features.join(rfm).join(clusters.labels)
    customers["cluster_name"] = customers["cluster"].map(clusters.profiles["name"])
    sizes = rfm["rfm_segment"].value_counts()
    summary = {
        "source": str(orders_path),
        "reference_date": str(features.attrs.get("reference_date", ""))[:10],
        "customers": int(len(features)),
        "rows_read": int(counts["rows_read"]),
        "rows_used": int(counts["rows_used"]),
        "returns": int(counts["returns"]),
        "rejected": {k: int(v) for k, v in counts["rejected"].items()},
        "engine": engine_used,
        "engine_reason": engine_why,
        "segments": {s: int(sizes.get(s, 0)) for s in SEGMENTS if sizes.get(s, 0)},
        "clusters": {"k": clusters.k, "scores": clusters.scores.to_dict(orient="records"),
                     "names": clusters.profiles["name"].tolist()},
        "classifier": {**report.as_dict(), "model": chosen,
                       "chosen_by": "macro-F1 on answers only (the cold start); a more "
                                    f"complex model must win by {SIMPLER_MARGIN}",
                       "candidates": {name: r.by_mode for name, r in reports.items()}},
    }
    progress("saving", 0.95)
    path = save_bundle(
        artifacts_dir, SEGMENTS_KIND,
        models={"classifier": classifier, "clusters": clusters.pipeline},
        tables={"customers": customers.reset_index(), "cluster_profiles": clusters.profiles,
                "catalog": catalog,
                "answer_likelihoods": answer_likelihoods(rows)},
        manifest={"data_hash": source_hash, "summary": summary},
    )
    summary["artifacts"] = str(path)
    progress("done", 1.0)
    return summary


class SegmentModel:
    """The built segments in use: look up a customer, or place a person from answers."""

    def __init__(self, bundle: Any) -> None:
        self.bundle = bundle
        self.classifier: Pipeline = bundle.models["classifier"]
        customers = bundle.tables["customers"]
        self.customers = customers.set_index("customer")
        self.summary: dict[str, Any] = bundle.manifest["summary"]

    @classmethod
    def load(cls, artifacts_dir: Path) -> SegmentModel | None:
        bundle = load_bundle(artifacts_dir, SEGMENTS_KIND)
        return cls(bundle) if bundle else None

    def planner(self, threshold: float = 0.8) -> QuestionPlanner | None:
        """Adaptive question order (None for bundles built before it existed)."""
        lik = self.bundle.tables.get("answer_likelihoods")
        return QuestionPlanner(self.classifier, lik, threshold) if lik is not None else None

    def observed_answers(self, customer_id: str) -> dict[str, Any]:
        """What a returning customer's orders already answer (asked questions skip these)."""
        row = self.behaviour_of(customer_id)
        derived = true_answers(row.to_frame().T.astype({"country": object}))
        answers: dict[str, Any] = {q: derived[q].iloc[0] for q in ANSWER_COLUMNS}
        groups = [c.removeprefix(INTEREST_PREFIX) for c in derived.columns
                  if c.startswith(INTEREST_PREFIX) and derived[c].iloc[0] > 0]
        answers["interests"] = groups
        return answers

    def behaviour_of(self, customer_id: str) -> pd.Series:
        key = str(customer_id).strip().removesuffix(".0")
        if key not in self.customers.index:
            raise InputError(f"No customer '{customer_id}' in the order data.",
                             "Check the id (e.g. 17850), or continue without one.")
        return self.customers.loc[key]

    def of_customer(self, customer_id: str) -> dict[str, Any]:
        row = self.behaviour_of(customer_id)
        pred = explain(self.classifier, input_row(self.classifier, None, row))
        return {"customer": str(customer_id), "segment": row["rfm_segment"],
                "probability": pred.probability if pred.segment == row["rfm_segment"] else 1.0,
                "predicted": pred.segment, "reasons": _rfm_reasons(row) + pred.reasons[:1],
                "rfm": {"r": int(row["r_score"]), "f": int(row["f_score"]),
                        "m": int(row["m_score"])},
                "cluster": row["cluster_name"], "source": "observed"}

    def from_answers(self, answers: dict[str, Any],
                     customer_id: str | None = None) -> dict[str, Any]:
        """The segment of a person from what they said (and, when linked, their orders).
        Someone who says this is their first order is New: the classifier, trained on
        customers with a history, reads "one order" as Lost or Hibernating."""
        behaviour = self.behaviour_of(customer_id) if customer_id else None
        pred = explain(self.classifier, input_row(self.classifier, answers, behaviour))
        out = {"customer": customer_id, "segment": pred.segment,
               "probability": pred.probability, "reasons": pred.reasons,
               "probabilities": pred.probabilities,
               "source": "said + observed" if customer_id else "said"}
        if customer_id is None and answers.get("order_frequency") == FIRST_ORDER:
            out.update(segment="New", probability=1.0,
                       reasons=["said this is their first order"], rule="first order")
        return out


def _rfm_reasons(row: pd.Series) -> list[str]:
    days = int(row["recency_days"])
    return [f"last order {days} day{'s' if days != 1 else ''} ago (R={int(row['r_score'])})",
            f"{int(row['frequency'])} orders (F={int(row['f_score'])})",
            f"£{row['monetary']:,.0f} spent (M={int(row['m_score'])})"]


def dashboard_data(model: SegmentModel, *, sample: int = 3000,
                   random_state: int = 0) -> dict[str, Any]:
    """Tables behind the Segments tab: sizes, RFM values, a 2-D projection, per-segment
    medians, cluster profiles and the classifier's evaluation."""
    cust = model.customers
    clusters: Pipeline = model.bundle.models["clusters"]
    pick = cust.sample(n=min(sample, len(cust)), random_state=random_state)
    Z = clusters[:-1].transform(_cluster_matrix(pick))
    xy = PCA(n_components=2, random_state=random_state).fit_transform(Z)
    projection = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "segment": pick["rfm_segment"],
                               "cluster": pick["cluster_name"]}, index=pick.index)
    order = [s for s in SEGMENTS if s in set(cust["rfm_segment"])]
    medians = cust.groupby("rfm_segment")[CLUSTER_FEATURES].median().reindex(order)
    medians.insert(0, "customers", cust["rfm_segment"].value_counts().reindex(order))
    return {
        "summary": model.summary,
        "sizes": cust["rfm_segment"].value_counts().reindex(order),
        "rfm": cust[["recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
                     "rfm_segment"]],
        "projection": projection,
        "medians": medians,
        "clusters": model.bundle.tables["cluster_profiles"],
        "segment_order": order,
    }


# --------------------------------------------------------------------------- adaptive order
ASK_ORDER = ["order_frequency", "spend_per_order", "last_order", "buyer_type", "region",
             "interests"]  # the fixed order, and the questions the planner chooses among


def _interest_sets(rows: pd.DataFrame) -> pd.Series:
    cols = [c for c in rows.columns if c.startswith(INTEREST_PREFIX)]
    if not cols:
        return pd.Series("", index=rows.index)
    flags = rows[cols].fillna(0).to_numpy() > 0
    names = np.array([c.removeprefix(INTEREST_PREFIX) for c in cols], dtype=object)
    return pd.Series(["|".join(names[f]) for f in flags], index=rows.index)


def answer_likelihoods(rows: pd.DataFrame, *, top_sets: int = 12) -> pd.DataFrame:
    """P(answer | segment) for each planner question, from the (noisy) training answers.
    Interests are sets; the ``top_sets`` most common sets stand for that question."""
    said = rows[rows["mode"] != "behaviour"].copy()
    said["interests"] = _interest_sets(said)
    # the most common sets; equal counts by set name (stable sort on the name-sorted index),
    # not in whatever order ``value_counts`` leaves ties
    counts = said["interests"].value_counts().sort_index()
    common = counts.sort_values(ascending=False, kind="stable").index[:top_sets]
    parts = []
    for q in ASK_ORDER:
        col = said[[q, "segment"]].dropna()
        if q == "interests":
            col = col[col[q].isin(common)]
        counts = col.groupby(["segment", q]).size().rename("n").reset_index()
        counts["p"] = counts["n"] / counts.groupby("segment")["n"].transform("sum")
        parts.append(counts.rename(columns={q: "value"}).assign(question=q))
    return pd.concat(parts, ignore_index=True)[["question", "value", "segment", "p"]]


class QuestionPlanner:
    """Choose the next question by expected information gain on the classifier's segment
    posterior; stop when the top segment's probability reaches ``threshold``."""

    def __init__(self, classifier: Pipeline, likelihoods: pd.DataFrame,
                 threshold: float = 0.8) -> None:
        self.classifier = classifier
        self.threshold = threshold
        self.classes = [str(c) for c in classifier.classes_]
        self.options: dict[str, list[str]] = {}
        self.lik: dict[str, np.ndarray] = {}  # question -> (options x classes)
        for q, part in likelihoods.groupby("question"):
            table = part.pivot_table(index="value", columns="segment", values="p",
                                     fill_value=0.0).reindex(columns=self.classes, fill_value=0)
            self.options[str(q)] = [str(v) for v in table.index]
            self.lik[str(q)] = table.to_numpy()

    def posterior(self, answers: dict[str, Any], behaviour: pd.Series | None = None) -> np.ndarray:
        return self.classifier.predict_proba(input_row(self.classifier, answers, behaviour))[0]

    def gains(self, answers: dict[str, Any], candidates: list[str] | None = None,
              behaviour: pd.Series | None = None) -> dict[str, float]:
        """Expected entropy reduction (nats) of the segment posterior for each question."""
        row = input_row(self.classifier, answers, behaviour)
        return self._gains(row, self.classifier.predict_proba(row)[0], answers, candidates)

    def _gains(self, row: pd.DataFrame, prior: np.ndarray, answers: dict[str, Any],
               candidates: list[str] | None) -> dict[str, float]:
        base = float(entropy(prior))
        pool = ASK_ORDER if candidates is None else candidates
        todo = [q for q in pool if q in self.lik and q not in answers]
        if not todo:
            return {}
        # one batch: the current row repeated once per (question, possible answer)
        sizes = [len(self.options[q]) for q in todo]
        batch = row.loc[row.index.repeat(sum(sizes))].reset_index(drop=True)
        interest_cols = [c for c in batch.columns if c.startswith(INTEREST_PREFIX)]
        spans, at = {}, 0
        for q, n in zip(todo, sizes, strict=True):
            spans[q] = (at, at + n)
            for i, value in enumerate(self.options[q]):
                if q == "interests":
                    chosen = {f"{INTEREST_PREFIX}{g}" for g in value.split("|") if g}
                    for c in interest_cols:
                        batch.at[at + i, c] = 1.0 if c in chosen else 0.0
                else:
                    batch.at[at + i, q] = value
            at += n
        post = self.classifier.predict_proba(batch)
        out: dict[str, float] = {}
        for q, (a, b) in spans.items():
            p_x = self.lik[q] @ prior  # P(answer) = sum_s P(answer | s) P(s)
            p_x = p_x / p_x.sum() if p_x.sum() > 0 else np.full(len(p_x), 1 / len(p_x))
            expected = float(sum(px * entropy(row) for px, row in zip(p_x, post[a:b],
                                                                     strict=True)))
            out[q] = base - expected
        return out

    def next_question(self, answers: dict[str, Any], candidates: list[str] | None = None,
                      behaviour: pd.Series | None = None) -> str | None:
        """The most informative question, or None when confident enough (or nothing left).
        Two classifier calls: the posterior now, and one batch of every possible answer."""
        row = input_row(self.classifier, answers, behaviour)
        prior = self.classifier[-1].predict_proba(transform_row(self.classifier, row))[0]
        if prior.max() >= self.threshold:
            return None
        gains = self._gains(row, prior, answers, candidates)
        return max(gains, key=gains.__getitem__) if gains else None
