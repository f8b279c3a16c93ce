"""Personal data out of what is sent to an external model, and back into its answer.

``redact`` replaces email addresses, phone numbers, card-like numbers (13-19 digits passing
the Luhn check), street addresses and UK postcodes, and people's names where a text
introduces them ("my name is Jane Smith", "I'm Jane Smith", "Dear Jane", a sign-off line)
with placeholders such as ``[EMAIL_1]``; the same value gets the same placeholder in every
message of a request. ``Restorer`` puts the values back into the model's streamed answer
(a placeholder split over two chunks is held back until it is whole); card numbers are
never put back.

Deterministic patterns, not a named-entity model: a name written without one of those cues
("Jane called me") is not found; order numbers, amounts and dates are left alone on purpose
(the model needs them, and they identify no one without the shop's records).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w+(])(?:\+|\()?\d[\d ().-]{7,}\d(?![\w])")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}[/.]\d{1,2}[/.]\d{2,4}")
_US_PHONE = re.compile(r"^\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}$")
_STREET_WORDS = (r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Way|Court|Ct|Place|Pl"
                 r"|Square|Sq|Gardens|Terrace|Crescent|Boulevard|Blvd|Grove|Hill|Row|Mews"
                 r"|Parade|Walk|Strasse|Straße|Weg|Gasse")
_ADDRESS = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?,? (?:[A-Z][\w'’-]*\.? ){{1,4}}(?:{_STREET_WORDS})\b\.?"
    r"|\b\d{1,5},? (?i:rue|via|calle|avenida|avenue|boulevard|place)"
    r"(?: (?:de|la|du|des|del|di|della|le|les|[A-Z][\w'’-]*)){1,5}"
    rf"|\b(?:[A-Z][\w'’-]*(?:{_STREET_WORDS.lower()})) \d{{1,5}}[a-z]?\b")
_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b")
_NAME = r"([A-Z][a-z'’-]+(?: [A-Z][a-z'’-]+){0,2})"
_NAMES = [
    re.compile(rf"\b(?:[Mm]y name is|[Mm]y name's|[Tt]his is|[Cc]all me) {_NAME}"),
    re.compile(r"\b(?:I'm|I’m|I am) ([A-Z][a-z'’-]+ [A-Z][a-z'’-]+)"),
    re.compile(rf"\b(?:Dear|Hi|Hello|Hey) {_NAME}(?=[,!\n])"),
    re.compile(rf"(?im:^\s*(?:thanks|thank you|many thanks|regards|kind regards|best wishes"
               rf"|best|cheers|sincerely|yours(?: sincerely| truly)?)[,!.]?\s*\n\s*)"
               rf"(?-i:{_NAME})\s*$", re.MULTILINE),
]
_NOT_NAMES = {"Team", "Support", "Customer", "Sir", "Madam", "There", "All", "Everyone",
              "Tailor", "Gifts"}
PLACEHOLDER = re.compile(r"\[(EMAIL|PHONE|CARD|ADDRESS|NAME)_(\d+)\]")


def luhn_ok(digits: str) -> bool:
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = int(ch)
        if k % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if not 9 <= len(digits) <= 15 or _DATE.match(text):
        return False
    return text.startswith(("+", "0", "(")) or bool(_US_PHONE.match(text))


@dataclass
class Redaction:
    """What was replaced: placeholder -> value (the values stay in this process)."""

    values: dict[str, str] = field(default_factory=dict)
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.values)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ph in self.values:
            kind = ph[1:].split("_")[0].lower()
            out[kind] = out.get(kind, 0) + 1
        return out

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value.strip().lower())
        if key not in self._by_value:
            n = sum(1 for k, _ in self._by_value if k == kind) + 1
            ph = f"[{kind}_{n}]"
            self._by_value[key] = ph
            self.values[ph] = value.strip()
        return self._by_value[key]

    def redact(self, text: str) -> str:
        """``text`` with every value found replaced by its placeholder."""
        spans: list[tuple[int, int, str]] = []

        def free(s: int, e: int) -> bool:
            return not any(s < fe and fs < e for fs, fe, _ in spans)

        def add(kind: str, s: int, e: int) -> None:
            if free(s, e):
                spans.append((s, e, self.placeholder(kind, text[s:e])))

        for m in EMAIL.finditer(text):
            add("EMAIL", m.start(), m.end())
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group(0))
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                add("CARD", m.start(), m.end())
        for m in PHONE.finditer(text):
            if _is_phone(m.group(0)):
                add("PHONE", m.start(), m.end())
        for pattern in (_ADDRESS, _POSTCODE):
            for m in pattern.finditer(text):
                add("ADDRESS", m.start(), m.end())
        for pattern in _NAMES:
            for m in pattern.finditer(text):
                name = m.group(1)
                if name.split()[0] not in _NOT_NAMES:
                    add("NAME", m.start(1), m.end(1))
        out, pos = [], 0
        for s, e, ph in sorted(spans):
            out += [text[pos:s], ph]
            pos = e
        out.append(text[pos:])
        return "".join(out)

    def restore(self, text: str) -> str:
        def back(m: re.Match[str]) -> str:
            if m.group(1) == "CARD":
                return "[card number]"  # never written back
            return self.values.get(m.group(0), m.group(0))

        return PLACEHOLDER.sub(back, text)


class Restorer:
    """Puts values back into a streamed answer; a placeholder cut between two chunks is
    held back until it is whole (at most a few characters)."""

    HOLD = 16

    def __init__(self, redaction: Redaction) -> None:
        self.redaction = redaction
        self.pending = ""

    def feed(self, text: str) -> str:
        buf = self.pending + text
        cut = buf.rfind("[")
        if cut != -1 and "]" not in buf[cut:] and len(buf) - cut < self.HOLD:
            out, self.pending = buf[:cut], buf[cut:]
        else:
            out, self.pending = buf, ""
        return self.redaction.restore(out)

    def flush(self) -> str:
        out, self.pending = self.redaction.restore(self.pending), ""
        return out
