"""Experiments, of two kinds; one of each may run at a time.

**Recommender** experiments: ops start one (two or more arms of hybrid weights, a primary
metric, the smallest change worth knowing), sessions are assigned to an arm by a hash of
the experiment and the session (sticky, no state), the cards each arm shows are logged as
impressions of ``<experiment>/<arm>``, and the status reads the event log and the orders:
per arm, sessions, CTR, conversion, satisfaction and revenue per session, each arm against
the first with Holm-corrected p-values and a peeking guard (``insights/experiments.py``).
An arm is written as ``served`` (the weights in use) followed by changes, comma-separated:
``without:NAME`` drops a component, ``NAME=W`` sets its weight in every mode (e.g.
``served,segment=0.5`` adds the segment boost).

**Policy** experiments: one segment's support policy (``data/policies.yaml``) against
variants of it (its ``variants:``, e.g. At Risk with a 10 % discount instead of 15 %). The
unit is the customer: a customer of that segment is assigned by a hash of the experiment
and the customer id, every desk draft for them follows their arm's policy (what the
model is told, what the grounding check allows), and each draft logs an ``exposure``.
The status counts per arm the customers exposed, their orders within 30 days of the first
exposure (conversion, revenue per customer) and the drafts (sent, liked by the agent).
An arm is ``served`` (the segment's policy) or the name of a variant for that segment.
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from assistant.core.errors import InputError
from assistant.insights.experiments import (
    Comparison,
    compare_means,
    compare_rates,
    customer_outcomes,
    sample_size,
    session_outcomes,
    verdict,
)
from assistant.insights.rates import mean, rate
from assistant.recommend.algorithms import MODES, RECOMMENDERS
from assistant.recommend.personal import Recommendations
from assistant.segments.model import SEGMENTS
from assistant.service.simulation import is_simulated
from assistant.support.desk import TEMPLATE as DESK_TEMPLATE
from assistant.support.policies import Policy

if TYPE_CHECKING:  # Parts builds Experiments: a type-only import avoids the cycle
    from assistant.service.parts import Parts

log = logging.getLogger(__name__)

KINDS = ("recommender", "policy")
#: the primary metrics each kind can plan for (the first is the default)
METRICS = {"recommender": ("ctr", "conversion"), "policy": ("conversion", "sent")}
UNITS = {"recommender": "sessions", "policy": "customers"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_ARM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,11}$")


@dataclass(frozen=True)
class Assignment:
    experiment: str
    arm: str
    weights: dict[str, dict[str, float]]

    @property
    def variant(self) -> str:
        return f"{self.experiment}/{self.arm}"


def arm_weights(served: dict[str, dict[str, float]], spec: str) -> dict[str, dict[str, float]]:
    """The hybrid weights an arm's ``spec`` describes (see the module docstring)."""
    parts = [p.strip() for p in (spec or "").split(",") if p.strip()]
    if not parts or parts[0] != "served":
        raise InputError(f"The arm '{spec}' does not start with 'served'.",
                         "Write e.g. served (the weights in use), served,without:als or "
                         "served,segment=0.5.")
    weights = {m: dict(served.get(m, {})) for m in MODES}
    names = set(RECOMMENDERS) - {"hybrid"}
    for change in parts[1:]:
        if change.startswith("without:"):
            name, value = change.removeprefix("without:").strip(), 0.0
        elif "=" in change:
            name, text = (x.strip() for x in change.split("=", 1))
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not 0.0 <= value <= 10.0:
                raise InputError(f"'{change}': a weight is a number from 0 to 10.",
                                 "Write e.g. segment=0.5.")
        else:
            raise InputError(f"'{change}' is not a change of the served weights.",
                             "Use without:NAME or NAME=WEIGHT, e.g. without:als.")
        if name not in names:
            raise InputError(f"There is no recommender '{name}'.",
                             "Use one of: " + ", ".join(sorted(names)) + ".")
        for mode in MODES:
            weights[mode][name] = value
    return weights


class Experiments:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, str], tuple[Recommendations, Recommendations]] = {}

    # -- running ----------------------------------------------------------------------
    def running(self, kind: str = "recommender") -> dict[str, Any] | None:
        return self.parts.store.running_experiment(kind)

    @staticmethod
    def arm_of(exp: dict[str, Any], unit: str) -> str | None:
        """The arm a session or customer (``unit``) is in: a sha256 hash of the experiment
        and the unit, sticky without state (None: outside the experiment's share)."""
        point = int(hashlib.sha256(f"{exp['name']}:{unit}".encode()).hexdigest()[:12],
                    16) / 16 ** 12
        if point >= exp["share"]:
            return None
        arms = list(exp["arms"])
        return arms[min(int(point / exp["share"] * len(arms)), len(arms) - 1)]

    def assign(self, session_id: str) -> Assignment | None:
        """The arm of the running recommender experiment this session is in (None: no
        experiment, or the session falls outside its share of traffic)."""
        exp = self.running()
        arm = self.arm_of(exp, session_id) if exp is not None else None
        if exp is None or arm is None:
            return None
        served = self.parts.served_weights()["weights"]
        return Assignment(exp["name"], arm, arm_weights(served, exp["arms"][arm]))

    def policy_for(self, customer_id: str | None, segment: str | None) -> Policy:
        """The support policy for a customer: their arm's, marked with the experiment's
        ``name/arm``, when a policy experiment runs on their segment; else the segment's."""
        policies = self.parts.policies
        exp = self.running("policy")
        if exp is None or not customer_id or segment != exp["segment"]:
            return policies.for_segment(segment)
        arm = self.arm_of(exp, str(customer_id))
        if arm is None:
            return policies.for_segment(segment)
        spec = exp["arms"][arm]
        try:
            policy = (policies.for_segment(segment) if spec == "served"
                      else policies.variant(spec))
        except InputError as err:  # the variant left data/policies.yaml: drafts go on
            log.warning("policy experiment %s: arm %s (%s) falls back to the segment's "
                        "policy: %s", exp["name"], arm, spec, err.message)
            return policies.for_segment(segment)
        return replace(policy, variant=f"{exp['name']}/{arm}")

    def _check_policy_arms(self, segment: str | None, arms: dict[str, str]) -> str:
        if segment not in SEGMENTS:
            raise InputError(f"A policy experiment needs a segment, not {segment!r}.",
                             "Use one of: " + ", ".join(SEGMENTS) + ".")
        for spec in arms.values():
            if spec == "served":
                continue
            variant = self.parts.policies.variant(spec)
            if variant.segment != segment:
                raise InputError(f"The policy variant '{spec}' is for {variant.segment}, "
                                 f"not {segment}.",
                                 "Pick a variant whose segment: is the experiment's "
                                 "(data/policies.yaml).")
        return segment

    def engine(self, assignment: Assignment) -> Recommendations:
        """The recommender with the arm's weights (built once per arm and fitted model)."""
        base = self.parts.recommender()
        key = (assignment.experiment, assignment.arm)
        with self._lock:
            cached = self._engines.get(key)
            if cached is None or cached[0] is not base:
                cached = (base, base.with_weights(assignment.weights))
                self._engines[key] = cached
            return cached[1]

    # -- ops ----------------------------------------------------------------------------
    def start(self, actor: str, name: str, arms: dict[str, str], *, metric: str | None = None,
              base_rate: float, mde: float, share: float = 1.0, kind: str = "recommender",
              segment: str | None = None) -> dict[str, Any]:
        """Start an experiment; the sample size per arm is computed first (refused when it
        cannot be)."""
        if kind not in KINDS:
            raise InputError(f"Unknown experiment kind '{kind}'.",
                             "Use recommender (hybrid weights) or policy (a segment's "
                             "support policy).")
        metric = metric or METRICS[kind][0]
        name = (name or "").strip().lower()
        if not _NAME.match(name):
            raise InputError(f"'{name}' is not an experiment name.",
                             "Use 1-40 lower-case letters, digits, - or _, e.g. segment-boost.")
        if len(arms) < 2:
            raise InputError("An experiment needs at least two arms.",
                             "E.g. A=served and B=served,segment=0.5.")
        bad = [a for a in arms if not _ARM.match(a)]
        if bad:
            raise InputError(f"'{bad[0]}' is not an arm name.",
                             "Use 1-12 letters, digits, - or _, e.g. A and B.")
        if metric not in METRICS[kind]:
            raise InputError(f"Unknown metric '{metric}' for a {kind} experiment.",
                             "Use " + " or ".join(METRICS[kind]) + ".")
        if not 0 < share <= 1:
            raise InputError(f"The share {share} must be above 0 and at most 1.",
                             f"1 puts every {UNITS[kind][:-1]} in the experiment.")
        if kind == "policy":  # a clear error before anything is saved
            segment = self._check_policy_arms(segment, arms)
        else:
            served = self.parts.served_weights()["weights"]
            for spec in arms.values():
                arm_weights(served, spec)
            segment = None
        planned = sample_size(base_rate, mde)
        running = self.running(kind)
        if running is not None:
            raise InputError(f"The {kind} experiment '{running['name']}' is running.",
                             f"Stop it first: assistant experiments stop {running['name']}.")
        if self.parts.store.experiment(name) is not None:
            raise InputError(f"There was an experiment called '{name}' already.",
                             "Pick a new name (results stay under the old one).")
        self.parts.store.add_experiment(name=name, arms=arms, metric=metric,
                                        base_rate=base_rate, mde=mde, planned=planned,
                                        share=share, actor=actor, kind=kind,
                                        segment=segment)
        return self.status(name)

    def stop(self, actor: str, name: str, reason: str = "") -> dict[str, Any]:
        exp = self._get(name)
        if exp["status"] == "stopped":
            raise InputError(f"The experiment '{name}' was stopped already "
                             f"({exp['stopped_at'][:16]}, by {exp['stopped_by']}).",
                             "Its results stay: assistant experiments status " + name)
        self.parts.store.stop_experiment(name, actor=actor, reason=reason)
        return self.status(name)

    def _get(self, name: str) -> dict[str, Any]:
        exp = self.parts.store.experiment((name or "").strip().lower())
        if exp is None:
            known = [e["name"] for e in self.parts.store.experiments()]
            raise InputError(f"There is no experiment '{name}'.",
                             ("Known: " + ", ".join(known) + ".") if known else
                             "Start one: assistant experiments start NAME --arm A=served "
                             "--arm B=served,segment=0.5")
        return exp

    def status(self, name: str | None = None) -> dict[str, Any]:
        """Per arm: the units (sessions or customers) and the kind's metrics; each arm
        against the first, Holm-corrected, with the verdict and the peeking guard."""
        if name is None:
            exp = (self.running() or self.running("policy")
                   or next(iter(self.parts.store.experiments()), None))
            if exp is None:
                raise InputError("No experiment has been started.",
                                 "Start one: assistant experiments start NAME --arm "
                                 "A=served --arm B=served,segment=0.5")
        else:
            exp = self._get(name)
        # by variant, not by time: an experiment's name is never reused, and simulated
        # units carry the times of the orders they were drawn from
        prefix = f"{exp['name']}/"
        if exp["kind"] == "policy":
            drafts = pd.DataFrame(self.parts.store.template_drafts(
                DESK_TEMPLATE, since=exp["started_at"]))
            units = customer_outcomes(self.parts.events.frame(), self.parts.orders(),
                                      drafts, prefix=prefix)
            arms, comparisons = _policy_arms(exp, units)
        else:
            units = session_outcomes(self.parts.events.frame(), self.parts.orders(),
                                     prefix=prefix)
            arms, comparisons = _recommender_arms(exp, units)
        simulated = int(units["session_id"].map(is_simulated).sum())
        unit = UNITS[exp["kind"]]
        extra = self._capacity(exp) if exp["kind"] == "policy" else {}
        return {"experiment": {k: exp[k] for k in ("name", "kind", "segment", "status",
                                                   "metric", "base_rate", "mde", "share",
                                                   "started_at", "started_by",
                                                   "stopped_at", "stopped_by")},
                "unit": unit, "arms": arms, f"simulated_{unit}": simulated, **extra,
                "verdict": verdict(comparisons, planned=int(exp["planned"]),
                                   smallest=min(a[unit] for a in arms), unit=unit)}

    def _capacity(self, exp: dict[str, Any]) -> dict[str, Any]:
        """How many customers the segment holds today (segments in use), and a warning
        when that is fewer than the plan needs: the experiment could then never reach its
        sample size."""
        model = self.parts.segments_or_none()
        if model is None:
            return {"segment_customers": None, "capacity_note": None}
        size = int((model.customers["rfm_segment"] == exp["segment"]).sum())
        needed = int(exp["planned"]) * len(exp["arms"])
        note = None if size >= needed else (
            f"{exp['segment']} holds {size:,} customers and the plan needs {needed:,}: the "
            "experiment cannot reach its sample size. Accept a larger smallest change, "
            "fewer arms, or read it as exploratory.")
        return {"segment_customers": size, "capacity_note": note}


def _recommender_arms(exp: dict[str, Any], sessions: pd.DataFrame
                      ) -> tuple[list[dict[str, Any]], list[Comparison]]:
    """Per arm: sessions, CTR, conversion, satisfaction, revenue per linked session; and
    each arm against the first."""
    arms = list(exp["arms"])
    per_arm, comparisons = [], []
    for arm in arms:
        mine = sessions[sessions["arm"] == arm]
        linked = mine[mine["linked"]]
        per_arm.append({
            "arm": arm, "spec": exp["arms"][arm], "sessions": len(mine),
            "ctr": rate(int(mine["engaged"].sum()), len(mine)).as_dict(),
            "conversion": rate(int(linked["bought"].sum()), len(linked)).as_dict(),
            "satisfaction": mean(mine["rating"].dropna()).as_dict(),
            "revenue_per_session": mean(linked["revenue"]).as_dict()})
    control = sessions[sessions["arm"] == arms[0]]
    for arm in arms[1:]:
        other = sessions[sessions["arm"] == arm]
        a_linked, b_linked = control[control["linked"]], other[other["linked"]]
        for c in (
            compare_rates("ctr", (int(control["engaged"].sum()), len(control)),
                          (int(other["engaged"].sum()), len(other))),
            compare_rates("conversion", (int(a_linked["bought"].sum()), len(a_linked)),
                          (int(b_linked["bought"].sum()), len(b_linked))),
            compare_means("satisfaction", control["rating"].dropna(),
                          other["rating"].dropna()),
            compare_means("revenue_per_session", a_linked["revenue"], b_linked["revenue"]),
        ):
            comparisons.append(replace(c, metric=f"{c.metric} ({arm} vs {arms[0]})"))
    return per_arm, comparisons


def _policy_arms(exp: dict[str, Any], customers: pd.DataFrame
                 ) -> tuple[list[dict[str, Any]], list[Comparison]]:
    """Per arm: customers exposed, conversion (ordered within 30 days), revenue per
    customer, drafts sent and liked; and each arm against the first."""
    def counts(rows: pd.DataFrame, column: str) -> tuple[int, int]:
        values = rows[column].dropna().astype(float)
        return int(values.sum()), len(values)

    arms = list(exp["arms"])
    per_arm, comparisons = [], []
    for arm in arms:
        mine = customers[customers["arm"] == arm]
        per_arm.append({
            "arm": arm, "spec": exp["arms"][arm], "customers": len(mine),
            "conversion": rate(int(mine["bought"].astype(bool).sum()), len(mine)).as_dict(),
            "revenue_per_customer": mean(mine["revenue"].astype(float)).as_dict(),
            "sent": rate(*counts(mine, "sent")).as_dict(),
            "liked": mean(mine["liked"].dropna().astype(float)).as_dict()})
    control = customers[customers["arm"] == arms[0]]
    for arm in arms[1:]:
        other = customers[customers["arm"] == arm]
        for c in (
            compare_rates("conversion", (int(control["bought"].astype(bool).sum()),
                                         len(control)),
                          (int(other["bought"].astype(bool).sum()), len(other))),
            compare_means("revenue_per_customer", control["revenue"].astype(float),
                          other["revenue"].astype(float)),
            compare_rates("sent", counts(control, "sent"), counts(other, "sent")),
        ):
            comparisons.append(replace(c, metric=f"{c.metric} ({arm} vs {arms[0]})"))
    return per_arm, comparisons
