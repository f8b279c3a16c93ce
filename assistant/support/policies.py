"""Support policies (``data/policies.yaml``): what a draft may offer a customer, per
segment (``Policies.for_segment``), with the promises it may make (a discount up to a
limit, a refund, ...). ``variants:`` holds alternative policies for one segment that a
policy experiment can serve to part of that segment's customers (``Policies.variant``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from assistant.core.config import REPO_ROOT
from assistant.core.errors import ConfigError, InputError
from assistant.core.yamlfile import line_of, read_config_file
from assistant.segments.model import SEGMENTS

DEFAULT_POLICIES = REPO_ROOT / "data" / "policies.yaml"
PROMISE_KINDS = ("refund", "discount", "free_shipping", "voucher", "compensation",
                 "replacement", "expedite")
_VARIANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
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


class VariantEntry(PolicyEntry):
    segment: StrictStr  # the segment whose policy this variant can replace


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: PolicyEntry
    segments: dict[str, PolicyEntry] = Field(default_factory=dict)
    variants: dict[str, VariantEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    """What a draft for one customer may offer."""

    segment: str  # the segment it applies to, or "default"
    text: str
    promises: dict[str, float | None]
    reply: str = ""  # one sentence for the customer (composed drafts)
    variant: str | None = None  # "<experiment>/<arm>" when a policy experiment chose it

    def as_dict(self) -> dict[str, Any]:
        out = {"segment": self.segment, "text": self.text, "promises": dict(self.promises)}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Policies:
    default: Policy
    segments: dict[str, Policy]
    source: str = ""
    variants: dict[str, Policy] = field(default_factory=dict)  # name -> its segment's policy

    def for_segment(self, segment: str | None) -> Policy:
        return self.segments.get(segment or "", self.default)

    def variant(self, name: str) -> Policy:
        """The variant called ``name`` (``variants:`` in the file)."""
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "none yet"
            raise InputError(f"There is no policy variant '{name}' (known: {known}).",
                             "Add it under variants: in data/policies.yaml (the layout is "
                             "at the top of that file).")
        return self.variants[name]


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
    named = [("segments", name, name) for name in spec.segments]
    named += [("variants", name, e.segment) for name, e in spec.variants.items()]
    for section, name, segment in named:
        if segment not in SEGMENTS:
            line = _key_line(root, section, name)
            what = f"unknown segment '{segment}'" + (
                f" in variant '{name}'" if section == "variants" else "")
            raise ConfigError(f"Support policies {path}:{line}: {what}.",
                              "Segments are named: " + ", ".join(SEGMENTS) + ".")
    bad = [n for n in spec.variants if not _VARIANT.match(n)]
    if bad:
        raise ConfigError(f"Support policies {path}:{_key_line(root, 'variants', bad[0])}: "
                          f"'{bad[0]}' is not a variant name.",
                          "Use 1-40 lower-case letters, digits, - or _, e.g. at-risk-10.")

    def policy(segment: str, e: PolicyEntry) -> Policy:
        return Policy(segment, _squash(e.text), dict(e.promises), _squash(e.reply))

    return Policies(policy("default", spec.default),
                    {name: policy(name, e) for name, e in spec.segments.items()}, str(path),
                    {name: policy(e.segment, e) for name, e in spec.variants.items()})


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
