"""Ranking metrics over top-k lists (means over users; ``k`` = list length): precision@k,
recall@k, NDCG@k (scikit-learn ``ndcg_score``, binary gains), MAP@k (AP@k = sum of precision@i
at each hit / min(relevant, k)), F1@k (per user, the harmonic mean of precision@k and
recall@k), hit rate@k (share of users with at least one hit), catalog coverage (share of
recommendable items shown to anyone), novelty (mean -log2 of the share of training users who
bought a shown item) and intra-list diversity (mean pairwise 1 - cosine of the descriptions'
MiniLM vectors within a list). ``mmr`` re-ranks a list for diversity.

A list is a row of item indices (-1: an empty slot); the relevant items are a users x items
sparse matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import ndcg_score


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """(n, k) bool: is the item at each position relevant? (-1 = empty slot)."""
    rows = np.repeat(np.arange(recommended.shape[0]), recommended.shape[1])
    cols = recommended.ravel()
    ok = cols >= 0
    out = np.zeros(cols.shape, dtype=bool)
    out[ok] = np.asarray(relevant[rows[ok], cols[ok]]).ravel() > 0
    return out.reshape(recommended.shape)


def relevant_counts(relevant: sp.csr_matrix) -> np.ndarray:
    return np.diff(relevant.indptr).astype(np.float64)


def precision_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Mean over users of (relevant items among the first k) / k."""
    return float(hit_matrix(recommended[:, :k], relevant).sum(axis=1).mean() / k)


def recall_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Mean over users of (relevant items among the first k) / (relevant items)."""
    hits = hit_matrix(recommended[:, :k], relevant).sum(axis=1)
    return float(np.mean(hits / np.maximum(relevant_counts(relevant), 1)))


def f1_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Mean over users of 2PR / (P + R), P = precision@k and R = recall@k of that user (0
    when they have no hit)."""
    hits = hit_matrix(recommended[:, :k], relevant).sum(axis=1).astype(np.float64)
    prec = hits / k
    rec = hits / np.maximum(relevant_counts(relevant), 1)
    both = prec + rec
    return float(np.mean(np.where(both > 0, 2 * prec * rec / np.where(both > 0, both, 1), 0)))


def intra_list_diversity(recommended: np.ndarray, vectors: np.ndarray) -> float:
    """Mean over lists of the mean pairwise distance (1 - cosine) of their items' vectors
    (L2-normalised rows; an item without a description has a zero vector: distance 1)."""
    values = []
    for row in recommended:
        shown = row[row >= 0]
        if len(shown) < 2:
            continue
        v = vectors[shown]
        sim = v @ v.T
        n = len(shown)
        values.append(float((n * n - n - (sim.sum() - np.trace(sim))) / (n * n - n)))
    return float(np.mean(values)) if values else 0.0


def mmr(scores: np.ndarray, vectors: np.ndarray, k: int, trade_off: float,
        pool: int = 50) -> np.ndarray:
    """Maximal marginal relevance: from the ``pool`` best items of one score row, pick k
    greedily by ``trade_off * score - (1 - trade_off) * (closest cosine to those picked)``;
    scores are scaled to [0, 1] first. ``trade_off`` 1 keeps the order of the scores."""
    finite = np.flatnonzero(np.isfinite(scores))
    if not len(finite):
        return np.zeros(0, dtype=np.intp)
    order = finite[np.argsort(-scores[finite], kind="stable")][:max(pool, k)]
    if trade_off >= 1.0 or len(order) <= 1:
        return order[:k]
    rel = scores[order].astype(np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    sims = vectors[order] @ vectors[order].T
    picked = [0]
    closest = sims[0].copy()
    while len(picked) < min(k, len(order)):
        gain = trade_off * rel - (1 - trade_off) * closest
        gain[picked] = -np.inf
        nxt = int(np.argmax(gain))
        picked.append(nxt)
        closest = np.maximum(closest, sims[nxt])
    return order[picked]


def hit_rate_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Share of users with at least one relevant item among the first k."""
    return float(hit_matrix(recommended[:, :k], relevant).any(axis=1).mean())


def map_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Mean over users of AP@k = sum(precision@i at each hit i <= k) / min(relevant, k)."""
    hits = hit_matrix(recommended[:, :k], relevant).astype(np.float64)
    prec = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denom = np.minimum(relevant_counts(relevant), k)
    return float(np.mean((prec * hits).sum(axis=1) / np.maximum(denom, 1)))


def ndcg_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Mean NDCG@k with binary gains, by scikit-learn's ``ndcg_score``. Only the shown and
    the relevant items can change DCG or its ideal, so each user's row is compacted to the k
    shown (scored k, k-1, ..., 1: ties cannot reorder the list) followed by up to k relevant
    items not shown (scored 0; more could not enter the ideal top k); zero padding adds
    nothing."""
    recommended = recommended[:, :k]
    n = recommended.shape[0]
    if n == 0:
        return 0.0
    hits = hit_matrix(recommended, relevant)
    missed = np.minimum(relevant_counts(relevant) - hits.sum(axis=1), k).astype(int)
    width = recommended.shape[1] + max(int(missed.max()), 0)
    truth = np.zeros((n, max(width, 2)))
    truth[:, : recommended.shape[1]] = hits
    after = np.arange(truth.shape[1] - recommended.shape[1])[None, :] < missed[:, None]
    truth[:, recommended.shape[1]:] = after
    score = np.zeros_like(truth)
    score[:, : recommended.shape[1]] = np.arange(recommended.shape[1], 0, -1)[None, :]
    return float(ndcg_score(truth, score, k=k, ignore_ties=True))


def ndcg_from_hits(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> float:
    """Same as ``ndcg_at_k`` from a hit matrix (used inside tuning loops; tested equal)."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * disc[: hits.shape[1]]).sum(axis=1)
    ideal = np.cumsum(disc)[np.minimum(n_relevant, k).astype(int) - 1]
    return float(np.mean(np.where(n_relevant > 0, dcg / ideal, 0.0)))


def catalog_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the recommendable items that appear in at least one list."""
    shown = np.unique(recommended[recommended >= 0])
    return float(len(shown) / max(n_items, 1))


def novelty(recommended: np.ndarray, popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(p) of the shown items, p = share of training users who
    bought the item (at least one user)."""
    shown = recommended[recommended >= 0]
    if not len(shown):
        return 0.0
    p = np.maximum(popularity[shown], 1.0) / max(n_users, 1)
    return float(np.mean(-np.log2(p)))


def ranking_metrics(recommended: np.ndarray, relevant: sp.csr_matrix, k: int, *,
                    popularity: np.ndarray, n_users: int, n_items: int,
                    vectors: np.ndarray | None = None) -> dict[str, float]:
    out = {
        f"precision@{k}": precision_at_k(recommended, relevant, k),
        f"recall@{k}": recall_at_k(recommended, relevant, k),
        f"f1@{k}": f1_at_k(recommended, relevant, k),
        f"ndcg@{k}": ndcg_at_k(recommended, relevant, k),
        f"map@{k}": map_at_k(recommended, relevant, k),
        f"hit_rate@{k}": hit_rate_at_k(recommended, relevant, k),
        "coverage": catalog_coverage(recommended, n_items),
        "novelty": novelty(recommended, popularity, n_users),
    }
    if vectors is not None:
        out["diversity"] = intra_list_diversity(recommended[:, :k], vectors)
    return out
