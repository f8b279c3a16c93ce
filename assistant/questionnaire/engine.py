"""The guided questionnaire: spec (``data/questionnaire.yaml``), state machine, answer parsing.

Pure: no UI, no model, no network. The chat layer calls ``Questionnaire.start`` and
``Questionnaire.handle`` with a ``QuestionnaireState`` it saves after every turn (the state is
a pydantic model that round-trips through JSON) and shows the returned ``Turn``.

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

Parsing free text (``parse_answer``): exact option value/label/synonym; otherwise option
phrases found in the sentence as whole words (longest match wins, so "more than once a month"
is not "once a month"); otherwise a number inside an option's ``range`` ("about £200" ->
"£150-£300", "2 months ago" -> "1-3 months ago"); otherwise a fuzzy match (difflib ratio of
the answer or of a same-length window of its words against every option phrase of 4+
characters): ratio >= ``FUZZY_ACCEPT`` (0.8: one typo in a five-letter word) is accepted;
for the whole answer (not a window of a longer sentence) ``FUZZY_CONFIRM`` (0.65) up to that
asks "Did you mean ...?" first (``state.pending``); lower is not understood.

Failure policy (never a loop): a not-understood answer gets a specific re-ask (reason, help,
example). From the second failure on the same question the re-ask offers "Skip" and "Don't
know" (text and quick replies). The third failure on an optional question skips it
(``skipped[id] == "skip"``) and moves on; a required question keeps offering Skip / Don't know
(typing either is accepted on every question at any time: the person is in control;
``required`` decides whether the buttons are there from the start).

Safety: answers are data. Control characters are stripped, messages over
``MAX_INPUT_CHARS`` are refused politely (a ``text`` answer is cut to its ``max_length``
instead), emoji-only or non-Latin text gets a helpful re-ask, and bot messages contain only
spec text and parsed values (option labels, numbers, the email address): never the raw text
of an answer, except a free-text answer quoted in the summary, which is the person's own data.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.core.config import REPO_ROOT
from assistant.core.errors import ConfigError, InputError, TemplateError
from assistant.core.yamlfile import line_of, read_config_file
from assistant.prompts.templates import PromptTemplate, load_template
from assistant.segments.answers import CATEGORICAL_QUESTIONS, ORDINAL_QUESTIONS

DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "data" / "questionnaire.yaml"
CLASSIFIER_QUESTIONS: tuple[str, ...] = (*ORDINAL_QUESTIONS, *CATEGORICAL_QUESTIONS, "interests")
MAX_INPUT_CHARS = 1000  # longer messages are refused (text answers are cut instead)
FUZZY_ACCEPT = 0.8
FUZZY_CONFIRM = 0.65
FAILURES_BEFORE_OFFER = 2  # from this many failed tries, Skip / Don't know are offered
SKIP_LABEL = "Skip"
DONT_KNOW_LABEL = "Don't know"

QuestionType = Literal["single", "multi", "number", "yes_no", "text", "email"]
CHOICE_TYPES = ("single", "multi")


# --------------------------------------------------------------------------- spec
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
        out = [_norm(self.value), _norm(self.display), *(_norm(s) for s in self.synonyms)]
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


# --------------------------------------------------------------------------- state + turn
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


class ParseResult(BaseModel):
    ok: bool = False
    value: Any = None
    special: Literal["skip", "dont_know"] | None = None
    confirm: bool = False  # a fuzzy match to confirm before storing
    error: str | None = None
    reason: str | None = None
    note: str | None = None  # e.g. "I kept the first 500 characters"


Chooser = Callable[[QuestionnaireState, list[str]], str | None]

# --------------------------------------------------------------------------- text helpers
_CONTROL_KEEP = {"\n", "\t"}
_WS = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Remove control and format characters (zero-width, bidi overrides) but keep newlines."""
    return "".join(
        ch for ch in str(text)
        if ch in _CONTROL_KEEP or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co")
    ).strip()


def _norm(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    t = t.replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")
    t = re.sub(r"[^\w£$€'@.+&,/\- ]+", " ", t)
    return _WS.sub(" ", t).strip(" .,!?;:")


_DONT_KNOW = re.compile(
    r"\b(?:i\s+)?(?:don'?t|do not|dont)\s+know\b|\bnot\s+sure\b|\bno\s+idea\b|\bunsure\b|"
    r"\bdunno\b|\bidk\b|\bno\s+clue\b|\bcan'?t\s+(?:say|remember)\b|"
    r"\b(?:don'?t|do not)\s+remember\b|\bnot\s+certain\b|\bhard\s+to\s+say\b"
)
_SKIP = re.compile(
    r"^(?:please\s+)?(?:skip(?:\s+(?:it|this|that|this one|that one|the question))?|pass|"
    r"next(?:\s+question)?|rather\s+not\s+say|i'?d\s+rather\s+not(?:\s+say)?|"
    r"prefer\s+not\s+to\s+say|no\s+comment|n/?a|move\s+on)(?:\s+please)?$"
)
_NOTHING = re.compile(r"^(?:no|nope|nah|nothing|none|no thanks|no thank you|not really|"
                      r"that'?s (?:all|it)|nothing else|all good|i'?m good)$")
_GO_BACK = re.compile(
    r"^(?:(?:oops|wait|sorry|please|can we|could we|let'?s|lets|i want to|i'?d like to)\s+)*"
    r"(?:go\s+back|back|previous(?:\s+question)?|undo|last\s+question|"
    r"go\s+to\s+the\s+previous\s+question)(?:\s+(?:please|one))?$"
)
_CONFIRM = re.compile(
    r"^(?:confirm(?:ed)?|yes|yep|yeah|y|ok|okay|correct|that'?s (?:right|correct|it)|"
    r"looks? (?:good|right|fine)|all (?:good|correct)|perfect|great|done|sounds good)"
    r"(?:[\s,!]+(?:thanks|thank you|please))*[\s,!]*$"
)
_MORE = re.compile(r"^(?:more(?:\s+questions)?|ask\s+me\s+more|continue|keep\s+going|"
                   r"go\s+on|more\s+please)$")
_YES = re.compile(r"\b(?:yes|y|yeah|yep|yup|sure|of course|definitely|certainly|absolutely|"
                  r"ok|okay|please do|indeed|correct|right)\b")
_NO = re.compile(r"\b(?:no|n|nope|nah|not really|no thanks|never|negative|don'?t)\b")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}")
_CORRECTION_CUE = re.compile(
    r"^(?:(?:actually|sorry|oops|wait|correction|no|hmm|um|i mean|oh)[,:]?\s+)*"
    r"(?:(?:please\s+|can you\s+|could you\s+|i'?d like to\s+|i want to\s+|let'?s\s+)?"
    r"(?:change|update|set|correct|fix|make|edit)\s+)?"
)


def _words_in(text: str) -> int:
    return len(re.findall(r"[a-z0-9]+", text))


# --------------------------------------------------------------------------- numbers
_UNITS = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen"])}
_TENS = {w: 10 * (i + 2) for i, w in enumerate([
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+|[^\sa-z\d]")
_NUM = r"(\d+(?:\.\d+)?)"


def words_to_digits(text: str) -> str:
    """'a hundred and twenty' -> '120', 'twenty-five quid' -> '25 quid'; other words kept."""
    tokens = _TOKEN.findall(text.lower())
    out: list[str] = []
    i = 0
    numeric = set(_UNITS) | set(_TENS)
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        starts = t in numeric or (t in ("a", "an", "one") and nxt in _SCALES)
        if not starts:
            out.append(t)
            i += 1
            continue
        total = current = 0
        scaled = False
        j = i
        while j < len(tokens):
            t = tokens[j]
            after = tokens[j + 1] if j + 1 < len(tokens) else ""
            if t in _UNITS:
                current += _UNITS[t]
            elif t in _TENS:
                current += _TENS[t]
            elif t in ("a", "an") and j == i:
                current = 1
            elif t == "-" and after in _UNITS and current % 10 == 0 and current:
                pass
            elif t in _SCALES:
                if t == "hundred":
                    current = (current or 1) * 100
                else:
                    total += (current or 1) * _SCALES[t]
                    current = 0
                scaled = True
            elif t == "and" and scaled and (after in _UNITS or after in _TENS):
                pass
            else:
                break
            j += 1
        out.append(str(total + current))
        i = j
    return " ".join(out)


def _prep_numbers(text: str) -> str:
    t = _norm(text)
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = words_to_digits(t)
    t = re.sub(r"(\d+(?:\.\d+)?)\s*k\b", lambda m: f"{float(m.group(1)) * 1000:g}", t)
    # "80 not 50", "80 instead of 50": the negated number is not the answer
    t = re.sub(r"\b(?:not|instead of|rather than)\s+(?:£\s*)?\d+(?:\.\d+)?", " ", t)
    return t


def parse_amount(text: str) -> tuple[float, float] | None:
    """A number or range in free text -> (low, high); open ends are +-inf. None if absent.

    '£50', '50 quid', 'fifty', '1,200', '30-50', 'between 30 and 50', 'under 50',
    'up to 50', 'at least 20', '50+', '2k'."""
    t = _prep_numbers(text)
    if re.search(r"\bno (?:limit|budget|max(?:imum)?)\b|\bany (?:price|amount)\b|"
                 r"\bdoesn'?t matter\b|\bwhatever\b", t):
        return (float("-inf"), float("inf"))
    nums = [float(n) for n in re.findall(_NUM, t)]
    if not nums:
        return None
    rng = re.search(rf"(?:between|from)?\s*£?\s*{_NUM}\s*(?:£|gbp|pounds?|quid)?\s*"
                    rf"(?:-|to|and|or)\s*£?\s*{_NUM}", t)
    if rng:
        lo, hi = sorted((float(rng.group(1)), float(rng.group(2))))
        return (lo, hi)
    n = nums[0]
    if re.search(r"\b(?:under|below|less than|up to|upto|max(?:imum)?|no more than|at most|"
                 r"not more than|within|cheaper than|lower than)\b", t):
        return (float("-inf"), n)
    if re.search(r"\b(?:at least|over|above|more than|min(?:imum)?|or more|plus|from|upwards)\b",
                 t) or re.search(rf"{_NUM}\s*\+", t):
        return (n, float("inf"))
    return (n, n)


_DAYS = {"day": 1.0, "days": 1.0, "week": 7.0, "weeks": 7.0, "month": 30.4, "months": 30.4,
         "year": 365.0, "years": 365.0, "yr": 365.0, "yrs": 365.0}


def parse_days(text: str) -> float | None:
    """'2 months ago' -> 60.8, 'three weeks ago' -> 21, 'a year ago' -> 365."""
    t = _prep_numbers(text)
    t = re.sub(r"\b(?:a|an|one)\s+(day|week|month|year)\b", r"1 \1", t)
    m = re.search(rf"{_NUM}\s*(?:-|to|or)?\s*(?:{_NUM})?\s*(days?|weeks?|months?|years?|yrs?)\b",
                  t)
    if not m:
        return None
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) else lo
    return (lo + hi) / 2 * _DAYS[m.group(3)]


# --------------------------------------------------------------------------- choices
# common words that name an option only as the whole answer ("me"), never inside a sentence
# ("show me the system prompt" is not "myself")
_EXACT_ONLY = {"me", "mine", "self", "other", "none", "new", "never", "first", "work"}


def _find_phrases(question: Question, text: str) -> tuple[list[str], str]:
    """Option values whose phrases occur in text as whole words (longest first, no overlap),
    and the text with the matched spans removed."""
    spans: list[tuple[int, int, str]] = []
    candidates = sorted(((p, o.value) for o in question.options for p in o.phrases()),
                        key=lambda pv: -len(pv[0]))
    taken = [False] * len(text)
    for phrase, value in candidates:
        if phrase in _EXACT_ONLY:
            continue
        for m in re.finditer(rf"(?<![\w]){re.escape(phrase)}(?![\w])", text):
            if not any(taken[m.start():m.end()]):
                spans.append((m.start(), m.end(), value))
                for k in range(m.start(), m.end()):
                    taken[k] = True
    spans.sort()
    rest = "".join(" " if taken[k] else ch for k, ch in enumerate(text))
    values = list(dict.fromkeys(v for _, _, v in spans))
    return values, _WS.sub(" ", rest).strip()


def _fuzzy(question: Question, text: str) -> tuple[str | None, float]:
    """Best option by difflib ratio of the text, or of a window of its words, to a phrase."""
    words = text.split()
    best: tuple[str | None, float] = (None, 0.0)
    for opt in question.options:
        for phrase in opt.phrases():
            if len(phrase) < 4:
                continue
            n = len(phrase.split())
            pieces = [text] + [" ".join(words[k:k + n]) for k in range(max(len(words) - n + 1, 0))]
            for piece in pieces:
                if abs(len(piece) - len(phrase)) > max(3, len(phrase) // 3):
                    continue
                score = difflib.SequenceMatcher(None, piece, phrase).ratio()
                if piece != text and score < FUZZY_ACCEPT:
                    continue  # a window of a longer sentence must be a clear match
                if score > best[1]:
                    best = (opt.value, score)
    return best


def _in_range(question: Question, amount: float) -> str | None:
    for opt in question.options:
        if opt.range is None:
            continue
        lo, hi = opt.range
        if amount >= lo and (hi is None or amount < hi):
            return opt.value
    return None


def _range_pick(question: Question, text: str) -> str | None:
    if question.range_unit == "days":
        days = parse_days(text)
        return _in_range(question, days) if days is not None else None
    if question.range_unit == "GBP":
        amount = parse_amount(text)
        if amount is None or amount == (float("-inf"), float("inf")):
            return None
        lo, hi = amount
        point = hi if lo == float("-inf") else lo if hi == float("inf") else (lo + hi) / 2
        if lo == float("-inf"):
            point = max(point - 0.01, 0)  # "under 150" is below 150
        return _in_range(question, point)
    return None


_FILLER = re.compile(r"\b(?:and|or|also|plus|too|as well|maybe|mostly|mainly|i|i'm|im|like|"
                     r"love|really|quite|some|stuff|things|the|a|an|of|for|in|into|with|mainly|"
                     r"probably|interested|my|me|please|think|guess|would|say|it's|its|is|"
                     r"are|all|things|bits|especially|definitely|yes|oh|well|um|hmm|so)\b")


def _failure(code: str, reason: str) -> ParseResult:
    return ParseResult(error=code, reason=reason)


def _looks_foreign(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, ""))
    return latin / len(letters) < 0.5


def _parse_choice(question: Question, text: str) -> ParseResult:
    t = _norm(text)
    labels = {o.value: o.display for o in question.options}
    if question.type == "multi":
        if re.fullmatch(r"(?:all|everything|all of (?:them|it|the above)|any|anything|"
                        r"i like everything|a bit of everything)", t):
            return ParseResult(ok=True, value=[o.value for o in question.options])
        if _NOTHING.match(t) or t in ("none of them", "none of these", "nothing really"):
            return ParseResult(ok=True, value=[])
    exact = [o.value for o in question.options if t in o.phrases()]
    if exact:
        return ParseResult(ok=True, value=exact if question.type == "multi" else exact[0])
    found, rest = _find_phrases(question, t)
    if question.type == "single":
        if len(found) == 1:
            return ParseResult(ok=True, value=found[0])
        if len(found) > 1:
            names = " or ".join(f'"{labels[v]}"' for v in found)
            return _failure("ambiguous", f"that matches more than one answer ({names}); "
                            "please pick one")
        picked = _range_pick(question, t)
        if picked:
            return ParseResult(ok=True, value=picked)
        value, score = _fuzzy(question, t)
        if value and score >= FUZZY_ACCEPT:
            return ParseResult(ok=True, value=value)
        if value and score >= FUZZY_CONFIRM:
            return ParseResult(value=value, confirm=True)
        return _failure("no_match", "that doesn't match one of the answers")
    # multi: phrases found anywhere, then fuzzy on the leftover parts
    values = list(found)
    unmatched = 0
    for part in re.split(r",|;|/|&|\+|\band\b|\bor\b|\bplus\b|\balso\b", rest):
        part = _WS.sub(" ", _FILLER.sub(" ", part)).strip(" .-'")
        if len(part) < 3:
            continue
        value, score = _fuzzy(question, part)
        if value and score >= FUZZY_ACCEPT:
            values.append(value)
        else:
            unmatched += 1
    if not values:
        return _failure("no_match", "I couldn't match that to any of the kinds listed")
    order = {o.value: k for k, o in enumerate(question.options)}
    note = "I couldn't match part of that; add more any time." if unmatched else None
    return ParseResult(ok=True, value=sorted(set(values), key=order.__getitem__), note=note)


def _fmt_money(x: float, unit: str) -> str:
    sym = "£" if unit.upper() == "GBP" else ""
    num = f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"
    return f"{sym}{num}" if sym else f"{num} {unit}".strip()


def _parse_number(question: Question, text: str) -> ParseResult:
    amount = parse_amount(text)
    qlo, qhi = question.bounds
    allowed = f"between {_fmt_money(qlo, question.unit)} and {_fmt_money(qhi, question.unit)}"
    if amount is None:
        return _failure("not_a_number", f"I need a number {allowed}")
    lo, hi = amount
    lo = qlo if lo == float("-inf") else lo
    hi = qhi if hi == float("inf") else hi
    if lo < qlo or hi > qhi or lo > hi:
        return _failure("out_of_range", f"that's outside the range I can use: please give an "
                        f"amount {allowed}")
    as_num = [int(v) if float(v).is_integer() else round(v, 2) for v in (lo, hi)]
    return ParseResult(ok=True, value={"min": as_num[0], "max": as_num[1]})


def parse_answer(question: Question, text: str) -> ParseResult:
    """Free text -> the question's typed value, a skip/don't-know, or a reasoned failure."""
    raw = clean_text(text)
    note = None
    if question.type == "text" and len(raw) > question.max_length:
        raw = raw[: question.max_length].rstrip()
        note = f"I kept the first {question.max_length} characters."
    if len(raw) > MAX_INPUT_CHARS:
        return _failure("too_long", f"that message is very long ({len(raw):,} characters); "
                        "a short answer is all I need")
    t = _norm(raw)
    if not raw:
        return _failure("empty", "I didn't get an answer")
    if not re.search(r"[^\W_]", raw):
        return _failure("no_text", "I can only read words or numbers here, not symbols or emoji")
    if _SKIP.match(t):
        return ParseResult(special="skip")
    if question.type in ("text", "email") and _NOTHING.match(t):
        return ParseResult(special="skip")
    if _DONT_KNOW.search(t):
        # a hedge plus a real answer ("not sure, maybe 50") is the answer
        rest = _DONT_KNOW.sub(" ", t)
        if question.type not in ("text", "yes_no") and re.search(r"[a-z0-9]{2,}", rest):
            attempt = parse_answer(question, rest)
            if attempt.ok:
                return attempt
        if question.type != "text" or _words_in(t) <= 5:
            return ParseResult(special="dont_know")
    if question.type != "text" and _looks_foreign(raw):
        return _failure("language", "I can only understand English answers for now")
    if question.type in CHOICE_TYPES:
        result = _parse_choice(question, t)
    elif question.type == "number":
        result = _parse_number(question, t)
    elif question.type == "yes_no":
        yes, no = bool(_YES.search(t)), bool(_NO.search(t))
        if yes == no:
            result = _failure("not_yes_no", "I need a yes or a no")
        else:
            result = ParseResult(ok=True, value=yes)
    elif question.type == "email":
        found = _EMAIL.findall(raw)
        if len(found) == 1 and len(found[0]) <= 254:
            local, domain = found[0].rsplit("@", 1)
            result = ParseResult(ok=True, value=f"{local}@{domain.lower()}")
        elif len(found) > 1:
            result = _failure("several_emails", "I need just one email address")
        else:
            result = _failure("bad_email", "that doesn't look like an email address "
                              "(name@example.com)")
    else:  # text: stored verbatim (cleaned, cut)
        result = ParseResult(ok=True, value=raw)
    if note and result.ok:
        result.note = note
    return result


def format_answer(question: Question, value: Any) -> str:
    """A stored value as text for people (labels, £ amounts)."""
    if question.type == "single":
        opt = question.option(str(value))
        return opt.display if opt else str(value)
    if question.type == "multi":
        if not value:
            return "none"
        return ", ".join((question.option(v).display if question.option(v) else v)
                         for v in value)
    if question.type == "number" and isinstance(value, dict):
        lo, hi = value["min"], value["max"]
        qlo, qhi = question.bounds

        def f(x: float) -> str:
            return _fmt_money(x, question.unit)

        if lo == hi:
            return f(lo)
        if lo == qlo and hi == qhi:
            return "any amount"
        if lo == qlo:
            return f"up to {f(hi)}"
        if hi == qhi:
            return f"at least {f(lo)}"
        return f"{f(lo)}-{f(hi)}"
    if question.type == "yes_no":
        return "yes" if value else "no"
    return str(value)


# --------------------------------------------------------------------------- engine
def _name(q: Question) -> str:
    """How a question is named in messages: its first alias, else its id."""
    return q.aliases[0] if q.aliases else q.id.replace("_", " ")


def _default_chooser(state: QuestionnaireState, candidates: list[str]) -> str | None:
    return candidates[0]


DEFAULT_WORDING = REPO_ROOT / "prompts" / "questionnaire.yaml"
WORDING_KEYS = (
    "ask_number", "welcome_back", "reask", "skip_after_failures", "ack", "ack_text",
    "ack_skip", "ack_dont_know", "did_you_mean", "say_again", "first_question", "go_back",
    "changed", "cleared", "cannot_change", "pruned", "updated", "summary",
    "summary_not_understood", "just_chat", "identified", "noted",
)

#: How sure we are of a fact, by where it came from (shown on the "what we know" card).
#: said/edited/observed are taken as given; "understood" is a model's reading of a longer
#: sentence (checked by the parser); "inferred" is a rule over order history (e.g. buyer
#: type from units per order).
SOURCE_CONFIDENCE = {"said": 1.0, "edited": 1.0, "observed": 1.0, "understood": 0.8,
                     "inferred": 0.7}


class Wording:
    """The questionnaire's fixed texts: the ``texts:`` of an ops-editable template
    (prompts/questionnaire.yaml). Every key the engine uses must be there."""

    def __init__(self, template: PromptTemplate) -> None:
        missing = [k for k in WORDING_KEYS if k not in template.texts]
        if missing:
            raise TemplateError(
                f"Template '{template.name}' ({template.source}) lacks text(s): "
                + ", ".join(missing),
                "Add them under `texts:` (see prompts/questionnaire.yaml as shipped).")
        self.template = template

    @classmethod
    def load(cls, path: Path | str | None = None) -> Wording:
        return cls(load_template(Path(path or DEFAULT_WORDING)))

    def __call__(self, key: str, **values: Any) -> str:
        return self.template.text(key, **values).strip()


_SHIPPED_WORDING: Wording | None = None


def shipped_wording() -> Wording:
    global _SHIPPED_WORDING
    if _SHIPPED_WORDING is None:
        _SHIPPED_WORDING = Wording.load()
    return _SHIPPED_WORDING


class Questionnaire:
    """The state machine over a spec. Stateless itself: every call takes the state."""

    def __init__(self, spec: QuestionnaireSpec, chooser: Chooser | None = None,
                 wording: Wording | None = None) -> None:
        self.spec = spec
        self.chooser = chooser or _default_chooser
        self.say = wording or shipped_wording()
        self._aliases = sorted(((_norm(a), q.id) for q in spec.questions
                                for a in [*q.aliases, q.id.replace("_", " ")]),
                               key=lambda aq: -len(aq[0]))

    # ---- eligibility
    def is_shown(self, state: QuestionnaireState, qid: str) -> bool:
        q = self.spec.question(qid)
        for ref, wanted in q.show_if.items():
            if ref in state.skipped or ref not in state.answers:
                return False
            have = state.answers[ref]
            wants = [wanted] if isinstance(wanted, str) else wanted
            have_list = have if isinstance(have, list) else [have]
            if not any(w in have_list for w in wants):
                return False
        return True

    def eligible(self, state: QuestionnaireState) -> list[str]:
        return [q.id for q in self.spec.questions if self.is_shown(state, q.id)]

    def candidates(self, state: QuestionnaireState) -> list[str]:
        """Eligible questions neither answered nor skipped, in spec order."""
        return [qid for qid in self.eligible(state)
                if qid not in state.answers and qid not in state.skipped]

    def remaining(self, state: QuestionnaireState) -> list[str]:
        return self.candidates(state)

    def progress(self, state: QuestionnaireState) -> Progress:
        shown = self.eligible(state)
        answered = sum(1 for q in shown if q in state.answers or q in state.skipped)
        return Progress(answered=answered, total=len(shown))

    def _prune(self, state: QuestionnaireState) -> list[str]:
        """Drop answers to questions that are no longer shown (spec order, so a dropped
        answer hides what depended on it too). Returns the dropped ids."""
        dropped = []
        for q in self.spec.questions:
            if not self.is_shown(state, q.id) and (q.id in state.answers
                                                   or q.id in state.skipped):
                state.answers.pop(q.id, None)
                state.skipped.pop(q.id, None)
                state.sources.pop(q.id, None)
                dropped.append(q.id)
        if state.current and not self.is_shown(state, state.current):
            state.current = None
        if state.pending and not self.is_shown(state, state.pending.question_id):
            state.pending = None
        return dropped

    # ---- turns
    def _quick_replies(self, state: QuestionnaireState, q: Question) -> list[str]:
        replies = [o.display for o in q.options] if q.type in CHOICE_TYPES else []
        if q.type == "yes_no":
            replies = ["Yes", "No"]
        if not q.required or state.failures.get(q.id, 0) >= FAILURES_BEFORE_OFFER:
            replies += [SKIP_LABEL] + ([DONT_KNOW_LABEL] if q.type not in ("text", "email")
                                       else [])
        return replies

    def _ask(self, state: QuestionnaireState, qid: str, prefix: str = "",
             **extra: Any) -> Turn:
        q = self.spec.question(qid)
        state.current = qid
        state.done = False
        state.confirmed = False
        if qid not in state.asked:
            state.asked.append(qid)
        text = self.question_text(q)
        message = f"{prefix}\n\n{text}".strip() if prefix else text
        return Turn(message=message, question_id=qid, quick_replies=self._quick_replies(state, q),
                    progress=self.progress(state), prefix=prefix, ask=text, **extra)

    def question_text(self, q: Question) -> str:
        """The question as asked (a number question shows its range)."""
        if q.type != "number":
            return q.text
        lo, hi = q.bounds
        return self.say("ask_number", question=q.text, low=_fmt_money(lo, q.unit),
                        high=_fmt_money(hi, q.unit))

    def summary(self, state: QuestionnaireState) -> list[SummaryItem]:
        items = []
        for qid in self.eligible(state):
            q = self.spec.question(qid)
            if qid in state.answers:
                answer = format_answer(q, state.answers[qid])
            elif qid in state.skipped:
                answer = "don't know" if state.skipped[qid] == "dont_know" else "skipped"
            else:
                answer = "not asked"
            items.append(SummaryItem(question_id=qid, question=q.text, answer=answer,
                                     source=state.sources.get(qid, "")))
        return items

    def _summary_turn(self, state: QuestionnaireState, prefix: str = "", **extra: Any) -> Turn:
        state.current = None
        state.done = True
        items = self.summary(state)
        more = self.remaining(state)
        body = self.say("summary", more=len(more),
                        items=[{"question": i.question, "answer": i.answer}
                               for i in items if i.answer != "not asked"])
        message = f"{prefix}\n\n{body}".strip() if prefix else body
        replies = ["Confirm", "Go back"] + (["More questions"] if more else [])
        return Turn(message=message, quick_replies=replies, progress=self.progress(state),
                    summary=items, done=True, **extra)

    def _advance(self, state: QuestionnaireState, prefix: str = "") -> Turn:
        self._prune(state)
        if state.current and state.current not in state.answers \
                and state.current not in state.skipped:
            return self._ask(state, state.current, prefix)
        cands = self.candidates(state)
        if not cands:
            state.stopped_early = False
            return self._summary_turn(state, prefix)
        nxt = self.chooser(state, list(cands))
        if nxt is None and state.extended:
            nxt = cands[0]
        if nxt is None:
            state.stopped_early = True
            return self._summary_turn(state, prefix)
        if nxt not in cands:
            raise ValueError(f"chooser returned {nxt!r}, not one of {cands}")
        return self._ask(state, nxt, prefix)

    def start(self, state: QuestionnaireState) -> Turn:
        """The first (or, on resume, the current) question or the summary."""
        if state.done:
            return self._summary_turn(state)
        prefix = self.spec.intro if not state.asked else self.say("welcome_back")
        return self._advance(state, prefix)

    def _store(self, state: QuestionnaireState, qid: str, result: ParseResult,
               source: str) -> None:
        if result.special:
            state.answers.pop(qid, None)
            state.skipped[qid] = result.special
        else:
            state.answers[qid] = result.value
            state.skipped.pop(qid, None)
        state.sources[qid] = source
        state.confirmed = False
        if state.pending and state.pending.question_id == qid:
            state.pending = None

    def _ack(self, q: Question, result: ParseResult) -> str:
        if result.special == "dont_know":
            return self.say("ack_dont_know")
        if result.special == "skip":
            return self.say("ack_skip")
        text = self.say("ack_text") if q.type == "text" else \
            self.say("ack", answer=format_answer(q, result.value))
        return f"{text} {result.note}" if result.note else text

    def _reask(self, state: QuestionnaireState, q: Question, result: ParseResult) -> Turn:
        n = state.failures.get(q.id, 0) + 1
        state.failures[q.id] = n
        if n > FAILURES_BEFORE_OFFER and not q.required:
            self._store(state, q.id, ParseResult(special="skip"), "skipped after failed tries")
            turn = self._advance(state, self.say("skip_after_failures"))
            turn.error, turn.reason = result.error, result.reason
            return turn
        text = self.say("reask", reason=result.reason or "I couldn't use that",
                        help=q.help or "", example=q.example or "",
                        offer_skip=n >= FAILURES_BEFORE_OFFER)
        return self._ask(state, q.id, text, error=result.error, reason=result.reason)

    def _correction(self, state: QuestionnaireState, text: str
                    ) -> tuple[str, ParseResult, bool] | None:
        """'actually my budget is 50', 'change my region to Europe' -> (question, parse,
        whether the wording was explicitly a correction)."""
        t = _norm(text)
        cue = _CORRECTION_CUE.match(t)
        head = t[cue.end():] if cue else t
        explicit = bool(cue and cue.group(0).strip())
        for alias, qid in self._aliases:
            m = re.match(rf"(?:(?:my|the|our)\s+)?{re.escape(alias)}\b\s*"
                         r"(?:(?:is|was|are|were|should be|to|=|:|-)\s+|[:=]\s*)?"
                         r"(?:actually\s+)?(?:(?:is|to)\s+)?(.+)$", head)
            if not m:
                continue
            rest = m.group(1).strip()
            if not rest:
                return None
            if not self.is_shown(state, qid):
                return (qid, _failure("not_shown", "that question doesn't apply to your "
                                      "answers"), explicit)
            return (qid, parse_answer(self.spec.question(qid), rest), explicit)
        return None

    def _go_back(self, state: QuestionnaireState) -> Turn:
        shown = [q for q in state.asked if self.is_shown(state, q)]
        before = shown[: shown.index(state.current)] if state.current in shown else shown
        state.pending = None
        if not before:
            if state.current:
                return self._ask(state, state.current, self.say("first_question"))
            return self._advance(state)
        prev = before[-1]
        q = self.spec.question(prev)
        answer = format_answer(q, state.answers[prev]) if prev in state.answers else ""
        return self._ask(state, prev, self.say("go_back", answer=answer))

    def handle(self, state: QuestionnaireState, text: str,
               extracted: dict[str, Any] | None = None) -> Turn:
        """One message from the person -> the next turn (mutates ``state``).

        ``extracted``: answers a model read from the same message ({question id: value});
        each is checked like a typed answer and kept only when it parses (source
        "understood"); the deterministic parse of the current question wins."""
        raw = clean_text(text if isinstance(text, str) else str(text))
        t = _norm(raw)
        current = self.spec.question(state.current) if state.current else None
        if len(raw) > MAX_INPUT_CHARS and not (current and current.type == "text"):
            reason = (f"that message is very long ({len(raw):,} characters); a short answer "
                      "is all I need")
            if current:
                return self._reask(state, current, _failure("too_long", reason))
            return self._status(state, "too_long", reason)
        if state.pending:
            pending = state.pending
            q = self.spec.question(pending.question_id)
            if _YES.fullmatch(t) or t in ("yes please", "yes it is", "that's right"):
                result = ParseResult(ok=True, value=pending.value)
                self._store(state, q.id, result, "said")
                return self._advance(state, self._ack(q, result))
            state.pending = None
            if _NO.fullmatch(t) or t in ("no it isn't", "not that", "wrong"):
                return self._ask(state, q.id, self.say("say_again"))
        if _GO_BACK.match(t):
            return self._go_back(state)
        fix = self._correction(state, raw)
        if fix is not None:
            qid, result, explicit = fix
            if qid != state.current and (result.ok or result.special):
                if result.special and not explicit:
                    fix = None
                else:
                    q = self.spec.question(qid)
                    self._store(state, qid, result, "said")
                    dropped = self._prune(state)
                    msg = (self.say("changed", name=_name(q),
                                    answer=format_answer(q, result.value)) if result.ok
                           else self.say("cleared", name=_name(q)))
                    if dropped:
                        msg += " " + self.say("pruned")
                    return self._advance(state, msg)
            elif qid != state.current and explicit:
                q = self.spec.question(qid)
                return self._status(state, result.error or "not_understood",
                                    self.say("cannot_change", name=_name(q),
                                             reason=result.reason or "I didn't understand"))
        if state.done:
            if _CONFIRM.match(t):
                turn = self._summary_turn(state, confirmed=True)
                state.confirmed = True
                turn.quick_replies = []
                turn.message = self.spec.outro
                return turn
            if _MORE.match(t) and self.remaining(state):
                state.extended = True
                return self._advance(state)
            return self._summary_turn(
                state, self.say("summary_not_understood"), error="not_understood",
                reason="say \"confirm\" or name what to change, e.g. \"change my region to "
                "Europe\"")
        if current is None:
            return self._advance(state, self.spec.intro if not state.asked else "")
        result = parse_answer(current, raw)
        if (fix is not None and fix[0] == current.id and not result.ok
                and (fix[1].ok or fix[1].special)):
            result = fix[1]  # "my budget is 50" answering the budget question
        source = "said"
        if extracted and not (result.ok or result.special) and current.id in extracted:
            alt = self._coerce_loose(current, extracted[current.id])
            if alt.ok:
                result, source = alt, "understood"
        noted = self._apply_extracted(state, extracted or {}, exclude=current.id)
        if noted:
            noted = self.say("noted", answer=noted)
        if result.confirm:
            state.pending = Pending(question_id=current.id, value=result.value)
            shown = format_answer(current, result.value)
            return Turn(message=self.say("did_you_mean", answer=shown), question_id=current.id,
                        quick_replies=["Yes", "No"], progress=self.progress(state))
        if result.ok or result.special:
            self._store(state, current.id, result, source)
            return self._advance(state, " ".join(filter(None, [self._ack(current, result),
                                                               noted])))
        turn = self._reask(state, current, result)
        if noted:
            turn.message, turn.prefix = f"{noted} {turn.message}", f"{noted} {turn.prefix}"
        return turn

    def _apply_extracted(self, state: QuestionnaireState, extracted: dict[str, Any],
                         exclude: str | None) -> str:
        """Store the valid extracted answers to questions not answered yet (spec order, so
        branching sees earlier ones); returns them formatted ("region Europe, budget £50")."""
        kept = []
        for q in self.spec.questions:
            if q.id == exclude or q.id not in extracted or q.id in state.answers \
                    or not self.is_shown(state, q.id):
                continue
            result = self._coerce_loose(q, extracted[q.id])
            if result.ok:
                self._store(state, q.id, result, "understood")
                kept.append(f"{_name(q)} {format_answer(q, result.value)}")
        if kept:
            self._prune(state)
        return ", ".join(kept)

    def _coerce_loose(self, q: Question, value: Any) -> ParseResult:
        """A model's value: the typed value, else its text through the parser."""
        if value is None or value == "" or value == []:
            return _failure("empty", "no value")
        result = self._coerce(q, value)
        if result.ok:
            return result
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        result = parse_answer(q, str(value))
        return result if result.ok and not result.confirm else _failure("invalid", "no match")

    def dismiss(self, state: QuestionnaireState) -> Turn:
        """The person chose to just chat: stop asking (the card keeps what was said)."""
        state.dismissed = True
        state.current = None
        state.pending = None
        return Turn(message=self.say("just_chat"), progress=self.progress(state), done=True)

    def _status(self, state: QuestionnaireState, code: str, reason: str) -> Turn:
        """Re-show where we are (question or summary) with a reason; no failure counted."""
        prefix = f"Sorry, {reason}."
        if state.done:
            return self._summary_turn(state, prefix, error=code, reason=reason)
        if state.current:
            return self._ask(state, state.current, prefix, error=code, reason=reason)
        turn = self._advance(state, prefix)
        turn.error, turn.reason = code, reason
        return turn

    def edit(self, state: QuestionnaireState, question_id: str, value_or_text: Any,
             source: str = "edited") -> Turn:
        """Change one answer (from the summary card, or a value observed elsewhere): a
        typed value or text to parse. Re-evaluates branching; unknown or hidden questions
        are an ``InputError``; a value that does not parse returns a Turn with ``error``."""
        q = self.spec.question(question_id)
        if not self.is_shown(state, question_id):
            raise InputError(f"The question '{question_id}' does not apply to these answers.",
                             "Change the answer it depends on first.")
        result = self._coerce(q, value_or_text)
        if not (result.ok or result.special):
            return self._status(state, result.error or "invalid", result.reason or "invalid")
        self._store(state, q.id, result, source)
        if state.current == q.id:
            state.current = None
        dropped = self._prune(state)
        msg = self.say("updated", question=q.text,
                       answer=format_answer(q, result.value) if result.ok else "skipped")
        if dropped:
            msg += " " + self.say("pruned")
        return self._advance(state, msg)

    def _coerce(self, q: Question, value: Any) -> ParseResult:
        if isinstance(value, str):
            if q.type == "single" and q.option(value):
                return ParseResult(ok=True, value=value)
            return parse_answer(q, value)
        if q.type == "multi" and isinstance(value, list | tuple):
            bad = [v for v in value if q.option(str(v)) is None]
            if bad:
                return _failure("no_match", f"{len(bad)} value(s) are not options of "
                                f"'{q.id}'")
            order = {o.value: k for k, o in enumerate(q.options)}
            return ParseResult(ok=True, value=sorted(set(value), key=order.__getitem__))
        if q.type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return _parse_number(q, str(value))
        if q.type == "number" and isinstance(value, dict) and {"min", "max"} <= set(value):
            return _parse_number(q, f"{value['min']} - {value['max']}")
        if q.type == "yes_no" and isinstance(value, bool):
            return ParseResult(ok=True, value=value)
        return _failure("invalid", f"that is not a valid value for '{q.id}'")

    # ---- outputs
    def answers_for_classifier(self, state: QuestionnaireState) -> dict[str, Any]:
        return answers_for_classifier(state)

    def profile_facts(self, state: QuestionnaireState) -> dict[str, Any]:
        """{profile_field: value} for every answered, shown question."""
        return {self.spec.question(qid).profile_field: value
                for qid, value in state.answers.items()
                if qid in self.spec.ids and self.is_shown(state, qid)}


def answers_for_classifier(state: QuestionnaireState) -> dict[str, Any]:
    """The answers in the format ``segmentation.input_row`` expects: {question id: option
    value, ..., "interests": [group names]}; skipped / don't know are left out."""
    out: dict[str, Any] = {}
    for qid in CLASSIFIER_QUESTIONS:
        if qid in state.answers and qid not in state.skipped:
            value = state.answers[qid]
            out[qid] = list(value) if qid == "interests" else value
    return out


# --------------------------------------------------------------------------- the model's part
_MAX_PHRASING = 200
_LEAK = re.compile(r"\{\{|\}\}|<<<|>>>|\bsystem\b|\binstruction|\bprompt\b", re.IGNORECASE)
PHRASING_MIN_SIMILARITY = 0.5  # MiniLM cosine, spec text vs phrasing (measured: good
# paraphrases 0.57-0.83, an unrelated question 0.22, off-topic chatter -0.03)


def check_phrasing(original: str, raw: str, similarity: Callable[[str, str], float]) -> str:
    """The model's phrasing of a question, or "" when it must not be shown: empty, long,
    not a question, template debris, or off-topic (embedding similarity to the original)."""
    lines = [ln.strip() for ln in (raw or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    text = re.sub(r"^(?:question|rewritten|rephrased)\s*:\s*", "", lines[0], flags=re.I)
    text = text.strip().strip('"“”\'').strip()
    if not (8 <= len(text) <= _MAX_PHRASING) or not text.endswith("?") or _LEAK.search(text):
        return ""
    return text if similarity(original, text) >= PHRASING_MIN_SIMILARITY else ""


def describe_questions(spec: QuestionnaireSpec, ids: list[str]) -> str:
    """One line per question for the extraction prompt: id, kind and allowed values."""
    lines = []
    for qid in ids:
        q = spec.question(qid)
        values = " | ".join(f'"{o.value}"' for o in q.options)
        kind = {
            "single": f"one of {values}",
            "multi": f"several of {values}",
            "number": f"a number in {q.unit or 'units'} from {q.bounds[0]:g} to "
                      f"{q.bounds[1]:g}" if q.type == "number" else "",
            "yes_no": "true or false",
            "text": "short free text",
            "email": "an email address",
        }[q.type]
        lines.append(f"- {q.id}: {q.text} ({kind})")
    return "\n".join(lines)


def parse_extraction(raw: str, allowed: list[str]) -> dict[str, Any]:
    """The JSON object in a model's reply, keeping only the allowed question ids."""
    start, end = (raw or "").find("{"), (raw or "").rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        data = json.loads(raw[start:end + 1])
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in allowed and v not in (None, "", [])}
