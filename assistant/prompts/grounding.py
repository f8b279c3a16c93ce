"""Check generated text against the facts it was given.

The model only writes *how*; code decides *what*. This module finds the claims in a
generated text that the supplied facts do not support, so the app can fall back to a
deterministic text (recommendations) or highlight them for an agent (support drafts):

- **products**: a catalog item named in the text that is not among the candidates given;
  a sentence that prices something which is not a candidate;
- **amounts**: money (``£12.50``, ``12.50 GBP``, ``$3``) not among the allowed amounts;
- **order ids**: invoice-like numbers (``536365``, ``C536379``, ``#581587``) not given;
- **dates**: a date not among those given;
- **promises**: refunds, discounts (with their percentage), free shipping, vouchers,
  compensation, that the policy in the context does not allow;
- **contacts**: a link, an email address or a phone number that is not in the context (a
  model steered by a ticket could send the customer elsewhere).

Everything here is pure and deterministic; spans let a UI highlight the exact text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from assistant.core.redaction import EMAIL, PHONE  # one definition of both

FlagKind = str  # "product" | "price" | "amount" | "order_id" | "date" | "promise" | "contact"


@dataclass(frozen=True)
class Flag:
    kind: FlagKind
    text: str  # the exact text in the draft
    start: int
    end: int
    reason: str  # for people: why it is not supported


@dataclass(frozen=True)
class Verdict:
    flags: tuple[Flag, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.flags

    def kinds(self) -> list[str]:
        return sorted({f.kind for f in self.flags})

    def summary(self) -> str:
        if self.ok:
            return "every checked claim is supported"
        return "; ".join(f"{f.kind} '{f.text}': {f.reason}" for f in self.flags)


@dataclass(frozen=True)
class Candidate:
    """A product the text may name, with its price."""

    name: str
    price: float | None = None


@dataclass
class Facts:
    """What a generated text may state. Empty sets mean "nothing of this kind is allowed"."""

    products: Sequence[Candidate] = ()
    catalog: Sequence[str] = ()  # every known product name (to spot other products)
    amounts: Iterable[float] = ()
    order_ids: Iterable[str] = ()
    dates: Iterable[date | datetime | str] = ()
    contacts: Iterable[str] = ()  # links, email addresses, phone numbers the text may give
    promises: dict[str, float | None] = field(default_factory=dict)
    """Allowed promises: kind -> limit, e.g. {"discount": 10} allows discounts up to 10 %,
    {"refund": None} allows a refund; kinds: refund, discount, free_shipping, voucher,
    compensation, replacement, expedite."""


# --------------------------------------------------------------------------- patterns
_MONEY = re.compile(
    r"(?P<cur>[£$€])\s?(?P<a>\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)"
    r"|(?P<b>\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?)\s?"
    r"(?P<cur2>GBP|EUR|USD|pounds?|euros?|dollars?)\b",
    re.IGNORECASE,
)
_ORDER_CONTEXT = re.compile(r"(order|invoice|purchase|reference|ref\.?|#)\s*(no\.?|number|id)?"
                            r"\s*[:#]?\s*$", re.IGNORECASE)
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november"
           "|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DATE = re.compile(
    rf"\b(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})\b"
    rf"|\b(?P<dmy>\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}})\b"
    rf"|\b(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m1>{_MONTHS})\.?,?(?:\s+(?P<y1>\d{{4}}))?\b"
    rf"|\b(?P<m2>{_MONTHS})\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?,?(?:\s+(?P<y2>\d{{4}}))?\b",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"(?P<p>\d{1,3}(?:\.\d+)?)\s?(?:%|per\s?cent)", re.IGNORECASE)
_PROMISES: dict[str, re.Pattern[str]] = {
    "refund": re.compile(r"\b(?:full |partial )?refund(?:ed|ing|s)?\b|\bmoney back\b", re.I),
    "discount": re.compile(r"\bdiscount(?:ed|s)?\b|\b\d{1,3}\s?(?:%|per\s?cent)\s+off\b"
                           r"|\bcoupon\b|\bpromo(?:tion)? code\b", re.I),
    "free_shipping": re.compile(r"\bfree (?:shipping|delivery|postage|returns?)\b", re.I),
    "voucher": re.compile(r"\b(?:gift )?vouchers?\b|\bstore credit\b|\bgift card\b", re.I),
    "compensation": re.compile(r"\bcompensat(?:e|ion|ing)\b|\bgoodwill (?:gesture|payment)\b",
                               re.I),
    "replacement": re.compile(r"\b(?:send|ship|dispatch)(?:ing)? (?:you )?(?:a )?"
                              r"(?:new|replacement)\b|\breplacement\b", re.I),
    "expedite": re.compile(r"\b(?:next[- ]day|express|expedited?|priority) "
                           r"(?:delivery|shipping)\b", re.I),
}
_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>()\[\]\"']+"
    r"|\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|co|uk|eu|de|fr|shop|store|info|biz|app|site"
    r"|online|xyz|ly|me|example)\b(?:/[^\s<>()\[\]\"']*)?", re.IGNORECASE)
# sentences that only talk *about* a promise ("we cannot offer a refund") do not make one
_NEGATED = re.compile(r"\b(?:not|cannot|can't|unable|no longer|won't|isn't|aren't|don't|"
                      r"doesn't|never|unfortunately)\b[^.!?]{0,40}$", re.I)
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=[^\s.!?]))+[.!?]*")  # "£2.95" stays whole


# --------------------------------------------------------------------------- helpers
def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _amount(m: re.Match[str]) -> float:
    raw = m.group("a") or m.group("b")
    return float(raw.replace(",", ""))


def money_mentions(text: str) -> list[tuple[float, int, int]]:
    """Every money amount in the text: (value, start, end)."""
    return [(_amount(m), m.start(), m.end()) for m in _MONEY.finditer(text)]


def _as_date(value: date | datetime | str) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value)[:10]).date()
    except ValueError:
        return None


_MONTH_NO = {name: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")], start=1) for name in names}


def _parse_date(m: re.Match[str]) -> tuple[int | None, int, int] | None:
    """(year or None, month, day) of a date mention."""
    try:
        if m.group("iso"):
            d = date.fromisoformat(m.group("iso"))
            return d.year, d.month, d.day
        if m.group("dmy"):
            day, month, year = (int(x) for x in re.split(r"[/.]", m.group("dmy")))
            return (year + 2000 if year < 100 else year), month, day
        if m.group("m1"):
            return (int(m.group("y1")) if m.group("y1") else None,
                    _MONTH_NO[m.group("m1").lower()], int(m.group("d1")))
        return (int(m.group("y2")) if m.group("y2") else None,
                _MONTH_NO[m.group("m2").lower()], int(m.group("d2")))
    except (ValueError, KeyError):
        return None


def _name_spans(text: str, names: Iterable[str], *, min_words: int = 2
                ) -> list[tuple[str, int, int]]:
    """Where product names occur (case-insensitive, whole words, punctuation-tolerant)."""
    found: list[tuple[str, int, int]] = []
    lower = text.lower()
    for name in names:
        words = _words(name)
        if len(words) < min_words:
            continue
        pattern = r"\b" + r"[\s\-,'&/]*".join(re.escape(w) for w in words) + r"\b"
        for m in re.finditer(pattern, lower):
            found.append((name, m.start(), m.end()))
    # longest first, no overlaps
    found.sort(key=lambda f: (f[1], -(f[2] - f[1])))
    kept: list[tuple[str, int, int]] = []
    for f in found:
        if kept and f[1] < kept[-1][2]:
            continue
        kept.append(f)
    return kept


def _sentence_around(text: str, pos: int) -> tuple[int, int]:
    for m in _SENTENCE.finditer(text):
        if m.start() <= pos < m.end():
            return m.start(), m.end()
    return 0, len(text)


def _close(a: float, b: float) -> bool:
    return abs(a - b) < 0.005 + 1e-9


# --------------------------------------------------------------------------- checks
def check(text: str, facts: Facts) -> Verdict:
    """Every unsupported claim in ``text`` as a flag with its span."""
    flags: list[Flag] = []
    flags += _check_products(text, facts)
    flags += _check_amounts(text, facts)
    flags += _check_order_ids(text, facts)
    flags += _check_dates(text, facts)
    flags += _check_promises(text, facts)
    flags += _check_contacts(text, facts)
    flags.sort(key=lambda f: f.start)
    return Verdict(tuple(flags))


def _check_products(text: str, facts: Facts) -> list[Flag]:
    allowed = {c.name.lower() for c in facts.products}
    named = _name_spans(text, [c.name for c in facts.products], min_words=1)
    others = [n for n in facts.catalog if n.lower() not in allowed]
    # other catalog names of 3+ words (shorter ones are everyday phrases), outside the spans
    # of the items that may be named ("vintage christmas" inside an allowed item's name)
    flags = [Flag("product", text[s:e], s, e, "not among the items recommended")
             for _, s, e in _name_spans(text, others, min_words=3)
             if not any(s < ne and ns < e for _, ns, ne in named)]
    if not facts.products:  # not a product text: amounts are checked as amounts
        return flags
    # a price must be the price of a candidate named in the same sentence
    prices = {c.name: c.price for c in facts.products}
    for sent in _SENTENCE.finditer(text):
        in_sent = [n for n, s, e in named if sent.start() <= s < sent.end()]
        for value, s, e in money_mentions(sent.group()):
            s, e = s + sent.start(), e + sent.start()
            if any(prices.get(n) is not None and _close(prices[n], value) for n in in_sent):
                continue
            if not in_sent and any(p is not None and _close(p, value)
                                   for p in prices.values()):
                continue  # a candidate's price, the item named in another sentence
            flags.append(Flag("price", text[s:e], s, e,
                              "no recommended item named here costs this"))
    return flags


def _check_amounts(text: str, facts: Facts) -> list[Flag]:
    if facts.products:  # product texts: prices are checked against the items instead
        return []
    allowed = list(facts.amounts)
    return [Flag("amount", text[s:e], s, e, "this amount is not in the customer's records")
            for value, s, e in money_mentions(text)
            if not any(_close(value, a) for a in allowed)]


def _check_order_ids(text: str, facts: Facts) -> list[Flag]:
    allowed = {str(o).upper().lstrip("#") for o in facts.order_ids}
    flags = []
    for m in re.finditer(r"#?\b(C?\d{5,})\b", text):
        ident = m.group(1).upper()
        before = text[max(0, m.start() - 25):m.start()]
        if not (m.group(0).startswith("#") or _ORDER_CONTEXT.search(before)
                or len(ident.lstrip("C")) == 6):
            continue  # a long number that is not presented as an order (e.g. a phone)
        if ident not in allowed:
            flags.append(Flag("order_id", m.group(0), m.start(), m.end(),
                              "no such order in the customer's records"))
    return flags


def _check_dates(text: str, facts: Facts) -> list[Flag]:
    allowed = [d for d in (_as_date(x) for x in facts.dates) if d is not None]
    flags = []
    for m in _DATE.finditer(text):
        parsed = _parse_date(m)
        if parsed is None:
            continue
        year, month, day = parsed
        if any(d.month == month and d.day == day and (year is None or d.year == year)
               for d in allowed):
            continue
        flags.append(Flag("date", m.group(0), m.start(), m.end(),
                          "this date is not in the customer's records"))
    return flags


def contact_key(kind: str, value: str) -> str:
    """A link, email or phone number as compared: lower case; a link's host without "www."
    (any page of a site the context names may be linked); a phone number's digits."""
    value = value.strip().rstrip(".,;:!?").lower()
    if kind == "phone":
        return re.sub(r"\D", "", value)
    if kind == "link":
        return re.sub(r"^(?:https?://)?(?:www\.)?", "", value).split("/")[0]
    return value


def contacts_in(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) of every link, email address and phone number."""
    found: list[tuple[str, str, int, int]] = []

    def free(s: int, e: int) -> bool:
        return not any(s < fe and fs < e for _, _, fs, fe in found)

    for m in EMAIL.finditer(text):
        found.append(("email", m.group(0), m.start(), m.end()))
    for m in _URL.finditer(text):
        if free(m.start(), m.end()):
            found.append(("link", m.group(0).rstrip(".,;:!?"), m.start(),
                          m.start() + len(m.group(0).rstrip(".,;:!?"))))
    for m in PHONE.finditer(text):
        if len(re.sub(r"\D", "", m.group(0))) >= 9 and free(m.start(), m.end()):
            found.append(("phone", m.group(0), m.start(), m.end()))
    return found


def allowed_contacts(*texts: str) -> list[str]:
    """The contacts a text may repeat: those in the context it was given."""
    return [value for text in texts for _, value, _, _ in contacts_in(text)]


def _check_contacts(text: str, facts: Facts) -> list[Flag]:
    allowed = set()
    for value in facts.contacts:
        for kind in ("email", "link", "phone"):
            allowed.add((kind, contact_key(kind, value)))
    return [Flag("contact", value, s, e, f"this {kind} is not in the context given")
            for kind, value, s, e in contacts_in(text)
            if (kind, contact_key(kind, value)) not in allowed]


def _check_promises(text: str, facts: Facts) -> list[Flag]:
    flags = []
    for kind, pattern in _PROMISES.items():
        for m in pattern.finditer(text):
            sent_start, sent_end = _sentence_around(text, m.start())
            if _NEGATED.search(text[sent_start:m.start()]):
                continue
            if kind not in facts.promises:
                flags.append(Flag("promise", m.group(0), m.start(), m.end(),
                                  f"a {kind.replace('_', ' ')} is not allowed for this "
                                  "customer"))
                continue
            limit = facts.promises[kind]
            if kind == "discount" and limit is not None:
                for p in _PERCENT.finditer(text, sent_start, sent_end):
                    if float(p.group("p")) > limit + 1e-9:
                        flags.append(Flag("promise", p.group(0), p.start(), p.end(),
                                          f"more than the {limit:g}% discount allowed"))
    # one flag per span
    unique: dict[tuple[int, int], Flag] = {}
    for f in flags:
        unique.setdefault((f.start, f.end), f)
    return list(unique.values())


def highlight(text: str, verdict: Verdict, *, mark: tuple[str, str] = ("**[", "]**")) -> str:
    """The text with every flagged span wrapped (for a Markdown view)."""
    out, pos = [], 0
    for f in sorted(verdict.flags, key=lambda f: f.start):
        if f.start < pos:
            continue
        out += [text[pos:f.start], mark[0], text[f.start:f.end], mark[1]]
        pos = f.end
    out.append(text[pos:])
    return "".join(out)
