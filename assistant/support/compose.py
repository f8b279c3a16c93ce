"""Answers composed without a model: the best help passage, its ``[slots]`` filled with the
customer's real order facts (or "your order number" when none are known), and, for a
question about an order, one line naming their latest order. Grounded by construction: every
sentence comes from the help base (shop facts filled at build time) or the order data."""

from __future__ import annotations

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
    items = [str(i).strip().capitalize() for i in order.get("items") or []]
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
