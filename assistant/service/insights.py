"""Insights: outcome reports over the shop's orders and segments, as JSON-ready dicts (the
CLI prints them, the Insights tab plots them, the staff API returns them)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from assistant.core.errors import AssistantError, InputError
from assistant.infra.store import EVENT_COLUMNS
from assistant.insights.cohorts import cohort_retention
from assistant.insights.funnel import WINDOW_DAYS, funnel
from assistant.insights.migration import segment_migration, segments_on
from assistant.insights.satisfaction import satisfaction
from assistant.insights.segments import CHURN_DAYS, segment_outcomes
from assistant.service.parts import Parts
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

    def segments(self) -> pd.Series | None:
        """customer -> RFM segment, from the segments in use (None before a build)."""
        try:
            model = self.parts.segment_model()
        except AssistantError:
            return None
        return model.customers["rfm_segment"]

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
        end = (pd.Timestamp(as_of) if as_of is not None
               else pd.to_datetime(orders["timestamp"]).max().normalize() + pd.Timedelta(days=1))
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
        end = end or f"{times.max().normalize() + pd.Timedelta(days=1):%Y-%m-%d}"
        if not start:
            first = times.min().normalize()
            day = pd.Timestamp(end) - pd.DateOffset(months=6)
            if day < first + pd.DateOffset(months=6):
                day = first + (pd.Timestamp(end) - first) / 2
            start = f"{day:%Y-%m-%d}"
        table = segment_migration(orders, start, end)
        return {"report": "migration", "from": start, "to": end, "moves": _records(table)}

    def _events(self, since: str | None) -> pd.DataFrame:
        rows = self.parts.store.events(since=since)
        return pd.DataFrame(rows, columns=["id", *EVENT_COLUMNS]) if rows else pd.DataFrame(
            columns=["id", *EVENT_COLUMNS])

    def funnel(self, *, by: str = "variant", since: str | None = None,
               window_days: int = WINDOW_DAYS) -> dict[str, Any]:
        """Cards shown -> engaged with -> bought, per recommender variant and/or segment
        (``by``: "variant", "segment" or "variant,segment")."""
        groups = tuple(g.strip() for g in by.split(",") if g.strip()) or ("variant",)
        events = self._events(since)
        table = funnel(events, self.parts.orders(), by=groups, window_days=window_days)
        return {"report": "funnel", "by": list(groups), "since": since,
                "window_days": window_days, "rows": _records(table),
                "note": None if len(table) else "No recommendations shown yet (or since "
                                                "that day): the funnel fills as people chat."}

    def satisfaction(self, *, since: str | None = None, period: str = "W") -> dict[str, Any]:
        """Chat ratings per segment and per period; agents' ratings of desk drafts."""
        drafts = pd.DataFrame(self.parts.store.template_drafts(DESK_TEMPLATE, since=since))
        report = satisfaction(self._events(since), drafts, period=period)
        rated = report["by_segment"][0]["n"]
        return {"report": "satisfaction", "since": since, "period": period, **report,
                "note": None if rated else "No chat has been rated yet (the 1-5 control "
                                           "under the chat)."}

    def report(self, kind: str, **options: Any) -> dict[str, Any]:
        """One report by name (the CLI's subcommands, the staff API's ``kind``)."""
        reports = {"retention": self.retention, "segments": self.outcomes,
                   "migration": self.migration, "funnel": self.funnel,
                   "satisfaction": self.satisfaction}
        if kind not in reports:
            raise InputError(f"There is no insights report '{kind}'.",
                             "Use one of: " + ", ".join(reports) + ".")
        return reports[kind](**options)
