"""Sending the one-time codes that verify an email: through an SMTP server when
``TAILOR_SMTP_HOST`` is set, otherwise into a file outbox (``DATA_DIR/outbox/``, one ``.eml``
file per message) that staff can read, so the app works offline."""

from __future__ import annotations

import logging
import smtplib
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Outbox(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...

    def describe(self) -> str: ...


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg.set_content(body)
    return msg


class FileOutbox:
    """Messages written as ``<time>-<id>.eml`` files (readable with any mail client)."""

    def __init__(self, folder: Path, sender: str = "shop@localhost") -> None:
        self.folder = folder
        self.sender = sender

    def send(self, to: str, subject: str, body: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(_message(self.sender, to, subject, body)))
        tmp.replace(path)

    def messages(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml")) if self.folder.exists() else []

    def describe(self) -> str:
        return f"file outbox {self.folder}"


class SmtpOutbox:
    """Messages sent through an SMTP server (STARTTLS and a login when configured)."""

    def __init__(self, host: str, port: int, *, sender: str, user: str | None = None,
                 password: str | None = None, starttls: bool = True,
                 timeout: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password, self.starttls, self.timeout = user, password, starttls, timeout

    def send(self, to: str, subject: str, body: str) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(_message(self.sender, to, subject, body))

    def describe(self) -> str:
        return f"SMTP {self.host}:{self.port}"


def outbox_for(settings: Any) -> Outbox:
    """The outbox the settings ask for: SMTP when ``smtp_host`` is set, else the file one."""
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpOutbox(settings.smtp_host, settings.smtp_port, sender=settings.smtp_from,
                          user=settings.smtp_user, password=password,
                          starttls=settings.smtp_starttls)
    return FileOutbox(settings.outbox_dir, settings.smtp_from)
