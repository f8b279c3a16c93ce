"""Insights: outcome reports over the shop's orders and segments, as JSON-ready dicts (the
CLI prints them, the Insights tab plots them, the staff API returns them)."""
from __future__ import annotations

import inspect
import threading
from typing import Any

import pandas as pd

from assistant.core.errors import InputError
from assistant.insights.cohorts import cohort_retention
from assistant.insights.funnel import WINDOW_DAYS, funnel
from assistant.insights.migration import segment_migration, segments_on
from assistant.insights.purchases import day_after_last, parse_day, segment_of
from assistant.insights.rates import mean, rate
from assistant.insights.satisfaction import satisfaction
from assistant.insights.segments import CHURN_DAYS, segment_outcomes
from assistant.insights.value import validate
from assistant.service.parts import Parts
from assistant.service.simulation import is_simulated
from assistant.support.desk import TEMPLATE as DESK_TEMPLATE

NO_SEGMENTS_NOTE = ("Segments are not built yet: every customer is counted as "
                    "'(no segment)'. Build them in the Segments tab or with "
                    "`assistant segments build`.")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with plain Python values (NaN -> None), for JSON."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [dict(zip(clean.columns, row, strict=True)) for row in clean.itertuples(index=False)]


class Insights:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._lock = threading.Lock()
        self._validated: tuple[pd.DataFrame, dict[str, Any]] | None = None

    def segments(self) -> pd.Series | None:
        """customer -> RFM segment, from the segments in use (None before a build)."""
        model = self.parts.segments_or_none()
        return None if model is None else model.customers["rfm_segment"]

    def _customers_of(self, segment: str | None) -> pd.Index | None:
        if segment is None:
            return None
        segments = self.segments()
        if segments is None:
            raise InputError(f"There are no segments yet, so none called '{segment}'.",
                             "Build the segments first (assistant segments build), or "
                             "leave out --segment.")
        known = sorted(set(segments))
        if segment not in known:
            raise InputError(f"There is no segment '{segment}'.",
                             "Use one of: " + ", ".join(known) + ".")
        return segments.index[segments == segment]

    def retention(self, *, period: str = "M", segment: str | None = None,
                  since: str | None = None) -> dict[str, Any]:
        """Monthly (or quarterly, weekly) cohort retention, for everyone or one segment."""
        table = cohort_retention(self.parts.orders(), period=period, since=since,
                                 customers=self._customers_of(segment))
        return {"report": "retention", "period": period, "segment": segment, "since": since,
                "cohorts": _records(table),
                "note": "The first cohort holds every customer already buying when the data "
                        "starts."}

    def outcomes(self, *, segment: str | None = None, since: str | None = None,
                 as_of: str | None = None, churn_days: int = CHURN_DAYS) -> dict[str, Any]:
        """Repeat purchases, churn, customers at risk, revenue and order value per segment."""
        segments = self.segments()
        orders = self.parts.orders()
        table = segment_outcomes(orders, segments, as_of=as_of, since=since,
                                 churn_days=churn_days,
                                 churn_segments=self._segments_before(orders, as_of,
                                                                      churn_days))
        if segment is not None:
            self._customers_of(segment)  # a clear error for an unknown name
            table = table[table["segment"] == segment]
        return {"report": "segments", "since": since, "as_of": as_of,
                "churn_days": churn_days, "segments": _records(table),
                "note": None if segments is not None else NO_SEGMENTS_NOTE}

    @staticmethod
    def _segments_before(orders: pd.DataFrame, as_of: str | None,
                         churn_days: int) -> pd.Series | None:
        """The RFM segments scored when the churn window began (None when too few
        customers had bought by then to score them)."""
        end = (parse_day(as_of, "--as-of") if as_of is not None
               else day_after_last(orders["timestamp"]))
        try:
            return segments_on(orders, end - pd.Timedelta(days=churn_days))
        except InputError:
            return None

    def migration(self, start: str | None = None, end: str | None = None) -> dict[str, Any]:
        """How customers moved between RFM segments from one date to another (default: the
        six months up to the day after the last order, or the second half of the data when
        it spans less than a year)."""
        orders = self.parts.orders()
        times = pd.to_datetime(orders["timestamp"])
        if times.isna().all():
            raise InputError("There are no orders to measure.",
                             "Point TAILOR_ORDERS at the shop's orders file.")
        end = end or f"{day_after_last(times):%Y-%m-%d}"
        if not start:
            first = times.min().normalize()
            day = pd.Timestamp(end) - pd.DateOffset(months=6)
            if day < first + pd.DateOffset(months=6):
                day = first + (pd.Timestamp(end) - first) / 2
            start = f"{day:%Y-%m-%d}"
        table = segment_migration(orders, start, end)
        return {"report": "migration", "from": start, "to": end, "moves": _records(table)}

    def _events_of(self, since: str | None, segment: str | None) -> pd.DataFrame:
        """The event log (from ``since``), only a segment's people's events if given."""
        events = self.parts.events.frame(since=since)
        if segment is not None:
            events = events[events["segment"] == segment]
        return events

    def funnel(self, *, by: str = "variant", segment: str | None = None,
               since: str | None = None, window_days: int = WINDOW_DAYS) -> dict[str, Any]:
        """Cards shown -> engaged with -> bought, per recommender variant and/or segment
        (``by``: "variant", "segment" or "variant,segment")."""
        groups = tuple(g.strip() for g in by.split(",") if g.strip()) or ("variant",)
        events = self._events_of(since, segment)
        table = funnel(events, self.parts.orders(), by=groups, window_days=window_days)
        shown = events.loc[events["kind"] == "impression", "session_id"].dropna().unique()
        simulated = int(sum(is_simulated(s) for s in shown))
        note = (None if len(table) else "No recommendations shown yet (or since that day): "
                                        "the funnel fills as people chat.")
        if simulated:
            note = (f"{simulated:,} of the {len(shown):,} sessions are SIMULATED "
                    "(assistant insights simulate): real customers and real later orders, "
                    "simulated sessions and engagement.")
        return {"report": "funnel", "by": list(groups), "segment": segment, "since": since,
                "window_days": window_days, "rows": _records(table),
                "sessions": len(shown), "simulated_sessions": simulated, "note": note}

    def satisfaction(self, *, segment: str | None = None, since: str | None = None,
                     period: str = "W") -> dict[str, Any]:
        """Chat ratings per segment and per period; agents' ratings of desk drafts."""
        drafts = pd.DataFrame(self.parts.store.template_drafts(DESK_TEMPLATE, since=since))
        report = satisfaction(self._events_of(since, segment), drafts, period=period)
        rated = report["by_segment"][0]["n"]
        return {"report": "satisfaction", "segment": segment, "since": since,
                "period": period, **report,
                "note": None if rated else "No chat has been rated yet (the 1-5 control "
                                           "under the chat)."}

    def value(self, *, segment: str | None = None, top: int = 20,
              validate_model: bool = True) -> dict[str, Any]:
        """Predicted purchases, value and churn risk over the next 90 days (BG/NBD +
        Gamma-Gamma): per segment, the customers worth most, the fitted parameters and
        the model's error on the last 90 days of the data beside a naive baseline."""
        if top < 0:
            raise InputError(f"--top {top} cannot be negative.", "Pass e.g. --top 20.")
        model = self.parts.customer_value()
        table = model.table.copy()
        segments = self.segments()
        table["segment"] = segment_of(table.index.to_series(), segments).to_numpy()
        if segment is not None:
            self._customers_of(segment)
            table = table[table["segment"] == segment]
        groups = [("All customers", table)] + list(table.groupby("segment", sort=True))
        per_segment = [{
            "segment": name, "customers": len(rows),
            "expected_purchases": float(rows["expected_purchases"].sum()),
            "expected_value": float(rows["expected_value"].sum()),
            "value_per_customer": mean(rows["expected_value"]).as_dict(),
            # BG/NBD lets a customer drop out only after a repeat purchase: one-time
            # buyers have churn risk 0 by construction, so risk is read over repeat buyers
            "churn_risk": mean(rows.loc[rows["x"] > 0, "churn_risk"]).as_dict(),
            "likely_lost": rate(int((rows["churn_risk"] > 0.5).sum()),
                                int((rows["x"] > 0).sum())).as_dict(),
        } for name, rows in groups]
        best = table.head(top)
        report: dict[str, Any] = {
            "report": "value", "segment": segment, "horizon_days": model.horizon_days,
            "params": model.params(), "segments": per_segment,
            "top": [{"customer": str(c), "segment": r["segment"],
                     "expected_purchases": float(r["expected_purchases"]),
                     "expected_value": float(r["expected_value"]),
                     "churn_risk": float(r["churn_risk"])} for c, r in best.iterrows()],
            "validation": None,
            "note": None if segments is not None else NO_SEGMENTS_NOTE}
        if validate_model:
            report["validation"] = self._validation(model.end, int(model.horizon_days))
        return report

    def _validation(self, end: pd.Timestamp, horizon: int) -> dict[str, Any]:
        """The value model fitted without the last ``horizon`` days and scored on them
        (once per orders file)."""
        orders = self.parts.orders()
        with self._lock:
            if self._validated is None or self._validated[0] is not orders:
                try:
                    found = validate(orders, calibration_end=end - pd.Timedelta(days=horizon),
                                     horizon_days=horizon)
                except InputError as err:
                    found = {"error": err.message, "hint": err.hint}
                self._validated = (orders, found)
            return self._validated[1]

    def report(self, kind: str, **options: Any) -> dict[str, Any]:
        """One report by name (the CLI's subcommands, the staff API's ``kind``)."""
        reports = {"retention": self.retention, "segments": self.outcomes,
                   "migration": self.migration, "funnel": self.funnel,
                   "satisfaction": self.satisfaction, "value": self.value}
        if kind not in reports:
            raise InputError(f"There is no insights report '{kind}'.",
                             "Use one of: " + ", ".join(reports) + ".")
        takes = inspect.signature(reports[kind]).parameters
        unknown = sorted(set(options) - set(takes))
        if unknown:
            raise InputError(f"The {kind} report has no option {', '.join(unknown)}.",
                             f"Its options: {', '.join(takes)}.")
        return reports[kind](**options)
