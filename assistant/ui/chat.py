"""Pure adapters between the service's chat records and Gradio's chatbot messages.
No gradio import: tested without a server."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.core.errors import AssistantError
from assistant.core.schemas import ChatMessage

ChatbotMessage = dict[str, object]


def to_chatbot(messages: Sequence[ChatMessage]) -> list[ChatbotMessage]:
    out: list[ChatbotMessage] = []
    for m in messages:
        content = m.content + ("  \n*(stopped)*" if m.status == "stopped" else "")
        out.append({"role": m.role, "content": content})
    return out


def feedback_values(messages: Sequence[ChatMessage]) -> list[str | None]:
    """Chatbot feedback_value: the last like/dislike of each assistant reply."""
    names = {1: "Like", -1: "Dislike"}
    return [names.get(m.feedback) for m in messages if m.role == "assistant"]


def error_bubble(err: AssistantError) -> ChatbotMessage:
    """A failure shown in the chat (not saved): what happened and what to do."""
    return {"role": "assistant", "content": err.hint or "Please try again.",
            "metadata": {"title": f"⚠️ {err.message}"}}


def text_of(content: object) -> str:
    """Gradio 6 hands message content back as a list of parts; join the text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


SOURCE_BADGE = {"said": "you said", "edited": "you changed", "observed": "from your orders",
                "inferred": "guessed from your orders", "understood": "read from your message"}


def with_options(history: list[ChatbotMessage], quick_replies: list[str]) -> list[ChatbotMessage]:
    """Attach quick replies to the last assistant message (Gradio renders them as buttons)."""
    out = [dict(m) for m in history]
    if quick_replies and out and out[-1].get("role") == "assistant":
        out[-1]["options"] = [{"value": r, "label": r} for r in quick_replies]
    return out


def card_markdown(card: dict[str, object], progress: dict[str, int] | None = None) -> str:
    """The "what we know" card: each fact with its source, then what the person's segment
    means for them (``meaning``), never the staff's segment name."""
    lines = ["### What we know"]
    if progress and progress.get("total"):
        done, total = progress["answered"], progress["total"]
        filled = round(10 * done / total)
        lines.append(f"`{'█' * filled}{'░' * (10 - filled)}` {done} of {total} answered")
    facts = card.get("facts") or []
    if not facts:
        lines.append("*Nothing yet: your answers will show up here, and you can change "
                     "them any time (\"actually my budget is 50\").*")
    for fact in facts:  # type: ignore[union-attr]
        name = str(fact["question"]).replace("_", " ")
        badge = SOURCE_BADGE.get(str(fact["source"]), str(fact["source"]))
        conf = fact.get("confidence", 1.0)
        sure = f", {conf:.0%} sure" if isinstance(conf, float) and conf < 1.0 else ""
        lines.append(f"- **{name}**: {fact['answer']} · *{badge}{sure}*")
    meaning = card.get("meaning")  # the staff's segment name is never shown here
    if meaning:
        lines.append(f"\n*{meaning}*")
    return "\n".join(lines)


def shown_name(item: dict[str, object]) -> str:
    """A product's name as a person reads it (the catalog's ALL CAPS in title case)."""
    name = str(item.get("name", ""))
    return name.title() if name.isupper() else name


def _price(item: dict[str, object]) -> str:
    price = item.get("price")
    return f"£{price:.2f}" if isinstance(price, int | float) else ""


def rec_markdown(item: dict[str, object]) -> str:
    """One recommendation card: name, price, why."""
    name, price = shown_name(item), _price(item)
    shown = f" · {price}" if price else ""
    reasons = item.get("reasons") or []
    why = "; ".join(str(r) for r in reasons[:2]) if isinstance(reasons, list) else ""
    return f"**{name}**{shown}  \n<small>{why}</small>"


def item_markdown(details: dict[str, object]) -> str:
    """A card's "Show me": the product's name, typical price, group, how many customers
    bought it, and what is often bought with it."""
    group = str(details.get("group") or "").replace("_", " ")
    customers = details.get("customers")
    facts = [f"typical price {_price(details)}" if _price(details) else "",
             f"in {group}" if group else "",
             f"bought by {customers:,} customers" if isinstance(customers, int) else ""]
    text = f"### {shown_name(details)}\n\n" + " · ".join(f for f in facts if f)
    raw = details.get("bought_with")
    also = [o for o in raw if isinstance(o, dict)] if isinstance(raw, list) else []
    if also:
        text += "\n\n**Often bought with it:**\n" + "\n".join(
            f"- {shown_name(o)}" + (f" · {_price(o)}" if _price(o) else "") for o in also)
    return text
