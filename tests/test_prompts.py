import textwrap

import pytest

from assistant.core.config import REPO_ROOT
from assistant.core.errors import TemplateError
from assistant.core.schemas import Message
from assistant.prompts.templates import TemplateRegistry, load_template

SAMPLE = {
    "string": "Tom & Jerry <3",
    "integer": 3,
    "number": 2.5,
    "boolean": True,
    "list": ["a", "b"],
    "object": {"k": "v"},
    "messages": [Message(role="user", content="earlier"),
                 Message(role="assistant", content="reply")],
}


def write(tmp_path, name, body):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_every_shipped_template_loads_and_renders_with_its_variables():
    reg = TemplateRegistry(REPO_ROOT / "prompts")
    assert "chat" in reg.templates
    for tpl in reg:
        values = {name: SAMPLE[var.type] for name, var in tpl.variables.items()}
        messages = tpl.render(**values)
        assert messages and all(m.content.strip() for m in messages)
        text = "\n".join(m.content for m in messages)
        assert "{{" not in text and "}}" not in text
        assert tpl.version.startswith("file-")


def test_chat_template_places_history_and_does_not_html_escape():
    tpl = TemplateRegistry(REPO_ROOT / "prompts").get("chat")
    msgs = tpl.render(shop_name="A & B <Gifts>", message='say "hi" & <go>',
                      history=SAMPLE["messages"])
    assert [m.role for m in msgs] == ["system", "user", "assistant", "user"]
    assert "A & B <Gifts>" in msgs[0].content
    assert msgs[-1].content == 'say "hi" & <go>'


def test_missing_required_variable_names_template_variable_and_fix():
    tpl = TemplateRegistry(REPO_ROOT / "prompts").get("chat")
    with pytest.raises(TemplateError) as exc:
        tpl.render(message="hi")
    assert "'chat'" in exc.value.message and "shop_name" in exc.value.message
    assert "shop_name=" in exc.value.hint


def test_unknown_variable_and_wrong_type_are_refused():
    tpl = TemplateRegistry(REPO_ROOT / "prompts").get("chat")
    with pytest.raises(TemplateError, match="undeclared variable"):
        tpl.render(shop_name="s", message="m", coupon="X")
    with pytest.raises(TemplateError, match="must be string"):
        tpl.render(shop_name=5, message="m")


def test_optional_variable_renders_empty(tmp_path):
    p = write(tmp_path, "t", """
        name: t
        description: d
        variables:
          who: {type: string}
          note: {type: string, required: false}
        messages:
          - {role: user, content: "hi {{who}}{{#note}} ({{note}}){{/note}}"}
    """)
    tpl = load_template(p)
    assert tpl.render(who="Ann")[0].content == "hi Ann"
    assert tpl.render(who="Ann", note="VIP")[0].content == "hi Ann (VIP)"


def test_undeclared_variable_in_file_is_refused_at_load(tmp_path):
    p = write(tmp_path, "t", """
        name: t
        description: d
        messages:
          - {role: user, content: "hi {{who}}"}
    """)
    with pytest.raises(TemplateError) as exc:
        load_template(p)
    assert "who" in exc.value.message and "variables:" in exc.value.hint


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = write(tmp_path, "t", """\
        name: t
        description: d
        messages:
          - role: user
            content: "unclosed
          - role: user
    """)
    with pytest.raises(TemplateError) as exc:
        load_template(p)
    assert f"{p}:" in exc.value.message and "not valid YAML" in exc.value.message


def test_schema_error_names_field_and_line(tmp_path):
    p = write(tmp_path, "t", """\
        name: t
        description: d
        messages:
          - role: user
            content: hi
        parameters:
          temperature: hot
    """)
    with pytest.raises(TemplateError) as exc:
        load_template(p)
    assert f"{p}:7" in exc.value.message and "parameters.temperature" in exc.value.message


def test_mustache_syntax_error_is_reported(tmp_path):
    p = write(tmp_path, "t", """
        name: t
        description: d
        variables: {x: {type: string}}
        messages:
          - {role: user, content: "{{#x}} never closed"}
    """)
    with pytest.raises(TemplateError, match="mustache syntax error"):
        load_template(p)


def test_placeholder_must_be_messages_variable(tmp_path):
    p = write(tmp_path, "t", """
        name: t
        description: d
        variables: {h: {type: string}}
        messages:
          - {placeholder: h}
    """)
    with pytest.raises(TemplateError, match="type: messages"):
        load_template(p)


def test_name_must_match_file(tmp_path):
    p = write(tmp_path, "other", """
        name: t
        description: d
        messages: [{role: user, content: hi}]
    """)
    with pytest.raises(TemplateError, match="differs from the file name"):
        load_template(p)
