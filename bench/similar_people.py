"""Similar people for a new visitor: answer vectors (the similar-profiles recommender's own
user-kNN) against the nearest customers by profile text in a real Chroma (MiniLM), alone,
with metadata filters, and blended, on the Online Retail cold start.

Protocol (``recommend evaluate``'s): train before 2011-09-01; the cold-start users are the
customers first seen from that day on, known only by the answers their own test-period
orders imply, with survey noise (``segments/answers.AnswerNoise``) and the segment the
answers classifier gives them; relevant = what they bought in the test period; k = 10.
The training customers are indexed in Chroma as the app indexes them
(``ProfileIndex.index_customers``: the answers their orders imply plus their top items); a
visitor's query is their profile text as the chat writes it (``profiles.describe``). Printed:
precision@10 and NDCG@10 per variant and the NDCG ratio to the answer vectors (the served
recommender before Chroma).

    .venv/bin/python bench/similar_people.py [--k 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.core.config import load_settings  # noqa: E402
from assistant.infra.vectors import VectorStore  # noqa: E402
from assistant.questionnaire.spec import load_spec  # noqa: E402
from assistant.recommend import evaluation as ev  # noqa: E402
from assistant.recommend.algorithms import (  # noqa: E402
    SimilarProfilesRecommender,
    people_row,
    top_k,
)
from assistant.recommend.interactions import load_interactions  # noqa: E402
from assistant.recommend.profiles import ProfileIndex, describe  # noqa: E402
from assistant.recommend.ranking import ranking_metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=100, help="customers asked of Chroma")
    args = parser.parse_args()
    data = load_interactions(REPO / "data" / "online_retail.csv.gz")
    split = ev.make_split(data.events, "chronological", split_date="2011-09-01")
    context = ev.build_context(data, split.train)
    target = ev._cold_target_for(data, context, split, 11)  # the evaluation's seed + 11
    assert target is not None
    train = context.data
    spec = load_spec()

    with tempfile.TemporaryDirectory() as tmp:
        store = VectorStore.from_settings(load_settings(data_dir=Path(tmp)))
        index = ProfileIndex(store, spec)
        customers = context.features.assign(rfm_segment=context.segments)
        t = time.perf_counter()
        n = index.index_customers(customers, ev._orders_of(data, split.train))
        print(f"{n:,} training customers indexed in Chroma in {time.perf_counter() - t:.0f} s; "
              f"{target.users:,} cold-start users")
        profiles = target.batch.profiles
        docs = []
        for _, row in profiles.iterrows():
            answers = {key: row[key] for key in ("buyer_type", "region", "spend_per_order")
                       if row[key] is not None}
            answers["interests"] = list(row["interests"])
            docs.append(describe(spec, answers))
        variants = {"": None, " (same segment)": "segment", " (same region)": "region"}
        people = {}
        for label, field in variants.items():
            rows = []
            for doc, (_, row) in zip(docs, profiles.iterrows(), strict=True):
                where = {field: str(row[field])} if field and row[field] else None
                rows.append(people_row(train, index.similar_customers(doc, args.k, where)))
            people[label] = sp.vstack(rows, format="csr")

    def scores(weight: float, near: sp.csr_matrix | None, answers: bool = True) -> dict:
        model = SimilarProfilesRecommender(people_weight=weight).fit_data(train)
        batch = target.batch
        if not answers:  # nobody is similar by answers: Chroma's people alone
            batch = ev.QueryBatch.for_profiles(train, profiles.iloc[:, :0].set_index(
                profiles.index))
        batch.people = near
        top = top_k(model._masked(model.score(batch), batch, False), 10)
        return ranking_metrics(top, target.relevant, 10, popularity=train.popularity,
                               n_users=len(train.users), n_items=int(train.candidates.sum()))

    rows = {"answer vectors (before)": scores(0.0, None)}
    for label, near in people.items():
        rows[f"Chroma only{label}"] = scores(1.0, near, answers=False)
    for w in (0.25, 0.5, 1.0):
        rows[f"answers + {w:g} x Chroma"] = scores(w, people[""])
    rows["answers + 0.5 x Chroma (same segment)"] = scores(0.5, people[" (same segment)"])
    base = rows["answer vectors (before)"]["ndcg@10"]
    print(f"{'similar people from':40}{'P@10':>7}{'NDCG@10':>9}{'ratio':>7}")
    for name, m in rows.items():
        print(f"{name:40}{m['precision@10']:>7.3f}{m['ndcg@10']:>9.4f}"
              f"{m['ndcg@10'] / base:>7.3f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
