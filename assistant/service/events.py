"""The event log: what the app showed and what people did, for the outcome reports
(``insights/funnel.py``). One append-only SQLite table (``events``); a row goes only with
its session (erase, retention purge), so it keeps no personal data longer than the session.

Kinds: ``impression`` (a recommendation card shown: item, position, recommender variant,
template version, segment, the linked customer), ``reaction`` (a card's "more like this" /
"less like this" / "not for me"), ``click`` (a card's "Show me": the person opened the
product's details), ``satisfaction`` (1-5 after a chat), ``exposure`` (a desk draft for a
customer written under a policy experiment's arm: customer, segment, ``experiment/arm``;
no session, so it goes when the customer is erased or retention passes its time). The
desk's outcomes (a draft sent as written, edited, discarded, rated) are not copied here:
the ``drafts`` table records each draft's status, edit diff and rating already. Logging
never fails the request that logs: a store error is logged and the event is lost.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd

from assistant.core.errors import AssistantError, InputError
from assistant.infra.store import EVENT_COLUMNS, Store

log = logging.getLogger(__name__)

SATISFACTION_SCALE = (1, 2, 3, 4, 5)


class EventLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _add(self, events: list[dict[str, Any]]) -> None:
        try:
            self.store.add_events(events)
        except AssistantError as err:  # never fail the request that logs
            log.warning("event log: %d event(s) lost (%s)", len(events), err.message)

    def impressions(self, session_id: str, items: Sequence[str], *, variant: str,
                    segment: str | None, customer_id: str | None,
                    template_version: str | None = None) -> None:
        """A list of cards shown, in order (position 1 is the top)."""
        self._add([{"kind": "impression", "session_id": session_id, "item": item,
                    "position": pos, "variant": variant, "segment": segment,
                    "customer_id": customer_id, "template_version": template_version}
                   for pos, item in enumerate(items, start=1)])

    def reaction(self, session_id: str, item: str, value: str, *, segment: str | None,
                 customer_id: str | None) -> None:
        self._add([{"kind": "reaction", "session_id": session_id, "item": item,
                    "value": value, "segment": segment, "customer_id": customer_id}])

    def click(self, session_id: str, item: str, *, segment: str | None,
              customer_id: str | None) -> None:
        """A card's "Show me" (the funnel counts it as engagement with the card)."""
        self._add([{"kind": "click", "session_id": session_id, "item": item,
                    "segment": segment, "customer_id": customer_id}])

    def satisfaction(self, session_id: str, score: int, *, segment: str | None) -> None:
        """A person's 1-5 rating of the chat (validated before anything is stored)."""
        if score not in SATISFACTION_SCALE:
            raise InputError(f"{score!r} is not a rating from 1 to 5.",
                             "Pick 1 (not helpful) to 5 (very helpful).")
        self._add([{"kind": "satisfaction", "session_id": session_id, "value": str(score),
                    "segment": segment}])

    def exposure(self, customer_id: str, *, variant: str, segment: str | None) -> None:
        """A desk draft for a customer written under a policy experiment's arm."""
        self._add([{"kind": "exposure", "customer_id": customer_id, "variant": variant,
                    "segment": segment}])

    def record(self, events: list[dict[str, Any]]) -> None:
        """Events written as given, with their own times (the traffic simulator)."""
        self._add(events)

    def frame(self, since: str | None = None) -> pd.DataFrame:
        """The event log (from ``since``, an ISO time) as a frame for the insights."""
        return pd.DataFrame(self.store.events(since=since), columns=["id", *EVENT_COLUMNS])
