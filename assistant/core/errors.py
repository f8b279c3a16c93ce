"""User-facing errors. Every error carries a message (what went wrong) and a hint (how to
fix it), plus a stable code for logs and docs. Imports nothing from the package.

Anything else raised at an edge (a CLI command, a UI callback, a background build) is a bug:
``unexpected_error`` logs it with its traceback under a short reference and returns the
``UnexpectedError`` a person sees instead (what failed, where the details are)."""

from __future__ import annotations

import logging
import secrets


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


class UnexpectedError(AssistantError):
    """An exception nobody anticipated (a bug), as a person sees it: no traceback."""

    code = "unexpected"

    def __init__(self, message: str, hint: str = "", *, ref: str = "") -> None:
        super().__init__(message, hint)
        self.ref = ref


def unexpected_error(
    exc: BaseException,
    doing: str,
    *,
    log: logging.Logger | None = None,
    details_in: str = "the server log",
    show_exception: bool = True,
    advice: str = "Please report it, with that log.",
) -> UnexpectedError:
    """Log ``exc`` with its traceback (ERROR, on ``log``, default the ``assistant`` logger)
    under a short reference, and return the short error to show instead.

    ``doing`` completes "Unexpected error while ...". ``details_in`` says where the log
    goes; ``advice`` ends the hint. ``show_exception`` adds the exception's text to its type
    in the message (the CLI); the web app shows only the type (the text may hold internals).
    """
    ref = secrets.token_hex(4)
    (log or logging.getLogger("assistant")).error(
        "unexpected error while %s [ref %s]", doing, ref,
        exc_info=(type(exc), exc, exc.__traceback__))
    what = type(exc).__name__
    if show_exception:
        text = " ".join(str(exc).split())
        what += f": {text[:300]}" if text else ""
    return UnexpectedError(
        f"Unexpected error while {doing} ({what}).",
        f"This is a bug in Tailor, not something you did: {details_in} has the details "
        f"(ref {ref}). {advice}",
        ref=ref,
    )
