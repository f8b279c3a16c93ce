"""Pydantic types passed between stages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One message sent to a chat model."""

    model_config = ConfigDict(frozen=True)
    role: Role
    content: str


class Session(BaseModel):
    id: str
    created_at: str
    updated_at: str


class ChatMessage(BaseModel):
    """A stored chat message. ``status``: ok | stopped | error."""

    id: int
    session_id: str
    role: Literal["user", "assistant"]
    content: str
    status: str = "ok"
    created_at: str
    feedback: int | None = None


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class LLMCall(BaseModel):
    """One row of the LLM call log. ``outcome``: ok | stopped | error."""

    id: int | None = None
    created_at: str | None = None
    session_id: str | None = None
    template_name: str | None = None
    template_version: str | None = None
    provider: str
    model: str
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    outcome: str
    error: str | None = None
    grounding: str | None = None  # "ok" or what the grounding check found unsupported
    redactions: int | None = None  # values replaced before the request (None: not redacted)
