"""Satisfaction: the 1-5 ratings people give a chat (per segment and per week, with a mean
and its interval), and the agents' thumbs on desk drafts (share liked, per week)."""
from __future__ import annotations

import pandas as pd

from assistant.core.errors import InputError
from assistant.insights.purchases import event_times
from assistant.insights.rates import mean, rate

PERIODS = ("W", "M")


def chat_ratings(events: pd.DataFrame) -> pd.DataFrame:
    """``satisfaction`` events as (at, segment, score); the last rating per session counts."""
    rated = events[events["kind"] == "satisfaction"]
    if rated.empty:
        return pd.DataFrame({"at": pd.Series(dtype="datetime64[ns]"),
                             "segment": pd.Series(dtype=object),
                             "score": pd.Series(dtype=float)})
    rated = rated.assign(at=event_times(rated["at"]),
                         score=pd.to_numeric(rated["value"], errors="coerce"))
    rated = rated.dropna(subset=["score"]).drop_duplicates("session_id", keep="last")
    return rated[["at", "segment", "score"]].fillna({"segment": "(none)"})


def satisfaction(events: pd.DataFrame, drafts: pd.DataFrame | None = None,
                 *, period: str = "W") -> dict[str, list[dict]]:
    """``by_segment``: mean rating with its t interval and n; ``trend``: the same per
    period; ``drafts``: per period, the share of rated drafts the agents liked and the
    share of final drafts sent as written (no edit) and the share whose ticket the agent
    marked resolved."""
    if period not in PERIODS:
        raise InputError(f"Unknown period {period!r}.", "Use W (weeks) or M (months).")
    ratings = chat_ratings(events)
    by_segment = [{"segment": "All", **mean(ratings["score"]).as_dict()}] + [
        {"segment": seg, **mean(group["score"]).as_dict()}
        for seg, group in ratings.groupby("segment", sort=True)]
    trend = [{"period": str(p), **mean(group["score"]).as_dict()}
             for p, group in ratings.groupby(ratings["at"].dt.to_period(period), sort=True)]
    return {"by_segment": by_segment, "trend": trend,
            "drafts": _draft_trend(drafts, period)}


def _draft_trend(drafts: pd.DataFrame | None, period: str) -> list[dict]:
    if drafts is None or drafts.empty:
        return []
    d = drafts.assign(at=event_times(drafts["created_at"]))
    out = []
    for p, group in d.groupby(d["at"].dt.to_period(period), sort=True):
        rated = group["feedback"].dropna()
        final = group[group["status"] == "final"]
        as_is = final["edit_diff"].fillna("").str.strip() == ""
        out.append({"period": str(p), "drafts": len(group),
                    "liked": rate(int((rated > 0).sum()), len(rated)).as_dict(),
                    "sent_as_written": rate(int(as_is.sum()), len(final)).as_dict(),
                    "resolved": rate(int(final["resolved_at"].notna().sum())
                                     if "resolved_at" in final else 0, len(final)).as_dict(),
                    "discarded": int((group["status"] == "discarded").sum())})
    return out
