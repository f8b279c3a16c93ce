"""What the service returns to its front ends (browser, API, CLI): typed, never dicts.

Each type is a pydantic model, so an API endpoint sends ``model_dump()`` and a test reads
attributes. The domain's own types pass through unchanged (``Turn`` of the questionnaire,
``Progress``); the segment is the segment model's explanation (probability, reasons).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from assistant.questionnaire.state import Progress, Turn


class Fact(BaseModel):
    """One line of the "what we know" card: an answer, where it came from, how sure."""

    question: str
    label: str
    answer: str
    value: Any
    source: str
    confidence: float


class Card(BaseModel):
    """The "what we know" card of a session. ``segment`` names the staff's segment and is
    never shown to the customer; ``meaning`` is what they see instead (or nothing)."""

    facts: list[Fact] = Field(default_factory=list)
    segment: dict[str, Any] | None = None  # segment, probability, source, reasons (staff)
    meaning: str | None = None  # what the segment means for the customer (what they see)
    answered: int = 0
    total: int = 0
    customer_id: str | None = None

    @property
    def segment_name(self) -> str | None:
        return self.segment.get("segment") if self.segment else None


class GuidedReply(BaseModel):
    """One step of the guided questionnaire: the turn (message, quick replies, progress)
    and the card after it."""

    turn: Turn
    card: Card


class Suggestions(BaseModel):
    """Recommendation cards (``/recommend``): items with id, name, price, score, reasons;
    ``popular`` when nothing is known yet (the items are then labelled so)."""

    items: list[dict[str, Any]] = Field(default_factory=list)
    popular: bool = True


class QuestionView(BaseModel):
    """The question waiting for an answer (``/question``); ``id`` is None at the summary or
    after the questionnaire."""

    id: str | None = None
    text: str = ""
    type: str | None = None
    required: bool = False
    options: list[dict[str, str]] = Field(default_factory=list)
    quick_replies: list[str] = Field(default_factory=list)
    help: str | None = None
    example: str | None = None
    progress: Progress
    done: bool = False
    confirmed: bool = False
    dismissed: bool = False


class TurnResult(BaseModel):
    """A whole turn for headless clients (``/turn``): the reply, what answered it
    (question | support | recommendation | chat), the help intent and the passages cited
    for support, the facts taken from the message, and the question now pending."""

    text: str
    kind: str
    intent: str | None = None
    intent_confidence: float | None = None
    citations: list[dict[str, Any]] = Field(default_factory=list)
    facts_captured: list[dict[str, Any]] = Field(default_factory=list)
    question: str | None = None
    items: list[dict[str, Any]] = Field(default_factory=list)


class TurnUpdate(BaseModel):
    """One step of a chat turn as it happens (``AssistantService.turn``): the front end
    redraws from it. ``replies`` are the assistant's messages of this turn so far (the last
    may still grow while a model streams); ``card``, ``items`` and ``progress`` are None
    when they did not change; ``working`` names what is being done while nothing is written
    yet; ``done`` marks the last update."""

    session_id: str
    replies: list[str] = Field(default_factory=list)
    quick_replies: list[str] = Field(default_factory=list)
    card: Card | None = None
    progress: Progress | None = None
    items: list[dict[str, Any]] | None = None
    working: str | None = None
    guided: bool = False  # the questionnaire answered this message
    kind: str = "chat"  # what answered: question | support | recommendation | chat
    intent: str | None = None  # the help intent of a support question
    intent_confidence: float | None = None
    citations: list[dict[str, Any]] = Field(default_factory=list)  # help passages used
    facts_captured: list[dict[str, Any]] = Field(default_factory=list)  # [{question, value}]
    question: str | None = None  # the question now waiting for an answer
    done: bool = False

    @property
    def text(self) -> str:
        """The whole reply as one text (what ``/chat`` and ``assistant chat`` return)."""
        return "\n\n".join(r for r in self.replies if r)

    def result(self, facts: list[dict[str, Any]] | None = None) -> TurnResult:
        """This (last) update as a ``TurnResult``; ``facts``: the facts captured by the
        turn when an earlier update carried them."""
        return TurnResult(text=self.text, kind=self.kind, intent=self.intent,
                          intent_confidence=self.intent_confidence, citations=self.citations,
                          facts_captured=facts if facts is not None else self.facts_captured,
                          question=self.question, items=self.items or [])
