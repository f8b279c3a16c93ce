"""Profiles: what we know about a person, as text for embedding plus filterable metadata.

Two collections in Chroma (through ``profile_store.VectorStore``):

- ``profiles``: people in the chat, one record per session, upserted on every change of
  their answers. The document is their stated needs and interests in words; metadata holds
  segment, region, buyer type, budget band and the linked customer id. The structured part
  (facts with sources, behaviour vector) is kept beside it in SQLite (``store.profiles``).
- ``customer_profiles``: every customer of the order data, described the same way from what
  their orders show (the answers they would give, and the items they buy most), so a new
  person can be matched to similar real customers ("people like you bought ...").
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from assistant.infra.vectors import VectorStore
from assistant.orders.catalog import clean_description
from assistant.questionnaire.parsing import describe_answers
from assistant.questionnaire.spec import QuestionnaireSpec
from assistant.segments.answers import INTEREST_PREFIX, true_answers

log = logging.getLogger(__name__)

SESSIONS = "profiles"
CUSTOMERS = "customer_profiles"
# the facts that describe needs and interests (what the embedding is about)
DESCRIBING = ("buyer_type", "interests", "occasion", "recipient", "business_kind", "budget",
              "spend_per_order", "region", "anything_else")
META_FIELDS = ("buyer_type", "region")
TOP_ITEMS = 5


def budget_band(value: Any) -> str:
    """"under £20" | "£20-£50" | "£50-£150" | "£150+" | "" for a budget answer."""
    if isinstance(value, dict):
        value = (float(value.get("min", 0)) + float(value.get("max", 0))) / 2
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return ""
    for limit, band in ((20, "under £20"), (50, "£20-£50"), (150, "£50-£150")):
        if amount < limit:
            return band
    return "£150+"


def describe(spec: QuestionnaireSpec, answers: dict[str, Any],
             liked: Sequence[str] = ()) -> str:
    """Needs and interests in words: "Shopping: for myself or as gifts. Interests: ..."."""
    parts = [describe_answers(spec, answers, DESCRIBING)] if answers else []
    parts = [p for p in parts if p]
    if liked:
        parts.append("Likes: " + ", ".join(liked) + ".")
    return " ".join(parts)


def metadata(answers: dict[str, Any], *, segment: str | None,
             customer_id: str | None) -> dict[str, str | int]:
    """Filterable fields (Chroma metadata values must be scalars)."""
    meta: dict[str, str | int] = {f: str(answers.get(f, "")) for f in META_FIELDS}
    meta["budget_band"] = budget_band(answers.get("budget"))
    meta["segment"] = segment or ""
    meta["customer_id"] = customer_id or ""
    meta["facts"] = len(answers)
    return meta


class ProfileIndex:
    """Profiles of chat sessions and of known customers, in Chroma."""

    def __init__(self, store: VectorStore, spec: QuestionnaireSpec) -> None:
        self.store = store
        self.spec = spec

    def session_record(self, answers: dict[str, Any], *, segment: str | None,
                       customer_id: str | None, liked: Sequence[str] = ()
                       ) -> tuple[str, dict[str, str | int]]:
        """A session's profile as Chroma stores it: (document, metadata)."""
        document = describe(self.spec, answers, liked) or "No answers yet."
        return document, metadata(answers, segment=segment, customer_id=customer_id)

    def upsert_session(self, session_id: str, answers: dict[str, Any], *,
                       segment: str | None, customer_id: str | None,
                       liked: Sequence[str] = ()) -> str:
        """Embed and store a session's profile now; returns its document."""
        document, meta = self.session_record(answers, segment=segment,
                                             customer_id=customer_id, liked=liked)
        self.store.upsert(SESSIONS, [session_id], [document], [meta])
        return document

    def forget_sessions(self, session_ids: list[str]) -> int:
        """Remove sessions' profiles (and their text from the disk: ``VectorStore.forget``)."""
        return self.store.forget(SESSIONS, list(session_ids))

    def upsert_sessions(self, records: dict[str, tuple[str, dict[str, Any]]]) -> int:
        """Several sessions' (document, metadata) at once: one embedding batch."""
        ids = list(records)
        return self.store.upsert(SESSIONS, ids, [records[i][0] for i in ids],
                                 [records[i][1] for i in ids])


    def similar_customers(self, document: str, k: int = 20,
                          where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """Customers whose profile is nearest to ``document``: (customer id, similarity)."""
        if not self.customers_indexed():
            return []
        hits = self.store.query(CUSTOMERS, document, k=k, where=where)
        return [(h["id"], 1.0 - float(h["distance"])) for h in hits]

    def customers_indexed(self) -> int:
        return self.store.count(CUSTOMERS)

    def index_customers(self, customers: pd.DataFrame, orders: pd.DataFrame | None = None,
                        progress: Callable[[int, int], None] | None = None) -> int:
        """(Re)index every customer of the order data; returns how many."""
        ids, docs, metas = customer_documents(self.spec, customers, orders)
        self.store.drop(CUSTOMERS)
        step = 1000
        for start in range(0, len(ids), step):
            end = start + step
            self.store.upsert(CUSTOMERS, ids[start:end], docs[start:end], metas[start:end])
            if progress:
                progress(min(end, len(ids)), len(ids))
        return len(ids)


class ProfileWriter:
    """Session profiles go to Chroma in the background, in batches, so a chat turn never
    waits for an embedding: ``submit`` replaces a session's pending profile (only its latest
    is written), a daemon thread writes whatever is pending in one upsert, ``flush`` waits
    until everything submitted so far is written. A failed write is logged, never raised
    into the chat (the structured profile is in SQLite already)."""

    def __init__(self, index: ProfileIndex) -> None:
        self.index = index
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self._busy = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.written = 0  # profiles written (a submitted one replaced while pending is not)

    def submit(self, session_id: str, document: str, meta: dict[str, Any]) -> None:
        with self._cond:
            self._pending[session_id] = (document, meta)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="tailor-profile-writer")
                self._thread.start()
                atexit.register(self.flush)
            self._cond.notify_all()

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is pending or being written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
                batch, self._pending, self._busy = self._pending, {}, True
            try:
                self.written += self.index.upsert_sessions(batch)
            except Exception:  # noqa: BLE001 - a background writer must keep running
                log.exception("could not write %d session profiles to Chroma", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def customer_answers(customers: pd.DataFrame) -> list[dict[str, Any]]:
    """The questionnaire answers each customer's orders imply (no noise)."""
    derived = true_answers(customers)
    interest_cols = [c for c in derived.columns if c.startswith(INTEREST_PREFIX)]
    out = []
    for _, row in derived.iterrows():
        answers = {q: row[q] for q in ("buyer_type", "region", "spend_per_order")}
        answers["interests"] = [c.removeprefix(INTEREST_PREFIX) for c in interest_cols
                                if row[c] > 0]
        out.append(answers)
    return out


def top_items(orders: pd.DataFrame, n: int = TOP_ITEMS) -> pd.Series:
    """customer -> their n most-bought item descriptions (by quantity)."""
    lines = orders.assign(description=clean_description(orders["description"]))
    qty = (lines.groupby(["customer", "description"], observed=True)["quantity"].sum()
           .reset_index().sort_values(["customer", "quantity"], ascending=[True, False]))
    return qty.groupby("customer", observed=True)["description"].apply(
        lambda s: [str(d).lower() for d in s.head(n)])


def customer_documents(spec: QuestionnaireSpec, customers: pd.DataFrame,
                       orders: pd.DataFrame | None) -> tuple[list[str], list[str], list[dict]]:
    answers = customer_answers(customers)
    tops = top_items(orders) if orders is not None else pd.Series(dtype=object)
    segments = customers.get("rfm_segment")
    ids, docs, metas = [], [], []
    for cid, ans in zip(customers.index.astype(str), answers, strict=True):
        liked: Iterable[str] = tops.get(cid, []) if len(tops) else []
        ids.append(cid)
        docs.append(describe(spec, ans, list(liked)))
        seg = str(segments.loc[cid]) if segments is not None else None
        metas.append(metadata(ans, segment=seg, customer_id=cid))
    return ids, docs, metas
