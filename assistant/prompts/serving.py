"""The production view the running app reads, and the staged rollout.

- **The running app** reads templates through ``ProductionTemplates``: the ``production``
  versions, re-checked every few seconds, falling back to the last good version (or the
  shipped file) when the store is unreadable or a body fails validation.
- **Staged rollout**: ``route(name, session_key)`` sends a share of sessions (or one
  segment) to the version labelled ``staging``; a session always gets the same answer.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from assistant.core.errors import AssistantError, TemplateError
from assistant.infra.store import Store
from assistant.prompts.checks import analyse
from assistant.prompts.templates import PromptTemplate, TemplateRegistry
from assistant.prompts.versions import PRODUCTION, STAGING, PromptVersions

log = logging.getLogger(__name__)

ROUTED_LABELS = (PRODUCTION, STAGING)


@dataclass(frozen=True)
class _Served:
    version: int
    sha: str
    template: PromptTemplate
    share: float = 1.0
    segment: str | None = None


def _bucket(name: str, session_key: str) -> float:
    """A stable number in [0, 1) per (template, session)."""
    digest = hashlib.sha256(f"{name}\0{session_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ProductionTemplates:
    """Drop-in for ``TemplateRegistry``: ``get(name)`` serves the version labelled
    ``production`` in SQLite, re-reading the labels at most every ``refresh_seconds`` (on
    the calling thread, with a short busy timeout; concurrent callers never wait). If the
    store is unreadable, or the production body fails validation, it keeps serving the last
    good version it had (the shipped file at start) and logs a warning saying so.
    ``route(name, session_key)`` sends a share of sessions (or one segment) to the version
    labelled ``staging``."""

    def __init__(self, versions: PromptVersions, *, refresh_seconds: float = 2.0,
                 read_timeout: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 warn_every: float = 60.0) -> None:
        self.versions = versions
        self.directory = versions.directory
        self.refresh_seconds = refresh_seconds
        self.read_timeout = read_timeout
        self.warn_every = warn_every
        self._clock = clock
        self._lock = threading.Lock()
        self._registry = TemplateRegistry(versions.directory)  # fail fast, fallback
        self._files = self._registry.templates
        self._serving: dict[tuple[str, str], _Served] = {}
        self._bad: set[tuple[str, int, str]] = set()
        self._checked = float("-inf")
        self._failing_since: float | None = None
        self._warned_at = float("-inf")
        with self._lock:
            self._refresh()

    @classmethod
    def from_settings(cls, settings: Any, store: Store | None = None, *,
                      refresh_seconds: float = 2.0) -> ProductionTemplates:
        """Seed the store from ``settings.prompts_dir`` (idempotent) and serve production."""
        versions = PromptVersions(store or Store.from_settings(settings), settings.prompts_dir)
        versions.seed()
        return cls(versions, refresh_seconds=refresh_seconds)

    # -- TemplateRegistry interface ----------------------------------------------------
    def get(self, name: str) -> PromptTemplate:
        self._maybe_refresh()
        served = self._serving.get((PRODUCTION, name))
        if served is not None:
            return served.template
        if name in self._files:
            return self._files[name]
        raise TemplateError(f"No template named '{name}' (prompt store or {self.directory}).",
                            f"Available: {', '.join(sorted(self.templates)) or 'none'}.")

    @property
    def templates(self) -> dict[str, PromptTemplate]:
        out = dict(self._files)
        out.update({name: s.template for (label, name), s in self._serving.items()
                    if label == PRODUCTION})
        return out

    def __iter__(self) -> Iterator[PromptTemplate]:
        self._maybe_refresh()
        return iter(self.templates.values())

    # -- staged rollout ----------------------------------------------------------------
    def route(self, name: str, session_key: str, *, segment: str | None = None
              ) -> PromptTemplate:
        """The staging version for the sessions its share (and segment) selects, else
        production. Deterministic: a session always gets the same answer."""
        production = self.get(name)
        staged = self._serving.get((STAGING, name))
        if staged is None or staged.share <= 0 or staged.template.version == production.version:
            return production
        if staged.segment is not None and staged.segment != segment:
            return production
        return staged.template if _bucket(name, session_key) < staged.share else production

    def serving(self) -> dict[str, dict[str, Any]]:
        """What is served now: {name: {label: {version, share, segment}}} (files: "file")."""
        out = self._registry.serving()
        for (label, name), s in self._serving.items():
            out.setdefault(name, {})[label] = {"version": s.template.version,
                                               "share": s.share, "segment": s.segment}
        return out

    # -- refreshing ------------------------------------------------------------------------
    def _maybe_refresh(self) -> None:
        if self._clock() - self._checked < self.refresh_seconds:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is refreshing: serve what we have
        try:
            if self._clock() - self._checked >= self.refresh_seconds:
                self._refresh()
        finally:
            self._lock.release()

    def refresh(self) -> bool:
        """Re-read the labels now; False when the store could not be read."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        self._checked = self._clock()
        try:
            rows = self.versions.store.template_labels(labels=ROUTED_LABELS,
                                                       timeout=self.read_timeout)
            serving = dict(self._serving)
            seen = set()
            for row in rows:
                key = (row["label"], row["name"])
                seen.add(key)
                served = self._load(row, serving.get(key))
                if served is not None:
                    serving[key] = served
        except (OSError, AssistantError) as exc:
            self._store_failed(exc)
            return False
        for key in list(serving):
            if key not in seen and key[0] != PRODUCTION:
                del serving[key]  # staging removed: stop routing to it
        self._serving = serving
        if self._failing_since is not None:
            log.warning("prompt store %s is readable again; serving: %s",
                        self.versions.store.where, self._describe())
            self._failing_since = None
        return True

    def _load(self, row: Mapping[str, Any], current: _Served | None) -> _Served | None:
        name, label, number = row["name"], row["label"], int(row["version"])
        if current is not None and (current.version, current.sha) == (number, row["sha"]):
            if (current.share, current.segment) == (row["share"], row["segment"]):
                return None
            return replace(current, share=row["share"], segment=row["segment"])
        if (name, number, row["sha"] or "") in self._bad:
            return None
        stored = self.versions.store.template_version(name, number, timeout=self.read_timeout)
        body = stored["body"] if stored else ""
        tpl, problems = analyse(name, body, version=f"v{number}",
                                contract=self.versions.contract(name))
        if tpl is None:
            self._bad.add((name, number, row["sha"] or ""))
            keep = current.template.version if current else (
                self._files[name].version if name in self._files else "nothing")
            first = next(p for p in problems if p.level == "error")
            log.warning("template %s: %s version v%s fails validation (%s: %s); still "
                        "serving %s", name, label, number, first.where(), first.message, keep)
            return None
        if current is not None or label == PRODUCTION:
            log.info("template %s: serving %s v%s%s", name, label, number,
                     f" (was {current.template.version})" if current else "")
        return _Served(number, row["sha"], tpl, row["share"], row["segment"])

    def _store_failed(self, exc: BaseException) -> None:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._warned_at >= self.warn_every or self._warned_at < self._failing_since:
            self._warned_at = now
            log.warning("prompt store %s is unreadable (%s); serving the last good template "
                        "versions: %s", self.versions.store.where,
                        getattr(exc, "message", None) or exc, self._describe())

    def _describe(self) -> str:
        served = self.templates
        return ", ".join(f"{name} {served[name].version}" for name in sorted(served))
