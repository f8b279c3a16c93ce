"""One web server for both apps: the public Chat at ``/`` and the staff app at ``/staff``
(Gradio login; roles checked per action). ``launch`` runs it with uvicorn."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from assistant.service.assistant import AssistantService
from assistant.ui.app import CSS, create_chat_app
from assistant.ui.staff import create_staff_app
from assistant.ui.studio import STUDIO_CSS

STAFF_PATH = "/staff"
LOGIN_MESSAGE = ("Staff sign-in (agents and ops). No account yet? An admin creates one with "
                 "`assistant users add NAME --role agent`.")


LOGIN_PATHS = {f"{STAFF_PATH}/login", f"{STAFF_PATH}/login/"}


def guard_logins(app: FastAPI, service: AssistantService) -> None:
    """Sign-ins per client address: a locked address gets 429 at once (no password is
    checked); a failed sign-in counts against it."""

    @app.middleware("http")
    async def limit_logins(request: Request, call_next: Callable[[Request], Awaitable[Any]]
                           ) -> Any:
        if request.method != "POST" or request.url.path not in LOGIN_PATHS:
            return await call_next(request)
        client = request.client.host if request.client else None
        wait = await asyncio.to_thread(service.login_wait, client)
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            return JSONResponse(status_code=429, content={
                "detail": f"Too many sign-in attempts. Try again in {minutes} minute"
                          f"{'s' * (minutes != 1)}."})
        response = await call_next(request)
        if response.status_code >= 400:
            await asyncio.to_thread(service.login_failed, client)
        return response


def limit_calls(app: FastAPI, service: AssistantService) -> None:
    """API calls per client address (``TAILOR_REQUESTS_PER_MINUTE``): every POST (chat,
    buttons, uploads, sign-in) counts; more get 429 at once, before any work."""
    @app.middleware("http")
    async def per_client(request: Request, call_next: Callable[[Request], Awaitable[Any]]
                         ) -> Any:
        if request.method == "POST":
            client = request.client.host if request.client else "?"
            if not await asyncio.to_thread(service.allow_call, client):
                return JSONResponse(status_code=429, content={
                    "detail": "Too many requests from your address. Please wait a minute."})
        return await call_next(request)


def build_server(service: AssistantService) -> FastAPI:
    settings = service.settings
    app = FastAPI(title="Tailor")
    guard_logins(app, service)
    limit_calls(app, service)
    common = {"css": CSS, "footer_links": ["api"], "show_error": False,
              "max_file_size": f"{settings.max_upload_mb:g}mb"}
    staff = create_staff_app(service)
    staff.queue(default_concurrency_limit=4, max_size=settings.queue_max)

    async def authenticate(name: str, password: str) -> bool:
        # argon2 takes ~50 ms of CPU: in a thread, so the event loop (every chat) goes on
        return await asyncio.to_thread(service.authenticate, name, password)

    app = gr.mount_gradio_app(app, staff, STAFF_PATH, auth=authenticate,
                              auth_message=LOGIN_MESSAGE,
                              **{**common, "css": CSS + STUDIO_CSS})
    chat = create_chat_app(service)
    chat.queue(default_concurrency_limit=4, max_size=settings.queue_max)
    return gr.mount_gradio_app(app, chat, "", **common)


#: seconds a stop (Ctrl+C, SIGTERM) waits for open requests; Gradio clients hold streams
#: open, and without a limit uvicorn waits for them forever (or until it is killed)
SHUTDOWN_GRACE_SECONDS = 3


class _ShutdownCancelFilter(logging.Filter):
    """Drops the traceback uvicorn logs for each open stream it cancels at shutdown (the
    line "Cancel N running task(s)" before it says what happened)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[0] if record.exc_info else None
        return not (exc is not None and issubclass(exc, asyncio.CancelledError))


def launch(service: AssistantService) -> None:
    """Serve until stopped (Ctrl+C or SIGTERM: at most ``SHUTDOWN_GRACE_SECONDS`` later)."""
    logging.getLogger("uvicorn.error").addFilter(_ShutdownCancelFilter())
    uvicorn.run(build_server(service), host=service.settings.host,
                port=service.settings.port, log_level="warning",
                timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
                # behind a proxy: the client address is the one the proxy forwards
                proxy_headers=True, forwarded_allow_ips=service.settings.trusted_proxies)
