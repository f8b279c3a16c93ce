"""User-facing errors. Every error carries a message (what went wrong) and a hint (how to
fix it), plus a stable code for logs and docs. Imports nothing from the package."""

from __future__ import annotations


class AssistantError(Exception):
    """Root of every error Tailor shows to a person."""

    code = "assistant-error"

    def __init__(self, message: str, hint: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code:
            self.code = code

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message

    def for_user(self) -> str:
        """One short text for a chat bubble or a CLI line (never a traceback)."""
        return f"⚠️ {self.message}" + (f" — {self.hint}" if self.hint else "")


class ConfigError(AssistantError):
    code = "config-invalid"


class TemplateError(AssistantError):
    code = "template-invalid"


class InputError(AssistantError):
    code = "input-invalid"


class ModelUnavailableError(AssistantError):
    code = "model-unavailable"


class ModelResponseError(AssistantError):
    code = "model-response"


class StoreError(AssistantError):
    code = "store-error"


class EmbeddingMismatchError(AssistantError):
    code = "embedding-mismatch"
