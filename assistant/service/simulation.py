"""A traffic simulator, so the funnel and an experiment can be seen working on real data
before real visitors arrive. Everything it writes is marked simulated (session ids start
with ``SIMULATED``), and the reports say how much of what they count is simulated.

How a simulated session is made (``assistant insights simulate``):

1. The orders are cut at ``start`` (default: 90 days before the last order, or the middle
   of a shorter history). A recommender
   is fitted on the orders before it only, with the served weights, so no list can know a
   purchase it is later credited with.
2. Each session draws a real customer who bought before ``start`` (uniformly, seeded) and a
   time in the ``days`` after it, and is linked to that customer.
3. It is shown ``k`` cards: the running experiment's arm for the session (the same hash as
   live traffic), else the served hybrid. The impressions go to the event log with the
   session's time.
4. Engagement is simulated: a card the customer really ordered within 30 days after the
   session gets a "more like this" with probability ``engage`` (default 0.5); no other
   card is engaged with. Purchases are not simulated: the funnel credits a card when the
   customer's real later order holds it, as for live traffic.

A running **policy** experiment (``assistant insights simulate --policy``) is simulated
per customer instead: ``customers`` real customers who were in the experiment's segment on
the cut (their RFM segment scored from the orders before it) are drawn without
replacement, each is assigned an arm by the live hash and logs one ``exposure`` at a time
in the ``days`` after the cut. Their real orders in the 30 days after it count as
conversions. An arm's policy cannot change what a real customer did in the past, so the
arms differ only by chance here: a simulated policy experiment is an A/A test of the
machinery (its verdict should read "not significant" about 95 % of the time), not evidence
for a policy.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from assistant.core.errors import InputError
from assistant.insights.funnel import WINDOW_DAYS
from assistant.insights.migration import segments_on
from assistant.insights.purchases import parse_day
from assistant.recommend.personal import Profile, Recommendations

if TYPE_CHECKING:  # a type only: Parts is passed in by the service
    from assistant.service.parts import Parts

SIMULATED = "SIMULATED-"
Progress = Callable[[str, float], None] | None


def is_simulated(session_id: str | None) -> bool:
    return bool(session_id) and str(session_id).startswith(SIMULATED)


class Simulation:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    @staticmethod
    def _cut(orders: pd.DataFrame, start: str | None) -> pd.Timestamp:
        """The day simulated traffic starts: ``start``, or 90 days before the last order
        (the middle of a shorter history); refused outside the orders."""
        times = pd.to_datetime(orders["timestamp"])
        first, last = times.min().normalize(), times.max().normalize()
        cut = (parse_day(start, "--start") if start else
               max(last - pd.Timedelta(days=90), first + (last - first) / 2).normalize())
        if not times.min() < cut <= times.max():
            raise InputError(f"--start {cut:%Y-%m-%d} is outside the orders "
                             f"({times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}).",
                             "Pick a day with orders before and after it.")
        return cut

    def run(self, *, sessions: int = 1000, start: str | None = None, days: int = 60,
            k: int = 5, engage: float = 0.5, seed: int = 0,
            progress: Progress = None) -> dict[str, Any]:
        """Simulate ``sessions`` linked sessions (see the module docstring); returns what
        was written and under which run id."""
        if not 1 <= sessions <= 100_000:
            raise InputError(f"--sessions {sessions} must be from 1 to 100,000.",
                             "Pass e.g. --sessions 2000.")
        if not 0 <= engage <= 1 or days < 1 or k < 1:
            raise InputError("--engage must lie in [0, 1]; --days and --k must be 1 or more.",
                             "E.g. --engage 0.5 --days 60 --k 5.")
        report = progress or (lambda stage, done: None)
        orders = self.parts.orders()
        times = pd.to_datetime(orders["timestamp"])
        cut = self._cut(orders, start)
        before = orders[times < cut]
        buyers = np.sort(before.loc[~before["is_return"], "customer"].astype(str).unique())
        if len(buyers) < 5:
            raise InputError(f"Only {len(buyers)} customers bought before {cut:%Y-%m-%d}.",
                             "Pick a later --start.")
        report("fitting a recommender on the orders before the start", 0.05)
        served = self.parts.served_weights()
        engine = Recommendations.fit(before, None, self.parts.settings.cache_dir,
                                     weights=served["weights"], params=served["params"])
        later = orders[(times >= cut) & ~orders["is_return"]]
        bought = dict(tuple(later.assign(item=later["item"].astype(str))[
            ["item", "timestamp"]].groupby(later["customer"].astype(str).to_numpy())))
        none = pd.DataFrame({"item": pd.Series(dtype=str),
                             "timestamp": pd.Series(dtype="datetime64[ns]")})
        rng = np.random.default_rng(seed)
        run = uuid.uuid4().hex[:8]
        experiments = self.parts.experiments
        window = pd.Timedelta(days=WINDOW_DAYS)
        arms: dict[str, int] = {}
        shown = engaged = 0
        for i in range(sessions):
            sid = f"{SIMULATED}{run}-{i:06d}"
            customer = str(rng.choice(buyers))
            at = cut + pd.Timedelta(seconds=float(rng.uniform(0, days * 86400)))
            arm = experiments.assign(sid)
            ranker = engine.with_weights(arm.weights) if arm is not None else engine
            recs = ranker.recommend(Profile(customer_id=customer), k,
                                    exclude_seen=self.parts.settings.exclude_seen)
            variant = arm.variant if arm is not None else "simulated hybrid"
            arms[variant] = arms.get(variant, 0) + 1
            stamp = at.tz_localize("UTC").isoformat()
            events = [{"at": stamp, "kind": "impression", "session_id": sid, "item": r.item,
                       "position": pos, "variant": variant, "customer_id": customer,
                       "segment": None} for pos, r in enumerate(recs, start=1)]
            theirs = bought.get(customer, none)
            mine = theirs[(theirs["timestamp"] > at) & (theirs["timestamp"] <= at + window)]
            wanted = set(mine["item"])
            for r in recs:
                if r.item in wanted and rng.random() < engage:
                    events.append({"at": stamp, "kind": "reaction", "session_id": sid,
                                   "item": r.item, "value": "like", "customer_id": customer})
                    engaged += 1
            shown += len(recs)
            self.parts.events.record(events)
            if i % 100 == 0:
                report(f"simulating sessions ({i:,} of {sessions:,})", 0.1 + 0.9 * i / sessions)
        report("done", 1.0)
        return {"run": run, "sessions": sessions, "start": f"{cut:%Y-%m-%d}", "days": days,
                "cards_shown": shown, "engaged": engaged, "variants": arms,
                "note": f"Simulated: session ids start with {SIMULATED}{run}-; customers and "
                        "their later purchases are real, the sessions and the engagement "
                        "are not."}

    def exposures(self, *, customers: int = 1000, start: str | None = None, days: int = 60,
                  seed: int = 0, progress: Progress = None) -> dict[str, Any]:
        """Simulated desk exposures for the running policy experiment (see the module
        docstring); returns what was written."""
        exp = self.parts.experiments.running("policy")
        if exp is None:
            raise InputError("No policy experiment is running, so there is nothing to "
                             "simulate exposures for.",
                             "Start one first: assistant experiments start NAME --kind "
                             "policy --segment 'At Risk' --arm A=served --arm B=at-risk-10")
        if not 1 <= customers <= 100_000 or days < 1:
            raise InputError("--customers must be from 1 to 100,000 and --days 1 or more.",
                             "E.g. --customers 1000 --days 60.")
        report = progress or (lambda stage, done: None)
        orders = self.parts.orders()
        cut = self._cut(orders, start)
        report(f"scoring segments on {cut:%Y-%m-%d}", 0.1)
        segment = exp["segment"]
        then = segments_on(orders, cut)
        pool = np.sort(then.index[then == segment].astype(str).unique())
        if len(pool) == 0:
            raise InputError(f"Nobody was in {segment} on {cut:%Y-%m-%d}.",
                             "Pick another --start, or a segment with customers.")
        rng = np.random.default_rng(seed)
        drawn = rng.choice(pool, size=min(customers, len(pool)), replace=False)
        run = uuid.uuid4().hex[:8]
        arms: dict[str, int] = {}
        events = []
        for i, customer in enumerate(drawn):
            arm = self.parts.experiments.arm_of(exp, str(customer))
            if arm is None:
                continue
            at = cut + pd.Timedelta(seconds=float(rng.uniform(0, days * 86400)))
            variant = f"{exp['name']}/{arm}"
            arms[variant] = arms.get(variant, 0) + 1
            events.append({"at": at.tz_localize("UTC").isoformat(), "kind": "exposure",
                           "session_id": f"{SIMULATED}{run}-{i:06d}",
                           "customer_id": str(customer), "segment": segment,
                           "variant": variant})
        self.parts.events.record(events)
        report("done", 1.0)
        return {"run": run, "experiment": exp["name"], "segment": segment,
                "start": f"{cut:%Y-%m-%d}", "days": days, "in_segment": int(len(pool)),
                "customers": len(events), "variants": arms,
                "note": f"Simulated: exposures carry session ids starting {SIMULATED}{run}-; "
                        "the customers and their later orders are real. An arm cannot "
                        "change a real customer's past orders, so this is an A/A check of "
                        "the machinery: a difference here is chance."}
