"""The questionnaire's fixed texts (acknowledgements, re-asks, the summary...): the
``texts:`` of the ops-editable template ``prompts/questionnaire.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.core.config import REPO_ROOT
from assistant.core.errors import TemplateError
from assistant.prompts.templates import PromptTemplate, load_template

DEFAULT_WORDING = REPO_ROOT / "prompts" / "questionnaire.yaml"
WORDING_KEYS = (
    "ask_number", "welcome_back", "reask", "skip_after_failures", "ack", "ack_text",
    "ack_skip", "ack_dont_know", "did_you_mean", "say_again", "first_question", "go_back",
    "changed", "cleared", "cannot_change", "pruned", "updated", "summary",
    "summary_not_understood", "just_chat", "identified", "noted",
)


class Wording:
    """The questionnaire's fixed texts: the ``texts:`` of an ops-editable template
    (prompts/questionnaire.yaml). Every key the engine uses must be there."""

    def __init__(self, template: PromptTemplate) -> None:
        missing = [k for k in WORDING_KEYS if k not in template.texts]
        if missing:
            raise TemplateError(
                f"Template '{template.name}' ({template.source}) lacks text(s): "
                + ", ".join(missing),
                "Add them under `texts:` (see prompts/questionnaire.yaml as shipped).")
        self.template = template

    @classmethod
    def load(cls, path: Path | str | None = None) -> Wording:
        return cls(load_template(Path(path or DEFAULT_WORDING)))

    def __call__(self, key: str, **values: Any) -> str:
        return self.template.text(key, **values).strip()


_SHIPPED_WORDING: Wording | None = None


def shipped_wording() -> Wording:
    global _SHIPPED_WORDING
    if _SHIPPED_WORDING is None:
        _SHIPPED_WORDING = Wording.load()
    return _SHIPPED_WORDING
