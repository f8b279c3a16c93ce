"""Gradio front end: the only package that imports gradio."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from assistant.ui.app import create_chat_app  # noqa: E402
from assistant.ui.server import build_server, launch  # noqa: E402
from assistant.ui.staff import create_staff_app  # noqa: E402

__all__ = ["build_server", "create_chat_app", "create_staff_app", "launch"]
