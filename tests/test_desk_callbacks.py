"""The Agent desk's callbacks (assistant/ui/desk.py) called directly, as Gradio calls them,
without a browser: a real service on a copy of the staff shop (scripted model) and a fake
request carrying the signed-in user. The service checks the role; what the agent is told
arrives as a Gradio warning (``warnings.warn`` outside a running app)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from assistant.core.schemas import Message
from assistant.infra.llm import ScriptedModel
from assistant.service.assistant import AssistantService
from assistant.ui import desk
from tests.conftest import shop_service, staff_copy

AGENT = SimpleNamespace(username="alex")
OPS = SimpleNamespace(username="olivia")
REPLY = "Hello, thank you for getting in touch. We are looking into your order now."
TICKET = "Hi, my order has not arrived yet. Where is it?"
THANKS = "Thank you for getting in touch."


def polish(messages: Sequence[Message]) -> str:
    """A model that rewords the draft it is asked to rewrite (the composed draft, or the
    earlier one) and keeps every order number, date, amount and citation."""
    draft = next(m.content for m in reversed(messages) if m.role == "assistant")
    greeting, _, rest = draft.partition("\n\n")
    return f"{greeting}\n\n{THANKS}\n\n{rest}".strip()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> tuple[Path, Path]:
    return staff_copy(staff_shop, tmp_path_factory.mktemp("desk") / "shop")


@pytest.fixture
def svc(shop: tuple[Path, Path]) -> AssistantService:
    return shop_service(shop, ScriptedModel(polish))


def test_a_non_agent_gets_the_role_message_and_no_draft_is_stored(svc) -> None:
    before = svc.store.template_drafts("support_draft")
    with pytest.warns(UserWarning, match="'olivia' has the role ops; this needs agent"):
        steps = list(desk.draft(svc, "17850", TICKET, "neutral", OPS))
    assert steps == [(gr.skip(),) * 6]  # nothing on the page changes
    with pytest.warns(UserWarning, match="has the role ops; this needs agent"):
        steps = list(desk.revise(svc, "shorter", "17850", TICKET, "neutral", "Hi.", OPS))
    assert steps == [(gr.skip(),) * 6]
    with pytest.warns(UserWarning, match="Please sign in"):
        list(desk.draft(svc, "17850", TICKET, "neutral", SimpleNamespace(username=None)))
    assert svc.store.template_drafts("support_draft") == before
    assert svc.store.drafts_for("17850") == []

    with pytest.warns(UserWarning, match="has the role ops; this needs agent"):
        assert desk.open_customer(svc, "17850", OPS) == (desk.EMPTY_SIDEBAR, "")
    with pytest.raises(gr.Error, match="has the role ops; this needs agent"):
        desk.api_customer(svc, "17850", OPS)
    with pytest.raises(gr.Error, match="has the role ops; this needs agent"):
        desk.api_draft(svc, "17850", TICKET, "neutral", OPS)
    assert svc.store.template_drafts("support_draft") == before


def test_an_agent_opening_a_customer_gets_the_sidebar_with_the_segment(svc) -> None:
    segment = svc.segment_model().of_customer("17850")["segment"]
    sidebar, current = desk.open_customer(svc, " 17850 ", AGENT)
    assert current == "17850"  # the customer the drafts are for
    assert sidebar.startswith(f"### Customer 17850\n**{segment}** · ")
    assert "**RFM** R" in sidebar and "**Recent orders**" in sidebar
    assert desk.api_customer(svc, "17850", AGENT)["segment"] == segment

    assert desk.open_customer(svc, "   ", AGENT) == (desk.EMPTY_SIDEBAR, "")
    with pytest.warns(UserWarning, match="No customer 'nobody'"):
        assert desk.open_customer(svc, "nobody", AGENT) == (desk.EMPTY_SIDEBAR, "")


def test_an_agent_drafts_revises_saves_and_rates(svc, capsys) -> None:
    steps = list(desk.draft(svc, "17850", TICKET, "friendlier", AGENT))
    text, spans, status, cites, draft_id, original = steps[-1]
    assert len(steps) > 2 and all(s[2] == "*Writing…*" and text.startswith(s[0])
                                  for s in steps[:-1])  # streamed, then checked
    assert text.startswith(f"Hi there,\n\n{THANKS}\n\nI can see your latest order")
    assert "showing the model's rewrite" in status
    record = svc.store.draft(draft_id)
    assert (record["agent"], record["customer_id"], record["tone"]) == ("alex", "17850",
                                                                        "friendlier")
    assert text == original == record["draft"]
    assert "".join(span for span, _ in spans) == text
    assert status.startswith(f"**Status: {record['status']}**")
    assert cites.startswith("**[1]") if record["citations"] else cites.startswith("*No help")

    shorter = list(desk.revise(svc, "shorter", "17850", TICKET, "neutral", text, AGENT))[-1]
    assert shorter[4] != draft_id and svc.store.draft(shorter[4])["draft"] == shorter[0]

    with pytest.warns(UserWarning, match="Draft a reply first"):
        assert desk.save(svc, None, "Hello.", AGENT) == gr.skip()
    saved = desk.save(svc, draft_id, "Hello Sam, your parcel is on its way.", AGENT)
    assert saved.startswith("**Status: final**")
    assert "Saved as final." in capsys.readouterr().out  # gr.Info outside an app prints
    record = svc.store.draft(draft_id)
    assert (record["status"], record["final_agent"], record["final_text"]) == (
        "final", "alex", "Hello Sam, your parcel is on its way.")

    # the ticket: resolved once the reply is sent, and only once
    with pytest.warns(UserWarning, match="not been sent"):
        assert desk.resolve(svc, shorter[4], AGENT) == gr.skip()
    resolved = desk.resolve(svc, draft_id, AGENT)
    assert "ticket resolved by alex" in resolved
    assert svc.store.draft(draft_id)["resolved_by"] == "alex"
    with pytest.warns(UserWarning, match="already marked resolved by alex"):
        assert desk.resolve(svc, draft_id, AGENT) == gr.skip()
    with pytest.warns(UserWarning, match="has the role ops"):
        desk.resolve(svc, draft_id, OPS)
    week = svc.insights_report("olivia", "satisfaction")["drafts"][-1]
    assert week["resolved"]["count"] == 1

    assert desk.rate(svc, False, draft_id, "too formal", AGENT) is None
    with pytest.warns(UserWarning, match="has the role ops"):
        desk.rate(svc, True, draft_id, "", OPS)  # refused: the agent's rating stays
    record = svc.store.draft(draft_id)
    assert (record["feedback"], record["feedback_reason"]) == (-1, "too formal")


def test_the_api_draft_returns_the_whole_draft(svc) -> None:
    out = desk.api_draft(svc, " 17850 ", TICKET, "", AGENT)
    assert out["shown"] == "polished", out["shown_reason"]
    assert out["text"] == polish(svc.llm.model.calls[-1]) and out["template_version"]
    assert out["composed"].startswith("Hello,\n\nI can see your latest order")
    record = svc.store.draft(out["id"])
    assert (record["customer_id"], record["tone"]) == ("17850", "neutral")
    assert record["draft"] == out["text"]
    # a reply that drops the order's facts: the composed draft, with the reason
    svc.llm.model = ScriptedModel([REPLY])
    out = desk.api_draft(svc, "17850", TICKET, "neutral", AGENT)
    assert out["shown"] == "composed" and out["text"] == out["composed"] != REPLY
    assert out["shown_reason"].startswith("the rewrite dropped ")
    assert f"Showing the composed draft: {out['shown_reason']}." in out["notes"]
    assert svc.store.draft(out["id"])["draft"] == out["composed"]
    # on the page: the rewrite streams, then the composed draft replaces it, with the reason
    steps = list(desk.draft(svc, "17850", TICKET, "neutral", AGENT))
    text, _, status, _, draft_id, original = steps[-1]
    assert steps[-2][0] == REPLY and text == original == out["composed"]
    assert "showing the composed draft: the rewrite dropped" in status
    assert svc.store.draft(draft_id)["draft"] == text
    with pytest.raises(gr.Error, match="empty"):
        desk.api_draft(svc, "17850", "   ", "neutral", AGENT)


def test_the_tab_binds_the_service_and_keeps_the_request(svc) -> None:
    """The staff app's events call the same callbacks with the service bound: Gradio sees
    the rest of the signature (so it passes the request) and every one is guarded."""
    from assistant.ui import create_staff_app
    from assistant.ui.guard import is_guarded

    demo = create_staff_app(svc)
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    assert list(inspect.signature(fns["customer"]).parameters) == ["customer_id", "request"]
    assert list(inspect.signature(fns["desk_shorter"]).parameters) == [
        "customer", "ticket", "tone", "previous", "request"]
    assert inspect.isgeneratorfunction(fns["desk_draft"])
    assert all(is_guarded(fns[name]) for name in ("customer", "draft", "desk_open",
                                                  "desk_like", "desk_save"))
    assert fns["customer"]("17850", AGENT)["id"] == "17850"
    *_, last = fns["desk_longer"]("17850", TICKET, "neutral", REPLY, AGENT)
    assert svc.store.draft(last[4])["agent"] == "alex"
    fns["desk_dislike"](last[4], "", AGENT)
    assert svc.store.draft(last[4])["feedback"] == -1
