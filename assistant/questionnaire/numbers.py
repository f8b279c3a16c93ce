"""Numbers in free text: words to digits ("a hundred and twenty" -> 120), amounts and ranges
("under £50", "30-50", "2k"), durations ("2 months ago"), and money written for people."""

from __future__ import annotations

import re

from assistant.questionnaire.spec import norm

_UNITS = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen"])}
_TENS = {w: 10 * (i + 2) for i, w in enumerate([
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+|[^\sa-z\d]")
_NUM = r"(\d+(?:\.\d+)?)"


def words_to_digits(text: str) -> str:
    """'a hundred and twenty' -> '120', 'twenty-five quid' -> '25 quid'; other words kept."""
    tokens = _TOKEN.findall(text.lower())
    out: list[str] = []
    i = 0
    numeric = set(_UNITS) | set(_TENS)
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        starts = t in numeric or (t in ("a", "an", "one") and nxt in _SCALES)
        if not starts:
            out.append(t)
            i += 1
            continue
        total = current = 0
        scaled = False
        j = i
        while j < len(tokens):
            t = tokens[j]
            after = tokens[j + 1] if j + 1 < len(tokens) else ""
            if t in _UNITS:
                current += _UNITS[t]
            elif t in _TENS:
                current += _TENS[t]
            elif t in ("a", "an") and j == i:
                current = 1
            elif t == "-" and after in _UNITS and current % 10 == 0 and current:
                pass
            elif t in _SCALES:
                if t == "hundred":
                    current = (current or 1) * 100
                else:
                    total += (current or 1) * _SCALES[t]
                    current = 0
                scaled = True
            elif t == "and" and scaled and (after in _UNITS or after in _TENS):
                pass
            else:
                break
            j += 1
        out.append(str(total + current))
        i = j
    return " ".join(out)


def prepare_numbers(text: str) -> str:
    t = norm(text)
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = words_to_digits(t)
    t = re.sub(r"(\d+(?:\.\d+)?)\s*k\b", lambda m: f"{float(m.group(1)) * 1000:g}", t)
    # "80 not 50", "80 instead of 50": the negated number is not the answer
    t = re.sub(r"\b(?:not|instead of|rather than)\s+(?:£\s*)?\d+(?:\.\d+)?", " ", t)
    return t


def parse_amount(text: str) -> tuple[float, float] | None:
    """A number or range in free text -> (low, high); open ends are +-inf. None if absent.

    '£50', '50 quid', 'fifty', '1,200', '30-50', 'between 30 and 50', 'under 50',
    'up to 50', 'at least 20', '50+', '2k'."""
    t = prepare_numbers(text)
    if re.search(r"\bno (?:limit|budget|max(?:imum)?)\b|\bany (?:price|amount)\b|"
                 r"\bdoesn'?t matter\b|\bwhatever\b", t):
        return (float("-inf"), float("inf"))
    nums = [float(n) for n in re.findall(_NUM, t)]
    if not nums:
        return None
    rng = re.search(rf"(?:between|from)?\s*£?\s*{_NUM}\s*(?:£|gbp|pounds?|quid)?\s*"
                    rf"(?:-|to|and|or)\s*£?\s*{_NUM}", t)
    if rng:
        lo, hi = sorted((float(rng.group(1)), float(rng.group(2))))
        return (lo, hi)
    n = nums[0]
    if re.search(r"\b(?:under|below|less than|up to|upto|max(?:imum)?|no more than|at most|"
                 r"not more than|within|cheaper than|lower than)\b", t):
        return (float("-inf"), n)
    if re.search(r"\b(?:at least|over|above|more than|min(?:imum)?|or more|plus|from|upwards)\b",
                 t) or re.search(rf"{_NUM}\s*\+", t):
        return (n, float("inf"))
    return (n, n)


_DAYS = {"day": 1.0, "days": 1.0, "week": 7.0, "weeks": 7.0, "month": 30.4, "months": 30.4,
         "year": 365.0, "years": 365.0, "yr": 365.0, "yrs": 365.0}


def parse_days(text: str) -> float | None:
    """'2 months ago' -> 60.8, 'three weeks ago' -> 21, 'a year ago' -> 365."""
    t = prepare_numbers(text)
    t = re.sub(r"\b(?:a|an|one)\s+(day|week|month|year)\b", r"1 \1", t)
    m = re.search(rf"{_NUM}\s*(?:-|to|or)?\s*(?:{_NUM})?\s*(days?|weeks?|months?|years?|yrs?)\b",
                  t)
    if not m:
        return None
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) else lo
    return (lo + hi) / 2 * _DAYS[m.group(3)]


def format_money(x: float, unit: str) -> str:
    sym = "£" if unit.upper() == "GBP" else ""
    num = f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"
    return f"{sym}{num}" if sym else f"{num} {unit}".strip()
