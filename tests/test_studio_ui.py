"""Formatting of the Prompt studio tab (pure functions): diffs, problems, the preview
cards (customer data is escaped), metrics figure, audit rows."""

from __future__ import annotations

from assistant.core.schemas import Message
from assistant.prompts.checks import Problem
from assistant.prompts.records import LabelEvent
from assistant.service.studio import PreviewResult, Rendered, Sample
from assistant.ui.studio import (
    audit_rows,
    diff_html,
    metrics_figure,
    preview_html,
    problems_markdown,
)


def test_diff_html_colours_and_escapes() -> None:
    out = diff_html("--- a\n+++ b\n@@ -1 +1 @@\n-old <b>\n+new <script>\n same")
    assert '<span class="tailor-diff-del">-old &lt;b&gt;</span>' in out
    assert '<span class="tailor-diff-add">+new &lt;script&gt;</span>' in out
    assert '<span class="tailor-diff-hunk">@@ -1 +1 @@</span>' in out
    assert "<script>" not in out and "No differences" in diff_html("")


def test_problems_markdown() -> None:
    assert "Valid" in problems_markdown([])
    text = problems_markdown([Problem("messages.1.content", "unknown variable 'profle'",
                                      line=12, hint="Declare it."),
                              Problem("description", "empty", level="warning")])
    assert "1 error(s)" in text and "`messages.1.content (line 12)`" in text
    assert "Declare it." in text and "⚠️" in text
    assert "Warnings only" in problems_markdown([Problem("x", "y", level="warning")])


def test_preview_cards_escape_customer_data_and_show_stats() -> None:
    sample = Sample("Champions:1", "Champions · customer 1",
                    {"ticket": "<img src=x onerror=alert(1)>"}, "Champions", "1")
    rendered = [Rendered(sample, [Message(role="user", content="<img src=x onerror=alert(1)>")])]
    res = PreviewResult(sample, "draft", text="Hi <b>there</b>", outcome="ok",
                        latency_ms=812.4, ttft_ms=90.1, prompt_tokens=120,
                        completion_tokens=14, grounded=False, grounding="price '£9' unknown")
    out = preview_html(rendered, {"Champions:1": res}, ["a note"])
    assert "<img" not in out and "&lt;img src=x" in out and "Hi &lt;b&gt;there" in out
    assert "120 tokens in · 14 out" in out and "812 ms, first token 90 ms" in out
    assert "not grounded" in out and "a note" in out
    assert "No samples" in preview_html([])


def test_metrics_figure_and_audit_rows() -> None:
    fig = metrics_figure({"v1": {"like_rate": 0.5, "grounding_fail_rate": 0.1,
                                 "latency_ms_p50": 800.0},
                          "v2": {"like_rate": None, "grounding_fail_rate": 0.0,
                                 "latency_ms_p50": 700.0}})
    bars = {t.name: list(t.y) for t in fig.data}
    assert bars["like rate"] == [50.0, None] and bars["grounding failures"] == [10.0, 0.0]
    assert bars["latency p50"] == [800.0, 700.0]
    events = [LabelEvent(1, "recommendation", "production", None, 1, "files", "seeded",
                         "seed", False, 1.0, None, "2026-11-30T04:00:00"),
              LabelEvent(2, "recommendation", "staging", None, 2, "olga", "", "set", False,
                         0.5, "Champions", "2026-11-30T05:00:00")]
    rows = audit_rows(events)
    assert rows[0][0] == 2 and rows[0][6] == "50%" and rows[0][7] == "Champions"
    assert rows[1][4] == "" and rows[1][5] == "v1" and rows[1][8] == "seed"
