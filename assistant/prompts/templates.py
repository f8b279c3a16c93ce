"""Prompt templates: YAML files in ``prompts/``, validated at start-up, rendered strictly
through LangChain's ``ChatPromptTemplate`` (mustache syntax).

A template file::

    name: chat
    description: what it is for
    variables:
      shop_name: {type: string, required: true, description: ...}
      history: {type: messages, required: true}
    messages:
      - role: system
        content: "You help customers of {{shop_name}}."
      - placeholder: history          # a list of earlier messages
      - role: user
        content: "{{message}}"
    parameters: {temperature: 0.2, max_tokens: 200}

Strict rendering: a variable used but not declared is refused at load; a required variable
without a value, or a value for an undeclared variable, is refused at render time. Values
are never HTML-escaped (``{{x}}`` means ``{{{x}}}``): these are prompts, not web pages.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.prompts.string import mustache_template_vars
from langchain_core.utils.mustache import ChevronError
from langchain_core.utils.mustache import render as mustache_render
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.core.errors import TemplateError
from assistant.core.schemas import Message
from assistant.core.yamlfile import line_of, read_yaml
from assistant.infra.llm import GenerationParams

VarType = Literal["string", "integer", "number", "boolean", "list", "object", "messages"]
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list, tuple),
    "object": (dict,),
    "messages": (list, tuple),
}
_EMPTY: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                          "list": list, "object": dict, "messages": list}
# a plain {{name}} (not {{{name}}}, not a section) -> {{&name}}: no HTML escaping
_PLAIN_VAR = re.compile(r"(?<!\{)\{\{\s*([A-Za-z_][\w.]*)\s*\}\}(?!\})")


class Variable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: VarType = "string"
    required: bool = True
    description: str = ""
    default: Any = None


class TemplateMessage(BaseModel):
    """A message with text, or a placeholder for a list of messages."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"] | None = None
    content: str | None = None
    placeholder: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TemplateMessage:
        if self.placeholder is None and (self.role is None or self.content is None):
            raise ValueError("a message needs `role` and `content`, or `placeholder`")
        if self.placeholder is not None and (self.role or self.content):
            raise ValueError("a placeholder message has only `placeholder: VARIABLE`")
        return self


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    variables: dict[str, Variable] = Field(default_factory=dict)
    messages: list[TemplateMessage] = Field(min_length=1)
    parameters: GenerationParams = Field(default_factory=GenerationParams)
    # fixed wording the app shows without the model (re-asks, summaries, ...): mustache
    # snippets over the same declared variables, rendered with ``render_text``
    texts: dict[str, str] = Field(default_factory=dict)
    version: str = ""
    source: str = ""

    def used_variables(self) -> set[str]:
        used: set[str] = set()
        for m in self.messages:
            if m.placeholder:
                used.add(m.placeholder)
            else:
                used |= mustache_template_vars(m.content or "")
        for text in self.texts.values():
            used |= _top_vars(text)
        return used

    def check(self) -> None:
        """Declared vs used variables and mustache syntax; raises TemplateError."""
        for i, m in enumerate(self.messages):
            if m.content is not None:
                try:
                    mustache_template_vars(m.content)
                except ChevronError as exc:
                    raise TemplateError(
                        f"Template '{self.name}' ({self.source}), message {i + 1}: "
                        f"mustache syntax error: {exc}",
                        "Close every {{#section}} with {{/section}} and every {{ with }}.",
                    ) from None
            elif self.variables.get(m.placeholder or "", Variable()).type != "messages":
                raise TemplateError(
                    f"Template '{self.name}' ({self.source}): placeholder "
                    f"'{m.placeholder}' must be declared with type: messages.",
                    f"Add `{m.placeholder}: {{type: messages}}` under variables.",
                )
        for key, text in self.texts.items():
            try:
                mustache_template_vars(text)
            except ChevronError as exc:
                raise TemplateError(
                    f"Template '{self.name}' ({self.source}), texts.{key}: mustache syntax "
                    f"error: {exc}",
                    "Close every {{#section}} with {{/section}} and every {{ with }}.",
                ) from None
        undeclared = sorted(self.used_variables() - set(self.variables))
        if undeclared:
            raise TemplateError(
                f"Template '{self.name}' ({self.source}) uses undeclared variable(s): "
                + ", ".join(undeclared),
                "Declare each under `variables:` with a type and description, or fix the "
                "spelling in the message.",
            )

    def _chat_template(self) -> ChatPromptTemplate:
        parts: list[Any] = []
        for m in self.messages:
            if m.placeholder:
                parts.append(MessagesPlaceholder(m.placeholder))
            else:
                role = {"user": "human", "assistant": "ai"}.get(m.role or "", m.role)
                parts.append((role, _PLAIN_VAR.sub(r"{{&\1}}", m.content or "")))
        return ChatPromptTemplate.from_messages(parts, template_format="mustache")

    def render(self, **values: Any) -> list[Message]:
        """Render to chat messages; every problem is a TemplateError naming the variable."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise TemplateError(
                f"Template '{self.name}' got undeclared variable(s): {', '.join(unknown)}.",
                "Declare them in the template file or stop passing them.",
            )
        filled: dict[str, Any] = {}
        for name, var in self.variables.items():
            value = values.get(name, var.default)
            if value is None:
                if var.required:
                    raise TemplateError(
                        f"Template '{self.name}' needs a value for '{name}' "
                        f"({var.description or var.type}).",
                        f"Pass {name}=... when rendering, or give it a default in the file.",
                    )
                value = _EMPTY[var.type]()
            if not isinstance(value, _PY_TYPES[var.type]) or (
                var.type in ("integer", "number") and isinstance(value, bool)
            ):
                raise TemplateError(
                    f"Template '{self.name}': '{name}' must be {var.type}, "
                    f"got {type(value).__name__}.",
                    f"Pass a {var.type} for '{name}'.",
                )
            if var.type == "messages":
                value = [_to_lc(m) for m in value]
            filled[name] = value
        rendered = self._chat_template().format_messages(**filled)
        return [_from_lc(m) for m in rendered]


    def text(self, key: str, **values: Any) -> str:
        """Render one of the fixed ``texts``; every variable it uses needs a value."""
        if key not in self.texts:
            raise TemplateError(f"Template '{self.name}' has no text '{key}'.",
                                f"Add `{key}:` under `texts:` in {self.source or 'the file'}.")
        text = self.texts[key]
        missing = sorted(v for v in _top_vars(text) if values.get(v) is None)
        if missing:
            raise TemplateError(
                f"Template '{self.name}', text '{key}' needs a value for: {', '.join(missing)}.",
                "Pass every variable the text uses.")
        return render_mustache(text, values)


def _top_vars(text: str) -> set[str]:
    """Variables a mustache text uses at the top level (inside a {{#list}} section, names
    refer to the list's items and are not template variables)."""
    out: set[str] = set()
    depth = 0
    for tag in re.finditer(r"\{\{\{?\s*([#^/&!]?)\s*([\w.]+)\s*\}?\}\}", text):
        kind, name = tag.groups()
        if kind == "!":
            continue
        if kind == "/":
            depth -= 1
            continue
        if depth == 0:
            out.add(name.split(".")[0])
        if kind in "#^" and kind:
            depth += 1
    return out


def render_mustache(text: str, values: dict[str, Any]) -> str:
    """Mustache without HTML escaping (the same rules as the chat templates)."""
    return mustache_render(_PLAIN_VAR.sub(r"{{&\1}}", text), values)


def _to_lc(m: Message | dict[str, str]) -> BaseMessage:
    msg = m if isinstance(m, Message) else Message(**m)
    return {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}[msg.role](
        content=msg.content
    )


def _from_lc(m: BaseMessage) -> Message:
    role = {"system": "system", "human": "user", "ai": "assistant"}[m.type]
    return Message(role=role, content=str(m.content))


def load_template(path: Path) -> PromptTemplate:
    """Parse and validate one template file; errors name the file and the line."""
    text = path.read_text(encoding="utf-8")
    data, root = read_yaml(
        path, text, what="Template file", error=TemplateError,
        hint="Fix the YAML at that line (indentation, quotes around text with ':' or '{').")
    if not isinstance(data, dict):
        raise TemplateError(f"Template file {path} must be a mapping (name:, messages:, ...).",
                            "See prompts/chat.yaml for the layout.")
    try:
        version = "file-" + hashlib.sha256(text.encode()).hexdigest()[:10]
        tpl = PromptTemplate(**data, version=version, source=str(path))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = line_of(root, loc)
        field = ".".join(str(p) for p in loc) or "(top level)"
        raise TemplateError(
            f"Template file {path}:{line}: {field}: {err['msg']}"
            + (f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""),
            "Fix that field; the layout is documented at the top of "
            "assistant/prompts/templates.py.",
        ) from None
    if tpl.name != path.stem:
        raise TemplateError(f"Template file {path}: name '{tpl.name}' differs from the file name.",
                            f"Rename the file to {tpl.name}.yaml or the template to '{path.stem}'.")
    tpl.check()
    return tpl


class ServedTemplates(Protocol):
    """What the app renders from: the template files (``TemplateRegistry``) or the versions
    labelled in SQLite (``prompts.serving.ProductionTemplates``). One interface, so callers
    never probe for methods."""

    def get(self, name: str) -> PromptTemplate:
        """The template every session gets (production)."""

    def route(self, name: str, session_key: str, *, segment: str | None = None
              ) -> PromptTemplate:
        """The template for one session (a staged rollout may pick another version)."""

    def serving(self) -> dict[str, dict[str, Any]]:
        """What is served now: {name: {label: {version, share, segment}}}."""

    def refresh(self) -> bool:
        """Pick up label changes now; False when the source could not be read."""

    def __iter__(self) -> Iterator[PromptTemplate]: ...


class TemplateRegistry:
    """All templates of a directory, loaded and validated at once (``ServedTemplates``:
    files have one version each, no labels, nothing to refresh)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise TemplateError(f"The templates directory {self.directory} does not exist.",
                                "Set TAILOR_PROMPTS_DIR to the folder with the .yaml templates.")
        self.templates = {p.stem: load_template(p) for p in sorted(self.directory.glob("*.yaml"))}

    def get(self, name: str) -> PromptTemplate:
        try:
            return self.templates[name]
        except KeyError:
            raise TemplateError(
                f"No template named '{name}' in {self.directory}.",
                f"Available: {', '.join(sorted(self.templates)) or 'none'}.",
            ) from None

    def route(self, name: str, session_key: str, *, segment: str | None = None
              ) -> PromptTemplate:
        """Files have no staged versions: every session gets the one template."""
        return self.get(name)

    def serving(self) -> dict[str, dict[str, Any]]:
        return {name: {"production": {"version": tpl.version, "share": 1.0, "segment": None}}
                # the label name is prompts.versions.PRODUCTION (not imported: a floor up)
                for name, tpl in self.templates.items()}

    def refresh(self) -> bool:
        return True  # the files were read at start; a change needs a restart

    def __iter__(self) -> Iterator[PromptTemplate]:
        return iter(self.templates.values())
