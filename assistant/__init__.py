"""Tailor: a chat-driven personalization assistant for online businesses."""

__version__ = "0.1.0"
