"""The adaptive questionnaire: a state machine over a spec that asks the next question,
reads the answer, takes corrections ("actually my budget is 50"), goes back, and ends on a
summary to confirm.

Pure: no UI, no model, no network. The chat layer calls ``Questionnaire.start`` and
``Questionnaire.handle`` with a ``QuestionnaireState`` it saves after every turn (the state is
a pydantic model that round-trips through JSON) and shows the returned ``Turn``.

Failure policy (never a loop): a not-understood answer gets a specific re-ask (reason, help,
example). From the second failure on the same question the re-ask offers "Skip" and "Don't
know" (text and quick replies). The third failure on an optional question skips it
(``skipped[id] == "skip"``) and moves on; a required question keeps offering Skip / Don't know
(typing either is accepted on every question at any time: the person is in control;
``required`` decides whether the buttons are there from the start). A fuzzy match is asked
back first ("Did you mean ...?", ``state.pending``).

Safety: bot messages contain only spec text and parsed values (option labels, numbers, the
email address): never the raw text of an answer, except a free-text answer quoted in the
summary, which is the person's own data.
"""

from __future__ import annotations

import re
from typing import Any

from assistant.core.errors import InputError
from assistant.questionnaire.extraction import (
    FactExtractor,
    Found,
    describe,
    shipped_extractor,
)
from assistant.questionnaire.numbers import format_money
from assistant.questionnaire.parsing import (
    NO_PATTERN,
    YES_PATTERN,
    ParseResult,
    clean_answer,
    coerce_loose,
    coerce_value,
    failure,
    format_answer,
    parse_answer,
)
from assistant.questionnaire.spec import (
    CHOICE_TYPES,
    MAX_INPUT_CHARS,
    Question,
    QuestionnaireSpec,
    norm,
)
from assistant.questionnaire.state import (
    Chooser,
    Pending,
    Progress,
    QuestionnaireState,
    SummaryItem,
    Turn,
    answers_for_classifier,
)
from assistant.questionnaire.wording import Wording, shipped_wording

FAILURES_BEFORE_OFFER = 2  # from this many failed tries, Skip / Don't know are offered
SKIP_LABEL = "Skip"
DONT_KNOW_LABEL = "Don't know"

#: A correction found in a message: (question id, its parse, whether the wording was
#: explicitly a correction: "actually", "change my ... to").
Correction = tuple[str, ParseResult, bool]

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
_CORRECTION_CUE = re.compile(
    r"^(?:(?:actually|sorry|oops|wait|correction|no|hmm|um|i mean|oh)[,:]?\s+)*"
    r"(?:(?:please\s+|can you\s+|could you\s+|i'?d like to\s+|i want to\s+|let'?s\s+)?"
    r"(?:change|update|set|correct|fix|make|edit)\s+)?"
)


def _name(q: Question) -> str:
    """How a question is named in messages: its first alias, else its id."""
    return q.aliases[0] if q.aliases else q.id.replace("_", " ")


def _default_chooser(state: QuestionnaireState, candidates: list[str]) -> str | None:
    return candidates[0]


class Questionnaire:
    """The state machine over a spec. Stateless itself: every call takes the state."""

    def __init__(self, spec: QuestionnaireSpec, chooser: Chooser | None = None,
                 wording: Wording | None = None,
                 extractor: FactExtractor | None = None) -> None:
        self.spec = spec
        self.chooser = chooser or _default_chooser
        self.say = wording or shipped_wording()
        self.extractor = extractor or shipped_extractor(spec)
        self._aliases = sorted(((norm(a), q.id) for q in spec.questions
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
        return self.say("ask_number", question=q.text, low=format_money(lo, q.unit),
                        high=format_money(hi, q.unit))

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
        needs = [c for c in cands if self.spec.question(c).needs]
        nxt = needs[0] if needs else self.chooser(state, list(cands))
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

    def _correction(self, state: QuestionnaireState, text: str) -> Correction | None:
        """'actually my budget is 50', 'change my region to Europe' -> (question, parse,
        whether the wording was explicitly a correction)."""
        t = norm(text)
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
                return (qid, failure("not_shown", "that question doesn't apply to your "
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
        raw = clean_answer(text if isinstance(text, str) else str(text))
        t = norm(raw)
        current = self.spec.question(state.current) if state.current else None
        if len(raw) > MAX_INPUT_CHARS and not (current and current.type == "text"):
            return self._too_long(state, current, raw)
        if state.pending:
            turn = self._settle_pending(state, state.pending, t)
            if turn is not None:
                return turn
        if _GO_BACK.match(t):
            return self._go_back(state)
        fix = self._correction(state, raw)
        if fix is not None and not fix[2] and set(self.extractor.extract(raw)) - {fix[0]}:
            fix = None  # a sentence starting with a question's name ("buying for myself,
            # a jumbo bag, €12") states several facts: read them all
        if fix is not None:
            turn = self._apply_correction(state, fix)
            if turn is not None:
                return turn
        if state.done:
            return self._at_summary(state, t)
        if current is None:
            return self._advance(state, self.spec.intro if not state.asked else "")
        return self._answer(state, current, raw, fix, extracted or {})

    def _too_long(self, state: QuestionnaireState, current: Question | None,
                  raw: str) -> Turn:
        reason = (f"that message is very long ({len(raw):,} characters); a short answer "
                  "is all I need")
        if current:
            return self._reask(state, current, failure("too_long", reason))
        return self._status(state, "too_long", reason)

    def _settle_pending(self, state: QuestionnaireState, pending: Pending,
                        t: str) -> Turn | None:
        """A yes stores the "Did you mean ...?" value, a no asks again; anything else drops
        it and is read as a new message (None)."""
        q = self.spec.question(pending.question_id)
        if YES_PATTERN.fullmatch(t) or t in ("yes please", "yes it is", "that's right"):
            result = ParseResult(ok=True, value=pending.value)
            self._store(state, q.id, result, "said")
            return self._advance(state, self._ack(q, result))
        state.pending = None
        if NO_PATTERN.fullmatch(t) or t in ("no it isn't", "not that", "wrong"):
            return self._ask(state, q.id, self.say("say_again"))
        return None

    def _apply_correction(self, state: QuestionnaireState, fix: Correction) -> Turn | None:
        """A change to another question than the current one; None when the message is not
        one (a correction of the current question is read as its answer)."""
        qid, result, explicit = fix
        if qid == state.current:
            return None
        if result.ok or result.special:
            if result.special and not explicit:
                return None  # a skip of another question only as a correction
            q = self.spec.question(qid)
            self._store(state, qid, result, "said")
            dropped = self._prune(state)
            msg = (self.say("changed", name=_name(q),
                            answer=format_answer(q, result.value)) if result.ok
                   else self.say("cleared", name=_name(q)))
            if dropped:
                msg += " " + self.say("pruned")
            return self._advance(state, msg)
        if explicit:
            q = self.spec.question(qid)
            return self._status(state, result.error or "not_understood",
                                self.say("cannot_change", name=_name(q),
                                         reason=result.reason or "I didn't understand"))
        return None

    def _at_summary(self, state: QuestionnaireState, t: str) -> Turn:
        """The summary is showing: confirm, more questions, or say what to change."""
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

    def _answer(self, state: QuestionnaireState, current: Question, raw: str,
                fix: Correction | None, extracted: dict[str, Any]) -> Turn:
        """The message as the answer to the current question, plus every other fact it
        states (the vocabulary's reading, then what a model read for questions still open)."""
        exact = current.type in CHOICE_TYPES and any(
            norm(raw) in o.phrases() for o in current.options)
        # a quick reply ("For myself or as gifts") answers its question and nothing else
        found = {} if exact else self.extractor.extract(raw, asked=current.id)
        result, source = self._read_answer(current, raw, fix, extracted, found)
        if current.needs and current.type == "text" and result.ok and not found:
            # an opening in their own words is kept only when it says something we can use
            result = failure("too_vague", "I didn't catch what you're looking for")
        stored = result.ok or bool(result.special)
        if stored:
            self._store(state, current.id, result, source)
        captured = self._apply_found(state, found, exclude=current.id)
        noted = self._apply_extracted(state, extracted, exclude=current.id)
        if noted:
            noted = self.say("noted", answer=noted)
        facts = ({current.id: found.get(current.id) or Found(current.id, result.value, "")}
                 if result.ok and current.type != "text" else {})
        facts.update(captured)
        heard = self.say("ack", answer=describe(self.spec, facts)) \
            if len(facts) > 1 or captured else ""
        done = {qid: f.value for qid, f in facts.items()}
        if result.confirm:
            state.pending = Pending(question_id=current.id, value=result.value)
            shown = format_answer(current, result.value)
            ask = self.say("did_you_mean", answer=shown)
            return Turn(message=" ".join(filter(None, [heard, noted, ask])),
                        question_id=current.id, quick_replies=["Yes", "No"],
                        progress=self.progress(state), captured=done)
        if stored:
            ack = heard or self._ack(current, result)
            turn = self._advance(state, " ".join(filter(None, [ack, noted])))
        elif heard or noted:  # something else was understood: no "doesn't match"
            turn = self._advance(state, " ".join(filter(None, [heard, noted])))
        else:
            turn = self._reask(state, current, result)
        turn.captured = done
        return turn

    def _read_answer(self, current: Question, raw: str, fix: Correction | None,
                     extracted: dict[str, Any],
                     found: dict[str, Found]) -> tuple[ParseResult, str]:
        """The parse of the current question's answer and its source: the vocabulary's
        reading of the whole message, else the parser's, else a correction naming this
        question, else the model's reading ("understood")."""
        if current.id in found:
            return ParseResult(ok=True, value=found[current.id].value), "said"
        result = parse_answer(current, raw)
        if result.ok and current.type == "number" and current.id in self.extractor.read \
                and len(raw.split()) > 3:
            # the number in a sentence was an order number, a quantity, an age or a date
            result = failure("not_a_budget", "the number in that message doesn't look like "
                             "a budget")
        if (fix is not None and fix[0] == current.id and not result.ok
                and (fix[1].ok or fix[1].special)):
            result = fix[1]  # "my budget is 50" answering the budget question
        if extracted and not (result.ok or result.special) and current.id in extracted:
            alt = coerce_loose(current, extracted[current.id])
            if alt.ok:
                return alt, "understood"
        return result, "said"

    def absorb(self, state: QuestionnaireState, text: str) -> dict[str, Found]:
        """The facts a message states, stored outside the question flow (after the
        questionnaire: "actually it's for my brother, under £15")."""
        return self._apply_found(state, self.extractor.extract(clean_answer(text)), None)

    def _apply_found(self, state: QuestionnaireState, found: dict[str, Found],
                     exclude: str | None) -> dict[str, Found]:
        """Store the facts the vocabulary read (spec order, so branching sees earlier ones):
        a new value replaces what was said before, never what the orders show."""
        kept: dict[str, Found] = {}
        for qid, fact in found.items():
            if qid == exclude or not self.is_shown(state, qid) \
                    or state.sources.get(qid) == "observed" \
                    or state.answers.get(qid) == fact.value:
                continue
            self._store(state, qid, ParseResult(ok=True, value=fact.value), "said")
            kept[qid] = fact
            self._prune(state)
        return kept

    def _apply_extracted(self, state: QuestionnaireState, extracted: dict[str, Any],
                         exclude: str | None) -> str:
        """Store the valid answers a model read for questions not answered yet (spec order,
        so branching sees earlier ones); returns them formatted ("region Europe, budget
        £50"). The model adds facts; it never changes one."""
        kept = []
        for q in self.spec.questions:
            if q.id == exclude or q.id not in extracted or q.id in state.answers \
                    or not self.is_shown(state, q.id):
                continue
            result = coerce_loose(q, extracted[q.id])
            if result.ok:
                self._store(state, q.id, result, "understood")
                kept.append(f"{_name(q)} {format_answer(q, result.value)}")
        if kept:
            self._prune(state)
        return ", ".join(kept)

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
        result = coerce_value(q, value_or_text)
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

    # ---- outputs
    def answers_for_classifier(self, state: QuestionnaireState) -> dict[str, Any]:
        return answers_for_classifier(state)

    def profile_facts(self, state: QuestionnaireState) -> dict[str, Any]:
        """{profile_field: value} for every answered, shown question."""
        return {self.spec.question(qid).profile_field: value
                for qid, value in state.answers.items()
                if qid in self.spec.ids and self.is_shown(state, qid)}
