"""The UI's edge: every Gradio callback is wrapped in ``guarded``, so no exception reaches
Gradio's generic "Error" (shown without a word when ``show_error`` is off). Callbacks turn
the errors they expect (``AssistantError``) into messages themselves; one that escapes
becomes a ``gr.Error`` with its message and hint, and anything else (a bug) is logged with
its traceback and a reference, and shown as a short message with a hint."""

from __future__ import annotations

import html
import inspect
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import gradio as gr
from gradio.exceptions import AppError

from assistant.core.errors import AssistantError, unexpected_error

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_GUARDED = "__tailor_guarded__"


def user_error(exc: Exception, action: str) -> gr.Error:
    """The ``gr.Error`` a person sees for an exception out of the callback ``action``."""
    if isinstance(exc, AssistantError):
        log.warning("%s: %s (%s)", action, exc.message, exc.hint)
        return gr.Error(html.escape(exc.for_user(), quote=False), print_exception=False)
    err = unexpected_error(exc, f"handling '{action.replace('_', ' ')}'", log=log,
                           show_exception=False,
                           advice="Please try again; if it happens again, report it with "
                                  "that reference.")
    return gr.Error(html.escape(f"{err.message} {err.hint}", quote=False),
                    title="Something went wrong", print_exception=False)


def guarded(fn: F) -> F:
    """Wrap a Gradio callback (plain function or generator; the signature Gradio inspects
    for ``gr.Request``, ``gr.Progress`` and event data is kept): see the module docstring.
    Gradio's own exceptions (``gr.Error`` and friends) pass through unchanged."""
    if getattr(fn, _GUARDED, False):
        return fn
    action = getattr(fn, "__name__", "callback")

    if inspect.isgeneratorfunction(fn):
        @wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except AppError:
                raise
            except Exception as exc:  # noqa: BLE001 - the UI's edge
                raise user_error(exc, action) from None

        wrapped: Any = stream
    else:
        @wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except AppError:
                raise
            except Exception as exc:  # noqa: BLE001 - the UI's edge
                raise user_error(exc, action) from None

        wrapped = call
    setattr(wrapped, _GUARDED, True)
    return wrapped  # type: ignore[no-any-return]


def is_guarded(fn: Callable[..., Any] | None) -> bool:
    return bool(getattr(fn, _GUARDED, False))


def bind(fn: Callable[..., Any], *first: Any) -> Callable[..., Any]:
    """A module-level callback with its first arguments given (the service, ...), for Gradio:
    its name, the remaining signature and type hints (``gr.Request``, ``gr.Progress``) and
    streaming are kept, and it is ``guarded`` (``functools.partial`` loses the type hints
    Gradio reads to pass the request)."""
    sig = inspect.signature(fn)
    if inspect.isgeneratorfunction(fn):
        @wraps(fn)
        def bound(*args: Any, **kwargs: Any) -> Any:
            yield from fn(*first, *args, **kwargs)
    else:
        @wraps(fn)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return fn(*first, *args, **kwargs)
    bound.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=list(sig.parameters.values())[len(first):])
    return guarded(bound)
