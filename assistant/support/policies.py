"""Support policies (``data/policies.yaml``): what a draft may offer a customer, per
segment (``Policies.for_segment``), with the promises it may make (a discount up to a
limit, a refund, ...)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from assistant.core.config import REPO_ROOT
from assistant.core.errors import ConfigError
from assistant.core.yamlfile import line_of, read_config_file
from assistant.segments.model import SEGMENTS

DEFAULT_POLICIES = REPO_ROOT / "data" / "policies.yaml"
PROMISE_KINDS = ("refund", "discount", "free_shipping", "voucher", "compensation",
                 "replacement", "expedite")
PromiseKind = Literal["refund", "discount", "free_shipping", "voucher", "compensation",
                      "replacement", "expedite"]


class PolicyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr = Field(min_length=1, max_length=800)
    reply: StrictStr = Field("", max_length=300)  # for the customer, in composed drafts
    promises: dict[PromiseKind, float | None] = Field(default_factory=dict)

    @field_validator("promises", mode="before")
    @classmethod
    def _none_is_empty(cls, v: object) -> object:
        return {} if v is None else v

    @field_validator("promises")
    @classmethod
    def _limits(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        for kind, limit in v.items():
            if limit is None:
                continue
            if kind != "discount":
                raise ValueError(f"'{kind}' takes no value (only discount has a limit in %); "
                                 f"write `{kind}:` with nothing after it")
            if not 0 < limit <= 100:
                raise ValueError(f"the discount limit must be a percentage above 0 and at "
                                 f"most 100, not {limit:g}")
        return v


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: PolicyEntry
    segments: dict[str, PolicyEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    """What a draft for one customer may offer."""

    segment: str  # the segment it applies to, or "default"
    text: str
    promises: dict[str, float | None]
    reply: str = ""  # one sentence for the customer (composed drafts)

    def as_dict(self) -> dict[str, Any]:
        return {"segment": self.segment, "text": self.text, "promises": dict(self.promises)}


@dataclass(frozen=True)
class Policies:
    default: Policy
    segments: dict[str, Policy]
    source: str = ""

    def for_segment(self, segment: str | None) -> Policy:
        return self.segments.get(segment or "", self.default)


def load_policies(path: Path | str | None = None) -> Policies:
    """Read and check ``data/policies.yaml``; each problem is a ConfigError naming file:line."""
    path = Path(path) if path is not None else DEFAULT_POLICIES
    hint = "The layout is documented at the top of data/policies.yaml."
    data, root = read_config_file(path, what="Support policies",
                                  default="data/policies.yaml")
    if not isinstance(data, dict):
        raise ConfigError(f"Support policies {path} must be a mapping with default: and "
                          "segments:.", hint)
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if p != "[key]")
        line = line_of(root, loc)
        where = f"{path}:{line}" if line else str(path)
        name = ".".join(str(p) for p in loc) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "literal_error":
            msg = f"unknown promise; use one of {', '.join(PROMISE_KINDS)}"
        raise ConfigError(f"Support policies {where}: {name}: {msg}.", hint) from None
    for name in spec.segments:
        if name not in SEGMENTS:
            line = _key_line(root, "segments", name)
            raise ConfigError(
                f"Support policies {path}:{line}: unknown segment '{name}'.",
                "Segments are named: " + ", ".join(SEGMENTS) + ".")
    segments = {name: Policy(name, _squash(e.text), dict(e.promises), _squash(e.reply))
                for name, e in spec.segments.items()}
    default = Policy("default", _squash(spec.default.text), dict(spec.default.promises),
                     _squash(spec.default.reply))
    return Policies(default, segments, str(path))


def _key_line(root: Any, section: str, key: str) -> int | None:
    """1-based line of ``key`` inside the top-level mapping ``section``."""
    for k, v in getattr(root, "value", []):
        if getattr(k, "value", None) == section:
            for kk, _ in getattr(v, "value", []):
                if getattr(kk, "value", None) == key:
                    return kk.start_mark.line + 1
    return None


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
