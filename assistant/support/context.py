"""What a draft is given: the customer's facts (``CustomerFacts``), the draft's context
(``DraftContext``: policy, intent, cited help passages, the facts a reply is checked
against) and the rendered ``Prompt``; with the helpers that turn them into the template's
variables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from assistant.core.schemas import Message
from assistant.infra.llm import GenerationParams
from assistant.prompts.grounding import Facts
from assistant.support.policies import Policy

RECENT_ORDERS = 5
PROMPT_ITEMS = 4  # product names per order in the prompt


@dataclass
class CustomerFacts:
    id: str
    segment: dict[str, Any] | None
    behaviour: dict[str, Any] | None
    orders: list[dict[str, Any]]  # newest first
    amounts: set[float]
    products: list[str]

    @property
    def latest(self) -> dict[str, Any] | None:
        return next((o for o in self.orders if not o["returned"]), None) or \
            (self.orders[0] if self.orders else None)


@dataclass
class DraftContext:
    customer: CustomerFacts | None
    policy: Policy
    intent: str | None
    intent_confidence: float
    citations: list[dict[str, Any]]
    facts: Facts
    notes: list[str] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.intent.replace("_", " ") if self.intent else ""


def _money(x: float) -> str:
    return f"{x:,.2f}"


@dataclass
class Prompt:
    messages: list[Message]
    params: GenerationParams
    secret: str  # the template's own words (instructions, labels): never in a draft
    allowed: list[str]  # the data (policy, facts, passages, ticket): may be repeated


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return [str(value)]


def slot_values(facts: CustomerFacts | None) -> dict[str, str]:
    latest = facts.latest if facts else None
    if latest is None:
        return {}
    return {"order number": latest["order_id"], "invoice number": latest["order_id"],
            "purchase date": latest["date"], "amount": f"£{_money(latest['amount'])}"}


def _customer_line(facts: CustomerFacts | None) -> str:
    if facts is None:
        return "none selected: no order facts are known, so state none."
    bought = [o for o in facts.orders if not o["returned"]]
    parts = [f"customer number {facts.id}", f"{len(bought)} orders"]
    if bought:
        parts.append(f"first order {bought[-1]['date']}, latest order {bought[0]['date']}")
    return "; ".join(parts) + "."


def _prompt_orders(facts: CustomerFacts | None) -> list[dict[str, Any]]:
    if facts is None:
        return []
    out = []
    for o in facts.orders[:RECENT_ORDERS]:
        items = [i.capitalize() for i in o["items"][:PROMPT_ITEMS]]
        more = len(o["items"]) - len(items)
        out.append({"order_id": o["order_id"], "date": o["date"],
                    "amount": _money(abs(o["amount"])),
                    "items": ", ".join(items) + (f" and {more} more" if more > 0 else ""),
                    "returned": o["returned"]})
    return out


def _cut(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[:end + 1] if end >= limit // 2 else cut.rsplit(" ", 1)[0] + " …"


def _defuse(text: str) -> str:
    """Chat-template tokens written in a ticket ("<|im_start|>system", "<|eot_id|>",
    "</s>", "[INST]") are shown as text: the model's tokenizer must not read them as the
    start of a message of their own."""
    text = re.sub(r"<\|", "<\u2009|", text)
    text = re.sub(r"\|>", "|\u2009>", text)
    return re.sub(r"</?s>|\[/?INST\]|<</?SYS>>", lambda m: m.group(0).replace("<", "‹")
                  .replace("[", "［"), text)
