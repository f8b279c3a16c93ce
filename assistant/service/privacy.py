"""Personal data under the person's control: export and erase a chat session's data, or a
verified customer's; purge what is older than the retention period. Every export and erase
is written to the privacy audit log (who, when, which kinds and how many: never the content;
the subject is kept as a hash, so "was X erased?" can be checked without keeping X).

An erase removes the session's messages, facts, profile, reactions and feedback from SQLite
(rows overwritten with zeros, the write-ahead log emptied) and the profile from Chroma (its
text blanked on disk too: ``VectorStore.forget``); the model-call log keeps its metrics.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from assistant.core.errors import InputError
from assistant.service.identity import session_key
from assistant.service.parts import Parts

log = logging.getLogger(__name__)

NOTICE = (
    "**Your data.** We keep this conversation, the facts you give us (what is on the card), "
    "the suggestions we showed you, your reactions to them and your rating of the chat, to "
    "personalize what we show you and to measure whether it helps; if you link your "
    "orders, what they tell us too. {retention} Nothing is sold or shared. "
    "*Download my data* gives you all of it as a file; *Erase my data* deletes it "
    "for good (the conversation, the card, your profile).")


def subject_key(kind: str, value: str) -> str:
    """The audit log's name for a session or customer: a hash, not the id itself."""
    return f"{kind}:" + hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:16]


class Privacy:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    @property
    def store(self):  # noqa: ANN201 - the Store
        return self.parts.store

    def notice(self) -> str:
        days = self.parts.settings.retention_days
        retention = (f"It is deleted {days:g} days after your last visit." if days
                     else "It is kept until you erase it.")
        return NOTICE.format(retention=retention)

    # -- export ------------------------------------------------------------------------
    def export_session(self, session_id: str, *, actor: str = "customer") -> dict[str, Any]:
        """Everything stored for a session and, when the session proved who it is, for the
        linked customer: the drafts staff wrote about them and their other sessions' ids."""
        data = self.store.session_data(session_id)
        if data is None:
            raise InputError("There is no data for this session.",
                             "It may have been erased already; a new chat starts empty.")
        customer = (data.get("questionnaire") or {}).get("customer_id")
        if customer:
            data["customer"] = self._customer_part(customer)
        self._audit(actor, "export", subject_key("session", session_id), data)
        return data

    def export_customer(self, customer_id: str, *, actor: str) -> dict[str, Any]:
        """Staff (CLI): everything stored about a customer of the order data."""
        part = self._customer_part(customer_id)
        part["sessions"] = [self.store.session_data(s) for s in part.pop("session_ids")]
        self._audit(actor, "export", subject_key("customer", customer_id), part)
        return part

    def _customer_part(self, customer_id: str) -> dict[str, Any]:
        return {"customer_id": customer_id,
                "session_ids": self.store.sessions_of_customer(customer_id),
                "drafts": self.store.drafts_for(customer_id, limit=10_000)}

    # -- erase -------------------------------------------------------------------------
    def erase_session(self, session_id: str, *, actor: str = "customer",
                      with_customer: bool = False) -> dict[str, int]:
        """Erase a session (see the module docstring). ``with_customer``: also everything
        about the customer it is linked to (only for a session that proved who it is):
        their other sessions and the desk drafts about them."""
        data = self.store.session_data(session_id)
        if data is None:
            raise InputError("There is nothing to erase for this session.",
                             "It was erased already, or it never existed.")
        customer = (data.get("questionnaire") or {}).get("customer_id")
        counts = self._erase_sessions([session_id])
        if with_customer and customer:
            counts = _add(counts, self._erase_customer_rest(customer))
        self._finish(actor, subject_key("session", session_id), counts)
        return counts

    def erase_customer(self, customer_id: str, *, actor: str) -> dict[str, int]:
        """Staff (CLI): every session linked to a customer and the drafts about them."""
        counts = self._erase_customer_rest(customer_id)
        self._finish(actor, subject_key("customer", customer_id), counts)
        return counts

    def purge(self, older_than_days: float, *, actor: str = "retention") -> dict[str, int]:
        """Erase every session not touched for ``older_than_days`` days, and the events of
        no session (desk exposures) logged before then."""
        cutoff = _days_ago(older_than_days,
                           "For example: assistant privacy purge --older-than 365")
        sessions = self.store.sessions_idle_since(cutoff)
        counts = self._erase_sessions(sessions) if sessions else {"sessions": 0}
        exposures = self.store.erase_events_before(cutoff)
        if exposures:
            counts["events"] = counts.get("events", 0) + exposures
        if sessions or exposures:
            self._finish(actor, f"sessions idle for {older_than_days:g} days", counts,
                         action="purge")
        return counts

    def purge_drafts(self, older_than_days: float, *, actor: str = "retention") -> int:
        """Erase the desk drafts written more than ``older_than_days`` days ago."""
        cutoff = _days_ago(older_than_days,
                           "Set TAILOR_DRAFT_RETENTION_DAYS to a positive number.")
        erased = self.store.erase_drafts_before(cutoff)
        if erased:
            self._finish(actor, f"drafts older than {older_than_days:g} days",
                         {"drafts": erased}, action="purge")
        return erased

    def forget_empty_sessions(self, idle_hours: float = 1.0) -> int:
        """Sessions nobody wrote in (page loads, API clients), idle for ``idle_hours``."""
        cutoff = (datetime.now(UTC) - timedelta(hours=idle_hours)).isoformat(
            timespec="milliseconds")
        sessions = self.store.empty_sessions(cutoff)
        if sessions:
            self._erase_sessions(sessions)
            self.store.scrub()
        return len(sessions)

    def _erase_customer_rest(self, customer_id: str) -> dict[str, int]:
        counts = self._erase_sessions(self.store.sessions_of_customer(customer_id))
        counts["drafts"] = self.store.erase_drafts_of(customer_id)
        # events under the customer's id outside their sessions (simulated traffic)
        counts["events"] = counts.get("events", 0) + self.store.erase_events_of(customer_id)
        return counts

    def _erase_sessions(self, session_ids: list[str]) -> dict[str, int]:
        writer = self.parts.profile_writer()
        writer.flush(timeout=30)  # a profile still queued must not come back after
        total: dict[str, int] = {"sessions": 0}
        for sid in session_ids:
            counts = self.store.erase_session(sid)
            self.store.clear_attempts(session_key(sid))
            total["sessions"] += counts.pop("session", 0)
            total = _add(total, counts)
        try:
            index = self.parts.profile_index()
            total["vector_profiles"] = index.forget_sessions(session_ids)
        except Exception as exc:  # noqa: BLE001 - SQLite is erased; say what is left
            log.error("could not erase %d profiles from Chroma: %s", len(session_ids), exc)
            total["vector_profiles_failed"] = len(session_ids)
        return total

    def _finish(self, actor: str, subject: str, counts: dict[str, int], *,
                action: str = "erase") -> None:
        if not self.store.scrub():
            log.warning("the write-ahead log stayed busy after an erase; it is emptied at "
                        "the next checkpoint")
        self.store.audit_privacy(actor=actor, action=action, subject=subject, details=counts)

    def _audit(self, actor: str, action: str, subject: str, data: dict[str, Any]) -> None:
        kinds = {k: len(v) for k, v in data.items() if isinstance(v, list)}
        self.store.audit_privacy(actor=actor, action=action, subject=subject, details=kinds)


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}


def _days_ago(days: float, hint: str) -> str:
    """The ISO time ``days`` days before now (a retention cutoff); more than 0 days."""
    if days <= 0:
        raise InputError("The age must be more than 0 days.", hint)
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds")
