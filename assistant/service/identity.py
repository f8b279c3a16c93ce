"""Proof that a chat visitor is a customer of the order data, before anything derived from
that customer's orders is shown or used.

Two proofs: the customer number plus the number of one of their orders (the order file has
them), or an email from the shop's customer list plus a one-time code sent to it (an
``Outbox``: SMTP when configured, else a file outbox staff can read). "No such customer" and
"wrong proof" get the same reply; a code request for an unknown email gets the same reply as
one for a known email. Wrong proofs are limited per session and per client address, with a
lockout that expires (``AttemptLimiter``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from assistant.core.config import Settings
from assistant.core.errors import InputError
from assistant.infra.mail import Outbox
from assistant.infra.store import Store
from assistant.orders.tables import read_table
from assistant.service.limits import AttemptLimiter, Limit

log = logging.getLogger(__name__)

NOT_VERIFIED = ("We could not verify that.",
                "Type your customer number with the number of one of your orders (it is on "
                "your invoice), or your email with the code we sent to it.")
CODE_SENT = ("If that email is on our customer list, we have just sent it a 6-digit code. "
             "Type the code in the proof box to link your orders.")
NEED_PROOF = ("To link your orders we need proof it is you.",
              "Add the number of one of your orders (on your invoice) in the proof box, or "
              "use your email to get a code.")
SUBJECT = "Your code for linking your orders"


@dataclass(frozen=True)
class Verification:
    """``customer_id`` when the proof held; otherwise ``message`` says what happened (a code
    was sent, perhaps)."""

    customer_id: str | None
    message: str = ""


def session_key(session_id: str) -> str:
    """The attempts key of a session's linking tries."""
    return f"link:session:{session_id}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _order_key(value: str) -> str:
    return re.sub(r"[\s#]", "", str(value)).upper().removesuffix(".0")


class Identity:
    def __init__(self, settings: Settings, store: Store, orders: Callable[[], pd.DataFrame],
                 outbox: Outbox, limiter: AttemptLimiter) -> None:
        self.settings = settings
        self.store = store
        self.orders = orders
        self.outbox = outbox
        self.limiter = limiter

    def limits(self, session_id: str, client: str | None) -> list[Limit]:
        out = [Limit(session_key(session_id), self.settings.link_attempts)]
        if client:
            out.append(Limit(f"link:client:{client}", self.settings.link_attempts_per_client))
        return out

    def verify(self, session_id: str, who: str, proof: str, *,
               client: str | None = None) -> Verification:
        """Check a proof (see the module docstring); raises ``InputError`` when it fails or
        the session or client is locked out."""
        who, proof = (who or "").strip(), (proof or "").strip()
        if not who:
            raise InputError("Type your customer number or the email you order with.",
                             NEED_PROOF[1])
        limits = self.limits(session_id, client)
        self.limiter.check(limits, "tries to link a customer")
        if "@" in who:
            if not proof:
                self.limiter.fail(limits)  # each code sent counts: no mail flooding
                self._send_code(session_id, who)
                return Verification(None, CODE_SENT)
            customer_id = self._check_code(session_id, who, proof)
        else:
            if not proof:
                raise InputError(*NEED_PROOF)
            customer_id = self._check_order(who, proof)
        if customer_id is None:
            self.limiter.fail(limits)
            raise InputError(*NOT_VERIFIED)
        self.limiter.clear(limits[0].key)
        return Verification(customer_id)

    # -- customer number + order number --------------------------------------------------
    def _check_order(self, who: str, proof: str) -> str | None:
        customer = who.removesuffix(".0")
        frame = self.orders()
        mine = frame.loc[frame["customer"].astype(str) == customer, "order_id"]
        keys = {_order_key(o) for o in mine.astype(str)}
        key = _order_key(proof)
        if not key or not (key in keys or f"C{key}" in keys):
            return None
        return customer

    # -- email + one-time code -------------------------------------------------------------
    def customer_by_email(self, email: str) -> str | None:
        """The customer number of an email in the shop's customer list, or None."""
        path = self.settings.customer_emails_path
        if not path.exists():
            return None
        table = read_table(path)
        if not {"customer_id", "email"} <= set(table.columns):
            log.warning("%s needs the columns customer_id and email", path.name)
            return None
        hits = table.loc[table["email"].astype(str).str.strip().str.lower()
                         == email.strip().lower(), "customer_id"]
        return None if hits.empty else str(hits.iloc[0]).strip().removesuffix(".0")

    def _send_code(self, session_id: str, email: str) -> None:
        customer_id = self.customer_by_email(email)
        if customer_id is None:
            return  # the same reply: no oracle of who is a customer
        code = f"{secrets.randbelow(10**6):06d}"
        expires = self.limiter.clock() + self.settings.link_code_minutes * 60
        self.store.save_link_code(session_id, customer_id=customer_id,
                                  email_hash=_digest(session_id, email.strip().lower()),
                                  code_hash=_digest(session_id, code), expires=expires)
        minutes = f"{self.settings.link_code_minutes:g}"
        body = (f"Your code is {code}.\n\nType it in the shop's chat to link your orders. It "
                f"is valid for {minutes} minutes. If you did not ask for it, ignore this "
                "email.")
        try:
            self.outbox.send(email.strip(), SUBJECT, body)
        except OSError as exc:  # the visitor gets the same reply; staff see the log
            log.error("could not send a link code through %s: %s",
                      self.outbox.describe(), exc)

    def _check_code(self, session_id: str, email: str, proof: str) -> str | None:
        row = self.store.link_code(session_id)
        if row is None or row["expires"] < self.limiter.clock():
            return None
        code = re.sub(r"\D", "", proof)
        good = hmac.compare_digest(row["code_hash"], _digest(session_id, code)) and \
            hmac.compare_digest(row["email_hash"], _digest(session_id, email.strip().lower()))
        if not good:
            return None
        self.store.drop_link_code(session_id)
        return str(row["customer_id"])
