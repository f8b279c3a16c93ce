"""Facts from a whole message: every question the vocabulary reads (``data/vocabulary.yaml``)
is looked for in every free-text message, whatever question is pending ("a birthday present
for my mum, she loves candles, about £20" answers the occasion, the recipient, the interests
and the budget at once).

Deterministic: the spec's option phrases plus the vocabulary's, whole words, longest first;
negated phrases are left out; a single-answer question takes a value only when the message
names exactly one; a word one typo away from a one-word phrase counts. Budgets are amounts
with a currency or a bare number after a budget word, never order numbers, quantities, ages,
dates or percentages; the last one said wins. Every value is checked by the same parser as a
typed answer (``coerce_value`` / ``parse_answer``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from spellchecker import SpellChecker

from assistant.core.config import REPO_ROOT
from assistant.core.errors import ConfigError
from assistant.core.yamlfile import line_of, read_config_file
from assistant.questionnaire.numbers import prepare_numbers
from assistant.questionnaire.parsing import EXACT_ONLY, coerce_value, format_answer, parse_answer
from assistant.questionnaire.spec import Question, QuestionnaireSpec, norm

DEFAULT_VOCABULARY = REPO_ROOT / "data" / "vocabulary.yaml"
HINT = "The layout is documented at the top of data/vocabulary.yaml."
BUDGET = "budget"
_CURRENCY_SIGNS = {"£", "$", "€"}
_CURRENCY_CODES = {"gbp", "eur", "usd"}
_CURRENCY_WORDS = {"pounds", "pound", "quid", "gbp", "euros", "euro", "eur", "dollars",
                   "dollar", "usd", "bucks", "pounds'"}
_UNDER = re.compile(r"\b(?:nothing (?:over|above|more than)|not (?:over|above)|under|below|"
                    r"up to|upto|max|maximum|less than|no more than|not more than|at most|"
                    r"cheaper than|within|no more)\b")
# "don't want to go over £15", "won't spend more than 20": an upper bound
_NOT_OVER = re.compile(r"\b(?:not|don't|dont|won't|wont|never|can't|cant)\s+(?:\w+\s+){0,3}?"
                       r"(?:over|above|more than|beyond)$")
# the words after an amount that make it a price per item ("£8 each", "£2 per jar")
_PER_ITEM = re.compile(r"^(?:each|apiece|per\b|a (?:head|unit|piece|person|item|gift|pop)\b"
                       r"|an item\b|for each\b)")
# hedges between a word and its amount ("was about £600"): skipped when reading the word
_AMOUNT_HEDGES = {"about", "around", "roughly", "approx", "approximately", "~", "like", "only",
                  "just", "nearly", "almost", "over", "under", "circa", "some"}
_AT_LEAST = re.compile(r"\b(?:at least|over|above|more than|min|minimum|from|upwards of)\b")
_CORRECTING = re.compile(r"\b(?:actually|make it|or rather|i mean|no wait|sorry|rather)\b")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_DESCRIBES_BUSINESS = re.compile(r"\s+(?:shop|store|business|company|boutique|stall)\b")
# someone else's possessive right before a phrase: "her shop", "my son's shop"
_OTHERS = re.compile(r"(?:\b(?:his|her|their)|\w's|\ws')\s+(?:\w+\s+)?$")
_PROPER = {"Christmas", "Europe", "United", "UK"}
_HEDGES = re.compile(r"\b(?:not|no)\s+(?:sure|certain|idea)\b")


class Vocabulary(BaseModel):
    """The layout of ``data/vocabulary.yaml`` (see its header)."""

    model_config = ConfigDict(extra="forbid")
    version: int = 1
    read: list[str] = Field(default_factory=list)
    typo_ratio: float = Field(0.85, ge=0.5, le=1.0)
    money_words: dict[str, str] = Field(default_factory=dict)
    budget_words: list[str] = Field(default_factory=list)
    not_budget_before: list[str] = Field(default_factory=list)
    not_budget_after: list[str] = Field(default_factory=list)
    negations: list[str] = Field(default_factory=list)
    not_in_sentences: dict[str, list[str]] = Field(default_factory=dict)
    phrases: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    implies: dict[str, dict[str, str]] = Field(default_factory=dict)
    overrides: dict[str, dict[str, str]] = Field(default_factory=dict)
    patterns: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)
    people: list[str] = Field(default_factory=list)
    not_after: dict[str, list[str]] = Field(default_factory=dict)
    own_only: list[str] = Field(default_factory=list)
    yields_to: dict[str, list[str]] = Field(default_factory=dict)
    not_budget_near: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Found:
    """A fact read from a message: the question, its typed value, the words that named it."""

    question_id: str
    value: Any
    phrase: str


def _problem(path: Path, root: Any, loc: tuple[Any, ...], message: str) -> ConfigError:
    line = line_of(root, loc)
    where = f"{path}:{line}" if line else str(path)
    return ConfigError(f"Vocabulary {where}: {message}.", HINT)


def _read(path: Path) -> tuple[Vocabulary, Any]:
    data, root = read_config_file(path, what="Vocabulary", default="data/vocabulary.yaml")
    try:
        return Vocabulary.model_validate(data if isinstance(data, dict) else {}), root
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _problem(path, root, tuple(err["loc"]), err["msg"]) from None


def load_vocabulary(spec: QuestionnaireSpec, path: Path | str | None = None) -> Vocabulary:
    """Read the vocabulary and check it against the spec: a problem is a ``ConfigError``
    naming file:line."""
    path = Path(path) if path is not None else DEFAULT_VOCABULARY
    vocab, root = _read(path)
    for key, section in (("read", vocab.read), ("not_in_sentences", vocab.not_in_sentences),
                         ("phrases", vocab.phrases), ("implies", vocab.implies)):
        for qid in section:
            if qid not in spec.ids:
                loc = (key, vocab.read.index(qid)) if key == "read" else (key, qid)
                raise _problem(path, root, loc, f"'{qid}' is not a question of the spec")
    for qid, options in vocab.phrases.items():
        q = spec.question(qid)
        for value in options:
            if q.option(value) is None:
                raise _problem(path, root, ("phrases", qid, value),
                               f"'{value}' is not an option of '{qid}'")
    for key in ("implies", "overrides"):
        for qid, implied in getattr(vocab, key).items():
            for target, value in implied.items():
                if target not in spec.ids or not coerce_value(spec.question(target), value).ok:
                    raise _problem(path, root, (key, qid, target),
                                   f"'{target}: {value}' is not a question and one of its "
                                   "options")
    for qid, options in vocab.patterns.items():
        for value, regexes in options.items():
            q = spec.question(qid) if qid in spec.ids else None
            if q is None or q.option(value) is None:
                raise _problem(path, root, ("patterns", qid, value),
                               f"'{qid}: {value}' is not a question and one of its options")
            for k, rx in enumerate(regexes):
                try:
                    re.compile(rx)
                except re.error as exc:
                    raise _problem(path, root, ("patterns", qid, value, k),
                                   f"'{rx}' is not a valid regular expression ({exc})") from None
    for qid in vocab.not_after:
        if qid not in spec.ids:
            raise _problem(path, root, ("not_after", qid), f"'{qid}' is not a question of the spec")
    for k, qid in enumerate(vocab.own_only):
        if qid not in spec.ids:
            raise _problem(path, root, ("own_only", k), f"'{qid}' is not a question of the spec")
    for qid, others in vocab.yields_to.items():
        for other in [qid, *others]:
            if other not in spec.ids:
                raise _problem(path, root, ("yields_to", qid),
                               f"'{other}' is not a question of the spec")
    return vocab


def fitted(spec: QuestionnaireSpec, vocab: Vocabulary) -> Vocabulary:
    """The vocabulary without the questions and options this spec lacks."""
    ids = set(spec.ids)

    def known(qid: str, value: str) -> bool:
        return qid in ids and spec.question(qid).option(value) is not None

    implies = {q: {t: v for t, v in targets.items() if t in ids
                   and coerce_value(spec.question(t), v).ok}
               for q, targets in vocab.implies.items() if q in ids}
    patterns = {q: {v: rx for v, rx in opts.items() if known(q, v)}
                for q, opts in vocab.patterns.items() if q in ids}
    return vocab.model_copy(update={
        "patterns": {q: p for q, p in patterns.items() if p},
        "yields_to": {q: [o for o in others if o in ids] for q, others in vocab.yields_to.items()
                      if q in ids},
        "overrides": {q: {t: v for t, v in targets.items() if t in ids
                          and coerce_value(spec.question(t), v).ok}
                      for q, targets in vocab.overrides.items() if q in ids},
        "read": [q for q in vocab.read if q in ids],
        "own_only": [q for q in vocab.own_only if q in ids],
        "not_after": {q: w for q, w in vocab.not_after.items() if q in ids},
        "not_in_sentences": {q: w for q, w in vocab.not_in_sentences.items() if q in ids},
        "phrases": {q: {v: w for v, w in opts.items() if known(q, v)}
                    for q, opts in vocab.phrases.items() if q in ids},
        "implies": {q: t for q, t in implies.items() if t},
    })


_FILE: Vocabulary | None = None


def load_vocabulary_file() -> Vocabulary:
    """The shipped vocabulary as read (not checked against a spec), read once."""
    global _FILE
    if _FILE is None:
        _FILE = _read(DEFAULT_VOCABULARY)[0]
    return _FILE


def _words(phrases: list[str]) -> list[str]:
    return [p for p in (norm(x) for x in phrases) if p]


@cache
def _english() -> frozenset[str]:
    """English words (pyspellchecker's frequency list, 160,000 words): a real word is
    never read as a slip of another ("planner" is not "planter", "brighten" not
    "Brighton")."""
    return frozenset(SpellChecker().word_frequency.dictionary)


def _one_typo(word: str, phrase: str, ratio: float) -> bool:
    """A word one slip away from a phrase: same first letter and close (difflib ratio), or
    two neighbouring letters swapped ("neice"), and not itself an English word."""
    if word[0] != phrase[0] or abs(len(phrase) - len(word)) > 1 or word == phrase:
        return False
    if word in _english():
        return False
    if len(word) == len(phrase):
        diff = [k for k in range(len(word)) if word[k] != phrase[k]]
        if len(diff) == 2 and diff[1] == diff[0] + 1 and \
                word[diff[0]] == phrase[diff[1]] and word[diff[1]] == phrase[diff[0]]:
            return True
    return difflib.SequenceMatcher(None, word, phrase).ratio() >= ratio


class FactExtractor:
    """Every fact of a message, for the questions the vocabulary reads."""

    def __init__(self, spec: QuestionnaireSpec, vocabulary: Vocabulary) -> None:
        self.spec = spec
        self.vocab = vocabulary
        self.read = [qid for qid in spec.ids if qid in vocabulary.read]
        # per question: (phrase, value, its whole-word pattern), longest first
        self._phrases: dict[str, list[tuple[str, str, re.Pattern[str]]]] = {}
        self._typos: dict[str, list[tuple[str, str]]] = {}
        for qid in self.read:
            q = spec.question(qid)
            if not q.options:
                continue
            drop = set(_words(vocabulary.not_in_sentences.get(qid, [])))
            table: dict[str, str] = {}
            for opt in q.options:
                for phrase in opt.phrases():
                    if phrase not in drop and phrase not in EXACT_ONLY and len(phrase) > 2:
                        table.setdefault(phrase, opt.value)
            for value, extra in vocabulary.phrases.get(qid, {}).items():
                for phrase in _words(extra):
                    table[phrase] = value
            pairs = sorted(table.items(), key=lambda pv: -len(pv[0]))
            self._phrases[qid] = [(p, v, re.compile(rf"(?<![\w]){re.escape(p)}(?![\w])"))
                                  for p, v in pairs]
            self._typos[qid] = [(p, v) for p, v in pairs if " " not in p and len(p) >= 5
                                and p.isalpha()]
        self._negation = re.compile(
            r"(?<![\w'])(?:" + "|".join(re.escape(n) for n in _words(vocabulary.negations))
            + r")(?![\w'])") if vocabulary.negations else None
        self._money = [(re.compile(rf"(?<![\w]){re.escape(norm(k))}(?![\w])"), v)
                       for k, v in sorted(vocabulary.money_words.items(),
                                          key=lambda kv: -len(kv[0]))]
        self._budget_cue = self._any(vocabulary.budget_words)
        self._not_near = self._any(vocabulary.not_budget_near)
        self._ignore = self._any(vocabulary.ignore)
        self._patterns = {qid: [(re.compile(rx), value) for value, rxs in opts.items()
                                for rx in rxs]
                          for qid, opts in vocabulary.patterns.items()}
        self._not_before = set(_words(vocabulary.not_budget_before))
        self._people = self._any(vocabulary.people)
        self._not_after_words = {
            qid: re.compile(r"(?<![\w])(?:" + "|".join(re.escape(w) for w in
                                                      sorted(_words(ws), key=len, reverse=True))
                            + r")\s+(?:the\s+|a\s+)?$")
            for qid, ws in vocabulary.not_after.items() if _words(ws)}
        self._not_after = set(_words(vocabulary.not_budget_after))

    @staticmethod
    def _any(words: list[str]) -> re.Pattern[str] | None:
        ws = sorted(_words(words), key=len, reverse=True)
        return re.compile(r"(?<![\w])(?:" + "|".join(re.escape(w) for w in ws) + r")(?![\w])") \
            if ws else None

    # -- the whole message -----------------------------------------------------------------
    def extract(self, text: str, *, asked: str | None = None) -> dict[str, Found]:
        """{question id: Found} in spec order. ``asked``: the pending question (a bare
        number answers a pending budget question)."""
        t = norm(re.sub(r"[!?;]", ".", text))
        if self._ignore is not None:  # "Mother's Day", "host family": no answer's words
            t = self._ignore.sub(lambda m: " " * len(m.group(0)), t)
        found: dict[str, Found] = {}
        spans: dict[str, list[bool]] = {}
        order = sorted(self.read, key=lambda q: q in self.vocab.yields_to)  # yielders last
        for qid in order:
            q = self.spec.question(qid)
            if q.type == "number":
                pending = self.spec.question(asked) if asked in self.spec.ids else None
                if pending is not None and pending.id != qid and pending.range_unit == "GBP":
                    continue  # the amount answers the pending money question (spend)
                hit = self._budget(q, t, relaxed=asked == qid)
            else:
                blocked = [False] * len(t)
                for other in self.vocab.yields_to.get(qid, []):
                    blocked = [a or b for a, b in zip(blocked, spans.get(other, blocked),
                                                      strict=True)]
                hit, spans[qid] = self._choice(q, t, blocked)
            if hit is not None:
                found[qid] = hit
        self._imply(found)
        return {qid: found[qid] for qid in self.spec.ids if qid in found}

    def _imply(self, found: dict[str, Found]) -> None:
        for source, targets in self.vocab.overrides.items():  # strong: wins over a cue
            if source in found:
                for target, value in targets.items():
                    result = coerce_value(self.spec.question(target), value)
                    if result.ok:
                        found[target] = Found(target, result.value, "")
        implied: dict[str, set[str]] = {}
        for source, targets in self.vocab.implies.items():
            if source in found:
                for target, value in targets.items():
                    implied.setdefault(target, set()).add(value)
        for target, values in implied.items():
            if target in found or len(values) != 1 or target not in self.spec.ids:
                continue
            result = coerce_value(self.spec.question(target), next(iter(values)))
            if result.ok:
                found[target] = Found(target, result.value, "")

    # -- options -------------------------------------------------------------------------
    def _negated(self, t: str, start: int) -> bool:
        """A negation among the four words before, within the same clause."""
        if self._negation is None:
            return False
        clause = re.split(r"[.,]\s", _HEDGES.sub(" ", t[:start]) + " ")[-1]
        window = " ".join(clause.split()[-4:])
        return bool(self._negation.search(window))

    def _choice(self, q: Question, t: str,
                blocked: list[bool]) -> tuple[Found | None, list[bool]]:
        """The question's value named in the text (None: none, or a contradiction) and the
        characters its phrases took."""
        taken = list(blocked)
        hits: dict[str, str] = {}
        refused: set[str] = set()  # negated somewhere: "she has candles, so NOT candles"
        for rx, value in self._patterns.get(q.id, []):
            for m in rx.finditer(t):
                if not any(taken[m.start():m.end()]) and not self._negated(t, m.start()):
                    hits.setdefault(value, m.group(0))
                    for k in range(m.start(), m.end()):
                        taken[k] = True
        for phrase, value, pattern in self._phrases.get(q.id, []):
            if phrase not in t:  # most phrases are not there: skip the regex
                continue
            for m in pattern.finditer(t):
                if any(taken[m.start():m.end()]):
                    continue
                for k in range(m.start(), m.end()):
                    taken[k] = True
                if q.type == "multi" and _DESCRIBES_BUSINESS.match(t, m.end()):
                    continue  # "a homeware shop" describes the business, not an interest
                if q.type == "single" and self._possessor(q, t, m.end()):
                    continue  # "my friend's daughter": the daughter is meant
                if q.id in self.vocab.own_only and _OTHERS.search(t[:m.start()]):
                    continue  # "my son's shop opening": not the visitor's business
                cancel = self._not_after_words.get(q.id)
                if cancel is not None and cancel.search(t[max(0, m.start() - 40):m.start()]):
                    continue  # "visiting Paris": not where they are
                if self._negated(t, m.start()):
                    refused.add(value)
                elif phrase.startswith(("my ", "our ")):  # the words that name a person
                    hits[value] = phrase
                else:
                    hits.setdefault(value, phrase)
        for m in re.finditer(r"[a-z]{5,}", t):
            if any(taken[m.start():m.end()]) or self._negated(t, m.start()):
                continue
            word = m.group(0)
            for phrase, value in self._typos.get(q.id, []):
                if _one_typo(word, phrase, self.vocab.typo_ratio):
                    hits.setdefault(value, phrase)
                    break
        own = [a and not b for a, b in zip(taken, blocked, strict=True)]
        hits = {value: phrase for value, phrase in hits.items() if value not in refused}
        if not hits:
            return None, own
        if q.type == "single":
            if len(hits) != 1:
                return None, own  # a contradiction: the next question asks
            value, phrase = next(iter(hits.items()))
            result = coerce_value(q, value)
            return (Found(q.id, result.value, phrase) if result.ok else None), own
        result = coerce_value(q, list(hits))
        return (Found(q.id, result.value, ", ".join(hits.values())) if result.ok else None), own

    def _possessor(self, q: Question, t: str, end: int) -> bool:
        """The phrase ending at ``end`` owns another one of the same question, or a person
        no answer fits, within three words ("my friend's daughter": the daughter is meant;
        "my son's teacher": nobody the questions know)."""
        if not t.startswith("'s", end):
            return False
        head = " ".join(t[end + 2:].split()[:3])
        if self._people is not None and self._people.search(head):
            return True
        return any(p in head and pattern.search(head)
                   for p, _, pattern in self._phrases.get(q.id, []))

    # -- the budget ------------------------------------------------------------------------
    def _budget(self, q: Question, t: str, *, relaxed: bool) -> Found | None:
        for pattern, amount in self._money:
            t = pattern.sub(f" {amount} ", t)
        t = re.sub(r"(\d+),(\d{2})(?!\d)", r"\1.\2", t)  # "25,00 €"
        tokens = prepare_numbers(t).split()
        picked: str | None = None
        per_item: str | None = None  # "under £10 each, £20 all together": the £10
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if not _NUMBER.match(tok):
                i += 1
                continue
            snippet, end = self._amount(tokens, i, relaxed=relaxed, seen=picked is not None)
            if snippet:
                picked = snippet
                if _PER_ITEM.match(" ".join(tokens[end:end + 2])):
                    per_item = snippet
            i = max(end, i + 1)
        picked = per_item or picked
        if picked is None:
            return None
        result = parse_answer(q, picked)
        return Found(q.id, result.value, picked) if result.ok else None

    def _amount(self, tokens: list[str], i: int, *, relaxed: bool,
                seen: bool) -> tuple[str | None, int]:
        """The budget snippet at tokens[i] ("under 30", "20-25") and the index after it."""
        def at(k: int) -> str:
            return tokens[k] if 0 <= k < len(tokens) else ""

        n, j = tokens[i], i + 1
        money = at(i - 1) in _CURRENCY_SIGNS or at(i - 1) in _CURRENCY_CODES
        if at(j) in _CURRENCY_WORDS or at(j) in _CURRENCY_SIGNS:
            money, j = True, j + 1
        high = None
        before = " ".join(tokens[max(0, i - 4):i])
        if at(j) in ("-", "to", "or") or (at(j) == "and" and re.search(r"\bbetween\b", before)):
            k = j + 1 + (at(j + 1) in _CURRENCY_SIGNS)
            if _NUMBER.match(at(k)):
                high, j = at(k), k + 1
                if at(j) in _CURRENCY_WORDS:
                    money, j = True, j + 1
        lead = [w for w in tokens[max(0, i - 6):i] if w not in _CURRENCY_SIGNS][-4:]
        bare = list(lead)  # the lead without hedges: "was about £600" reads "was £600"
        while bare and bare[-1] in _AMOUNT_HEDGES:
            bare.pop()
        for words in (lead, bare):
            if words and (words[-1] in self._not_before or
                          " ".join(words[-2:]) in self._not_before):
                return None, j
        near = " ".join(lead + tokens[j:j + 2])
        if self._not_near is not None and self._not_near.search(near):
            return None, j  # an order total, a price paid before
        nxt = at(j)
        if nxt in ("%", "percent", "off") or (not money and nxt in self._not_after):
            return None, j
        if not money and len(n.split(".")[0]) >= 5:
            return None, j  # an order or phone number
        if any(len(w.strip(",.()")) >= 5 and _NUMBER.match(w.strip(",.()")) for w in lead):
            return None, j  # right after an order number: "(order 560234, about £85)"
        # a budget word belongs to the first amount after it ("up to £60 for one present")
        last_number = max((k for k, w in enumerate(lead) if _NUMBER.match(w.strip(",.()"))),
                          default=-1)
        window = " ".join(lead[last_number + 1:])
        cue = bool(self._budget_cue and self._budget_cue.search(window))
        if not (money or cue or relaxed or (seen and _CORRECTING.search(window))):
            return None, j
        if high is not None:
            return f"{n}-{high}", j
        wide = " ".join(w for w in tokens[max(0, i - 8):i] if w not in _CURRENCY_SIGNS)
        wide = wide.replace(" ' ", "'")  # the number reader splits "don't"
        if _UNDER.search(window) or _NOT_OVER.search(wide):
            return f"under {n}", j
        if _AT_LEAST.search(window) or nxt == "+" or " ".join(tokens[j:j + 2]) == "or more":
            return f"at least {n}", j
        return n, j


def describe(spec: QuestionnaireSpec, facts: dict[str, Found]) -> str:
    """The facts in one short phrase for an acknowledgement ("a birthday gift for your
    mum, candles and lights, about £20"): option labels, formatted values and the
    vocabulary's words that named a person; never the message's other text."""
    def label(qid: str) -> str:
        q = spec.question(qid)
        text = re.sub(r"\s*\(.*?\)", "", format_answer(q, facts[qid].value))
        return text if text.split(" ")[0] in _PROPER else text[:1].lower() + text[1:]

    def person(fact: Found) -> str:
        words = fact.phrase
        if fact.value == "myself":
            return "yourself"
        if words.startswith(("my ", "our ")):
            return "your " + words.split(" ", 1)[1]
        if words.isalpha() and len(words) > 2:  # "brother", "wife"
            return "your " + words
        return {"partner": "your partner", "family": "family"}.get(str(fact.value),
                                                                 label(fact.question_id))

    parts: list[str] = []
    if "occasion" in facts or "recipient" in facts:
        occasion = label("occasion") if "occasion" in facts else ""
        gift = "a gift" if occasion in ("", "just because") else \
            f"{'an' if occasion[:1].lower() in 'aeiou' else 'a'} {occasion} gift"
        if "recipient" in facts:
            gift += f" for {person(facts['recipient'])}"
        parts.append(gift + (", just because" if occasion == "just because" else ""))
    elif facts.get("buyer_type") and facts["buyer_type"].value != "for my business":
        parts.append("shopping for yourself or as gifts")
    if "business_kind" in facts:
        kind = facts["business_kind"]
        words = kind.phrase
        parts.append("for your " + words.split(" ", 1)[1] if words.startswith(("my ", "our "))
                     else f"for your business ({label('business_kind')})")
    elif facts.get("buyer_type") and facts["buyer_type"].value == "for my business":
        parts.append("for your business")
    if "interests" in facts:
        parts.append(label("interests"))
    if BUDGET in facts:
        value = facts[BUDGET].value
        shown = format_answer(spec.question(BUDGET), value)
        parts.append(f"about {shown}" if value["min"] == value["max"] else shown)
    if "region" in facts:
        region = facts["region"].value
        parts.append("delivery " + ("to the " if region == "United Kingdom" else
                                    "to " if region != "elsewhere" else "") + label("region"))
    if "order_frequency" in facts:
        freq = facts["order_frequency"].value
        parts.append("your first order" if freq == "first order" else
                     f"ordering {label('order_frequency')}")
    for qid in facts:  # questions this phrase does not know
        if qid not in {"occasion", "recipient", "buyer_type", "business_kind", "interests",
                       BUDGET, "region", "order_frequency"}:
            parts.append(label(qid))
    return ", ".join(p for p in parts if p)


_SHIPPED: dict[int, FactExtractor] = {}


def shipped_extractor(spec: QuestionnaireSpec) -> FactExtractor:
    """The extractor of the shipped vocabulary for this spec (questions and options the
    spec lacks are left out, so a test's small spec gets what applies to it)."""
    key = id(spec)
    cached = _SHIPPED.get(key)
    if cached is None or cached.spec is not spec:
        cached = FactExtractor(spec, fitted(spec, load_vocabulary_file()))
        _SHIPPED[key] = cached
    return cached
