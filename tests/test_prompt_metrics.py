"""Per-version metrics of a prompt template and the significance tests between versions
(assistant/prompts/metrics.py), on a real SQLite store filled through its public methods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scipy.stats import fisher_exact, mannwhitneyu

from assistant.core.schemas import LLMCall
from assistant.infra.store import Store
from assistant.prompts import metrics as pm
from assistant.prompts.cases import TEST_SESSION
from assistant.prompts.metrics import (
    PREVIEW_SESSION,
    compare,
    edit_distance,
    metrics_markdown,
    version_metrics,
)

REC = "recommendation"
NOT_ENOUGH = "not enough data (need at least 5 per version)"


class Clock:
    """The store's clock: every reading one second later (``step`` 0 freezes it)."""

    def __init__(self) -> None:
        self.t = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
        self.step = timedelta(seconds=1)

    def __call__(self, *, precise: bool = False) -> str:
        now = self.t.isoformat(timespec="microseconds" if precise else "milliseconds")
        self.t += self.step
        return now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr("assistant.infra.store._now", c)
    return c


@pytest.fixture
def store(tmp_path, clock: Clock) -> Store:
    return Store(tmp_path / "t.sqlite3")


def call(store: Store, version: str | None, *, session: str | None = None, name: str = REC,
         latency: float | None = 100.0, ttft: float | None = 10.0, prompt: int | None = 10,
         completion: int | None = 5, outcome: str = "ok",
         created_at: str | None = None) -> int:
    return store.log_llm_call(LLMCall(
        provider="scripted", model="m", session_id=session, template_name=name,
        template_version=version, latency_ms=latency, ttft_ms=ttft, prompt_tokens=prompt,
        completion_tokens=completion, outcome=outcome,
        error="boom" if outcome == "error" else None, created_at=created_at))


def reply(store: Store, session: str, call_id: int, *votes: int) -> None:
    """An assistant message written by the call, with thumbs (the last one counts)."""
    msg = store.add_message(session, "assistant", "a reply", llm_call_id=call_id)
    for vote in votes:
        store.add_feedback(msg.id, vote)


def test_counts_medians_means_grounding_and_thumbs_per_version(store):
    sid = store.create_session().id
    c1 = call(store, "v1", session=sid, latency=100, ttft=10, prompt=10, completion=5)
    c2 = call(store, "v1", session=sid, latency=300, ttft=30, prompt=30, completion=9)
    c3 = call(store, "v1", session=sid, latency=200, ttft=20, prompt=20, completion=7)
    # an error and a stopped stream count as calls, not as latency/token samples
    c4 = call(store, "v1", session=sid, latency=5000, ttft=None, prompt=999, completion=None,
              outcome="error")
    call(store, "v1", session=sid, latency=50, prompt=999, completion=1, outcome="stopped")
    store.set_grounding(c1, "ok")
    store.set_grounding(c2, "2 unsupported: a 12 EUR candle")
    store.set_grounding(c4, "no text")
    reply(store, sid, c1, -1, 1)  # changed their mind: up
    reply(store, sid, c2, -1)
    reply(store, sid, c3)  # no vote
    call(store, "v2", session=sid, latency=400, prompt=40, completion=8)
    call(store, "v2", session=None, latency=600, prompt=60, completion=12)  # no session: kept

    m = version_metrics(store, REC)

    assert list(m) == ["v1", "v2"]
    v1, v2 = m["v1"], m["v2"]
    assert (v1.calls, v1.errors) == (5, 1)
    assert (v1.latency_ms_p50, v1.latency_ms_mean, v1.ttft_ms_p50) == (200.0, 200.0, 20.0)
    assert (v1.prompt_tokens_mean, v1.completion_tokens_mean) == (20.0, 7.0)
    assert (v1.grounding_checked, v1.grounding_failed) == (3, 2)
    assert v1.grounding_fail_rate == pytest.approx(2 / 3)
    assert (v1.thumbs_up, v1.thumbs_down, v1.like_rate) == (1, 1, 0.5)
    assert (v2.calls, v2.errors, v2.latency_ms_p50, v2.latency_ms_mean) == (2, 0, 500.0, 500.0)
    assert (v2.prompt_tokens_mean, v2.completion_tokens_mean) == (50.0, 10.0)
    # no data: None, not 0
    assert (v2.grounding_checked, v2.grounding_fail_rate, v2.like_rate) == (0, None, None)
    assert (v2.drafts, v2.edit_distance_mean) == (0, None)
    assert v1.as_dict()["latency_ms_p50"] == 200.0 and v1.as_dict()["version"] == "v1"


def test_test_runs_previews_other_templates_and_unversioned_calls_are_left_out(store):
    sid = store.create_session().id
    call(store, "v1", session=sid, latency=100)
    for session in (TEST_SESSION, PREVIEW_SESSION):
        c = call(store, "v1", session=session, latency=9000, outcome="error")
        store.set_grounding(c, "no text")
        call(store, "v9", session=session)  # a version only ever tested: no row
    call(store, "v1", session=sid, name="chat", latency=7000)
    call(store, None, session=sid)

    m = version_metrics(store, REC)

    assert list(m) == ["v1"]
    assert (m["v1"].calls, m["v1"].errors, m["v1"].latency_ms_mean) == (1, 0, 100.0)
    assert m["v1"].grounding_checked == 0
    assert pm.EXCLUDED_SESSIONS == ("prompt-tests", "prompt-preview")


def test_item_reactions_go_to_the_latest_call_of_the_template_before_them(store, clock):
    s = store.create_session().id
    other = store.create_session().id
    store.add_item_feedback(s, "i0", "like")  # before any call of the session: nobody's
    call(store, "v1", session=s)
    store.add_item_feedback(s, "i1", "like")
    call(store, "v7", session=s, name="chat")  # another template does not take it over
    store.add_item_feedback(s, "i2", "not_for_me")
    c2 = call(store, "v2", session=s)
    store.add_item_feedback(s, "i3", "dislike")
    store.add_item_feedback(s, "i4", "like")
    store.add_item_feedback(s, "i5", "like")
    reply(store, s, c2, 1)
    store.add_item_feedback(other, "i6", "dislike")  # a session without calls

    m = version_metrics(store, REC)

    assert (m["v1"].item_likes, m["v1"].item_dislikes, m["v1"].like_rate) == (1, 1, 0.5)
    assert (m["v2"].item_likes, m["v2"].item_dislikes, m["v2"].thumbs_up) == (2, 1, 1)
    assert m["v2"].like_rate == 0.75  # (1 thumb + 2 likes) / 4


def test_reaction_at_the_same_time_as_two_calls_goes_to_the_latest_id(store, clock):
    s = store.create_session().id
    clock.step = timedelta(0)
    now = clock()
    call(store, "v3", session=s, created_at=now)
    call(store, "v2", session=s, created_at=now)  # logged later: higher id
    store.add_item_feedback(s, "i1", "like")  # same instant as both calls

    m = version_metrics(store, REC)

    assert (m["v3"].item_likes, m["v2"].item_likes) == (0, 1)


def test_since_keeps_later_calls_and_the_reactions_attributed_to_them(store, clock):
    s = store.create_session().id
    call(store, "v1", session=s, latency=100)
    store.add_item_feedback(s, "i1", "like")  # attributed to the old call: left out
    since = clock()
    call(store, "v2", session=s, latency=300)
    store.add_item_feedback(s, "i2", "dislike")

    m = version_metrics(store, REC, since=since)

    assert list(m) == ["v2"]
    assert (m["v2"].calls, m["v2"].item_likes, m["v2"].item_dislikes) == (1, 0, 1)
    assert list(version_metrics(store, REC)) == ["v1", "v2"]


def test_versions_are_ordered_by_number(store):
    for version in ("v10", "file-abc", "v2", "v1"):
        call(store, version)
    assert list(version_metrics(store, REC)) == ["v1", "v2", "v10", "file-abc"]


def test_edit_distance():
    assert edit_distance("same text", "same text") == 0.0
    # "abcd" -> "abce": 3 matching of 8 characters in all, ratio 6/8
    assert edit_distance("abcd", "abce") == 0.25
    assert edit_distance("abc", "xyz") == 1.0


def draft(store: Store, version: str, text: str, *, name: str = "support_reply",
          final: str | None = None, status: str = "clean", feedback: int | None = None,
          call_id: int | None = None) -> str:
    draft_id = store.add_draft(agent="ana", customer_id="C1", ticket="Where is my order?",
                               template_name=name, template_version=version, model="m",
                               draft=text, status=status, llm_call_id=call_id)
    if final is not None:
        store.update_draft(draft_id, status="final", final_text=final, final_agent="ana")
    if feedback is not None:
        store.update_draft(draft_id, feedback=feedback)
    return draft_id


def test_draft_metrics_edits_and_thumbs(store):
    name = "support_reply"
    c = call(store, "v1", name=name)
    draft(store, "v1", "Hello world", final="Hello world", call_id=c)
    draft(store, "v1", "abcd", final="abce", feedback=1)
    draft(store, "v1", "discarded", status="discarded", feedback=-1)
    draft(store, "v1", "kept clean", feedback=1)
    preview = call(store, "v1", name=name, session=PREVIEW_SESSION)
    draft(store, "v1", "preview", final="totally different", feedback=-1, call_id=preview)
    draft(store, "v1", "other", name="other_template", final="x")

    v1 = version_metrics(store, name)["v1"]

    assert (v1.calls, v1.drafts, v1.drafts_final) == (1, 4, 2)
    assert v1.edit_distance_mean == pytest.approx(0.125)  # (0 + 0.25) / 2
    assert (v1.drafts_up, v1.drafts_down) == (2, 1)


def test_metrics_markdown_rows(store):
    sid = store.create_session().id
    c1 = call(store, "v1", session=sid, latency=1234.4)
    call(store, "v1", session=sid, outcome="error", latency=None)
    store.set_grounding(c1, "1 unsupported: x")
    reply(store, sid, c1, 1)
    call(store, "v2", session=sid, latency=80)

    md = metrics_markdown(version_metrics(store, REC))

    lines = md.splitlines()
    assert lines[0].startswith("| version | calls | errors | latency p50 |")
    assert lines[2].startswith("| v1 | 2 | 1 | 1,234 ms | 1,234 ms | 10 ms | 10 | 5 "
                               "| 100.0% (1/1) | 100.0% (1/1) | 0/0 | – | 0/0 |")
    assert lines[3].startswith("| v2 | 1 | 0 | 80 ms |") and "| – |" in lines[3]
    assert len(lines) == 4
    assert metrics_markdown({}) == "_No calls of this template yet._"


LAT_A = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
LAT_B = [1000.0, 1100.0, 1200.0, 1300.0, 1400.0, 1500.0]
PROMPT = [10, 20, 30, 40, 50, 60]


def two_versions(store: Store) -> None:
    """v1: fast, mostly disliked, 1 of 6 grounding failures; v2: slow, liked, 2 of 6;
    identical prompt tokens; v2 reports completion tokens for only 3 calls."""
    sa, sb = store.create_session().id, store.create_session().id
    for i, (la, lb, p) in enumerate(zip(LAT_A, LAT_B, PROMPT, strict=True)):
        ca = call(store, "v1", session=sa, latency=la, prompt=p, completion=5 + i)
        cb = call(store, "v2", session=sb, latency=lb, prompt=p,
                  completion=6 + i if i < 3 else None)
        store.set_grounding(ca, "ok" if i else "1 unsupported: x")
        store.set_grounding(cb, "ok" if i > 1 else "no text")
    for i in range(8):
        store.add_item_feedback(sa, f"a{i}", "like" if i == 0 else "dislike")
        store.add_item_feedback(sb, f"b{i}", "like")


def test_compare_p_values_are_scipys_and_direction_decides_the_verdict(store):
    two_versions(store)

    cmp = compare(store, REC, "v1", "v2")
    rows = {r.metric: r for r in cmp.rows}

    assert [r.metric for r in cmp.rows] == [
        "like rate", "grounding failure rate", "draft thumbs-up rate", "latency_ms",
        "prompt_tokens", "completion_tokens", "edit distance"]
    like = rows["like rate"]
    assert (like.a_value, like.b_value, like.test) == (0.125, 1.0, "Fisher exact")
    assert like.p_value == pytest.approx(fisher_exact([[1, 7], [8, 0]]).pvalue)
    assert like.p_value < 0.05 and like.significant and like.better == "b"
    grounding = rows["grounding failure rate"]
    assert grounding.p_value == pytest.approx(fisher_exact([[1, 5], [2, 4]]).pvalue)
    assert not grounding.significant and grounding.better is None
    latency = rows["latency_ms"]
    assert (latency.a_value, latency.b_value, latency.test) == (350.0, 1250.0, "Mann-Whitney U")
    assert latency.p_value == pytest.approx(
        mannwhitneyu(LAT_A, LAT_B, alternative="two-sided").pvalue)
    assert latency.significant and latency.better == "a"  # lower latency is better
    prompt = rows["prompt_tokens"]  # identical samples
    assert prompt.p_value == pytest.approx(1.0) and not prompt.significant
    for metric in ("completion_tokens", "draft thumbs-up rate", "edit distance"):
        assert rows[metric].p_value is None and rows[metric].note == NOT_ENOUGH
        assert not rows[metric].significant
    assert (cmp.calls_a, cmp.calls_b) == (6, 6)
    assert cmp.verdict() == (f"v2 is better on like rate (p={like.p_value:.2g}); "
                             f"v1 is better on latency_ms (p={latency.p_value:.2g})")


def test_compare_min_samples_and_alpha(store):
    two_versions(store)

    completion = {r.metric: r for r in compare(store, REC, 1, 2, min_samples=3).rows}[
        "completion_tokens"]
    strict = compare(store, REC, "v1", "v2", alpha=1e-6)

    assert completion.p_value == pytest.approx(
        mannwhitneyu([5, 6, 7, 8, 9, 10], [6, 7, 8], alternative="two-sided").pvalue)
    assert completion.note == ""
    assert not any(r.significant for r in strict.rows)
    assert strict.verdict() == "no significant difference yet: 6 calls on v1, 6 on v2"


def test_compare_without_enough_data(store):
    call(store, "v1")
    call(store, "v1")
    call(store, "v2")

    cmp = compare(store, REC, "v1", "v2")

    assert all(r.p_value is None and r.note == NOT_ENOUGH for r in cmp.rows)
    assert cmp.verdict() == "no significant difference yet: 2 calls on v1, 1 on v2"
    unknown = compare(store, REC, "v1", "v8")
    assert (unknown.calls_b, unknown.rows[3].b_value) == (0, None)


def test_comparison_markdown_and_dict(store):
    two_versions(store)
    cmp = compare(store, REC, "v1", "v2")

    md = cmp.markdown()
    d = cmp.as_dict()

    assert md.splitlines()[0] == "| metric | v1 | v2 | test | p | significant? |"
    like_p = f"{cmp.rows[0].p_value:.2g}"
    assert f"| like rate | 12.5% | 100.0% | Fisher exact | {like_p} | yes |" in md
    assert "| grounding failure rate | 16.7% | 33.3% | Fisher exact | 1 | no |" in md
    assert "| latency_ms | 350 | 1,250 | Mann-Whitney U |" in md
    assert f"| completion_tokens | 7.5 | 7 | Mann-Whitney U | – | {NOT_ENOUGH} |" in md
    assert f"**{cmp.verdict()}**" in md
    assert d["verdict"] == cmp.verdict() and (d["a"], d["b"]) == ("v1", "v2")
    assert d["rows"][0]["metric"] == "like rate" and d["rows"][0]["significant"] is True
    assert d["rows"][5]["p_value"] is None


def test_segment_keeps_only_sessions_profiled_in_that_segment(store):
    champ, lost, anon = (store.create_session().id for _ in range(3))
    for sid, seg in ((champ, "Champions"), (lost, "Lost")):
        store.save_profile(sid, document="d", facts={}, customer_id=None, segment=seg,
                           behaviour=None)
    for sid, latency in ((champ, 100.0), (champ, 300.0), (lost, 900.0), (anon, 50.0)):
        call(store, "v2", session=sid, latency=latency)
    c = call(store, "v1", session=champ, latency=200.0)
    store.add_item_feedback(champ, "i1", "like")
    reply(store, champ, c, 1)
    draft(store, "v1", "a draft", name=REC, final="a final draft")
    everyone = version_metrics(store, REC)
    assert everyone["v2"].calls == 4 and everyone["v1"].drafts == 1
    champions = version_metrics(store, REC, segment="Champions")
    assert champions["v2"].calls == 2 and champions["v2"].latency_ms_p50 == 200.0
    assert champions["v1"].calls == 1 and champions["v1"].item_likes == 1
    assert champions["v1"].thumbs_up == 1
    assert champions["v1"].drafts == 0  # drafts have no session: not in any segment
    assert version_metrics(store, REC, segment="Lost")["v2"].latency_ms_p50 == 900.0
    assert version_metrics(store, REC, segment="Nobody") == {}
    comp = compare(store, REC, "v1", "v2", segment="Champions")
    assert comp.calls_a == 1 and comp.calls_b == 2
