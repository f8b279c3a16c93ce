"""Experiments between recommender variants: ops start one (two or more arms of hybrid
weights, a primary metric, the smallest change worth knowing), sessions are assigned to an
arm by a hash of the experiment and the session (sticky, no state), the cards each arm
shows are logged as impressions of ``<experiment>/<arm>``, and the status reads the event
log and the orders: per arm, sessions, CTR, conversion, satisfaction and revenue per
session, each arm against the first with Holm-corrected p-values and a peeking guard
(``insights/experiments.py``).

An arm is written as ``served`` (the weights in use) followed by changes, comma-separated:
``without:NAME`` drops a component, ``NAME=W`` sets its weight in every mode (e.g.
``served,segment=0.5`` adds the segment boost). Only one experiment runs at a time.
"""
from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from assistant.core.errors import InputError
from assistant.insights.experiments import (
    compare_means,
    compare_rates,
    sample_size,
    session_outcomes,
    verdict,
)
from assistant.insights.rates import mean, rate
from assistant.recommend.algorithms import MODES, RECOMMENDERS
from assistant.recommend.personal import Recommendations
from assistant.service.simulation import is_simulated

if TYPE_CHECKING:  # Parts builds Experiments: a type-only import avoids the cycle
    from assistant.service.parts import Parts

METRICS = ("ctr", "conversion")
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
    def running(self) -> dict[str, Any] | None:
        return self.parts.store.running_experiment()

    def assign(self, session_id: str) -> Assignment | None:
        """The arm of the running experiment this session is in (None: no experiment, or
        the session falls outside its share of traffic)."""
        exp = self.running()
        if exp is None:
            return None
        point = int(hashlib.sha256(f"{exp['name']}:{session_id}".encode()).hexdigest()[:12],
                    16) / 16 ** 12
        if point >= exp["share"]:
            return None
        arms = list(exp["arms"])
        arm = arms[min(int(point / exp["share"] * len(arms)), len(arms) - 1)]
        served = self.parts.served_weights()["weights"]
        return Assignment(exp["name"], arm, arm_weights(served, exp["arms"][arm]))

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
    def start(self, actor: str, name: str, arms: dict[str, str], *, metric: str = "ctr",
              base_rate: float, mde: float, share: float = 1.0) -> dict[str, Any]:
        """Start an experiment; the sample size per arm is computed first (refused when it
        cannot be)."""
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
        if metric not in METRICS:
            raise InputError(f"Unknown metric '{metric}'.", "Use ctr or conversion.")
        if not 0 < share <= 1:
            raise InputError(f"The share {share} must be above 0 and at most 1.",
                             "1 puts every session in the experiment.")
        served = self.parts.served_weights()["weights"]
        for spec in arms.values():
            arm_weights(served, spec)  # a clear error before anything is saved
        planned = sample_size(base_rate, mde)
        running = self.running()
        if running is not None:
            raise InputError(f"The experiment '{running['name']}' is running.",
                             f"Stop it first: assistant experiments stop {running['name']}.")
        if self.parts.store.experiment(name) is not None:
            raise InputError(f"There was an experiment called '{name}' already.",
                             "Pick a new name (results stay under the old one).")
        self.parts.store.add_experiment(name=name, arms=arms, metric=metric,
                                        base_rate=base_rate, mde=mde, planned=planned,
                                        share=share, actor=actor)
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
        """Per arm: sessions, CTR, conversion, satisfaction, revenue per linked session;
        each arm against the first, Holm-corrected, with the verdict and the peeking
        guard."""
        if name is None:
            exp = self.running() or next(iter(self.parts.store.experiments()), None)
            if exp is None:
                raise InputError("No experiment has been started.",
                                 "Start one: assistant experiments start NAME --arm "
                                 "A=served --arm B=served,segment=0.5")
        else:
            exp = self._get(name)
        # by variant, not by time: an experiment's name is never reused, and simulated
        # sessions carry the times of the orders they were drawn from
        sessions = session_outcomes(self.parts.events.frame(), self.parts.orders(),
                                    prefix=f"{exp['name']}/")
        simulated = int(sessions["session_id"].map(is_simulated).sum())
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
        return {"experiment": {k: exp[k] for k in ("name", "status", "metric", "base_rate",
                                                   "mde", "share", "started_at",
                                                   "started_by", "stopped_at",
                                                   "stopped_by")},
                "arms": per_arm, "simulated_sessions": simulated,
                "verdict": verdict(comparisons, planned=int(exp["planned"]),
                                   smallest=min(a["sessions"] for a in per_arm))}
