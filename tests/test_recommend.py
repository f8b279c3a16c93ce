"""Recommenders on tiny hand-made data sets whose right answers are known."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pandas as pd
import pytest

from assistant.core.errors import InputError
from assistant.recommend.algorithms import (
    MODES,
    ContentRecommender,
    FactorizationRecommender,
    HybridRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    Query,
    QueryBatch,
    RepeatRecommender,
    SegmentPopularityRecommender,
    SimilarProfilesRecommender,
    TrainingData,
    interactions_from_orders,
    profiles_from_features,
    top_k,
)

CATALOG = pd.DataFrame({
    "item": ["A", "B", "C", "D", "E", "N", "P"],
    "description": ["WHITE CANDLE HOLDER", "RED CANDLE HOLDER", "TEA CUP", "TEA POT",
                    "GARDEN SPADE", "", "POSTAGE"],
    "group": ["candles_lights", "candles_lights", "kitchen_baking", "kitchen_baking", "garden",
              "other", "fees"],
    "typical_price": [2.0, 2.5, 3.0, 10.0, 8.0, 1.0, 18.0],
})


class WordEmbedder:
    """Bag of words hashed into 1024 dimensions, L2-normalised (stands in for MiniLM)."""

    model_id = "test-bag-of-words"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 1024), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % 1024] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def frame(pairs: dict[str, list[str]]) -> pd.DataFrame:
    """{user: [item, item, ...]} -> one interaction row per listed item (repeats count)."""
    rows = [(u, i) for u, items in pairs.items() for i in items]
    return pd.DataFrame(rows, columns=["user", "item"])


def items_of(recs) -> list[str]:
    return [r.item for r in recs]


# --------------------------------------------------------------------------- popularity


def test_popularity_ranks_by_distinct_customers_and_never_shows_fees():
    data = frame({"u1": ["A", "B", "C", "P"], "u2": ["A", "B", "P"], "u3": ["A", "A", "A", "P"],
                  "u4": ["P"]})
    model = PopularityRecommender().fit(data, CATALOG)
    assert model is not None and hasattr(model, "popularity_")
    recs = model.recommend(Query(), k=3)
    assert items_of(recs) == ["A", "B", "C"]  # A by 3 customers (u3's repeats count once)
    assert recs[0].reasons == ["popular: bought by 3 customers"]
    assert recs[0].description == "WHITE CANDLE HOLDER" and recs[0].price == 2.0
    assert not recs[0].fallback and recs[0].parts == {"popularity": 1.0}
    assert "P" not in items_of(model.recommend(Query(), k=10))


def test_segment_popularity_uses_the_segment_and_falls_back_to_everyone():
    data = frame({"c1": ["C"], "c2": ["C", "D"], "l1": ["A"], "l2": ["A"], "l3": ["A", "B"]})
    profiles = pd.DataFrame({"segment": ["Champions", "Champions", "Lost", "Lost", "Lost"]},
                            index=["c1", "c2", "l1", "l2", "l3"])
    model = SegmentPopularityRecommender(shrinkage=1.0).fit(data, CATALOG, profiles)
    champs = model.recommend(Query(segment="Champions"), k=2)
    assert items_of(champs) == ["C", "D"]
    assert champs[0].reasons == ["popular with Champions (2 of 2 bought it)"]
    assert model.recommend(Query(), k=1)[0].item == "A"
    assert model.recommend(Query(segment="Unknown segment"), k=1)[0].item == "A"
    # a known customer's own segment is used
    assert model.recommend(Query(user="c1"), k=1, exclude_seen=True)[0].item == "D"


# --------------------------------------------------------------------------- repeat


def test_repeat_most_bought_first_with_reasons():
    data = frame({"u1": ["A", "A", "A", "B", "C", "C"], "u2": ["D", "E"]})
    model = RepeatRecommender(half_life_days=None).fit(data, CATALOG)
    recs = model.recommend("u1", k=3, exclude_seen=False)
    assert items_of(recs) == ["A", "C", "B"]
    assert [r.reasons for r in recs] == [["you bought this 3 times"], ["you bought this twice"],
                                         ["you bought this once"]]
    assert recs[0].parts == {"repeat": 1.0}


def test_repeat_counts_recent_purchases_more():
    now = pd.Timestamp("2011-12-01")
    data = pd.DataFrame({
        "user": ["u1", "u1", "u1", "u2"],
        "item": ["A", "A", "B", "C"],
        "time": [now - pd.Timedelta(days=300)] * 2 + [now, now],
    })
    by_count = RepeatRecommender(half_life_days=None).fit(data, CATALOG)
    by_recency = RepeatRecommender(half_life_days=90).fit(data, CATALOG)
    assert items_of(by_count.recommend("u1", k=2, exclude_seen=False)) == ["A", "B"]
    assert items_of(by_recency.recommend("u1", k=2, exclude_seen=False)) == ["B", "A"]


def test_excluding_seen_items_leaves_only_labelled_fallbacks_for_repeat():
    data = frame({"u1": ["A", "B"], "u2": ["C", "C"], "u3": ["C", "D"]})
    model = RepeatRecommender().fit(data, CATALOG)
    recs = model.recommend("u1", k=2, exclude_seen=True)
    assert not {"A", "B"} & set(items_of(recs))
    assert recs[0].item == "C" and all(r.fallback for r in recs)
    assert "we know too little about you" in recs[0].reasons[0]


# --------------------------------------------------------------------------- item-kNN


def test_item_knn_recommends_the_most_co_purchased_item():
    # cosine(A, B) = 2 / sqrt(4 * 2) = 0.71 > cosine(A, C) = 1 / sqrt(4 * 1) = 0.5
    data = frame({"u1": ["A", "B"], "u2": ["A", "B"], "u3": ["A", "C"], "u4": ["D"],
                  "u5": ["D", "E"], "u6": ["A"]})
    model = ItemKNNRecommender(n_neighbors=5, power=1.0).fit(data, CATALOG)
    assert np.isclose(model.similarity_[0, 1], 2 / np.sqrt(8))
    recs = model.recommend("u6", k=2, exclude_seen=True)
    assert items_of(recs) == ["B", "C"]
    assert recs[0].reasons == ["often bought with WHITE CANDLE HOLDER"]
    # a session like counts as history: liking D brings E
    assert model.recommend(Query(liked=("D",)), k=1)[0].item == "E"


def test_item_knn_neighbours_are_pruned():
    data = frame({"u1": ["A", "B", "C"], "u2": ["A", "B"], "u3": ["A", "D"]})
    model = ItemKNNRecommender(n_neighbors=1).fit(data, CATALOG)
    assert (np.diff(model.similarity_.indptr) <= 1).all()
    assert model.similarity_.diagonal().sum() == 0  # an item is not its own neighbour


# --------------------------------------------------------------------------- content


def test_content_matches_stated_words_and_groups():
    data = frame({"u1": ["A", "C"], "u2": ["D", "E", "N"]})
    model = ContentRecommender(WordEmbedder()).fit(data, CATALOG)
    recs = model.recommend(Query(interests=("candle",)), k=2)
    assert set(items_of(recs)) == {"A", "B"}
    assert recs[0].reasons == ["matches 'candle'"]
    # a product group by name: its label is embedded and its items get the group bonus
    recs = model.recommend(Query(interests=("kitchen_baking",)), k=2)
    assert set(items_of(recs)) == {"C", "D"}
    assert recs[0].reasons == ["matches 'kitchen, baking and tableware'"]


def test_content_items_without_description_fall_back():
    data = frame({"u1": ["A", "N"], "u2": ["N", "E"]})
    model = ContentRecommender(WordEmbedder()).fit(data, CATALOG)
    assert not model.item_vectors_[list(model.data_.items).index("N")].any()
    recs = model.recommend(Query(interests=("candle",)), k=3)
    # equal matches: the more popular first; then N, the most popular, only as a fallback
    assert items_of(recs) == ["A", "B", "N"]
    assert [r.fallback for r in recs] == [False, False, True]
    # no interests and no history: popular items, labelled as such
    empty = model.recommend(Query(), k=2)
    assert all(r.fallback for r in empty) and empty[0].item == "N"


def test_content_for_a_returning_customer_uses_what_they_bought():
    data = frame({"u1": ["C"], "u2": ["A", "E"]})
    model = ContentRecommender(WordEmbedder()).fit(data, CATALOG)
    assert model.recommend("u1", k=1, exclude_seen=True)[0].item == "D"  # TEA CUP -> TEA POT


# --------------------------------------------------------------------------- similar profiles


def test_similar_profiles_on_purchases():
    data = frame({"u1": ["A", "B", "C"], "u2": ["A", "B", "C", "D"], "u3": ["E"],
                  "u4": ["E", "N"]})
    model = SimilarProfilesRecommender(n_neighbors=1).fit(data, CATALOG)
    recs = model.recommend("u1", k=1, exclude_seen=True)
    assert recs[0].item == "D"
    assert recs[0].reasons == ["bought by 1 of the 1 customers with orders like yours"]


def test_similar_profiles_on_answers_for_a_cold_start():
    data = frame({"g1": ["E"], "g2": ["E", "N"], "c1": ["A", "B"], "c2": ["A"], "c3": ["B"]})
    profiles = pd.DataFrame({
        "interests": [("garden",), ("garden",), ("candles_lights",), ("candles_lights",),
                      ("candles_lights",)],
        "spend_per_order": ["under £150"] * 5,
        "buyer_type": ["for myself or as gifts"] * 5,
        "region": ["United Kingdom"] * 5,
    }, index=["g1", "g2", "c1", "c2", "c3"])
    model = SimilarProfilesRecommender(n_neighbors=2).fit(data, CATALOG, profiles)
    recs = model.recommend(Query(interests=("garden",), answers={"region": "United Kingdom"}),
                           k=1)
    assert recs[0].item == "E"
    assert recs[0].reasons == ["bought by 2 of the 2 customers who answered like you"]
    # own words are mapped to a product group ("spade" is garden in product_groups.yaml)
    assert model.recommend(Query(interests=("a spade",)), k=1)[0].item == "E"
    # said nothing: nobody is similar, popular items are labelled as the fallback
    assert model.recommend(Query(), k=1)[0].fallback


def test_similar_profiles_add_the_people_chroma_found_for_a_cold_start():
    """A new visitor's nearest customers by profile text (Chroma) bring what they bought,
    beside the answer-vector neighbours; returning customers keep their purchase vectors."""
    data = frame({"g1": ["E"], "g2": ["E", "N"], "c1": ["A", "B"], "c2": ["A"], "t1": ["C"]})
    profiles = pd.DataFrame({
        "interests": [("garden",), ("garden",), ("candles_lights",), ("candles_lights",),
                      ("kitchen_baking",)],
        "spend_per_order": ["under £150"] * 5, "buyer_type": ["for myself or as gifts"] * 5,
        "region": ["United Kingdom"] * 5}, index=["g1", "g2", "c1", "c2", "t1"])
    model = SimilarProfilesRecommender(n_neighbors=2).fit(data, CATALOG, profiles)
    said = Query(interests=("garden",))
    assert items_of(model.recommend(said, k=1)) == ["E"]
    # the text-nearest people (the tea drinker, unknown ids and 0 similarity left out)
    people = (("t1", 0.9), ("nobody", 0.8), ("c1", 0.0))
    with_people = model.recommend(Query(interests=("garden",), people=people), k=2)
    assert items_of(with_people) == ["E", "C"]  # the answers first, the people's tea next
    assert with_people[1].reasons == ["bought by 1 of the 3 customers who answered like you"]
    only_people = model.recommend(Query(people=(("t1", 0.9),)), k=1)
    assert items_of(only_people) == ["C"] and not only_people[0].fallback
    # a returning customer's neighbours come from their purchases, whatever people say
    assert items_of(model.recommend(Query(user="c2", people=(("t1", 0.9),)), k=1)) == ["B"]


# --------------------------------------------------------------------------- hybrid


def _hybrid(weights=None) -> HybridRecommender:
    data = frame({"u1": ["A", "A", "A", "B"], "u2": ["A", "B", "C"], "u3": ["C", "D"],
                  "u4": ["C", "D", "E"], "u5": ["E"]})
    comps = [PopularityRecommender(), RepeatRecommender(half_life_days=None),
             ItemKNNRecommender(n_neighbors=5), ContentRecommender(WordEmbedder())]
    return HybridRecommender(comps, weights).fit(data, CATALOG)


def _two_tastes() -> pd.DataFrame:
    """Ten customers into candles (A, B), ten into tea (C, D); nobody mixes them."""
    pairs = {f"c{i}": ["A", "B"] if i % 3 else ["A"] for i in range(10)}
    pairs |= {f"t{i}": ["C", "D"] if i % 3 else ["C"] for i in range(10)}
    return frame(pairs)


def test_als_learns_tastes_from_who_bought_what():
    model = FactorizationRecommender(factors=2).fit(_two_tastes(), CATALOG)
    # c0 bought only A: B (same taste) before the tea items, with a reason naming A
    recs = model.recommend("c0", k=3)
    assert items_of(recs)[0] == "B"
    assert recs[0].reasons == ["fits your taste for WHITE CANDLE HOLDER"]
    assert items_of(model.recommend("t0", k=1)) == ["D"]
    # a visitor unseen in training with a session history ("more like this" on C)
    assert items_of(model.recommend(Query(liked=("C",)), k=1)) == ["D"]
    # nothing known: the ALS part is 0 and the list is the labelled popularity fallback
    cold = model.recommend(Query(interests=("candles",)), k=2)
    assert all(r.fallback for r in cold) and all(r.parts["als"] == 0 for r in cold)


def test_als_on_tiny_or_tied_data_does_not_crash():
    one = FactorizationRecommender().fit(frame({"u": ["A"]}), CATALOG)
    assert items_of(one.recommend("u", k=1, exclude_seen=False)) == ["A"]
    tied = FactorizationRecommender(factors=2).fit(frame({"u1": ["A", "B"], "u2": ["A", "B"]}))
    assert set(items_of(tied.recommend("u1", k=2, exclude_seen=False))) == {"A", "B"}
    # an unknown customer id is a cold start, not an error
    assert all(r.fallback for r in one.recommend("nobody", k=1))
    assert FactorizationRecommender().get_params()["factors"] == 64


def test_hybrid_blends_weighted_parts_per_mode():
    weights = {"returning": {"repeat": 1.0, "popularity": 0.1},
               "returning_new": {"item_knn": 1.0, "popularity": 0.1},
               "cold": {"content": 1.0, "popularity": 0.1}}
    model = _hybrid(weights)
    assert set(model.weights_) == set(MODES)
    assert model.weights_["returning"]["item_knn"] == 0.0
    recs = model.recommend("u1", k=2, exclude_seen=False)
    assert recs[0].item == "A"
    # A: bought by 2 customers, C (the most popular) by 3
    assert recs[0].parts == pytest.approx({"repeat": 1.0, "popularity": 0.1 * 2 / 3})
    assert recs[0].score == pytest.approx(sum(recs[0].parts.values()))
    assert "you bought this 3 times" in recs[0].reasons
    new = model.recommend("u1", k=1, exclude_seen=True)
    assert new[0].item == "C" and set(new[0].parts) == {"item_knn", "popularity"}
    assert new[0].reasons[0].startswith("often bought with")
    cold = model.recommend(Query(interests=("garden",)), k=1)
    assert cold[0].item == "E" and "matches 'garden and outdoors'" in cold[0].reasons


def test_hybrid_modes_follow_history_and_setting():
    model = _hybrid()
    batch = QueryBatch.from_queries(model.data_, [Query(user="u1"), Query(interests=("tea",))])
    assert model.modes(batch, exclude_seen=False) == ["returning", "cold"]
    assert model.modes(batch, exclude_seen=True) == ["returning_new", "cold"]


def test_hybrid_default_components_and_disliked_items(monkeypatch):
    model = _hybrid()
    recs = model.recommend(Query(user="u3", disliked=("E",)), k=5, exclude_seen=True)
    assert "E" not in items_of(recs) and not {"C", "D"} & set(items_of(recs))
    # an unknown customer id is served like a cold start, not an error
    assert model.recommend(Query(user="nobody"), k=2)
    # an empty query: popular items, flagged and labelled
    empty = model.recommend(Query(), k=2)
    assert all(r.fallback for r in empty)
    assert all("we know too little" in r.reasons[0] for r in empty)


# --------------------------------------------------------------------------- inputs, helpers


def test_fit_rejects_bad_frames():
    with pytest.raises(InputError, match="no column user"):
        PopularityRecommender().fit(pd.DataFrame({"customer": ["a"], "item": ["A"]}))
    with pytest.raises(InputError, match="no interactions"):
        PopularityRecommender().fit(pd.DataFrame({"user": [], "item": []}))


def test_catalog_is_optional():
    model = PopularityRecommender().fit(frame({"u1": ["X1"], "u2": ["X1", "X2"]}))
    recs = model.recommend(Query(), k=2)
    assert items_of(recs) == ["X1", "X2"] and recs[0].description == ""
    assert recs[0].price is None and recs[0].group == "other"


def test_training_data_sums_weights_per_pair():
    data = TrainingData.build(pd.DataFrame({"user": ["a", "a", "b"], "item": ["X", "X", "Y"],
                                            "weight": [2.0, 3.0, 1.0]}))
    assert data.matrix[0, 0] == 5.0 and list(data.popularity) == [1, 1]


def test_top_k_orders_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 2.0, 1.0, 0.0]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    assert top_k(scores, 10).shape == (2, 4)


# --------------------------------------------------------------------------- ties
# Every ranking breaks ties by item (or user) position, i.e. ascending id, so no numpy or
# pandas version can change a list: argpartition alone picks any of the tied columns.


def test_top_k_breaks_ties_by_column_at_the_cut_too():
    scores = np.array([[1.0, 5.0, 5.0, 3.0, 5.0, 5.0],
                       [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                       [-np.inf, 2.0, -np.inf, 2.0, np.nan, -np.inf]])
    assert top_k(scores, 3).tolist() == [[1, 2, 4], [0, 1, 2], [1, 3, 0]]
    assert top_k(scores, 6).tolist() == [[1, 2, 4, 5, 3, 0], [0, 1, 2, 3, 4, 5],
                                         [1, 3, 0, 2, 5, 4]]  # NaN last
    assert top_k(scores, 0).shape == (3, 0)


def test_top_k_equals_a_full_lexsort_on_heavily_tied_scores():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        scores = rng.integers(0, 4, (200, 300)).astype(dtype)  # hundreds of ties per row
        cols = np.broadcast_to(np.arange(300), scores.shape)
        want = np.lexsort((cols, -scores), axis=1)
        for k in (1, 7, 10, 100, 300):
            assert np.array_equal(top_k(scores, k), want[:, :k]), (dtype, k)


def test_popularity_ties_go_to_the_lowest_item_id():
    # every item bought by one customer; listed in no particular order
    data = frame({"u1": ["Z9"], "u2": ["A1"], "u3": ["M5"], "u4": ["B2"], "u5": ["Y0"]})
    model = PopularityRecommender().fit(data)
    assert items_of(model.recommend(Query(), k=3)) == ["A1", "B2", "M5"]
    # a tie on the score is decided by popularity first, then by id
    data = frame({"u1": ["Z9", "Y0"], "u2": ["A1", "Y0"], "u3": ["M5"], "u4": ["B2"]})
    model = RepeatRecommender().fit(data)
    assert items_of(model.recommend(Query(), k=3)) == ["Y0", "A1", "B2"]


def test_item_knn_neighbour_ties_keep_the_lowest_item_id():
    # A is bought with D, C and B by the same single customers: equal cosines
    data = frame({"u1": ["A", "D"], "u2": ["A", "C"], "u3": ["A", "B"]})
    model = ItemKNNRecommender(n_neighbors=1, power=1.0).fit(data)
    a = model.data_.items.get_loc("A")
    kept = model.similarity_[a].indices
    assert [model.data_.items[i] for i in kept] == ["B"]


def test_similar_profiles_neighbour_ties_keep_the_lowest_user_id():
    # the query bought A; u3, u1 and u2 each bought A and one other item: equal cosines
    data = frame({"u3": ["A", "E"], "u1": ["A", "C"], "u2": ["A", "D"], "u4": ["B"]})
    model = SimilarProfilesRecommender(n_neighbors=1, recent=False).fit(data)
    batch = QueryBatch.from_queries(model.data_, [Query(liked=("A",))])
    near = model._neighbours(batch)
    assert [model.data_.users[i] for i in near.indices] == ["u1"]
    assert items_of(model.recommend(Query(liked=("A",)), k=1)) == ["C"]


def test_profiles_from_features_derive_answers():
    features = pd.DataFrame({
        "recency_days": [10, 200], "frequency": [12, 1], "tenure_days": [300, 200],
        "avg_basket_value": [400.0, 50.0], "avg_items_per_order": [300.0, 10.0],
        "country": ["United Kingdom", "France"],
        "share_candles_lights": [0.6, 0.1], "share_garden": [0.3, 0.9], "share_fees": [0.1, 0.0],
    }, index=pd.Index(["17850", "12345"], name="customer"))
    profiles = profiles_from_features(features, pd.Series(["Champions", "Lost"],
                                                          index=features.index))
    assert profiles.loc["17850", "interests"] == ("candles_lights", "garden")
    assert profiles.loc["12345", "interests"] == ("garden",)
    assert profiles.loc["17850", "buyer_type"] == "for my business"
    assert profiles.loc["12345", "region"] == "Europe"
    assert profiles.loc["17850", "spend_per_order"] == "£300-£600"
    assert profiles.loc["12345", "segment"] == "Lost"


def test_interactions_from_orders_count_orders_and_skip_returns():
    orders = pd.DataFrame({
        "customer": ["1", "1", "1", "1", "2"],
        "order_id": ["o1", "o1", "o2", "C3", "o4"],
        "timestamp": pd.to_datetime(["2011-01-01", "2011-01-01", "2011-02-01", "2011-03-01",
                                     "2011-01-05"]),
        "item": ["A", "A", "A", "B", "B"],
        "is_return": [False, False, False, True, False],
    })
    out = interactions_from_orders(orders).set_index(["user", "item"])
    assert out.loc[("1", "A"), "weight"] == 2.0  # two orders (one had the item twice)
    assert out.loc[("1", "A"), "time"] == pd.Timestamp("2011-02-01")
    assert ("1", "B") not in out.index and out.loc[("2", "B"), "weight"] == 1.0
