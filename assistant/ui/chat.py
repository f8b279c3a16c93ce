"""Pure adapters between the service's chat records and Gradio's chatbot messages.
No gradio import: tested without a server."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.errors import AssistantError
from assistant.schemas import ChatMessage

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
