"""The questionnaire's spec (``data/questionnaire.yaml``): questions, their options and
rules, loaded and validated so that every problem names the file, the line, the question and
the field; and ``norm``, the one way option phrases and answers are compared."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.core.errors import ConfigError, InputError
from assistant.core.yamlfile import line_of, read_config_file

DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "data" / "questionnaire.yaml"
MAX_INPUT_CHARS = 1000  # longer messages are refused (text answers are cut instead)

QuestionType = Literal["single", "multi", "number", "yes_no", "text", "email"]
CHOICE_TYPES = ("single", "multi")

_WS = re.compile(r"\s+")


def norm(text: str) -> str:
    """Lower case, NFKC, typographic quotes and dashes made plain, other punctuation
    removed, spaces collapsed: how option phrases and answers are compared."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = t.replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")
    t = re.sub(r"[^\w£$€'@.+&,/\- ]+", " ", t)
    return _WS.sub(" ", t).strip(" .,!?;:")


class SpecProblem(ValueError):
    """A semantic problem in the spec, with the location of the offending field."""

    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1)
    label: str = ""
    synonyms: list[str] = Field(default_factory=list)
    range: tuple[float, float | None] | None = None  # [low, high) in the question's range_unit

    @property
    def display(self) -> str:
        return self.label or self.value

    def phrases(self) -> list[str]:
        """Every way to name this option, normalized."""
        out = [norm(self.value), norm(self.display), *(norm(s) for s in self.synonyms)]
        return list(dict.fromkeys(p for p in out if p))


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str = Field(min_length=1)
    type: QuestionType
    options: list[Option] = Field(default_factory=list)
    required: bool = False
    show_if: dict[str, str | list[str]] = Field(default_factory=dict)
    help: str = ""
    example: str = ""
    aliases: list[str] = Field(default_factory=list)
    profile_field: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    unit: str = ""
    range_unit: Literal["GBP", "days"] | None = None
    max_length: int = Field(500, ge=1, le=MAX_INPUT_CHARS)
    needs: bool = False  # what they need: asked first, in spec order, before the planner's

    def option(self, value: str) -> Option | None:
        return next((o for o in self.options if o.value == value), None)

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.min if self.min is not None else 0.0,
                self.max if self.max is not None else float("inf"))


class QuestionnaireSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    intro: str = ""
    outro: str = "Thanks, that's everything."
    questions: list[Question] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> QuestionnaireSpec:
        seen: dict[str, int] = {}
        for i, q in enumerate(self.questions):
            loc: tuple[Any, ...] = ("questions", i)
            if q.id in seen:
                raise SpecProblem((*loc, "id"), f"duplicate question id (question {seen[q.id] + 1}"
                                  " has the same id)")
            if q.type in CHOICE_TYPES and not q.options:
                raise SpecProblem((*loc, "options"), f"a {q.type} question needs options")
            if q.type not in CHOICE_TYPES and q.options:
                raise SpecProblem((*loc, "options"), f"a {q.type} question takes no options")
            if q.type == "number":
                if q.min is None or q.max is None:
                    raise SpecProblem((*loc, "min" if q.min is None else "max"),
                                      "a number question needs min and max")
                if q.min > q.max:
                    raise SpecProblem((*loc, "min"), f"min ({q.min:g}) is greater than max "
                                      f"({q.max:g})")
            elif q.min is not None or q.max is not None:
                raise SpecProblem((*loc, "min" if q.min is not None else "max"),
                                  "only number questions take min/max")
            owner: dict[str, str] = {}
            for j, opt in enumerate(q.options):
                for phrase in opt.phrases():
                    if owner.get(phrase, opt.value) != opt.value:
                        raise SpecProblem((*loc, "options", j, "synonyms"),
                                          f"'{phrase}' names both '{owner[phrase]}' and "
                                          f"'{opt.value}'")
                    owner[phrase] = opt.value
                if opt.range is not None and q.range_unit is None:
                    raise SpecProblem((*loc, "options", j, "range"),
                                      "an option range needs `range_unit` on the question")
                if opt.range and opt.range[1] is not None and opt.range[0] >= opt.range[1]:
                    raise SpecProblem((*loc, "options", j, "range"),
                                      "the range's low end must be below its high end")
            for ref, wanted in q.show_if.items():
                if ref not in seen:
                    later = any(o.id == ref for o in self.questions[i + 1:])
                    raise SpecProblem((*loc, "show_if", ref),
                                      f"'{ref}' is {'a later' if later else 'an unknown'} "
                                      "question (show_if may only name earlier questions)")
                target = self.questions[seen[ref]]
                if target.type in CHOICE_TYPES:
                    for value in [wanted] if isinstance(wanted, str) else wanted:
                        if target.option(value) is None:
                            raise SpecProblem((*loc, "show_if", ref),
                                              f"'{value}' is not an option of '{ref}'")
            seen[q.id] = i
        return self

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise InputError(f"There is no question '{qid}'.",
                         f"Known questions: {', '.join(q.id for q in self.questions)}.")

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.questions]


def load_spec(path: Path | str | None = None) -> QuestionnaireSpec:
    """Read and validate a questionnaire spec; every problem is a ``ConfigError`` naming the
    file, the line, the question id and the field."""
    path = Path(path) if path is not None else DEFAULT_SPEC
    hint_layout = "The layout is documented at the top of data/questionnaire.yaml."
    data, root = read_config_file(path, what="Questionnaire spec",
                                  default="data/questionnaire.yaml")
    if not isinstance(data, dict):
        raise ConfigError(f"Questionnaire spec {path} must be a mapping with `questions:`.",
                          hint_layout)
    try:
        return QuestionnaireSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SpecProblem):
            loc, msg = cause.loc, cause.message
        else:
            loc, msg = tuple(err["loc"]), err["msg"]
        line = line_of(root, loc)
        where = f"{path}:{line}" if line else str(path)
        qid = "?"
        if len(loc) >= 2 and loc[0] == "questions" and isinstance(loc[1], int):
            raw = (data.get("questions") or [None] * (loc[1] + 1))[loc[1]]
            qid = raw.get("id", f"#{loc[1] + 1}") if isinstance(raw, dict) else f"#{loc[1] + 1}"
            field = ".".join(str(p) for p in loc[2:]) or "(question)"
            subject = f"question '{qid}', field '{field}'"
        else:
            subject = f"field '{'.'.join(str(p) for p in loc) or '(top level)'}'"
        more = len(exc.errors()) - 1
        raise ConfigError(
            f"Questionnaire spec {where}: {subject}: {msg}"
            + (f" (and {more} more problem(s))" if more > 0 else ""),
            "Fix that field. " + hint_layout,
        ) from None
