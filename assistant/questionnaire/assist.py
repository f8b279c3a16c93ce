"""The model's part in the questionnaire, as pure functions: checking a model's phrasing of a
question before it is shown, describing questions for the extraction prompt, and reading the
answers a model extracted from a message (checked by the parser afterwards)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from assistant.questionnaire.spec import QuestionnaireSpec

_MAX_PHRASING = 200
_LEAK = re.compile(r"\{\{|\}\}|<<<|>>>|\bsystem\b|\binstruction|\bprompt\b", re.IGNORECASE)
PHRASING_MIN_SIMILARITY = 0.5  # MiniLM cosine, spec text vs phrasing (measured: good
# paraphrases 0.57-0.83, an unrelated question 0.22, off-topic chatter -0.03)


def check_phrasing(original: str, raw: str, similarity: Callable[[str, str], float]) -> str:
    """The model's phrasing of a question, or "" when it must not be shown: empty, long,
    not a question, template debris, or off-topic (embedding similarity to the original)."""
    lines = [ln.strip() for ln in (raw or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    text = re.sub(r"^(?:question|rewritten|rephrased)\s*:\s*", "", lines[0], flags=re.I)
    text = text.strip().strip('"“”\'').strip()
    if not (8 <= len(text) <= _MAX_PHRASING) or not text.endswith("?") or _LEAK.search(text):
        return ""
    return text if similarity(original, text) >= PHRASING_MIN_SIMILARITY else ""


def describe_questions(spec: QuestionnaireSpec, ids: list[str]) -> str:
    """One line per question for the extraction prompt: id, kind and allowed values."""
    lines = []
    for qid in ids:
        q = spec.question(qid)
        values = " | ".join(f'"{o.value}"' for o in q.options)
        kind = {
            "single": f"one of {values}",
            "multi": f"several of {values}",
            "number": f"a number in {q.unit or 'units'} from {q.bounds[0]:g} to "
                      f"{q.bounds[1]:g}" if q.type == "number" else "",
            "yes_no": "true or false",
            "text": "short free text",
            "email": "an email address",
        }[q.type]
        lines.append(f"- {q.id}: {q.text} ({kind})")
    return "\n".join(lines)


def parse_extraction(raw: str, allowed: list[str]) -> dict[str, Any]:
    """The JSON object in a model's reply, keeping only the allowed question ids."""
    start, end = (raw or "").find("{"), (raw or "").rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        data = json.loads(raw[start:end + 1])
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in allowed and v not in (None, "", [])}
