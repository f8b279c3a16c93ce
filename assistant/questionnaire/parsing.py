"""Free text -> a question's typed value (``parse_answer``), and back (``format_answer``).

Parsing free text: exact option value/label/synonym; otherwise option phrases found in the
sentence as whole words (longest match wins, so "more than once a month" is not "once a
month"); otherwise a number inside an option's ``range`` ("about £200" -> "£150-£300", "2
months ago" -> "1-3 months ago"); otherwise a fuzzy match (difflib ratio of the answer or of
a same-length window of its words against every option phrase of 4+ characters): ratio >=
``FUZZY_ACCEPT`` (0.8: one typo in a five-letter word) is accepted; for the whole answer (not
a window of a longer sentence) ``FUZZY_CONFIRM`` (0.65) up to that asks "Did you mean ...?"
first; lower is not understood.

Safety: answers are data. Control characters are stripped (``clean_answer``), messages over
``MAX_INPUT_CHARS`` are refused (a ``text`` answer is cut to its ``max_length`` instead), and
emoji-only or non-Latin text is a reasoned failure.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from assistant.core.text import clean_text
from assistant.questionnaire.numbers import format_money, parse_amount, parse_days
from assistant.questionnaire.spec import (
    CHOICE_TYPES,
    MAX_INPUT_CHARS,
    Question,
    QuestionnaireSpec,
    norm,
)

FUZZY_ACCEPT = 0.8
FUZZY_CONFIRM = 0.65


class ParseResult(BaseModel):
    ok: bool = False
    value: Any = None
    special: Literal["skip", "dont_know"] | None = None
    confirm: bool = False  # a fuzzy match to confirm before storing
    error: str | None = None
    reason: str | None = None
    note: str | None = None  # e.g. "I kept the first 500 characters"


_WS = re.compile(r"\s+")


def clean_answer(text: str) -> str:
    """Remove control and format characters (zero-width, bidi overrides) but keep newlines."""
    return clean_text(str(text), normalize=None, drop="controls")


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
YES_PATTERN = re.compile(r"\b(?:yes|y|yeah|yep|yup|sure|of course|definitely|certainly|"
                         r"absolutely|ok|okay|please do|indeed|correct|right)\b")
NO_PATTERN = re.compile(r"\b(?:no|n|nope|nah|not really|no thanks|never|negative|don'?t)\b")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}")


def _words_in(text: str) -> int:
    return len(re.findall(r"[a-z0-9]+", text))


# common words that name an option only as the whole answer ("me"), never inside a sentence
# ("show me the system prompt" is not "myself")
EXACT_ONLY = {"me", "mine", "self", "other", "none", "new", "never", "first", "work"}


def _find_phrases(question: Question, text: str) -> tuple[list[str], str]:
    """Option values whose phrases occur in text as whole words (longest first, no overlap),
    and the text with the matched spans removed."""
    spans: list[tuple[int, int, str]] = []
    candidates = sorted(((p, o.value) for o in question.options for p in o.phrases()),
                        key=lambda pv: -len(pv[0]))
    taken = [False] * len(text)
    for phrase, value in candidates:
        if phrase in EXACT_ONLY:
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


def failure(code: str, reason: str) -> ParseResult:
    return ParseResult(error=code, reason=reason)


def _looks_foreign(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, ""))
    return latin / len(letters) < 0.5


def _parse_choice(question: Question, text: str) -> ParseResult:
    t = norm(text)
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
            return failure("ambiguous", f"that matches more than one answer ({names}); "
                            "please pick one")
        picked = _range_pick(question, t)
        if picked:
            return ParseResult(ok=True, value=picked)
        value, score = _fuzzy(question, t)
        if value and score >= FUZZY_ACCEPT:
            return ParseResult(ok=True, value=value)
        if value and score >= FUZZY_CONFIRM:
            return ParseResult(value=value, confirm=True)
        return failure("no_match", "that doesn't match one of the answers")
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
        return failure("no_match", "I couldn't match that to any of the kinds listed")
    order = {o.value: k for k, o in enumerate(question.options)}
    note = "I couldn't match part of that; add more any time." if unmatched else None
    return ParseResult(ok=True, value=sorted(set(values), key=order.__getitem__), note=note)


def parse_number(question: Question, text: str) -> ParseResult:
    amount = parse_amount(text)
    qlo, qhi = question.bounds
    allowed = f"between {format_money(qlo, question.unit)} and {format_money(qhi, question.unit)}"
    if amount is None:
        return failure("not_a_number", f"I need a number {allowed}")
    lo, hi = amount
    lo = qlo if lo == float("-inf") else lo
    hi = qhi if hi == float("inf") else hi
    if lo < qlo or hi > qhi or lo > hi:
        return failure("out_of_range", f"that's outside the range I can use: please give an "
                        f"amount {allowed}")
    as_num = [int(v) if float(v).is_integer() else round(v, 2) for v in (lo, hi)]
    return ParseResult(ok=True, value={"min": as_num[0], "max": as_num[1]})


def parse_answer(question: Question, text: str) -> ParseResult:
    """Free text -> the question's typed value, a skip/don't-know, or a reasoned failure."""
    raw = clean_answer(text)
    note = None
    if question.type == "text" and len(raw) > question.max_length:
        raw = raw[: question.max_length].rstrip()
        note = f"I kept the first {question.max_length} characters."
    if len(raw) > MAX_INPUT_CHARS:
        return failure("too_long", f"that message is very long ({len(raw):,} characters); "
                        "a short answer is all I need")
    t = norm(raw)
    if not raw:
        return failure("empty", "I didn't get an answer")
    if not re.search(r"[^\W_]", raw):
        return failure("no_text", "I can only read words or numbers here, not symbols or emoji")
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
        return failure("language", "I can only understand English answers for now")
    if question.type in CHOICE_TYPES:
        result = _parse_choice(question, t)
    elif question.type == "number":
        result = parse_number(question, t)
    elif question.type == "yes_no":
        yes, no = bool(YES_PATTERN.search(t)), bool(NO_PATTERN.search(t))
        if yes == no:
            result = failure("not_yes_no", "I need a yes or a no")
        else:
            result = ParseResult(ok=True, value=yes)
    elif question.type == "email":
        found = _EMAIL.findall(raw)
        if len(found) == 1 and len(found[0]) <= 254:
            local, domain = found[0].rsplit("@", 1)
            result = ParseResult(ok=True, value=f"{local}@{domain.lower()}")
        elif len(found) > 1:
            result = failure("several_emails", "I need just one email address")
        else:
            result = failure("bad_email", "that doesn't look like an email address "
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
            return format_money(x, question.unit)

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



def coerce_value(q: Question, value: Any) -> ParseResult:
    """A typed value (an option value, a list of them, a number, a bool) or text to parse."""
    if isinstance(value, str):
        if q.type == "single" and q.option(value):
            return ParseResult(ok=True, value=value)
        return parse_answer(q, value)
    if q.type == "multi" and isinstance(value, list | tuple):
        bad = [v for v in value if q.option(str(v)) is None]
        if bad:
            return failure("no_match", f"{len(bad)} value(s) are not options of "
                           f"'{q.id}'")
        order = {o.value: k for k, o in enumerate(q.options)}
        return ParseResult(ok=True, value=sorted(set(value), key=order.__getitem__))
    if q.type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return parse_number(q, str(value))
    if q.type == "number" and isinstance(value, dict) and {"min", "max"} <= set(value):
        return parse_number(q, f"{value['min']} - {value['max']}")
    if q.type == "yes_no" and isinstance(value, bool):
        return ParseResult(ok=True, value=value)
    return failure("invalid", f"that is not a valid value for '{q.id}'")


def coerce_loose(q: Question, value: Any) -> ParseResult:
    """A model's value: the typed value, else its text through the parser."""
    if value is None or value == "" or value == []:
        return failure("empty", "no value")
    result = coerce_value(q, value)
    if result.ok:
        return result
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    result = parse_answer(q, str(value))
    return result if result.ok and not result.confirm else failure("invalid", "no match")


def describe_answers(spec: QuestionnaireSpec, answers: dict[str, Any],
                     order: Sequence[str] | None = None) -> str:
    """Answers in words, with the spec's labels: "Shopping: for myself or as gifts.
    Interests: candles and lights." (``order``: which questions, in that order; default all
    answered, in spec order)."""
    parts = []
    for qid in order if order is not None else spec.ids:
        if qid in answers and qid in spec.ids:
            q = spec.question(qid)
            label = (q.aliases[0] if q.aliases else qid.replace("_", " ")).capitalize()
            parts.append(f"{label}: {format_answer(q, answers[qid])}.")
    return " ".join(parts)
