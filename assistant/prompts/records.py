"""The prompt studio's records: an immutable ``Version``, a ``Label``, a ``LabelEvent`` of
the audit log, a ``TemplateSummary``; the errors a save or a promotion raises
(``ConflictError``, ``PromotionBlockedError``); and a body as text: its YAML form
(``dump_body``), its hash (``body_sha``) and the diff of two bodies (``unified_diff``).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from assistant.core.errors import InputError
from assistant.prompts.cases import TestRun
from assistant.prompts.checks import FieldError, Problem
from assistant.prompts.templates import PromptTemplate


class ConflictError(InputError):
    """A save based on a version that is no longer the latest (nothing was saved)."""

    code = "template-conflict"

    def __init__(self, name: str, base_version: int | None, latest: Version, diff: str) -> None:
        super().__init__(
            f"Template '{name}' changed since version {base_version or 0}: version "
            f"{latest.version} was saved by {latest.author} at {latest.created_at} "
            f"(\"{latest.note}\"). Nothing was saved.",
            f"Review the diff against version {latest.version}, merge your change into it "
            f"and save again with base version {latest.version}.")
        self.name = name
        self.base_version = base_version
        self.latest_version = latest.version
        self.latest = latest
        self.diff = diff


class PromotionBlockedError(InputError):
    """Promotion to production refused because the version's tests do not pass."""

    code = "promotion-blocked"

    def __init__(self, message: str, hint: str, run: TestRun | None = None) -> None:
        super().__init__(message, hint)
        self.run = run


@dataclass(frozen=True)
class Version:
    """One immutable version. ``template`` is the validated template (its ``version`` is
    ``"v3"``), or None when the stored body fails validation (``problems`` says why)."""

    name: str
    version: int
    body: str
    sha: str
    author: str
    note: str
    created_at: str
    base_version: int | None
    labels: tuple[str, ...]
    template: PromptTemplate | None
    problems: tuple[Problem, ...] = ()

    @property
    def valid(self) -> bool:
        return self.template is not None

    def as_dict(self, *, body: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "version": self.version, "sha": self.sha,
            "author": self.author, "note": self.note, "created_at": self.created_at,
            "base_version": self.base_version, "labels": list(self.labels),
            "valid": self.valid, "problems": [asdict(p) for p in self.problems],
        }
        if body:
            out["body"] = self.body
        if self.template is not None:
            out["description"] = self.template.description
            out["variables"] = {k: v.model_dump() for k, v in self.template.variables.items()}
            out["parameters"] = self.template.parameters.model_dump()
        return out


@dataclass(frozen=True)
class Label:
    name: str
    label: str
    version: int
    share: float
    segment: str | None
    updated_at: str


@dataclass(frozen=True)
class LabelEvent:
    """One row of the audit log. ``kind``: seed | set | rollback | remove | sync;
    ``to_version`` None = the label was removed."""

    id: int
    name: str
    label: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    kind: str
    override: bool
    share: float | None
    segment: str | None
    created_at: str

    def describe(self) -> str:
        src = f"v{self.from_version}" if self.from_version else "(none)"
        dst = f"v{self.to_version}" if self.to_version else "(removed)"
        share = (f" {self.share:.0%}" if self.share is not None and self.share < 1 else "")
        seg = f" segment {self.segment}" if self.segment else ""
        text = (f"{self.created_at}  {self.label}: {src} -> {dst}{share}{seg}  "
                f"{self.kind} by {self.actor}")
        if self.override:
            text += "  OVERRIDE"
        return text + (f"  ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class TemplateSummary:
    name: str
    description: str
    variables: dict[str, dict[str, Any]]
    labels: dict[str, int]
    latest_version: int
    last_change: str
    last_author: str


def body_sha(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks (readable bodies from structured edits)."""


def _str_block(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_block)


def dump_body(data: Mapping[str, Any]) -> str:
    """A template mapping as YAML text (the form bodies are stored in)."""
    return yaml.dump(dict(data), Dumper=_BlockDumper, sort_keys=False, allow_unicode=True,
                     width=100)


def _as_text(body: str | Mapping[str, Any]) -> str:
    if isinstance(body, Mapping):
        return dump_body(body)
    if not isinstance(body, str):
        raise FieldError("body", "The template body must be YAML (or JSON) text.")
    return body


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=old_name, tofile=new_name)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
