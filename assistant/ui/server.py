"""One web server for both apps: the public Chat at ``/`` and the staff app at ``/staff``
(Gradio login; roles checked per action). ``launch`` runs it with uvicorn."""

from __future__ import annotations

import gradio as gr
import uvicorn
from fastapi import FastAPI

from assistant.service import AssistantService
from assistant.ui.app import CSS, create_chat_app
from assistant.ui.staff import create_staff_app
from assistant.ui.studio import STUDIO_CSS

STAFF_PATH = "/staff"
LOGIN_MESSAGE = ("Staff sign-in (agents and ops). No account yet? An admin creates one with "
                 "`assistant users add NAME --role agent`.")


def build_server(service: AssistantService) -> FastAPI:
    app = FastAPI(title="Tailor")
    common = {"css": CSS, "footer_links": ["api"], "show_error": False}
    staff = create_staff_app(service)
    staff.queue(default_concurrency_limit=4)
    app = gr.mount_gradio_app(app, staff, STAFF_PATH, auth=service.authenticate,
                              auth_message=LOGIN_MESSAGE,
                              **{**common, "css": CSS + STUDIO_CSS})
    chat = create_chat_app(service)
    chat.queue(default_concurrency_limit=4)
    return gr.mount_gradio_app(app, chat, "", **common)


def launch(service: AssistantService) -> None:
    """Serve until stopped (Ctrl+C)."""
    uvicorn.run(build_server(service), host=service.settings.host,
                port=service.settings.port, log_level="warning")
