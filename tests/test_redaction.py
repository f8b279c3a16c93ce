"""core/redaction.py: what counts as personal data in a model request, what does not, and
putting values back into a streamed answer."""

from __future__ import annotations

import pytest

from assistant.core.redaction import Redaction, Restorer, luhn_ok


@pytest.mark.parametrize(("text", "kinds"), [
    ("write to jo.bloggs+shop@mail.example.co.uk please", {"email": 1}),
    ("ring 020 7946 0958 or +33 1 23 45 67 89", {"phone": 2}),
    ("US line (555) 010-9999 or 555-010-9999", {"phone": 2}),
    ("card 4111-1111-1111-1111", {"card": 1}),
    ("Flat 2, 10 Downing Street, SW1A 2AA", {"address": 2}),
    ("12 rue de la Paix and Hauptstrasse 5", {"address": 2}),
    ("Hello Priya,\nthe parcel came.", {"name": 1}),
    ("I'm Tom Jones and this is my first order", {"name": 1}),
    ("Where is it?\n\nKind regards,\nMaria Lopez", {"name": 1}),
])
def test_personal_values_are_found(text: str, kinds: dict[str, int]) -> None:
    r = Redaction()
    out = r.redact(text)
    assert r.kinds() == kinds
    assert all(v not in out for v in r.values.values())


@pytest.mark.parametrize("text", [
    "order 536365 of 2010-12-01 08:26 cost £1,234.56 (12 items)",
    "tracking 1Z999AA10123456784, invoice C536379",
    "I'm Happy with it, thanks",  # one capitalized word after "I'm" is not a name
    "Dear customer, Hi Team!",
    "1234 5678 9012 3456 fails the Luhn check",
    "call me tomorrow at 10:30",
])
def test_what_identifies_no_one_is_left_alone(text: str) -> None:
    r = Redaction()
    assert r.redact(text) == text and r.count == 0


def test_the_same_value_gets_the_same_placeholder_across_messages() -> None:
    r = Redaction()
    a = r.redact("email jo@example.com")
    b = r.redact("again: JO@example.com, or sam@example.com")
    assert a == "email [EMAIL_1]" and b == "again: [EMAIL_1], or [EMAIL_2]"


def test_a_placeholder_split_over_chunks_is_put_back_whole() -> None:
    r = Redaction()
    r.redact("I'm Jane Smith, jane@example.com, card 4111 1111 1111 1111")
    restorer = Restorer(r)
    chunks = ["Dear [NA", "ME_1], we wrote to [EM", "AIL_1", "] about [CARD_1]", ". [other]"]
    out = "".join(restorer.feed(c) for c in chunks) + restorer.flush()
    assert out == "Dear Jane Smith, we wrote to jane@example.com about [card number]. [other]"


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
