"""The statistics of an experiment between variants (recommender weights, segment
policies): how many sessions (or customers) it needs before it starts, whether a difference
is real when it is read, and a correction when several metrics are read at once.

- **Sample size** per arm for a difference of two proportions (a two-sided z test):
  n = (z_{1-alpha/2} sqrt(2 p(1-p)) + z_{power} sqrt(p1(1-p1) + p2(1-p2)))^2 / (p2-p1)^2,
  with p the mean of p1 and p2 (Fleiss, "Statistical Methods for Rates and Proportions").
- **A proportion metric** (CTR, conversion): the difference B - A with its 95 % interval
  (normal approximation) and the p-value of Fisher's exact test (exact at small counts).
- **A mean metric** (satisfaction, revenue per session): Welch's t test.
- **Several metrics**: Holm's step-down correction of the p-values (family-wise error at
  alpha, less conservative than Bonferroni).
- **Peeking**: a result read before the planned sample size is reached is marked
  "early": a test repeated as data arrive finds a difference that is not there far more
  often than alpha says. The verdict is only "significant" once every arm has its planned
  sessions (or, early, when the corrected p-value is below alpha / 10, a Haybittle-Peto
  style boundary that keeps the overall error near alpha).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, norm, ttest_ind

from assistant.core.errors import InputError
from assistant.insights.funnel import WINDOW_DAYS, pair_flags, shown_pairs
from assistant.insights.purchases import event_times

ALPHA = 0.05
POWER = 0.8
EARLY_ALPHA_SHARE = 0.1  # early looks need p < alpha * this (Haybittle-Peto style)


def sample_size(base_rate: float, mde: float, *, alpha: float = ALPHA,
                power: float = POWER) -> int:
    """Sessions per arm to detect an absolute change of ``mde`` from ``base_rate`` (e.g.
    0.10 -> 0.12: mde 0.02) with a two-sided test at ``alpha`` and ``power``."""
    if not 0 < base_rate < 1:
        raise InputError(f"The base rate {base_rate} must lie between 0 and 1.",
                         "Give today's rate as a fraction, e.g. 0.08 for 8 %.")
    p2 = base_rate + mde
    if mde == 0 or not 0 < p2 < 1:
        raise InputError(f"A change of {mde} from {base_rate} is not a detectable rate.",
                         "Give the smallest change worth knowing, e.g. 0.02 (2 points).")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise InputError("alpha and power must lie between 0 and 1.",
                         "The usual values are alpha 0.05 and power 0.8.")
    p = (base_rate + p2) / 2
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)
    n = (z_a * math.sqrt(2 * p * (1 - p))
         + z_b * math.sqrt(base_rate * (1 - base_rate) + p2 * (1 - p2))) ** 2 / mde ** 2
    return int(math.ceil(n))


@dataclass(frozen=True)
class Comparison:
    """Variant B against A on one metric."""

    metric: str
    a: float | None
    b: float | None
    n_a: int
    n_b: int
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    p_adjusted: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_rates(metric: str, a: tuple[int, int], b: tuple[int, int]) -> Comparison:
    """(successes, trials) of A and B: the difference in rates with its 95 % interval and
    Fisher's exact p-value (None where an arm has no trials)."""
    (ka, na), (kb, nb) = a, b
    if na == 0 or nb == 0:
        return Comparison(metric, ka / na if na else None, kb / nb if nb else None, na, nb,
                          None, None, None, None)
    pa, pb = ka / na, kb / nb
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    z = norm.ppf(0.975)
    _, p = fisher_exact([[kb, nb - kb], [ka, na - ka]])
    return Comparison(metric, pa, pb, na, nb, pb - pa, pb - pa - z * se, pb - pa + z * se,
                      float(p))


def compare_means(metric: str, a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Mean of B minus mean of A with Welch's t test (None below 2 values an arm)."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ma = float(xa.mean()) if len(xa) else None
    mb = float(xb.mean()) if len(xb) else None
    if len(xa) < 2 or len(xb) < 2:
        return Comparison(metric, ma, mb, len(xa), len(xb), None, None, None, None)
    test = ttest_ind(xb, xa, equal_var=False)
    ci = test.confidence_interval(0.95)
    p = float(test.pvalue) if math.isfinite(test.pvalue) else 1.0
    low = float(ci.low) if math.isfinite(ci.low) else None
    high = float(ci.high) if math.isfinite(ci.high) else None
    return Comparison(metric, ma, mb, len(xa), len(xb), mb - ma, low, high, p)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None), in the input's order."""
    known = [(p, i) for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    m = len(known)
    for rank, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def verdict(comparisons: Sequence[Comparison], *, planned: int, alpha: float = ALPHA,
            smallest: int | None = None, unit: str = "sessions") -> dict[str, Any]:
    """Corrected p-values, and what may be concluded now: "significant" (a metric's
    corrected p below alpha with every arm at its planned size, or below alpha x 0.1
    early), "not significant" (planned size reached, none below), or "early" (keep
    collecting; a look now is a peek). ``smallest``: the units (sessions, customers) of
    the smallest arm (default: the fewest trials of any comparison)."""
    adjusted = holm([c.p_value for c in comparisons])
    fixed = [Comparison(**{**c.as_dict(), "p_adjusted": p})
             for c, p in zip(comparisons, adjusted, strict=True)]
    if smallest is None:
        smallest = min([c.n_a for c in fixed] + [c.n_b for c in fixed], default=0)
    reached = planned > 0 and smallest >= planned
    bound = alpha if reached else alpha * EARLY_ALPHA_SHARE
    winners = [c.metric for c in fixed if c.p_adjusted is not None and c.p_adjusted < bound]
    if winners:
        state = "significant"
    elif reached:
        state = "not significant"
    else:
        state = "early"
    note = {
        "significant": f"B differs from A on {', '.join(winners)} (Holm-corrected p below "
                       f"{bound:g}{'' if reached else ', an early stop bound'}).",
        "not significant": "No metric differs at the planned sample size: the change is "
                           "smaller than the experiment could see, or there is none.",
        "early": f"Only {smallest:,} of the planned {planned:,} {unit} per arm so far: "
                 "reading a result now is peeking (a difference found by looking often "
                 "is usually noise). Keep it running.",
    }[state]
    return {"state": state, "note": note, "alpha": alpha, "bound": bound,
            "planned_per_arm": planned, "smallest_arm": smallest,
            "comparisons": [c.as_dict() for c in fixed]}


# --------------------------------------------------------------------------- sessions
def session_outcomes(events: pd.DataFrame, order_lines: pd.DataFrame | None, *,
                     prefix: str, window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """One row per session shown cards of a variant starting with ``prefix`` (an
    experiment's ``name/``): ``arm``, ``engaged`` (a "more like this" on a card shown),
    ``linked``, ``bought`` (a linked customer ordered a card shown within the window),
    ``revenue`` (what those orders' lines came to), ``rating`` (the chat's 1-5, NaN when
    not rated). Sessions are the unit: each is in one arm, so they are independent."""
    pairs = shown_pairs(events)
    pairs = pairs[pairs["variant"].fillna("").str.startswith(prefix)]
    columns = ["session_id", "arm", "engaged", "linked", "bought", "revenue", "rating"]
    if pairs.empty:
        return pd.DataFrame({"session_id": pd.Series(dtype=object),
                             "arm": pd.Series(dtype=object),
                             **{c: pd.Series(dtype=bool) for c in ("engaged", "linked",
                                                                    "bought")},
                             "revenue": pd.Series(dtype=float),
                             "rating": pd.Series(dtype=float)})
    flags = pair_flags(events, pairs, order_lines, window_days)
    pairs = pairs.assign(arm=pairs["variant"].str.removeprefix(prefix), **flags)
    g = pairs.groupby("session_id", sort=True)
    out = pd.DataFrame({"arm": g["arm"].first(), "engaged": g["engaged"].any(),
                        "linked": g["linked"].any(), "bought": g["bought"].any(),
                        "revenue": g["revenue"].sum()})
    rated = events[events["kind"] == "satisfaction"].drop_duplicates("session_id", keep="last")
    scores = pd.to_numeric(rated.set_index("session_id")["value"], errors="coerce")
    out["rating"] = scores.reindex(out.index)
    return out.reset_index()[columns]


# --------------------------------------------------------------------------- customers
def customer_outcomes(events: pd.DataFrame, order_lines: pd.DataFrame | None,
                      drafts: pd.DataFrame | None, *, prefix: str,
                      window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """One row per customer exposed to a policy experiment (``exposure`` events whose
    variant starts with ``prefix``, an experiment's ``name/``); customers are the unit, as
    a customer's arm is sticky. ``arm``; ``bought`` and ``revenue``: any order within the
    window after the first exposure and what it came to; ``drafted``, ``sent`` and
    ``liked`` from the desk's drafts created at or after that exposure (``drafts``: rows
    with customer_id, created_at, status, feedback): a draft sent (status final), rated
    liked (NaN where no draft was rated)."""
    columns = ["customer_id", "session_id", "arm", "bought", "revenue", "drafted", "sent",
               "liked"]
    exp = events[(events["kind"] == "exposure")
                 & events["variant"].fillna("").str.startswith(prefix)]
    exp = exp[exp["customer_id"].notna() & (exp["customer_id"].astype(str) != "")]
    if exp.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in columns[:3] else float)
                             for c in columns})
    exp = exp.assign(at=event_times(exp["at"]), customer_id=exp["customer_id"].astype(str))
    first = (exp.sort_values("at", kind="stable").drop_duplicates("customer_id")
             .set_index("customer_id")[["session_id", "variant", "at"]])
    out = pd.DataFrame({"session_id": first["session_id"],
                        "arm": first["variant"].str.removeprefix(prefix)})
    out["bought"], out["revenue"] = _orders_after(first["at"], order_lines, window_days)
    out["drafted"], out["sent"], out["liked"] = _drafts_after(first["at"], drafts)
    return out.rename_axis("customer_id").reset_index()[columns]


def _orders_after(first: pd.Series, order_lines: pd.DataFrame | None,
                  window_days: int) -> tuple[list[bool], list[float]]:
    """Per customer (``first``: customer -> first exposure): bought within the window, and
    the amount of those orders' lines."""
    if order_lines is None or order_lines.empty:
        return [False] * len(first), [0.0] * len(first)
    lines = order_lines.loc[~order_lines["is_return"].astype(bool)]
    lines = pd.DataFrame({"customer": lines["customer"].astype(str).to_numpy(),
                          "timestamp": pd.to_datetime(lines["timestamp"]).to_numpy(),
                          "amount": lines["amount"].astype(float).to_numpy()})
    lines = lines[lines["customer"].isin(first.index)]
    at = lines["customer"].map(first)
    hit = lines[(lines["timestamp"] > at)
                & (lines["timestamp"] <= at + pd.Timedelta(days=window_days))]
    spent = hit.groupby("customer")["amount"].sum()
    return ([c in spent.index for c in first.index],
            [float(spent.get(c, 0.0)) for c in first.index])


def _drafts_after(first: pd.Series, drafts: pd.DataFrame | None
                  ) -> tuple[list[bool], list[float], list[float]]:
    """Per customer: had a draft after the first exposure; sent one (1.0/0.0, NaN: no
    draft); liked (share of rated drafts rated up, NaN: none rated)."""
    n = len(first)
    if drafts is None or drafts.empty:
        return [False] * n, [math.nan] * n, [math.nan] * n
    d = drafts[drafts["customer_id"].astype(str).isin(first.index)]
    d = d.assign(customer_id=d["customer_id"].astype(str),
                 created_at=event_times(d["created_at"]))
    d = d[d["created_at"] >= d["customer_id"].map(first)]
    g = d.groupby("customer_id")
    sent = g["status"].apply(lambda s: float((s == "final").any()))
    liked = g["feedback"].apply(lambda f: float((f.dropna() > 0).mean())
                                if f.notna().any() else math.nan)
    return ([c in sent.index for c in first.index],
            [sent.get(c, math.nan) for c in first.index],
            [liked.get(c, math.nan) for c in first.index])
