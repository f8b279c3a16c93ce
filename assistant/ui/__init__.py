"""Gradio front end: the only package that imports gradio."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from assistant.ui.app import create_app, launch  # noqa: E402

__all__ = ["create_app", "launch"]
