"""Adaptive vs fixed question order, on held-out real customers.

Customers of the shipped orders (UCI Online Retail) are split 75/25, stratified by RFM
segment. The classifier and the answer likelihoods are fitted on the training customers
only. Each held-out customer then "answers" with their own behaviour-derived answers plus
survey noise (a seed the training never saw). Both strategies use the same stopping rule:
stop when the top segment's probability reaches the threshold, or when every question has
been asked. Fixed order asks the questions as listed in the spec; adaptive asks the one
with the largest expected information gain next.

    .venv/bin/python bench/questionnaire.py [--threshold 0.8] [--customers 400]

Prints mean questions asked and accuracy (segment at the stop vs the true RFM segment) for
both, and the ratios adaptive/fixed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from assistant.core.config import REPO_ROOT
from assistant.orders.catalog import assign_groups, load_group_rules
from assistant.orders.features import build_features
from assistant.orders.ingest import load_orders
from assistant.segments.answers import AnswerNoise, add_noise, true_answers
from assistant.segments.model import (
    ASK_ORDER,
    INTEREST_PREFIX,
    QuestionPlanner,
    answer_likelihoods,
    fit_classifier,
    rfm_scores,
    training_rows,
)


def said(answers: pd.Series) -> dict[str, object]:
    """One customer's (noisy) answers in the questionnaire's form; skipped ones left out."""
    out: dict[str, object] = {}
    for q in ASK_ORDER:
        if q == "interests":
            out[q] = [c.removeprefix(INTEREST_PREFIX) for c in answers.index
                      if c.startswith(INTEREST_PREFIX) and answers[c] > 0]
        elif pd.notna(answers[q]):
            out[q] = answers[q]
    return out


def trajectory(planner: QuestionPlanner, truth: dict[str, object],
               adaptive: bool) -> list[np.ndarray]:
    """Posteriors before the first question and after each of the six (all asked)."""
    known: dict[str, object] = {}
    remaining = list(ASK_ORDER)
    posts = [planner.posterior(known)]
    while remaining:
        if adaptive:
            gains = planner.gains(known, remaining)
            q = max(gains, key=gains.__getitem__) if gains else remaining[0]
        else:
            q = remaining[0]
        remaining.remove(q)
        if q in truth:  # a skipped question was asked all the same
            known[q] = truth[q]
        posts.append(planner.posterior(known))
    return posts


def stop(posts: list[np.ndarray], threshold: float) -> tuple[int, int]:
    """(questions asked, predicted class index) under the stopping rule."""
    for asked, post in enumerate(posts):
        if post.max() >= threshold:
            return asked, int(post.argmax())
    return len(posts) - 1, int(posts[-1].argmax())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--customers", type=int, default=400, help="held-out customers to run")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ingest = load_orders(REPO_ROOT / "data" / "online_retail.csv.gz")
    orders = ingest.orders
    rules = load_group_rules()
    orders["group"] = assign_groups(orders["description"], rules)
    features = build_features(orders, groups=sorted(rules.names))
    labels = rfm_scores(features)["rfm_segment"]
    train_ids, test_ids = train_test_split(features.index.to_numpy(dtype=object), test_size=0.25,
                                           random_state=0, stratify=labels)
    rows = training_rows(features.loc[train_ids], labels)
    planner = QuestionPlanner(fit_classifier(rows), answer_likelihoods(rows), args.threshold)
    test = features.loc[test_ids]
    answers = add_noise(true_answers(test), AnswerNoise(), seed=12345)
    pick = np.random.default_rng(0).choice(len(test), size=min(args.customers, len(test)),
                                           replace=False)
    print(f"setup {time.perf_counter() - t0:.1f} s: {len(train_ids)} training customers, "
          f"{len(pick)} held-out customers, threshold {args.threshold}")

    runs: dict[str, list[tuple[list[np.ndarray], str]]] = {"fixed": [], "adaptive": []}
    t1 = time.perf_counter()
    for i in pick:
        cid = test.index[i]
        truth = said(answers.loc[cid])
        for name in runs:
            runs[name].append((trajectory(planner, truth, name == "adaptive"), labels[cid]))
    print(f"simulated in {time.perf_counter() - t1:.1f} s")
    classes = planner.classes

    print("\naccuracy after k questions (no early stop)")
    print(f"{'order':<10}" + "".join(f"{k:>7}" for k in range(len(ASK_ORDER) + 1)))
    for name, rs in runs.items():
        accs = [np.mean([classes[int(p[k].argmax())] == y for p, y in rs])
                for k in range(len(ASK_ORDER) + 1)]
        print(f"{name:<10}" + "".join(f"{a:>7.3f}" for a in accs))

    print("\nstop when the top segment's probability reaches the threshold")
    print(f"{'threshold':<10}{'order':<10}{'questions':>10}{'accuracy':>10}")
    for threshold in sorted({0.5, 0.6, 0.7, args.threshold}):
        summary = {}
        for name, rs in runs.items():
            stops = [stop(p, threshold) for p, _ in rs]
            asked = np.mean([a for a, _ in stops])
            acc = np.mean([classes[c] == y for (_, c), (_, y) in zip(stops, rs, strict=True)])
            summary[name] = (asked, acc)
            print(f"{threshold:<10}{name:<10}{asked:>10.2f}{acc:>10.3f}")
        (qa, aa), (qf, af) = summary["adaptive"], summary["fixed"]
        print(f"{'':<10}{'ratio':<10}{qa / qf:>10.3f}{aa / af:>10.3f}   (adaptive / fixed)")


if __name__ == "__main__":
    main()
