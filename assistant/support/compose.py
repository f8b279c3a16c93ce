"""Answers composed without a model: the best help passage, its ``[slots]`` filled with the
customer's real order facts (or "your order number" when none are known), and, for a
question about an order, one line naming their latest order. Grounded by construction: every
sentence comes from the help base (shop facts filled at build time) or the order data."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.support.context import CustomerFacts, slot_values
from assistant.support.helpbase import Passage, fill_slots

# help intents about an order: the answer names the customer's latest order when known
ORDER_INTENTS = frozenset({
    "cancel_order", "change_order", "track_order", "delivery_period", "check_invoice",
    "get_invoice", "get_refund", "track_refund", "complaint", "payment_issue",
    "change_shipping_address", "check_cancellation_fee",
})
ITEMS_NAMED = 3


@dataclass
class Composed:
    """A composed answer and the passages it used (``citations``)."""

    text: str
    intent: str | None
    citations: list[dict[str, Any]] = field(default_factory=list)
    order_id: str | None = None

    @property
    def source(self) -> str:
        """One line naming the help articles used ("Source: help article “Track order”")."""
        titles = ", ".join(f"“{c['title']}”" for c in self.citations)
        return f"Source: help article {titles}" if titles else ""


def order_line(order: dict[str, Any]) -> str:
    """'Your latest order is 536365, placed on 2010-12-01: White hanging heart t-light
    holder, Cream cupid hearts coat hanger and 5 more (£139.12).'"""
    # "COLOUR GLASS. STAR T-LIGHT HOLDER": a period inside a name would split the sentence
    items = [re.sub(r"\s*\.\s*", " ", str(i).strip()).capitalize()
             for i in order.get("items") or []]
    named = items[:ITEMS_NAMED]
    more = len(items) - len(named)
    listed = ", ".join(named) + (f" and {more} more" if more > 0 else "")
    amount = f" (£{abs(float(order['amount'])):,.2f})" if order.get("amount") is not None else ""
    return (f"Your latest order is {order['order_id']}, placed on {order['date']}"
            + (f": {listed}" if listed else "") + f"{amount}.")


def compose_answer(passage: Passage, customer: CustomerFacts | None,
                   intent: str | None) -> Composed:
    """The passage filled for this customer, with their latest order for an order
    question."""
    values = slot_values(customer)
    body = fill_slots(passage.text.strip(), values)
    latest = customer.latest if customer else None
    parts = []
    order_id = None
    if latest is not None and (intent or passage.intent) in ORDER_INTENTS:
        parts.append(order_line(latest))
        order_id = str(latest["order_id"])
    parts.append(body)
    citation = {"n": 1, "id": passage.id, "title": passage.title, "intent": passage.intent,
                "score": round(float(passage.score), 4)}
    return Composed("\n\n".join(parts), intent or passage.intent, [citation], order_id)


# ----------------------------------------------------------------------------- desk drafts
GREETINGS = {"neutral": "Hello,", "friendlier": "Hi there,", "more formal": "Dear customer,"}
CLOSINGS = {"neutral": "Kind regards,", "friendlier": "Best wishes,",
            "more formal": "Yours sincerely,"}
_ORDER_WORDS = re.compile(r"\b(?:orders?|parcel|package|delivery|invoice|purchase|refund)\b",
                          re.IGNORECASE)
_NUMBER = re.compile(r"\b\d{5,7}\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_MONEY = re.compile(r"£\s?\d[\d,]*(?:\.\d{2})?")
POLISH_MIN_SIMILARITY = 0.8  # MiniLM cosine, composed draft vs rewrite (bench/conversation.py)


def ticket_order(ticket: str, customer: CustomerFacts | None) -> dict[str, Any] | None:
    """The order a ticket is about: an order number of this customer named in it, else
    their latest order when the ticket talks about an order (None without a customer)."""
    if customer is None or not customer.orders:
        return None
    by_id = {str(o["order_id"]): o for o in customer.orders}
    for number in _NUMBER.findall(ticket):
        if number in by_id:
            return by_id[number]
    return customer.latest if _ORDER_WORDS.search(ticket) else None


def _order_sentence(order: dict[str, Any], latest: bool) -> str:
    line = order_line(order)  # "Your latest order is N, placed on D: items (£x)."
    if latest:
        return line.replace("Your latest order is", "I can see your latest order,", 1)
    return line.replace("Your latest order is", "I can see your order", 1)


def _passage_text(citation: dict[str, Any], short: bool) -> str:
    text = str(citation["text"]).strip()
    if short:
        text = text.split("\n\n", 1)[0]
    return f"{text} [{citation['n']}]"


def compose_draft(*, ticket: str, customer: CustomerFacts | None,
                  citations: list[dict[str, Any]], policy_reply: str, shop_name: str,
                  tone: str = "neutral", revise: str | None = None) -> tuple[str, list[int]]:
    """A reply written without the model: greeting, the order the ticket is about, the best
    help passage (filled with the customer's data, cited), the policy's sentence for the
    customer, closing. ``revise``: shorter (the passage's first paragraph), longer (two
    passages), regenerate (the next passage first). Returns (text, citation numbers used);
    with no passage, a holding reply."""
    order = ticket_order(ticket, customer)
    lines = [GREETINGS.get(tone, GREETINGS["neutral"])]
    if order is not None:
        latest = customer is not None and order is customer.latest
        lines.append(_order_sentence(order, latest))
    used: list[int] = []
    picked = list(citations)
    if revise == "regenerate" and len(picked) > 1:
        picked = picked[1:] + picked[:1]
    if picked:
        count = 2 if revise == "longer" else 1
        for c in picked[:count]:
            lines.append(_passage_text(c, short=revise == "shorter"))
            used.append(int(c["n"]))
    else:
        lines.append("Thank you for your message. I am looking into it and will get back "
                     "to you as soon as possible.")
    if policy_reply:
        lines.append(policy_reply)
    lines.append(f"{CLOSINGS.get(tone, CLOSINGS['neutral'])}\n{shop_name} customer support")
    return "\n\n".join(lines), used


def key_facts(text: str) -> set[str]:
    """The order numbers, dates, amounts and citation numbers a text states."""
    found = set(_NUMBER.findall(text)) | set(_DATE.findall(text))
    found |= {re.sub(r"\s", "", m) for m in _MONEY.findall(text)}
    found |= set(re.findall(r"\[\d{1,3}\]", text))
    return found


def polish_verdict(composed: str, polished: str, flags: list[dict[str, Any]],
                   similarity: Callable[[str, str], float] | None) -> tuple[bool, str]:
    """Whether the model's rewrite may be shown instead of the composed draft, and why."""
    if not polished.strip():
        return False, "the model wrote nothing"
    if flags:
        kinds = ", ".join(sorted({f["kind"] for f in flags}))
        return False, f"the rewrite did not pass the checks ({kinds})"
    missing = sorted(key_facts(composed) - {re.sub(r"\s", "", f) for f in key_facts(polished)})
    if missing:
        return False, f"the rewrite dropped {', '.join(missing[:3])}"
    if similarity is not None:
        score = similarity(composed, polished)
        if score < POLISH_MIN_SIMILARITY:
            return False, f"the rewrite drifted from the composed draft (similarity {score:.2f})"
    return True, "the rewrite keeps every fact of the composed draft"
