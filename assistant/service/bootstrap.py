"""What the first visitors need, built once in the background after start: segments from
the shop's orders, the recommender with its product and profile indexes, the help base and
the intent classifier. Each step's outcome is kept in ``status`` for the Segments tab.

Several app processes share one store and one artefacts directory: a lease in the store
(``first-run builds``) lets one of them build while the others wait, then find the
results there ("not needed"). A process that dies holding it frees it when it expires."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from assistant.core.errors import AssistantError, unexpected_error
from assistant.recommend.personal import CATALOG
from assistant.service.parts import Parts
from assistant.service.staff import Staff
from assistant.support.helpbase import build_helpbase
from assistant.support.intents import train_intents
from assistant.support.routing import train_routes

log = logging.getLogger(__name__)

LEASE = "first-run builds"
#: longer than the slowest first run measured (about 2 minutes on 2 cores), renewed
#: before every step
LEASE_SECONDS = 15 * 60
STEPS = ("segments", "recommendations", "help base")


class Bootstrap:
    def __init__(self, parts: Parts, staff: Staff) -> None:
        self.parts = parts
        self.staff = staff
        #: step -> "running", "ready", "not needed" or "failed: <message> <hint>"
        self.status: dict[str, str] = {}

    def first_run_builds(self, *, poll: float = 2.0) -> dict[str, str]:
        """Meant for a background thread: a failing step is logged (with its traceback when
        unexpected) and recorded in ``status``; the next steps still run, nothing is raised,
        the app keeps serving. While another process holds the build lease, wait."""
        holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        while (owner := self._take_lease(holder)) != holder:
            for step in STEPS:
                self.status[step] = f"waiting: another app process ({owner}) builds it"
            time.sleep(poll)
        try:
            return self._builds(holder)
        finally:
            self._release_lease(holder)

    def _take_lease(self, holder: str) -> str:
        """The lease's holder after trying to take (or renew) it; when the store cannot be
        asked, this process goes ahead (the builds themselves skip what exists)."""
        try:
            return self.parts.store.take_lease(LEASE, holder, LEASE_SECONDS)
        except AssistantError as err:
            log.warning("build lease not taken (%s); building anyway", err.message)
            return holder

    def _release_lease(self, holder: str) -> None:
        try:
            self.parts.store.release_lease(LEASE, holder)
        except AssistantError as err:  # it expires by itself
            log.warning("build lease not released (%s)", err.message)

    def _builds(self, holder: str) -> dict[str, str]:

        def segments() -> bool:
            summary = self.ensure_segments()
            if summary:
                log.info("segments built: %s customers, %s", summary["customers"],
                         summary["segments"])
            return bool(summary)

        def recommendations() -> bool:
            self.parts.recommender()
            log.info("recommender ready; %s products indexed for search",
                     self.ensure_catalog_index() or "all")
            n = self.ensure_customer_profiles()
            if n:
                log.info("indexed %s customer profiles in Chroma", n)
            return True

        def help_base() -> bool:
            built = self.ensure_help()
            if built:
                log.info("help base and intent classifier ready: %s", sorted(built))
            return bool(built)

        for step, build in zip(STEPS, (segments, recommendations, help_base), strict=True):
            self._take_lease(holder)  # renew
            self.run_step(step, build)
        return dict(self.status)

    def run_step(self, step: str, build: Callable[[], bool]) -> None:
        """Run one build; its outcome goes to ``status[step]``. Never raises (an exception
        here would end the thread unseen)."""
        self.status[step] = "running"
        try:
            did = build()
        except AssistantError as err:
            log.warning("%s not built: %s (%s)", step, err.message, err.hint)
            self.status[step] = f"failed: {err.message} {err.hint}".strip()
            return
        except Exception as exc:  # noqa: BLE001 - the edge of a background thread
            err = unexpected_error(exc, f"building the {step} in the background", log=log)
            self.status[step] = f"failed: {err.message} {err.hint}"
            return
        self.status[step] = "ready" if did else "not needed"

    def ensure_segments(self) -> dict[str, Any] | None:
        """Segments when none exist, from the orders everything else uses (``TAILOR_ORDERS``,
        default the shipped real data)."""
        orders = self.parts.settings.orders_path
        if self.parts.has_segments() or not orders.exists():
            return None
        log.info("building segments from %s (first run)", orders)
        return self.staff.rebuild_segments(orders)

    def ensure_help(self) -> dict[str, Any]:
        """The help base in Chroma, the intent classifier and the chat's router, when
        missing."""
        out: dict[str, Any] = {}
        help_base = self.parts.help_base()
        if not help_base.count():
            out["help"] = build_helpbase(help_base)
        try:
            self.parts.intent_classifier()
        except AssistantError:
            out["intents"] = train_intents(self.parts.settings.artifacts_dir)
        if self.parts.router() is None:
            out["routes"] = train_routes(self.parts.settings.artifacts_dir)
        return out

    def ensure_catalog_index(self) -> int:
        """The product descriptions in Chroma (content retrieval), once."""
        if self.parts.vectors.count(CATALOG):
            return 0
        return self.parts.recommender().index_catalog(self.parts.vectors)

    def ensure_customer_profiles(self) -> int:
        """Index the customers' profiles once (0 when already there or no segments)."""
        if not self.parts.has_segments() or self.parts.profile_index().customers_indexed():
            return 0
        return self.index_customer_profiles()

    def index_customer_profiles(self) -> int:
        """(Re)index the profiles of the order data's customers in Chroma."""
        segments = self.parts.segment_model()
        return self.parts.profile_index().index_customers(segments.customers,
                                                          self.parts.orders())
