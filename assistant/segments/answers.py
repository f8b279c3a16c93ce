"""Questionnaire answers that behaviour data can observe, and how they are derived from real
customers to train the segment classifier.

Each question here is one the guided questionnaire asks (issue 4 uses these ids and options).
They were chosen because a person can answer them and the order history shows the truth:

| id | question | derived from (orders/features.py) |
|---|---|---|
| ``order_frequency`` | How often do you order from us? | distinct orders per month of tenure |
| ``spend_per_order`` | How much do you usually spend per order? | average basket value (GBP) |
| ``buyer_type`` | For yourself / as gifts, or for a business? | units per order (>= 250) |
| ``last_order`` | When did you last order from us? | recency |
| ``region`` | Where should we deliver? | country |
| ``interests`` | Which kinds of products interest you? (several) | groups with >= 20% of spend |

Bands were set from the real distribution of the UCI Online Retail customers (quartiles of
basket value: 179 / 294 / 430 GBP; orders per month: 0.24 / 0.45 / 0.83).

**Noise.** Real people answer imprecisely, so derived answers are perturbed with a seeded
generator (``AnswerNoise``): an ordinal answer moves to a neighbouring option with
probability 0.15 and is left unanswered ("don't know"/skip) with probability 0.05; the buyer
type flips with probability 0.10; each true interest is forgotten with probability 0.20 and
an unrelated interest is added with probability 0.10; region is skipped with probability 0.02.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ORDINAL_QUESTIONS: dict[str, list[str]] = {
    "order_frequency": ["first order", "a few times a year", "every month or two",
                        "more than once a month"],
    "spend_per_order": ["under £150", "£150-£300", "£300-£600", "over £600"],
    "last_order": ["within the last month", "1-3 months ago", "3-6 months ago",
                   "more than 6 months ago"],
}
CATEGORICAL_QUESTIONS: dict[str, list[str]] = {
    "buyer_type": ["for myself or as gifts", "for my business"],
    "region": ["United Kingdom", "Europe", "elsewhere"],
}
ANSWER_COLUMNS = [*ORDINAL_QUESTIONS, *CATEGORICAL_QUESTIONS]
INTEREST_PREFIX = "interest_"
INTEREST_SHARE = 0.20  # a product group is an interest from this share of spend
BUSINESS_UNITS = 250  # units per order from which a buyer counts as a business

EUROPE = {
    "Austria", "Belgium", "Channel Islands", "Cyprus", "Czech Republic", "Denmark", "EIRE",
    "European Community", "Finland", "France", "Germany", "Greece", "Iceland", "Italy",
    "Lithuania", "Malta", "Netherlands", "Norway", "Poland", "Portugal", "Spain", "Sweden",
    "Switzerland",
}


@dataclass(frozen=True)
class AnswerNoise:
    shift: float = 0.15
    skip: float = 0.05
    flip: float = 0.10
    forget_interest: float = 0.20
    extra_interest: float = 0.10
    skip_region: float = 0.02

    @classmethod
    def none(cls) -> AnswerNoise:
        return cls(0, 0, 0, 0, 0, 0)


def _bands(values: pd.Series, edges: list[float], options: list[str]) -> pd.Series:
    codes = np.digitize(values.to_numpy(dtype=float), edges)
    return pd.Series(np.asarray(options, dtype=object)[codes], index=values.index)


def true_answers(features: pd.DataFrame) -> pd.DataFrame:
    """The answers each customer's behaviour implies (no noise)."""
    out = pd.DataFrame(index=features.index)
    months = np.maximum(features["tenure_days"].to_numpy(dtype=float) / 30.4, 1.0)
    per_month = pd.Series(features["frequency"].to_numpy(dtype=float) / months,
                          index=features.index)
    freq = _bands(per_month, [0.35, 1.0], ORDINAL_QUESTIONS["order_frequency"][1:])
    out["order_frequency"] = freq.where(features["frequency"] > 1,
                                        ORDINAL_QUESTIONS["order_frequency"][0])
    out["spend_per_order"] = _bands(features["avg_basket_value"], [150, 300, 600],
                                    ORDINAL_QUESTIONS["spend_per_order"])
    out["last_order"] = _bands(features["recency_days"], [31, 91, 181],
                               ORDINAL_QUESTIONS["last_order"])
    # wholesale-sized orders (units per order) mark business buyers
    out["buyer_type"] = np.where(features["avg_items_per_order"] >= BUSINESS_UNITS,
                                 "for my business", "for myself or as gifts")
    country = features["country"].astype("string").fillna("")
    out["region"] = np.select([country == "United Kingdom", country.isin(EUROPE)],
                              ["United Kingdom", "Europe"], "elsewhere")
    for col in [c for c in features.columns if c.startswith("share_")]:
        group = col.removeprefix("share_")
        if group in ("fees", "other"):
            continue
        out[INTEREST_PREFIX + group] = (features[col] >= INTEREST_SHARE).astype(float)
    return out


def add_noise(answers: pd.DataFrame, noise: AnswerNoise, seed: int = 0) -> pd.DataFrame:
    """Perturb answers as real respondents would (see module docstring)."""
    rng = np.random.default_rng(seed)
    out = answers.copy()
    n = len(out)
    for q, options in ORDINAL_QUESTIONS.items():
        if q not in out:
            continue
        idx = pd.Series(out[q]).map({o: i for i, o in enumerate(options)}).to_numpy(float)
        move = rng.random(n) < noise.shift
        step = rng.choice([-1, 1], size=n)
        idx = np.where(move & ~np.isnan(idx), np.clip(idx + step, 0, len(options) - 1), idx)
        values = pd.Series(np.asarray(options, dtype=object)[np.nan_to_num(idx).astype(int)],
                           index=out.index).where(~np.isnan(idx))
        out[q] = values.where(rng.random(n) >= noise.skip)
    if "buyer_type" in out:
        flip = rng.random(n) < noise.flip
        other = np.where(out["buyer_type"] == "for my business", "for myself or as gifts",
                         "for my business")
        out["buyer_type"] = np.where(flip, other, out["buyer_type"])
    if "region" in out:
        out["region"] = out["region"].where(rng.random(n) >= noise.skip_region)
    interest_cols = [c for c in out.columns if c.startswith(INTEREST_PREFIX)]
    if interest_cols:
        values = out[interest_cols].to_numpy(float)
        forget = rng.random(values.shape) < noise.forget_interest
        extra = rng.random(values.shape) < noise.extra_interest / max(len(interest_cols), 1)
        values = np.where((values == 1) & forget, 0.0, values)
        values = np.where((values == 0) & extra, 1.0, values)
        out[interest_cols] = values
    return out
