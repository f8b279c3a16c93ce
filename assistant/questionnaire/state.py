"""What a questionnaire keeps between turns (``QuestionnaireState``, saved as JSON after every
turn) and what a turn returns (``Turn``).

Answer values stored in ``state.answers``:

- ``single``: the option's ``value`` (e.g. ``"every month or two"``);
- ``multi``: a list of option values in spec order (``[]`` for "none");
- ``number``: always ``{"min": lo, "max": hi}``. An exact answer ("£50") is ``{50, 50}``; a
  range ("30-50", "between 30 and 50") keeps both ends; an open range takes the missing end
  from the question's bounds ("under 50" -> ``{1, 50}``, "at least 20" -> ``{20, 5000}``).
  One shape for every answer, so consumers never branch on type; use ``max`` as the ceiling.
- ``yes_no``: ``True`` / ``False``; ``email``: the address; ``text``: the text as typed,
  control characters removed and cut to the question's ``max_length``.

"Skip" and "don't know" are not answers: the question id goes to ``state.skipped`` with the
kind (``"skip"`` or ``"dont_know"``) and ``answers_for_classifier`` leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.segments.answers import CATEGORICAL_QUESTIONS, ORDINAL_QUESTIONS

CLASSIFIER_QUESTIONS: tuple[str, ...] = (*ORDINAL_QUESTIONS, *CATEGORICAL_QUESTIONS, "interests")

#: How sure we are of a fact, by where it came from (shown on the "what we know" card).
#: said/edited/observed are taken as given; "understood" is a model's reading of a longer
#: sentence (checked by the parser); "inferred" is a rule over order history (e.g. buyer
#: type from units per order).
SOURCE_CONFIDENCE = {"said": 1.0, "edited": 1.0, "observed": 1.0, "understood": 0.8,
                     "inferred": 0.7}


class Pending(BaseModel):
    """Something the next message may confirm: a fuzzy match ("Did you mean ...?")."""

    question_id: str
    value: Any


class QuestionnaireState(BaseModel):
    """Everything needed to resume a questionnaire; JSON round-trips
    (``QuestionnaireState.model_validate_json(state.model_dump_json())``)."""

    version: int = 1
    answers: dict[str, Any] = Field(default_factory=dict)
    sources: dict[str, str] = Field(default_factory=dict)  # said | edited | observed | ...
    asked: list[str] = Field(default_factory=list)  # question ids in the order first asked
    current: str | None = None
    failures: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, Literal["skip", "dont_know"]] = Field(default_factory=dict)
    pending: Pending | None = None
    done: bool = False  # every question asked (or stopped early): the summary is showing
    confirmed: bool = False  # the person confirmed the summary
    stopped_early: bool = False  # the chooser stopped before every question was asked
    extended: bool = False  # the person asked for the remaining questions after a stop
    dismissed: bool = False  # the person chose to just chat (the card keeps what was said)
    customer_id: str | None = None  # a returning customer linked to their order history
    suggested: bool = False  # recommendations were shown after the summary was confirmed


class Progress(BaseModel):
    answered: int
    total: int


class SummaryItem(BaseModel):
    question_id: str
    question: str
    answer: str
    source: str


class Turn(BaseModel):
    message: str
    question_id: str | None = None
    quick_replies: list[str] = Field(default_factory=list)
    progress: Progress
    summary: list[SummaryItem] | None = None
    error: str | None = None  # machine-readable reason code when an answer was not used
    reason: str | None = None  # the same, for people
    done: bool = False
    confirmed: bool = False
    prefix: str = ""  # what came before the question in ``message`` (ack, re-ask, ...)
    ask: str | None = None  # the question as asked (``message`` = prefix + ask)
    captured: dict[str, Any] = Field(default_factory=dict)  # facts stored from this message


Chooser = Callable[[QuestionnaireState, list[str]], str | None]


def answers_for_classifier(state: QuestionnaireState) -> dict[str, Any]:
    """The answers in the format ``segmentation.input_row`` expects: {question id: option
    value, ..., "interests": [group names]}; skipped / don't know are left out."""
    out: dict[str, Any] = {}
    for qid in CLASSIFIER_QUESTIONS:
        if qid in state.answers and qid not in state.skipped:
            value = state.answers[qid]
            out[qid] = list(value) if qid == "interests" else value
    return out
