"""Checks of a template body and of the prompt studio's input fields.

- **Validation** (``analyse``): size (64 KB), YAML, the template schema (parameters within
  their ranges), mustache syntax, used vs declared variables, and the app's *contract*:
  the variables the shipped file declares are what the code passes, so a new version must
  keep each of them (same type) and may not add a required variable without a default; the
  ``texts`` keys the shipped file has are read by the code, so each must stay. Every
  finding is a ``Problem`` at its field (``messages.1.content``), with its line.
- **Input fields** (template name, label, note, author): a bad one raises ``FieldError``,
  which names the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from langchain_core.prompts.string import mustache_template_vars
from langchain_core.utils.mustache import ChevronError
from pydantic import ValidationError

from assistant.core.errors import InputError, TemplateError
from assistant.core.yamlfile import line_of
from assistant.prompts.templates import PromptTemplate, _top_vars

MAX_BODY_BYTES = 64 * 1024
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = ("version", "source")  # set by the studio, never part of a body


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
