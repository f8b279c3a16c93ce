"""Per-template test cases and their assertions. A ``TemplateTestCase`` renders the
template with its ``vars`` and sends it to the model; each ``Assertion`` checks the reply
(``check_assertion``); a ``TestRun`` holds the results of one version. Test calls are
logged under the session ``TEST_SESSION`` (left out of metrics).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.core.errors import AssistantError, TemplateError
from assistant.core.schemas import Message
from assistant.infra.llm import LLMClient
from assistant.prompts.checks import FieldError
from assistant.prompts.grounding import Candidate, Facts
from assistant.prompts.grounding import check as grounding_check
from assistant.prompts.leaks import LEAK_NGRAM, leaks
from assistant.prompts.templates import PromptTemplate

TEST_SESSION = "prompt-tests"  # llm_calls.session_id of test runs (left out of metrics)


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


def _same_cases(path: Path, cases: Sequence[TemplateTestCase]) -> bool:
    if not path.is_file():
        return False
    try:
        current = [TemplateTestCase.model_validate(c)
                   for c in _read_cases(path.read_text(encoding="utf-8"), str(path))]
    except (AssistantError, ValidationError):
        return False
    return _cases_json(current) == _cases_json(cases)
