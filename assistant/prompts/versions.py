"""Prompt studio, domain half: immutable template versions in SQLite, labels with an audit
log, optimistic saves, per-template tests, and the production view the running app reads.

Rules
-----
- **Seeding.** The files in ``prompts/`` seed version 1 of each template (author ``files``),
  labelled ``production``; ``prompts/tests/<name>.yaml`` seeds its test cases. ``seed()`` is
  idempotent: it only adds templates (and tests) that have nothing stored yet, so a newly
  shipped template appears on the next start. A *changed* shipped file is never picked up
  by itself (ops' versions win): it becomes a new version, authored ``files``, only through
  an explicit ``sync_files()`` (``assistant prompts sync``), which compares each file with
  the last version imported from files (never with ops' edits). Promoting that version is
  a separate step, or ``sync_files(promote=True)``.
- **Versions are immutable**: every save is a new row (``version`` = 1, 2, ... per name);
  rows are never updated or deleted (SQLite triggers refuse it). A save names the version
  it was based on; if another save landed in between, it raises ``ConflictError`` with a
  unified diff and saves nothing (``BEGIN IMMEDIATE`` makes check-and-insert atomic).
- **Validation** (``validate``): size (64 KB), YAML, the template schema (parameters within
  their ranges), mustache syntax, used vs declared variables, and the app's *contract*:
  the variables the shipped file declares are what the code passes, so a new version must
  keep each of them (same type) and may not add a required variable without a default; the
  ``texts`` keys the shipped file has are read by the code, so each must stay.
- **Labels** point at versions; every move is an audit event (actor, reason, override).
  A version that fails validation cannot be labelled. Promotion to ``production`` needs a
  passing test run of that version with the template's current tests, unless overridden
  with a reason. ``rollback`` undoes the last move of ``production`` (repeatable).
- **The running app** reads templates through ``ProductionTemplates``: the ``production``
  versions, re-checked every few seconds, falling back to the last good version (or the
  shipped file) when the store is unreadable or a body fails validation.
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from langchain_core.prompts.string import mustache_template_vars
from langchain_core.utils.mustache import ChevronError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from assistant.core.errors import AssistantError, InputError, TemplateError
from assistant.core.schemas import Message
from assistant.core.yamlfile import line_of
from assistant.infra.llm import LLMClient
from assistant.infra.store import Store
from assistant.prompts.grounding import Candidate, Facts
from assistant.prompts.grounding import check as grounding_check
from assistant.prompts.leaks import LEAK_NGRAM, leaks
from assistant.prompts.templates import PromptTemplate, TemplateRegistry, _top_vars, load_template

log = logging.getLogger(__name__)

PRODUCTION = "production"
STAGING = "staging"
FILES_AUTHOR = "files"
MAX_BODY_BYTES = 64 * 1024
TEST_SESSION = "prompt-tests"  # llm_calls.session_id of test runs (left out of metrics)
ROUTED_LABELS = (PRODUCTION, STAGING)
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = ("version", "source")  # set by the studio, never part of a body


# =========================================================================== errors
class FieldError(InputError):
    """Bad input at one field (``field``: e.g. ``note``, ``version``, ``cases[0].vars``)."""

    def __init__(self, field: str, message: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.field = field


@dataclass(frozen=True)
class Problem:
    """One validation finding at a field of the template (``messages.1.content``)."""

    field: str
    message: str
    line: int | None = None
    level: Literal["error", "warning"] = "error"
    hint: str = ""

    def where(self) -> str:
        return self.field + (f" (line {self.line})" if self.line else "")


class TemplateValidationError(TemplateError):
    """A body that fails validation; ``problems`` has every error, ``field`` the first."""

    def __init__(self, name: str, problems: Sequence[Problem], prefix: str = "") -> None:
        errors = [p for p in problems if p.level == "error"] or list(problems)
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        super().__init__(
            f"{prefix}Template '{name}', {first.where()}: {first.message}{more}",
            first.hint or "Fix that field; nothing was saved.")
        self.problems = list(problems)
        self.field = first.field


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


# =========================================================================== records
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


# =========================================================================== tests
ASSERTION_TYPES = ("contains", "not_contains", "regex", "max_length", "json_schema",
                   "grounding", "no_prompt_leak")
_FACT_KEYS = {"products", "catalog", "amounts", "order_ids", "dates", "promises"}


class Assertion(BaseModel):
    """One check of a reply: ``contains`` / ``not_contains`` (text), ``regex`` (pattern,
    ``re.search``), ``max_length`` (characters), ``json_schema`` (a JSON Schema, or null for
    "any JSON"), ``grounding`` (facts: products [{name, price}], amounts, order_ids, dates,
    promises; null = derived from the case's vars), ``no_prompt_leak`` (no 6 words in a row
    of the system messages, except words of the data)."""

    model_config = ConfigDict(extra="forbid")
    type: str
    value: Any = None

    @field_validator("type")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in ASSERTION_TYPES:
            raise ValueError(f"unknown assertion type '{kind}'; use one of "
                             + ", ".join(ASSERTION_TYPES))
        return kind

    @model_validator(mode="after")
    def _value_fits(self) -> Assertion:
        _check_assertion_value(self.type, self.value)
        return self

    def label(self) -> str:
        if self.value is None or self.type in ("json_schema", "grounding"):
            return self.type
        shown = f"'{self.value}'" if isinstance(self.value, str) else repr(self.value)
        return f"{self.type} {shown[:40] + '...' if len(shown) > 43 else shown}"


class TemplateTestCase(BaseModel):
    """``{"name": .., "vars": {...}, "assert": [{"type": .., "value": ..}]}``."""

    __test__: ClassVar[bool] = False
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, max_length=80)
    vars: dict[str, Any] = Field(default_factory=dict)
    assert_: list[Assertion] = Field(alias="assert", min_length=1)


@dataclass(frozen=True)
class TestResult:
    __test__: ClassVar[bool] = False
    case: str
    assertion: str
    passed: bool
    detail: str
    output: str = ""


@dataclass(frozen=True)
class TestRun:
    """A stored run of a template version's tests; ``pass_rate`` = passed rows / rows."""

    __test__: ClassVar[bool] = False
    id: int
    name: str
    version: int
    model: str
    actor: str
    created_at: str
    cases_sha: str
    pass_rate: float | None
    results: tuple[TestResult, ...]

    @property
    def passed(self) -> bool:
        return self.pass_rate == 1.0

    @property
    def cases_total(self) -> int:
        return len({r.case for r in self.results})

    @property
    def cases_passed(self) -> int:
        failed = {r.case for r in self.results if not r.passed}
        return self.cases_total - len(failed)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(passed=self.passed, cases_total=self.cases_total,
                   cases_passed=self.cases_passed)
        return out

    def table(self) -> str:
        """The results as a text table, then the pass rate."""
        rows = [("case", "assertion", "result", "detail")] + [
            (r.case, r.assertion, "pass" if r.passed else "FAIL", r.detail.replace("\n", " "))
            for r in self.results]
        widths = [min(max(len(row[i]) for row in rows), 40) for i in range(3)]
        lines = ["  ".join(c[:40].ljust(w) for c, w in zip(row[:3], widths, strict=True))
                 + "  " + row[3][:100] for row in rows]
        rate = "n/a" if self.pass_rate is None else f"{self.pass_rate:.0%}"
        lines.append(f"pass rate {rate} ({sum(r.passed for r in self.results)}/"
                     f"{len(self.results)} checks, {self.cases_passed}/{self.cases_total} "
                     f"cases) for {self.name} v{self.version} on {self.model}")
        return "\n".join(lines)


def _check_assertion_value(kind: str, value: Any) -> None:
    if kind in ("contains", "not_contains"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{kind} needs a non-empty text as value")
    elif kind == "regex":
        if not isinstance(value, str) or not value:
            raise ValueError("regex needs a pattern as value")
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regex {value!r}: {exc}") from None
    elif kind == "max_length":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("max_length needs a positive whole number of characters")
    elif kind == "json_schema":
        _check_schema(value)
    elif kind == "grounding":
        if value is not None and (not isinstance(value, dict) or set(value) - _FACT_KEYS):
            raise ValueError("grounding takes null (facts from the vars) or a mapping with "
                             "keys " + ", ".join(sorted(_FACT_KEYS)))
    elif kind == "no_prompt_leak" and value is not None:
        raise ValueError("no_prompt_leak takes no value")


def _check_schema(schema: Any) -> None:
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise ValueError("json_schema needs a JSON Schema object (or null for any JSON)")
    try:
        import jsonschema  # lazy: optional, not a declared dependency (fallback below)
    except ImportError:  # fallback: type + required keys only
        if not isinstance(schema.get("required", []), list):
            raise ValueError("json_schema: `required` must be a list") from None
        return
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}") from None


# =========================================================================== helpers
def body_sha(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def default_actor() -> str:
    """The OS user (for ``--as`` defaults)."""
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return os.environ.get("USER") or "unknown"


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


def _required(field_name: str, value: str | None, message: str, hint: str = "") -> str:
    if value is None or not str(value).strip():
        raise FieldError(field_name, message, hint)
    return str(value).strip()


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise FieldError("name", f"'{name}' is not a template name.",
                         "Lower-case letters, digits and _ ; starting with a letter.")


def _check_label(label: str) -> None:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise FieldError("label", f"'{label}' is not a label name.",
                         "Use [a-z][a-z0-9_-]* (at most 40 characters), e.g. production, "
                         "staging, canary-2.")


def _mustache_problem(loc: tuple[Any, ...], root: yaml.Node | None,
                      exc: ChevronError) -> Problem:
    return Problem(".".join(map(str, loc)), f"mustache syntax error: {exc}".replace("\n", " "),
                   line_of(root, loc),
                   hint="Close every {{#section}} with {{/section}} and every {{ with }}.")


def _undeclared(loc: tuple[Any, ...], root: yaml.Node | None, var: str) -> Problem:
    return Problem(
        ".".join(map(str, loc)), f"uses '{var}', which is not declared under variables",
        line_of(root, loc),
        hint=f"Declare '{var}' under `variables:`, or fix the name in the text (a renamed "
             "variable must be renamed in both places).")


def _template_problems(tpl: PromptTemplate, root: yaml.Node | None) -> list[Problem]:
    """Syntax and used-vs-declared checks, each at the field that is wrong."""
    problems: list[Problem] = []
    declared = set(tpl.variables)
    for i, msg in enumerate(tpl.messages):
        if msg.content is None:
            loc = ("messages", i, "placeholder")
            var = tpl.variables.get(msg.placeholder or "")
            if var is None or var.type != "messages":
                problems.append(Problem(
                    ".".join(map(str, loc)),
                    f"placeholder '{msg.placeholder}' must be declared with type: messages",
                    line_of(root, loc), hint=f"Add `{msg.placeholder}: {{type: messages}}` "
                    "under variables."))
            continue
        loc = ("messages", i, "content")
        try:
            used = mustache_template_vars(msg.content)
        except ChevronError as exc:
            problems.append(_mustache_problem(loc, root, exc))
            continue
        problems += [_undeclared(loc, root, v) for v in sorted(used - declared)]
    for key, text in tpl.texts.items():
        loc = ("texts", key)
        try:
            mustache_template_vars(text)
        except ChevronError as exc:
            problems.append(_mustache_problem(loc, root, exc))
            continue
        problems += [_undeclared(loc, root, v) for v in sorted(_top_vars(text) - declared)]
    if not problems:
        try:
            unused = declared - tpl.used_variables()
        except ChevronError:
            unused = set()
        for var in sorted(unused):
            loc = ("variables", var)
            problems.append(Problem(".".join(loc), f"'{var}' is declared but not used",
                                    line_of(root, loc), level="warning"))
    return problems


def _contract_problems(tpl: PromptTemplate, shipped: PromptTemplate,
                       root: yaml.Node | None) -> list[Problem]:
    """The app passes the shipped file's variables (keep them, add no required ones) and
    reads its ``texts`` by key (keep every key)."""
    problems: list[Problem] = []
    contract = shipped.variables
    for var, spec in contract.items():
        mine = tpl.variables.get(var)
        if mine is None:
            problems.append(Problem(
                "variables", f"'{var}' is passed by the app and must stay declared",
                line_of(root, ("variables",)),
                hint=f"Keep `{var}:` under variables (required: false if the text no longer "
                     "uses it); renaming a variable needs a code change."))
        elif mine.type != spec.type:
            loc = ("variables", var, "type")
            problems.append(Problem(".".join(loc), f"'{var}' must stay of type {spec.type}: "
                                    "the app passes that type", line_of(root, loc)))
    for var, spec in tpl.variables.items():
        if var not in contract and spec.required and spec.default is None:
            loc = ("variables", var, "required")
            problems.append(Problem(
                ".".join(loc), f"'{var}' is new and required, but the app does not pass it: "
                "every render would fail", line_of(root, ("variables", var)),
                hint="Give it a `default:` or set `required: false`."))
    for key in shipped.texts:
        if key not in tpl.texts:
            problems.append(Problem(
                "texts", f"'{key}' is used by the app and must stay under texts",
                line_of(root, ("texts",)), hint=f"Put `{key}:` back under texts."))
    return problems


def _parse_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """(data, node tree) from one parse, with libyaml when available."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    finally:
        loader.dispose()


def analyse(name: str, text: str, *, version: str = "draft",
            contract: PromptTemplate | None = None
            ) -> tuple[PromptTemplate | None, list[Problem]]:
    """Validate a body: (the template or None, every problem found, warnings included)."""
    size = len(text.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        return None, [Problem("body", f"the template is {size / 1024:.0f} KB; the limit is "
                              f"{MAX_BODY_BYTES // 1024} KB",
                              hint="Shorten it: long reference text belongs in the data the "
                                   "code passes, not in the template.")]
    if not text.strip():
        return None, [Problem("body", "the template is empty")]
    try:
        data, root = _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [Problem("body", f"not valid YAML: {problem}",
                              mark.line + 1 if mark else None,
                              hint="Fix the YAML at that line (indentation, quotes around "
                                   "text with ':' or '{').")]
    if not isinstance(data, dict):
        return None, [Problem("body", "must be a mapping (name:, description:, variables:, "
                              "messages:, parameters:)")]
    problems = [Problem(key, "is set by the studio; remove it", line_of(root, (key,)))
                for key in _RESERVED if key in data]
    if data.get("name") != name:
        problems.append(Problem("name", f"is '{data.get('name')}' but this template is "
                                f"'{name}'", line_of(root, ("name",)),
                                hint=f"Keep `name: {name}`."))
    if problems:
        return None, problems
    try:
        tpl = PromptTemplate(**data, version=version, source=f"{name} {version}")
    except ValidationError as exc:
        return None, [Problem(".".join(str(p) for p in err["loc"]) or "body", err["msg"],
                              line_of(root, tuple(err["loc"]))) for err in exc.errors()]
    problems = _template_problems(tpl, root)
    if contract is not None:
        problems += _contract_problems(tpl, contract, root)
    if not any(p.level == "error" for p in problems):
        try:
            tpl.check()  # the loader's own check, as a backstop
        except TemplateError as exc:
            problems.append(Problem("messages", exc.message, hint=exc.hint))
    if any(p.level == "error" for p in problems):
        return None, problems
    return tpl, problems


def _read_cases(text: str, where: str) -> list[Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FieldError("cases", f"Test cases in {where} are not valid YAML/JSON: {exc}",
                         "Fix the syntax.") from None
    if isinstance(data, dict) and "cases" in data:
        data = data["cases"]
    if not isinstance(data, list):
        raise FieldError("cases", f"Test cases in {where} must be a list (or `cases:` list).",
                         "See prompts/tests/chat.yaml for the layout.")
    return data


def _cases_json(cases: Sequence[TemplateTestCase]) -> str:
    return json.dumps([c.model_dump(by_alias=True) for c in cases], sort_keys=True,
                      ensure_ascii=False)


# =========================================================================== assertions
def _parse_json(text: str) -> Any:
    stripped = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", stripped, re.S)
    return json.loads(fence.group(1) if fence else stripped)


def _check_json(output: str, schema: Any) -> tuple[bool, str]:
    try:
        data = _parse_json(output)
    except ValueError as exc:
        return False, f"not valid JSON: {exc}"
    if schema is None:
        return True, "valid JSON"
    try:
        import jsonschema  # lazy: optional, not a declared dependency (fallback below)
    except ImportError:
        return _check_json_fallback(data, schema)
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(data),
                    key=lambda e: list(e.absolute_path))
    if errors:
        path = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        return False, f"JSON does not match the schema at {path}: {errors[0].message}"
    return True, "valid JSON matching the schema"


def _check_json_fallback(data: Any, schema: dict[str, Any]) -> tuple[bool, str]:
    """Without jsonschema: the top-level type and required keys only."""
    kinds = {"object": dict, "array": list, "string": str, "number": (int, float),
             "integer": int, "boolean": bool}
    kind = schema.get("type")
    if isinstance(kind, str) and kind in kinds and not isinstance(data, kinds[kind]):
        return False, f"JSON is not of type {kind}"
    missing = [k for k in schema.get("required", []) if not isinstance(data, dict)
               or k not in data]
    if missing:
        return False, "JSON lacks required key(s): " + ", ".join(missing)
    return True, "valid JSON (type and required keys checked)"


def _walk_dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk_dicts(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk_dicts(v)


def _number(value: Any) -> float | None:
    try:
        return float(str(value).replace(",", "").lstrip("£$€"))
    except (TypeError, ValueError):
        return None


def _facts(value: dict[str, Any] | None, case_vars: dict[str, Any]) -> Facts:
    """Facts given in the assertion, or derived from the vars: list items with ``name``
    (and ``price``) are products; ``amount``/``price`` amounts, ``order_id``, ``date``."""
    if value is not None:
        products = [Candidate(p["name"], _number(p.get("price"))) if isinstance(p, dict)
                    else Candidate(str(p)) for p in value.get("products", [])]
        return Facts(products=products, catalog=value.get("catalog", ()),
                     amounts=[a for a in map(_number, value.get("amounts", ())) if a is not None],
                     order_ids=value.get("order_ids", ()), dates=value.get("dates", ()),
                     promises=value.get("promises") or {})
    products, amounts, orders, dates = [], [], [], []
    for item in (d for v in case_vars.values() if isinstance(v, list) for d in _walk_dicts(v)):
        if "name" in item and ("price" in item or "reason" in item):
            products.append(Candidate(str(item["name"]), _number(item.get("price"))))
        amounts += [n for k in ("amount", "price") if (n := _number(item.get(k))) is not None]
        if item.get("order_id") is not None:
            orders.append(str(item["order_id"]))
        if item.get("date") is not None:
            dates.append(str(item["date"]))
    return Facts(products=products, amounts=amounts, order_ids=orders, dates=dates)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _check_leak(output: str, messages: Sequence[Message],
                case_vars: dict[str, Any]) -> tuple[bool, str]:

    secret = "\n".join(m.content for m in messages if m.role == "system")
    allowed = [*_strings(case_vars), *(m.content for m in messages if m.role != "system")]
    if leaks(output, secret, allowed):
        return False, f"repeats {LEAK_NGRAM}+ words in a row of the system messages"
    return True, "no prompt text repeated"


def check_assertion(assertion: Assertion, output: str, messages: Sequence[Message],
                    case_vars: dict[str, Any]) -> tuple[bool, str]:
    """(passed, detail) of one assertion on one reply."""
    kind, value = assertion.type, assertion.value
    if kind == "contains":
        return (value in output, "found" if value in output else f"{value!r} not in the reply")
    if kind == "not_contains":
        return (value not in output,
                "absent" if value not in output else f"{value!r} is in the reply")
    if kind == "regex":
        found = re.search(value, output)
        return (bool(found), f"matched {found.group(0)[:40]!r}" if found else "no match")
    if kind == "max_length":
        return len(output) <= value, f"{len(output)} characters (max {value})"
    if kind == "json_schema":
        return _check_json(output, value)
    if kind == "grounding":
        verdict = grounding_check(output, _facts(value, case_vars))
        return verdict.ok, verdict.summary()
    return _check_leak(output, messages, case_vars)


# =========================================================================== the store
class PromptVersions:
    """Template versions, labels, audit log and tests over the SQLite ``Store``;
    ``directory`` holds the shipped files (seeds and the app's contract)."""

    def __init__(self, store: Store, directory: Path) -> None:
        self.store = store
        self.directory = Path(directory)
        self._contracts: dict[tuple[str, int, int], PromptTemplate | None] = {}

    @classmethod
    def from_settings(cls, settings: Any, *, seed: bool = True) -> PromptVersions:
        versions = cls(Store(settings.db_path), settings.prompts_dir)
        if seed:
            versions.seed()
        return versions

    # -- seeding and files --------------------------------------------------------
    def seed(self, directory: Path | None = None) -> list[str]:
        """Version 1 (author ``files``, labelled production) of every shipped template not
        stored yet, and its tests from ``tests/<name>.yaml``; returns the names seeded.
        Idempotent; a changed file is only imported by ``sync_files``."""
        directory = Path(directory or self.directory)
        existing = set(self.store.template_names())
        seeded = []
        for path in sorted(directory.glob("*.yaml")):
            if path.stem in existing:
                continue
            load_template(path)  # a broken shipped file: error with file and line
            text = path.read_text(encoding="utf-8")
            if self.store.add_template_version(
                    path.stem, text, sha=body_sha(text), author=FILES_AUTHOR,
                    note=f"seeded from {path.name}", base_version=0, label=PRODUCTION,
                    label_kind="seed"):
                seeded.append(path.stem)
        for name in self.store.template_names():
            tests_file = directory / "tests" / f"{name}.yaml"
            if tests_file.is_file() and self.store.template_tests(name) is None:
                try:  # a bad test file must not stop the app: it only blocks promotion
                    cases = _read_cases(tests_file.read_text(encoding="utf-8"),
                                        str(tests_file))
                    self.set_tests(name, cases, author=FILES_AUTHOR)
                except AssistantError as exc:
                    log.warning("tests in %s not seeded: %s", tests_file, exc.message)
        if seeded:
            log.info("prompt studio: seeded %s from %s", ", ".join(seeded), directory)
        return seeded

    def sync_files(self, *, author: str = FILES_AUTHOR, promote: bool = False) -> list[Version]:
        """Import every shipped file that changed since it was last imported (compared with
        the newest version authored ``files``) as a new version; with ``promote``, label it
        production too (logged as a ``sync`` move). Everything is validated first."""
        self.seed()
        changed: list[tuple[str, str]] = []
        for path in sorted(self.directory.glob("*.yaml")):
            load_template(path)
            text = path.read_text(encoding="utf-8")
            imported = [r for r in self.store.template_versions(path.stem)
                        if r["author"] == FILES_AUTHOR]
            if not imported or imported[-1]["sha"] != body_sha(text):
                changed.append((path.stem, text))
        out = []
        for name, text in changed:
            latest = self.store.latest_template_version(name)
            version = self.store.add_template_version(
                name, text, sha=body_sha(text), author=author,
                note=f"shipped file {name}.yaml changed", base_version=latest)
            if version is None:
                raise self._conflict(name, text, latest)
            if promote:
                self.store.move_template_label(
                    name, PRODUCTION, version, actor=author, kind="sync", override=True,
                    reason="shipped file changed (sync_files promote=True)")
            out.append(self.get(name, version))
        return out

    def contract(self, name: str) -> PromptTemplate | None:
        """What the app relies on (variables it passes, texts it reads): the shipped file,
        else version 1."""
        path = self.directory / f"{name}.yaml"
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is not None:
            key = (name, stat.st_mtime_ns, stat.st_size)
            if key not in self._contracts:
                try:
                    self._contracts[key] = load_template(path)
                except TemplateError:
                    log.warning("shipped template %s does not load; using version 1 as the "
                                "contract", path)
                    self._contracts[key] = None
            if self._contracts[key] is not None:
                return self._contracts[key]
        row = self.store.template_version(name, 1)
        if row is None:
            return None
        return analyse(name, row["body"])[0]

    # -- validation and saving ------------------------------------------------------
    def validate(self, name: str, body: str | Mapping[str, Any]) -> list[Problem]:
        """Every problem of a draft body, each at its field (errors and warnings); for live
        validation while typing. An empty list (or warnings only) means it can be saved."""
        _check_name(name)
        return analyse(name, _as_text(body), contract=self.contract(name))[1]

    def save(self, name: str, body: str | Mapping[str, Any], *, author: str, note: str,
             base_version: int | None) -> Version:
        """Save a new version (latest + 1) after full validation. ``base_version`` is the
        version the edit started from (0/None for a new template): if it is not the latest
        any more, ``ConflictError`` (with a diff) and nothing is saved."""
        _check_name(name)
        note = _required("note", note, "A note is required: say what changed and why.",
                         "Fill in the note field.")
        author = _required("author", author, "The author is missing.", "Pass --as NAME.")
        if base_version is not None and (isinstance(base_version, bool)
                                         or not isinstance(base_version, int)
                                         or base_version < 0):
            raise FieldError("base_version", f"base_version must be a version number, got "
                             f"{base_version!r}.")
        text = _as_text(body)
        tpl, problems = analyse(name, text, contract=self.contract(name))
        if tpl is None:
            raise TemplateValidationError(name, problems)
        latest = self.store.latest_template_version(name)
        if (base_version or 0) > latest:
            raise FieldError("base_version", f"Template '{name}' has no version {base_version} "
                             f"(latest is {latest}).", "Start from the latest version.")
        if latest and (base_version or 0) == latest:
            row = self.store.template_version(name, latest)
            if row and row["sha"] == body_sha(text):
                raise FieldError("body", f"Nothing changed since version {latest} of '{name}'.",
                                 "Edit the template before saving.")
        version = self.store.add_template_version(name, text, sha=body_sha(text),
                                                  author=author, note=note,
                                                  base_version=base_version)
        if version is None:
            raise self._conflict(name, text, base_version)
        log.info("template %s v%s saved by %s: %s", name, version, author, note)
        return self.get(name, version)

    def _conflict(self, name: str, text: str, base_version: int | None) -> ConflictError:
        latest = self.get(name)
        diff = unified_diff(latest.body, text, f"{name} v{latest.version} (latest)",
                            f"{name} (your edit, based on v{base_version or 0})")
        return ConflictError(name, base_version, latest, diff)

    # -- reading ----------------------------------------------------------------------
    def names(self) -> list[str]:
        return self.store.template_names()

    def labels(self, name: str) -> list[Label]:
        return [Label(r["name"], r["label"], r["version"], r["share"], r["segment"],
                      r["updated_at"]) for r in self.store.template_labels(name)]

    def _unknown(self, name: str) -> TemplateError:
        return TemplateError(f"No template named '{name}'.",
                             f"Available: {', '.join(self.names()) or 'none'}.")

    def get(self, name: str, version: int | None = None, label: str | None = None) -> Version:
        """A version by number, by label, or the latest."""
        if version is not None and label is not None:
            raise FieldError("version", "Give a version or a label, not both.")
        latest = self.store.latest_template_version(name)
        if latest == 0:
            raise self._unknown(name)
        labels = {lab.label: lab.version for lab in self.labels(name)}
        if label is not None:
            if label not in labels:
                raise FieldError("label", f"Template '{name}' has no label '{label}'.",
                                 f"Labels: {', '.join(sorted(labels)) or 'none'}.")
            version = labels[label]
        version = latest if version is None else version
        row = self.store.template_version(name, version)
        if row is None:
            raise FieldError("version", f"Template '{name}' has no version {version} "
                             f"(it has versions 1 to {latest}).",
                             f"See: assistant prompts history {name}")
        return self._version(row, labels)

    def _version(self, row: Mapping[str, Any], labels: Mapping[str, int]) -> Version:
        name, number = row["name"], int(row["version"])
        tpl, problems = analyse(name, row["body"], version=f"v{number}",
                                contract=self.contract(name))
        return Version(name=name, version=number, body=row["body"], sha=row["sha"],
                       author=row["author"], note=row["note"], created_at=row["created_at"],
                       base_version=row["base_version"],
                       labels=tuple(sorted(k for k, v in labels.items() if v == number)),
                       template=tpl, problems=tuple(problems))

    def history(self, name: str) -> list[Version]:
        """Every version, oldest first."""
        rows = self.store.template_versions(name)
        if not rows:
            raise self._unknown(name)
        labels = {lab.label: lab.version for lab in self.labels(name)}
        return [self._version(r, labels) for r in rows]

    def label_history(self, name: str, label: str | None = None) -> list[LabelEvent]:
        """The audit log of label moves, oldest first."""
        return [LabelEvent(r["id"], r["name"], r["label"], r["from_version"], r["to_version"],
                           r["actor"], r["reason"], r["kind"], bool(r["override"]), r["share"],
                           r["segment"], r["created_at"])
                for r in self.store.template_label_events(name, label)]

    def list(self) -> list[TemplateSummary]:
        """Per template: description, variables, labels, latest version, last change."""
        out = []
        for name in self.names():
            latest = self.get(name)
            labels = {lab.label: lab.version for lab in self.labels(name)}
            events = self.store.template_label_events(name)
            last_change, last_author = latest.created_at, latest.author
            if events and events[-1]["created_at"] > last_change:
                last_change, last_author = events[-1]["created_at"], events[-1]["actor"]
            tpl = latest.template
            out.append(TemplateSummary(
                name=name, description=tpl.description.strip() if tpl else "(invalid)",
                variables={k: v.model_dump() for k, v in tpl.variables.items()} if tpl else {},
                labels=labels, latest_version=latest.version, last_change=last_change,
                last_author=last_author))
        return out

    def diff(self, name: str, a: int, b: int) -> str:
        """Unified diff of the bodies of versions a and b (text and parameters)."""
        old, new = self.get(name, a), self.get(name, b)
        return unified_diff(old.body, new.body, f"{name} v{a}", f"{name} v{b}")

    # -- labels ---------------------------------------------------------------------------
    def set_label(self, name: str, label: str, version: int, *, actor: str, reason: str = "",
                  override: bool = False, share: float = 1.0,
                  segment: str | None = None) -> LabelEvent | None:
        """Point ``label`` at ``version`` (audit event); None when it already did.
        ``share``/``segment`` (non-production labels) are the staged-rollout traffic."""
        _check_label(label)
        actor = _required("actor", actor, "The actor is missing.", "Pass --as NAME.")
        reason = (reason or "").strip()
        if override and not reason:
            raise FieldError("reason", "An override needs a reason (it goes into the audit "
                             "log).", "Pass --reason '...'.")
        share, segment = self._rollout(label, share, segment)
        target = self.get(name, version)
        if not target.valid:
            raise TemplateValidationError(
                name, target.problems, f"Version {version} cannot be labelled '{label}': ")
        current = {lab.label: lab for lab in self.labels(name)}.get(label)
        if current and (current.version, current.share, current.segment) == (
                version, share, segment):
            return None
        if label == PRODUCTION:
            self._gate(name, version, override=override)
        self.store.move_template_label(name, label, version, actor=actor, reason=reason,
                                       kind="set", override=override and label == PRODUCTION,
                                       share=share, segment=segment)
        log.info("template %s: label %s -> v%s by %s%s", name, label, version, actor,
                 " (override)" if override else "")
        return self.label_history(name, label)[-1]

    @staticmethod
    def _rollout(label: str, share: float, segment: str | None) -> tuple[float, str | None]:
        if label == PRODUCTION:
            if share != 1.0 or segment:
                raise FieldError("share", "production always serves all remaining traffic.",
                                 "Give a share or segment to a staging label instead.")
            return 1.0, None
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise FieldError("share", f"share must be between 0 and 1, got {share!r}.",
                             "0.5 routes half of the sessions to this label.")
        return float(share), (segment or "").strip() or None

    def _gate(self, name: str, version: int, *, override: bool) -> None:
        """Production needs a passing run of this version with the current tests."""
        if override:
            return
        stored = self.store.template_tests(name)
        hint = (f"Run: assistant prompts test {name} --version {version}; or promote with "
                "--override --reason '...' (logged).")
        if stored is None or not json.loads(stored["cases"]):
            raise PromotionBlockedError(
                f"Template '{name}' has no tests, so version {version} cannot be promoted to "
                "production.", "Add tests (assistant prompts set-tests), or promote with "
                "--override --reason '...' (logged).")
        run = self.last_test_run(name, version)
        if run is None or run.cases_sha != stored["sha"]:
            raise PromotionBlockedError(
                f"Version {version} of '{name}' has not been tested with its current tests; "
                "promotion to production is blocked.", hint, run)
        if not run.passed:
            failed = [r for r in run.results if not r.passed]
            first = f"{failed[0].case}: {failed[0].assertion}: {failed[0].detail}"
            raise PromotionBlockedError(
                f"Version {version} of '{name}' fails its tests (pass rate "
                f"{run.pass_rate or 0:.0%}; {len(failed)} failing, e.g. {first}); promotion "
                "to production is blocked.", hint, run)

    def remove_label(self, name: str, label: str, *, actor: str, reason: str = "") -> LabelEvent:
        """Remove a label (not production: move it instead)."""
        _check_label(label)
        actor = _required("actor", actor, "The actor is missing.", "Pass --as NAME.")
        if label == PRODUCTION:
            raise FieldError("label", "The production label cannot be removed.",
                             "Move it to another version, or roll back.")
        if label not in {lab.label for lab in self.labels(name)}:
            raise FieldError("label", f"Template '{name}' has no label '{label}'.")
        self.store.move_template_label(name, label, None, actor=actor,
                                       reason=(reason or "").strip(), kind="remove")
        return self.label_history(name, label)[-1]

    def rollback(self, name: str, *, actor: str, reason: str,
                 label: str = PRODUCTION) -> LabelEvent:
        """Move ``label`` back to the version it pointed at before its last move (a second
        rollback goes one step further back). No test gate: it was live before."""
        actor = _required("actor", actor, "The actor is missing.", "Pass --as NAME.")
        reason = _required("reason", reason, "A rollback needs a reason (it goes into the "
                           "audit log).", "Pass --reason '...'.")
        stack: list[int] = []
        for event in self.label_history(name, label):
            if event.to_version is None:
                stack.clear()
            elif event.kind == "rollback":
                stack.pop() if stack else None
            else:
                stack.append(event.to_version)
        if len(stack) < 2:
            raise FieldError("label", f"'{label}' of '{name}' has no earlier version to roll "
                             "back to.", f"See: assistant prompts history {name}")
        current, target = stack[-1], stack[-2]
        version = self.get(name, target)
        if not version.valid:
            raise TemplateValidationError(
                name, version.problems, f"Cannot roll back to version {target}: ")
        moved, now = self.store.move_template_label(
            name, label, target, actor=actor, reason=reason, kind="rollback",
            expected_from=current, check_from=True)
        if not moved:
            raise FieldError("label", f"'{label}' of '{name}' moved meanwhile (now v{now}).",
                             "Look at the history and try again.")
        log.info("template %s: %s rolled back v%s -> v%s by %s (%s)", name, label, current,
                    target, actor, reason)
        return self.label_history(name, label)[-1]

    # -- tests ----------------------------------------------------------------------------
    def set_tests(self, name: str,
                  cases: Sequence[Mapping[str, Any]] | Mapping[str, Any] | str, *,
                  author: str) -> list[TemplateTestCase]:
        """Replace a template's test cases after validating them (assertion types, regexes,
        schemas, and that each case's vars render with the latest version)."""
        author = _required("author", author, "The author is missing.", "Pass --as NAME.")
        if isinstance(cases, Mapping):
            cases = cases.get("cases", [])
        raw = _read_cases(cases, "the test cases") if isinstance(cases, str) else list(cases)
        parsed: list[TemplateTestCase] = []
        for i, case in enumerate(raw):
            try:
                parsed.append(TemplateTestCase.model_validate(case))
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                msg = str(err.get("ctx", {}).get("error") or err["msg"])
                raise FieldError(f"cases[{i}]" + (f".{where}" if where else ""),
                                 f"Test case {i + 1} of '{name}', {where or 'case'}: {msg}",
                                 "Fix that case; nothing was saved.") from None
        seen = [c.name for c in parsed]
        dupes = sorted({n for n in seen if seen.count(n) > 1})
        if dupes:
            raise FieldError("cases", f"Test case names must be unique: {', '.join(dupes)}.")
        latest = self.get(name)
        if latest.template is not None:
            for i, case in enumerate(parsed):
                try:
                    latest.template.render(**case.vars)
                except TemplateError as exc:
                    raise FieldError(f"cases[{i}].vars", f"Test case '{case.name}' of "
                                     f"'{name}': {exc.message}", exc.hint) from None
        text = _cases_json(parsed)
        self.store.set_template_tests(name, text, sha=body_sha(text), author=author)
        return parsed

    def tests(self, name: str) -> list[TemplateTestCase]:
        stored = self.store.template_tests(name)
        if stored is None:
            return []
        return [TemplateTestCase.model_validate(c) for c in json.loads(stored["cases"])]

    def run_tests(self, name: str, version: int | None, llm: LLMClient, *,
                  actor: str = "tests") -> TestRun:
        """Run every test case of ``name`` on ``version`` (latest if None) through ``llm``,
        check each assertion, store the run and return it."""
        target = self.get(name, version)
        if target.template is None:
            raise TemplateValidationError(name, target.problems,
                                          f"Version {target.version} cannot be tested: ")
        stored = self.store.template_tests(name)
        cases = self.tests(name)
        if stored is None or not cases:
            raise FieldError("tests", f"Template '{name}' has no test cases.",
                             "Add some: assistant prompts set-tests NAME FILE.")
        results: list[TestResult] = []
        for case in cases:
            results += _run_case(target.template, case, llm)
        passed = sum(r.passed for r in results)
        rate = round(passed / len(results), 4) if results else None
        row = self.store.add_template_test_run(
            name, target.version, cases_sha=stored["sha"], model=llm.model.model,
            results_json=json.dumps([asdict(r) for r in results], ensure_ascii=False),
            pass_rate=rate, actor=actor)
        return _run_of(row)

    def last_test_run(self, name: str, version: int) -> TestRun | None:
        row = self.store.last_template_test_run(name, version)
        return _run_of(row) if row else None

    # -- export -------------------------------------------------------------------------
    def export(self, directory: Path | None = None, *, label: str = PRODUCTION) -> list[Path]:
        """Write each template's ``label`` version to ``<directory>/<name>.yaml`` (and its
        tests to ``tests/<name>.yaml``) for code review; returns the files changed."""
        directory = Path(directory or self.directory)
        written = []
        for name in self.names():
            labels = {lab.label: lab.version for lab in self.labels(name)}
            if label not in labels:
                continue
            body = self.get(name, labels[label]).body
            if _write_if_changed(directory / f"{name}.yaml", body):
                written.append(directory / f"{name}.yaml")
            cases = self.tests(name)
            path = directory / "tests" / f"{name}.yaml"
            if cases and not _same_cases(path, cases):
                data = {"cases": [c.model_dump(by_alias=True) for c in cases]}
                _write_if_changed(path, dump_body(data))
                written.append(path)
        return written


def _run_case(tpl: PromptTemplate, case: TemplateTestCase, llm: LLMClient) -> list[TestResult]:
    try:
        messages = tpl.render(**case.vars)
    except TemplateError as exc:
        return [TestResult(case.name, "render", False, exc.message)]
    try:
        output = llm.complete(messages, tpl.parameters, template_name=tpl.name,
                              template_version=tpl.version, session_id=TEST_SESSION)
    except AssistantError as exc:
        return [TestResult(case.name, "model", False, exc.message)]
    out = []
    for assertion in case.assert_:
        try:
            ok, detail = check_assertion(assertion, output, messages, case.vars)
        except Exception as exc:  # a check must never abort the run
            ok, detail = False, f"check failed: {type(exc).__name__}: {exc}"
        out.append(TestResult(case.name, assertion.label(), ok, detail, output))
    return out


def _run_of(row: Mapping[str, Any]) -> TestRun:
    results = tuple(TestResult(**r) for r in json.loads(row["results"]))
    return TestRun(id=row["id"], name=row["name"], version=row["version"], model=row["model"],
                   actor=row["actor"], created_at=row["created_at"],
                   cases_sha=row["cases_sha"], pass_rate=row["pass_rate"], results=results)


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return True


def _same_cases(path: Path, cases: Sequence[TemplateTestCase]) -> bool:
    if not path.is_file():
        return False
    try:
        current = [TemplateTestCase.model_validate(c)
                   for c in _read_cases(path.read_text(encoding="utf-8"), str(path))]
    except (AssistantError, ValidationError):
        return False
    return _cases_json(current) == _cases_json(cases)


# =========================================================================== the app's view
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
        versions = PromptVersions(store or Store(settings.db_path), settings.prompts_dir)
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
        except (sqlite3.Error, OSError, AssistantError) as exc:
            self._store_failed(exc)
            return False
        for key in list(serving):
            if key not in seen and key[0] != PRODUCTION:
                del serving[key]  # staging removed: stop routing to it
        self._serving = serving
        if self._failing_since is not None:
            log.warning("prompt store %s is readable again; serving: %s",
                        self.versions.store.path, self._describe())
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
                        "versions: %s", self.versions.store.path,
                        getattr(exc, "message", None) or exc, self._describe())

    def _describe(self) -> str:
        served = self.templates
        return ", ".join(f"{name} {served[name].version}" for name in sorted(served))

