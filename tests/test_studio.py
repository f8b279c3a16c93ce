"""The prompt studio's service (assistant/service/studio.py) on a real shop: per-segment preview
samples from real customers, a streamed preview run with tokens, latency and a grounding
verdict, staged rollout routing real sessions, agents' edits turned into test cases."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from assistant.core.config import load_settings
from assistant.core.schemas import Message
from assistant.infra.llm import ScriptedModel
from assistant.prompts.checks import TemplateValidationError
from assistant.prompts.metrics import PREVIEW_SESSION, version_metrics
from assistant.prompts.versions import PRODUCTION, STAGING
from assistant.service.assistant import AssistantService
from assistant.service.chat import final_text
from assistant.service.studio import SUPPORT, removed_sentences
from tests.conftest import copy_shop, link


def _items_reply(messages: Sequence[Message]) -> str:
    """A grounded reply: names the first listed item with its price."""
    user = next(m.content for m in messages if m.role == "user")
    name = re.search(r"^- (.+?) \(£([\d.]+)\):", user, re.MULTILINE)
    if not name:
        return "Here are a few things for you."
    return f"You might like the {name.group(1).strip()} at £{name.group(2)}."


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> tuple[Path, Path]:
    return copy_shop(staff_shop, tmp_path_factory.mktemp("studio") / "shop")


@pytest.fixture
def svc(shop: tuple[Path, Path]) -> AssistantService:
    data, orders = shop
    settings = load_settings(data_dir=data, llm_provider="scripted", orders=orders)
    return AssistantService.from_settings(settings, model=ScriptedModel(_items_reply))


def edited(body: str) -> str:
    return body.replace("Write one short, warm message",
                        "Write one short, cheerful message")


def test_samples_are_real_customers_of_each_segment(svc: AssistantService) -> None:
    st = svc.staff.studio
    samples, notes = st.samples("recommendation", ["Champions", "At Risk", "Nobody"])
    assert [s.segment for s in samples] == ["Champions", "At Risk"]
    assert any("Nobody" in n for n in notes)
    model = svc.segment_model()
    for s in samples:
        assert model.customers.loc[s.customer_id, "rfm_segment"] == s.segment
        assert s.vars["items"] and all("price" in i and "name" in i for i in s.vars["items"])
        assert s.vars["profile"]
    again, _ = st.samples("recommendation", ["Champions", "At Risk"])
    assert [s.customer_id for s in again] == [s.customer_id for s in samples]  # same seed
    other, _ = st.samples("recommendation", ["Champions"], seed=7)
    assert other[0].segment == "Champions"


def test_render_shows_the_unsaved_edit_for_every_segment(svc: AssistantService) -> None:
    st = svc.staff.studio
    body = edited(st.version("recommendation").body)
    samples, _ = st.samples("recommendation", ["Champions", "New", "Lost"])
    rendered = st.render("recommendation", body, samples)
    assert len(rendered) == len(samples) >= 2
    for r in rendered:
        assert not r.error
        assert "cheerful" in r.messages[0].content
        first_item = r.sample.vars["items"][0]["name"]
        assert first_item in r.messages[-1].content
    with pytest.raises(TemplateValidationError) as err:
        st.render("recommendation", body.replace("{{shop_name}}", "{{shop_nmae}}"), samples)
    assert "shop_nmae" in err.value.message


def test_preview_run_streams_with_tokens_latency_and_grounding(svc: AssistantService) -> None:
    st = svc.staff.studio
    body = edited(st.version("recommendation").body)
    samples, _ = st.samples("recommendation", ["Champions"])
    run = st.run_preview("recommendation", body, samples[0])
    deltas = list(run)
    res = run.result
    assert len(deltas) > 3 and "".join(deltas) == res.text
    assert res.outcome == "ok" and res.version == "draft"
    assert res.completion_tokens == len(res.text.split()) and res.prompt_tokens > 20
    assert res.latency_ms is not None and res.latency_ms >= 0
    assert res.grounded is True, res.grounding

    bad = ScriptedModel(["Try our GOLDEN UNICORN LAMP at £99.99 today."])
    svc.llm.model = bad
    res2 = st.run_preview("recommendation", body, samples[0]).collect()
    assert res2.grounded is False and res2.flags
    assert "99.99" in res2.grounding or "UNICORN" in res2.grounding.upper()
    # previews are not traffic: they never count in the per-version metrics
    calls = [c for c in svc.store.llm_calls(20) if c.session_id == PREVIEW_SESSION]
    assert len(calls) == 2
    assert all("preview" not in k for k in version_metrics(svc.store, "recommendation"))


def test_non_segment_templates_preview_their_test_inputs(svc: AssistantService) -> None:
    samples, notes = svc.staff.studio.samples("chat", ["Champions"])
    assert samples and all(s.key.startswith("test:") for s in samples)
    assert any("does not depend" in n for n in notes)


def _answer_session(svc: AssistantService) -> str:
    sid = svc.new_session()
    svc.answer(sid, "interests", "candles")
    return sid


def test_staging_share_routes_sessions_and_rollback_restores(svc: AssistantService) -> None:
    st = svc.staff.studio
    prod = st.version("recommendation", None)
    v = st.save("recommendation", edited(prod.body), note="cheerful wording",
                base_version=prod.version, actor="olga")
    st.set_label("recommendation", STAGING, v.version, actor="olga", share=0.5)
    served = {}
    for _ in range(16):
        sid = _answer_session(svc)
        final_text(svc.suggest(sid))
        call = next(c for c in svc.store.llm_calls(5) if c.session_id == sid)
        served[sid] = call.template_version
        assert svc.store.messages(sid)[-1].role == "assistant"
    versions = set(served.values())
    assert versions == {f"v{prod.version}", f"v{v.version}"}, served
    # deterministic: the same session keeps its version
    sid = next(iter(served))
    final_text(svc.suggest(sid))
    assert next(c for c in svc.store.llm_calls(5) if c.session_id == sid
                ).template_version == served[sid]
    metrics = st.metrics("recommendation")
    assert {f"v{prod.version}", f"v{v.version}"} <= set(metrics["versions"])
    assert metrics["comparison"] is not None and "comparison_markdown" in metrics

    # promote staging (tests gate it: an override with a reason), then roll back
    event = st.promote_staging("recommendation", actor="olga", override=True,
                               reason="scripted model in tests")
    assert event.to_version == v.version
    assert STAGING not in st.rollout("recommendation")["labels"]
    sid = _answer_session(svc)
    final_text(svc.suggest(sid))
    assert svc.store.llm_calls(1)[0].template_version == f"v{v.version}"
    back = st.rollback("recommendation", actor="olga", reason="like rate dropped")
    assert back.to_version == prod.version
    final_text(svc.suggest(sid))
    assert svc.store.llm_calls(1)[0].template_version == f"v{prod.version}"
    kinds = [(e.label, e.kind, e.to_version) for e in st.audit("recommendation")]
    assert kinds[-4:] == [(STAGING, "set", v.version), (PRODUCTION, "set", v.version),
                          (STAGING, "remove", None), (PRODUCTION, "rollback", prod.version)]


def test_staging_for_one_segment_only(svc: AssistantService) -> None:
    """Staging for one segment: its sessions get the new version, others keep production;
    the metrics compare the two versions within that segment."""
    st = svc.staff.studio
    latest = st.version("recommendation")
    prod = st.rollout("recommendation")["labels"][PRODUCTION]["version"]
    v = st.save("recommendation", st.version("recommendation", prod).body.replace(
        "two or three sentences", "two sentences"), note="shorter",
        base_version=latest.version, actor="olga")
    customers = svc.segment_model().customers
    sessions = []
    for seg in ("Champions", "Lost"):  # returning customers of two segments
        for cid in customers.index[customers["rfm_segment"] == seg][:3]:
            sid = svc.new_session()
            link(svc, sid, cid)
            sessions.append(sid)
    segments = {sid: svc.store.load_profile(sid)["segment"] for sid in sessions}
    assert len(set(segments.values())) == 2, segments
    target = segments[sessions[0]]
    st.set_label("recommendation", STAGING, v.version, actor="olga", share=1.0,
                 segment=target)
    for sid in sessions:
        final_text(svc.suggest(sid))
        got = svc.store.llm_calls(1)[0].template_version
        assert got == (f"v{v.version}" if segments[sid] == target else f"v{prod}"), sid
    out = st.metrics("recommendation")
    assert out["segment"] == target and out["compared"] == (f"v{prod}", f"v{v.version}")
    assert out["comparison"]["calls_b"] == sum(seg == target for seg in segments.values())
    st.remove_label("recommendation", STAGING, actor="olga")
    assert st.metrics("recommendation")["segment"] is None


def test_with_parameters_merges_into_the_body(svc: AssistantService) -> None:
    st = svc.staff.studio
    body = st.version("recommendation").body
    out = st.with_parameters("recommendation", body, {"temperature": 0.3})
    data = yaml.safe_load(out)
    assert data["parameters"]["temperature"] == 0.3
    assert data["parameters"]["max_tokens"] == yaml.safe_load(body)["parameters"]["max_tokens"]
    assert st.with_parameters("recommendation", body, {}) == body
    with pytest.raises(TemplateValidationError):
        st.with_parameters("recommendation", "a: [", {"temperature": 0.3})


def test_removed_sentences() -> None:
    draft = ("Thanks for writing. Your order 536365 ships today. We will refund you twice. "
             "Best wishes.")
    final = "Thanks for writing. Your order 536365 ships today. Best wishes."
    assert removed_sentences(draft, final) == ["We will refund you twice."]
    assert removed_sentences(final, final) == []


def test_agent_edit_becomes_a_test_case(svc: AssistantService) -> None:
    customer = "17850"
    extra = "Thank you for your patience while we look into this."

    def model(messages: Sequence[Message]) -> str:
        """Rewords the desk's composed draft with one sentence more (and says that sentence
        in a test case run, which gives it no draft to rewrite)."""
        drafted = next((m.content for m in reversed(messages) if m.role == "assistant"), None)
        if drafted is None:
            return f"Thanks for your message. {extra} Kind regards."
        greeting, _, rest = drafted.partition("\n\n")
        return f"{greeting}\n\n{extra}\n\n{rest}"

    svc.llm.model = ScriptedModel(model)
    if svc.users.get("ann") is None:  # drafts are written by a signed-in agent
        svc.users.add("ann", "correct-horse-42", "agent")
    run = svc.start_draft(agent="ann", customer_id=customer,
                          ticket="Where is my order? It has not arrived.", tone="neutral")
    draft = run.collect()
    assert draft["shown"] == "polished" and extra in draft["text"], draft["shown_reason"]
    # the agent deletes the model's sentence and the help passage: greeting, order, closing
    paragraphs = draft["text"].split("\n\n")
    assert paragraphs[1] == extra and paragraphs[2].startswith("I can see your latest order")
    final = "\n\n".join([paragraphs[0], paragraphs[2], paragraphs[-1]])
    svc.save_final_draft(draft["id"], "ann", final)
    st = svc.staff.studio
    edits = st.agent_edits()
    mine = next(e for e in edits if e["id"] == draft["id"])
    assert mine["removed"][0] == extra and len(mine["removed"]) > 1
    assert not any(s in final for s in mine["removed"])
    before = len(st.tests(SUPPORT))
    case = st.case_from_draft(draft["id"], actor="olga")
    cases = st.tests(SUPPORT)
    assert len(cases) == before + 1 and cases[-1].name == case.name
    kinds = [a.type for a in case.assert_]
    assert ("not_contains", extra) in [(a.type, a.value) for a in case.assert_]
    assert "grounding" in kinds and "no_prompt_leak" in kinds and "max_length" in kinds
    assert case.vars["ticket"].startswith("Where is my order")
    # a model that says it again fails the new case; one that doesn't passes it
    run_ = st.run_tests(SUPPORT, None, actor="olga")
    failing = {r.case for r in run_.results if not r.passed}
    assert case.name in failing
    svc.llm.model = ScriptedModel(["Thanks for your message. Kind regards."])
    run_ = st.run_tests(SUPPORT, None, actor="olga")
    assert all(r.passed for r in run_.results if r.case == case.name
               and r.assertion.startswith("not_contains"))
    # again: replaced, not duplicated
    st.case_from_draft(draft["id"], actor="olga")
    assert len(st.tests(SUPPORT)) == before + 1


def test_support_samples_use_the_desk_context(svc: AssistantService) -> None:
    st = svc.staff.studio
    ticket = "My order has not arrived <script>alert(1)</script>"
    samples, notes = st.samples(SUPPORT, ["Champions", "Lost"], ticket=ticket)
    assert [s.segment for s in samples] == ["Champions", "Lost"], notes
    for s in samples:
        assert s.facts is not None and s.facts.order_ids
        assert "alert" in s.vars["ticket"] and s.vars["orders"]
    rendered = st.render(SUPPORT, st.version(SUPPORT).body, samples)
    assert all(not r.error and any(s.customer_id in m.content or "order" in m.content
                                   for m in r.messages)
               for r, s in zip(rendered, samples, strict=True))
    # the tone line comes from the edited body's texts, not from production
    body = st.version(SUPPORT).body.replace('tone_neutral: "Tone: clear, calm and polite."',
                                            'tone_neutral: "Tone: short and plain."')
    assert body != st.version(SUPPORT).body
    rendered = st.render(SUPPORT, body, samples[:1])
    assert "Tone: short and plain." in "\n".join(m.content for m in rendered[0].messages)


def test_metrics_compare_production_with_the_version_rolled_back(svc: AssistantService
                                                                  ) -> None:
    """Without staging, production is compared with the newest other version that had
    traffic: after a rollback, the version just rolled back."""
    st = svc.staff.studio
    latest = st.version("recommendation")
    prod = st.rollout("recommendation")["labels"][PRODUCTION]["version"]
    v = st.save("recommendation", st.version("recommendation", prod).body.replace(
        "online gift shop", "online gift shop in the UK"), note="where we are",
        base_version=latest.version, actor="olga")
    st.set_label("recommendation", PRODUCTION, v.version, actor="olga", override=True,
                 reason="test")
    sid = _answer_session(svc)
    final_text(svc.suggest(sid))
    st.rollback("recommendation", actor="olga", reason="test")
    final_text(svc.suggest(sid))
    out = st.metrics("recommendation")
    assert out["compared"] == (f"v{prod}", f"v{v.version}")
    assert out["versions"][f"v{v.version}"]["calls"] == 1
    assert "Mann-Whitney U" in out["comparison_markdown"]


class FixedSamples:
    """A SampleSource without any shop: what the studio needs, and nothing else."""

    def customers_by_segment(self) -> dict[str, list[str]]:
        return {"Champions": ["c1", "c2"], "New": ["n1"]}

    def recommendation_context(self, segment: str, customer_id: str):
        from assistant.prompts.grounding import Candidate, Facts

        variables = dict(shop_name="Test Shop", profile=f"a {segment} customer",
                         items=[{"name": "Red Candle", "price": "2.50", "reason": "x"}],
                         popular=False)
        return variables, Facts(products=[Candidate("RED CANDLE", 2.5)], catalog=[])

    def support_context(self, customer_id, ticket):
        raise AssertionError("not used here")


def test_studio_needs_no_service(tmp_path: Path) -> None:
    """The studio is built from narrow parts (no AssistantService): versions, the served
    templates, a model client, the store and a sample source; previews come from it."""
    from assistant.infra.llm import LLMClient
    from assistant.infra.store import Store
    from assistant.prompts.serving import ProductionTemplates
    from assistant.prompts.versions import PromptVersions
    from assistant.service.studio import PromptStudio

    settings = load_settings(data_dir=tmp_path / "data", llm_provider="scripted")
    store = Store(settings.db_path)
    versions = PromptVersions(store, settings.prompts_dir)
    versions.seed()
    served = ProductionTemplates(versions)
    llm = LLMClient(ScriptedModel(["You might like the Red Candle at £2.50."]), store)
    studio = PromptStudio(versions, served, llm, store, FixedSamples())
    samples, notes = studio.samples("recommendation", ["Champions", "Lost"])
    assert [s.segment for s in samples] == ["Champions"] and samples[0].customer_id in (
        "c1", "c2")
    assert notes == ["No customers in: Lost."]
    body = versions.get("recommendation", label=PRODUCTION).body
    result = studio.run_preview("recommendation", body, samples[0]).collect()
    assert result.text == "You might like the Red Candle at £2.50." and result.grounded
    assert {row["name"] for row in studio.overview()} >= {"recommendation", "chat"}


def test_studio_refuses_file_templates(tmp_path: Path) -> None:
    from assistant.core.errors import ConfigError
    from assistant.infra.llm import LLMClient
    from assistant.infra.store import Store
    from assistant.prompts.templates import TemplateRegistry
    from assistant.service.studio import PromptStudio

    settings = load_settings(data_dir=tmp_path / "data", llm_provider="scripted")
    store = Store(settings.db_path)
    files = TemplateRegistry(settings.prompts_dir)
    assert files.refresh() and files.serving()["chat"]["production"]["version"]
    with pytest.raises(ConfigError, match="template store"):
        PromptStudio(None, files, LLMClient(ScriptedModel(), store), store, FixedSamples())
