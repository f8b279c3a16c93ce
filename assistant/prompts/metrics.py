"""Per-version metrics of a prompt template and a significance test between two versions.

The prompt studio rolls a new template version out to a share of the traffic; this module
tells whether it does better than the one it replaces. Everything is read from the store:

* ``llm_calls``: calls, errors, latency, time to first token, tokens, grounding verdicts;
* thumbs on the chat messages the calls wrote (the latest vote per message, replies
  later regenerated included);
* reactions to recommendation cards (``item_feedback``), each attributed to the version of
  the latest call of the same template in that session made at or before the reaction;
* support drafts written with a version: how much agents edited them, their thumbs.

Calls of prompt test runs (``TEST_SESSION``) and of previews (``PREVIEW_SESSION``) are not
traffic and are left out of every metric. Latency, time to first token and token counts are
taken from the calls that completed (outcome ``ok``): an error or a stopped stream says
nothing about them. A mean, median or rate without any data is None, never 0.

``compare`` tests each metric: rates with Fisher's exact test on the 2x2 table of counts,
per-call and per-draft samples with the two-sided Mann-Whitney U test. The p-values are per
metric, not corrected for testing several metrics at once.
"""

from __future__ import annotations

import difflib
import math
import re
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from scipy.stats import fisher_exact, mannwhitneyu

from assistant.infra.store import Store
from assistant.prompts.cases import TEST_SESSION

PREVIEW_SESSION = "prompt-preview"  # llm_calls.session_id of studio previews (not traffic)
EXCLUDED_SESSIONS = (TEST_SESSION, PREVIEW_SESSION)
MIN_SAMPLES = 5
FISHER = "Fisher exact"
MANN_WHITNEY = "Mann-Whitney U"
EDIT_DISTANCE = "edit distance"
_VERSION = re.compile(r"^v(\d+)$")
_DISLIKES = ("dislike", "not_for_me")


# =========================================================================== metrics
@dataclass(frozen=True)
class VersionMetrics:
    """The metrics of one template version (None: no data for that mean or rate)."""

    version: str
    calls: int = 0
    errors: int = 0
    latency_ms_p50: float | None = None
    latency_ms_mean: float | None = None
    ttft_ms_p50: float | None = None
    prompt_tokens_mean: float | None = None
    completion_tokens_mean: float | None = None
    grounding_checked: int = 0
    grounding_failed: int = 0
    grounding_fail_rate: float | None = None
    thumbs_up: int = 0
    thumbs_down: int = 0
    item_likes: int = 0
    item_dislikes: int = 0  # dislike + not_for_me
    like_rate: float | None = None  # (thumbs up + likes) / all thumbs and reactions
    drafts: int = 0
    drafts_final: int = 0
    edit_distance_mean: float | None = None  # over final drafts, 0 = unchanged
    drafts_up: int = 0
    drafts_down: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Samples:
    """The raw observations of one version (what the metrics and the tests are made of)."""

    version: str
    calls: int = 0
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    prompt_tokens: list[float] = field(default_factory=list)
    completion_tokens: list[float] = field(default_factory=list)
    grounding_checked: int = 0
    grounding_failed: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    item_likes: int = 0
    item_dislikes: int = 0
    drafts: int = 0
    edit_distances: list[float] = field(default_factory=list)
    drafts_up: int = 0
    drafts_down: int = 0

    @property
    def likes(self) -> int:
        return self.thumbs_up + self.item_likes

    @property
    def dislikes(self) -> int:
        return self.thumbs_down + self.item_dislikes

    def metrics(self) -> VersionMetrics:
        return VersionMetrics(
            version=self.version, calls=self.calls, errors=self.errors,
            latency_ms_p50=_median(self.latency_ms), latency_ms_mean=_mean(self.latency_ms),
            ttft_ms_p50=_median(self.ttft_ms), prompt_tokens_mean=_mean(self.prompt_tokens),
            completion_tokens_mean=_mean(self.completion_tokens),
            grounding_checked=self.grounding_checked, grounding_failed=self.grounding_failed,
            grounding_fail_rate=_rate(self.grounding_failed, self.grounding_checked),
            thumbs_up=self.thumbs_up, thumbs_down=self.thumbs_down,
            item_likes=self.item_likes, item_dislikes=self.item_dislikes,
            like_rate=_rate(self.likes, self.likes + self.dislikes),
            drafts=self.drafts, drafts_final=len(self.edit_distances),
            edit_distance_mean=_mean(self.edit_distances),
            drafts_up=self.drafts_up, drafts_down=self.drafts_down,
        )


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _mean(values: list[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def edit_distance(draft: str, final_text: str) -> float:
    """Normalized edit distance of an agent's final text from the draft: 0 when unchanged,
    1 when nothing is left of it."""
    return 1.0 - difflib.SequenceMatcher(None, draft, final_text, autojunk=False).ratio()


def version_sort_key(version: str) -> tuple[int, int, str]:
    """"v2" before "v10"; versions not of the form vN after them, by name."""
    match = _VERSION.match(version)
    return (0, int(match.group(1)), "") if match else (1, 0, version)


def _version(version: str | int) -> str:
    """3 and "3" mean "v3" (the studio numbers versions; the call log says "v3")."""
    text = str(version).strip()
    return f"v{text}" if text.isdigit() else text


def _collect(store: Store, name: str, since: str | None,
             segment: str | None = None) -> dict[str, _Samples]:
    out: dict[str, _Samples] = {}

    def of(version: str | None) -> _Samples | None:
        if version is None:  # a call logged without a version is no version's
            return None
        return out.setdefault(version, _Samples(version))

    query = {"since": since, "exclude_sessions": EXCLUDED_SESSIONS}
    in_segment = {**query, "segment": segment}
    for call in store.template_calls(name, **in_segment):
        s = of(call["template_version"])
        if s is None:
            continue
        s.calls += 1
        s.errors += call["outcome"] == "error"
        if call["outcome"] == "ok":
            for key in ("latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens"):
                if call[key] is not None:
                    getattr(s, key).append(float(call[key]))
        if call["grounding"] is not None:
            s.grounding_checked += 1
            s.grounding_failed += call["grounding"] != "ok"
    for vote in store.template_call_feedback(name, **in_segment):
        if (s := of(vote["template_version"])) is not None:
            s.thumbs_up += vote["value"] == 1
            s.thumbs_down += vote["value"] == -1
    for reaction in store.template_item_feedback(name, **in_segment):
        if (s := of(reaction["template_version"])) is not None:
            s.item_likes += reaction["value"] == "like"
            s.item_dislikes += reaction["value"] in _DISLIKES
    # drafts carry no session (their customer's segment is not stored): with a segment,
    # they are left out
    for draft in store.template_drafts(name, **query) if segment is None else ():
        s = of(draft["template_version"])
        if s is None:
            continue
        s.drafts += 1
        if draft["status"] == "final" and draft["final_text"] is not None:
            s.edit_distances.append(edit_distance(draft["draft"], draft["final_text"]))
        s.drafts_up += draft["feedback"] == 1
        s.drafts_down += draft["feedback"] == -1
    return {v: out[v] for v in sorted(out, key=version_sort_key)}


def version_metrics(store: Store, name: str, *, since: str | None = None,
                    segment: str | None = None) -> dict[str, VersionMetrics]:
    """The metrics of every version of template ``name`` that has traffic (calls made at or
    after ``since``, an ISO timestamp or date), keyed by version, "v1" before "v2". With
    ``segment``: only sessions whose saved profile is in that segment (support drafts, which
    have no session, are then left out)."""
    return {v: s.metrics() for v, s in _collect(store, name, since, segment).items()}


# =========================================================================== tests
@dataclass(frozen=True)
class MetricTest:
    """One metric of two versions with its test. ``p_value`` is None (and ``note`` says
    why) when a version has too little data."""

    metric: str
    a_value: float | None
    b_value: float | None
    test: str
    p_value: float | None
    significant: bool
    note: str = ""
    better: str | None = None  # "a" or "b" when significant

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Version ``a`` (the current one) against version ``b`` (the candidate)."""

    name: str
    a: str
    b: str
    alpha: float
    calls_a: int
    calls_b: int
    rows: tuple[MetricTest, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a, "b": self.b, "alpha": self.alpha,
                "calls_a": self.calls_a, "calls_b": self.calls_b,
                "rows": [r.as_dict() for r in self.rows], "verdict": self.verdict()}

    def verdict(self) -> str:
        """One line: which version is better on which metric, or that none is (yet)."""
        clauses = []
        for side, version in (("b", self.b), ("a", self.a)):
            wins = [f"{r.metric} ({_p_eq(r.p_value)})" for r in self.rows
                    if r.significant and r.better == side]
            if wins:
                clauses.append(f"{version} is better on {', '.join(wins)}")
        if not clauses:
            return (f"no significant difference yet: {self.calls_a} calls on {self.a}, "
                    f"{self.calls_b} on {self.b}")
        return "; ".join(clauses)

    def markdown(self) -> str:
        lines = [f"| metric | {_cell(self.a)} | {_cell(self.b)} | test | p | significant? |",
                 "|---|---:|---:|---|---:|---|"]
        for r in self.rows:
            fmt = _pct if r.test == FISHER else _frac if r.metric == EDIT_DISTANCE else _num
            p = _p(r.p_value)
            sig = "yes" if r.significant else (r.note or "no")
            lines.append(f"| {r.metric} | {fmt(r.a_value)} | {fmt(r.b_value)} | {r.test} "
                         f"| {p} | {sig} |")
        lines += ["", f"**{self.verdict()}**", "",
                  f"_Rates, or medians for {MANN_WHITNEY} rows; alpha = {self.alpha:g}, each "
                  "metric tested on its own (no correction for testing several)._"]
        return "\n".join(lines)


def _fisher(metric: str, a: tuple[int, int], b: tuple[int, int], *, higher_is_better: bool,
            alpha: float, min_samples: int) -> MetricTest:
    """Rate = hits / (hits + misses) of each version; Fisher's exact test on the 2x2 table
    [[hits_a, misses_a], [hits_b, misses_b]]."""
    a_rate, b_rate = _rate(a[0], sum(a)), _rate(b[0], sum(b))
    if min(sum(a), sum(b)) < min_samples:
        return MetricTest(metric, a_rate, b_rate, FISHER, None, False,
                          _not_enough(min_samples))
    p = float(fisher_exact([list(a), list(b)]).pvalue)
    return _row(metric, a_rate, b_rate, FISHER, p, alpha,
                _direction((b_rate or 0.0) - (a_rate or 0.0), higher_is_better))


def _mann_whitney(metric: str, a: list[float], b: list[float], *, alpha: float,
                  min_samples: int) -> MetricTest:
    """Medians shown; two-sided Mann-Whitney U on the samples (lower is better)."""
    a_med, b_med = _median(a), _median(b)
    if min(len(a), len(b)) < min_samples:
        return MetricTest(metric, a_med, b_med, MANN_WHITNEY, None, False,
                          _not_enough(min_samples))
    result = mannwhitneyu(a, b, alternative="two-sided")
    p = float(result.pvalue)
    if math.isnan(p):
        return MetricTest(metric, a_med, b_med, MANN_WHITNEY, None, False, "test undefined")
    # U of a over n_a * n_b is the chance a value of a exceeds one of b (ties count half):
    # below 1/2, b tends to be higher
    b_higher = 0.5 - float(result.statistic) / (len(a) * len(b))
    return _row(metric, a_med, b_med, MANN_WHITNEY, p, alpha, _direction(b_higher, False))


def _direction(b_minus_a: float, higher_is_better: bool) -> str | None:
    if b_minus_a == 0:
        return None
    return "b" if (b_minus_a > 0) == higher_is_better else "a"


def _row(metric: str, a_value: float | None, b_value: float | None, test: str, p: float,
         alpha: float, better: str | None) -> MetricTest:
    significant = p < alpha
    return MetricTest(metric, a_value, b_value, test, p, significant,
                      better=better if significant else None)


def _not_enough(min_samples: int) -> str:
    return f"not enough data (need at least {min_samples} per version)"


def compare(store: Store, name: str, a: str | int, b: str | int, *, alpha: float = 0.05,
            since: str | None = None, min_samples: int = MIN_SAMPLES,
            segment: str | None = None) -> Comparison:
    """Test version ``a`` against ``b`` of template ``name`` on each metric (see the module
    docstring). A version without traffic has no data: its rows say so."""
    a, b = _version(a), _version(b)
    samples = _collect(store, name, since, segment)
    sa, sb = samples.get(a, _Samples(a)), samples.get(b, _Samples(b))

    def rate(metric: str, hits: Callable[[_Samples], int], misses: Callable[[_Samples], int],
             higher_is_better: bool) -> MetricTest:
        return _fisher(metric, (hits(sa), misses(sa)), (hits(sb), misses(sb)),
                       higher_is_better=higher_is_better, alpha=alpha, min_samples=min_samples)

    def sample(metric: str, values: Callable[[_Samples], list[float]]) -> MetricTest:
        return _mann_whitney(metric, values(sa), values(sb), alpha=alpha,
                             min_samples=min_samples)

    rows = (
        rate("like rate", lambda s: s.likes, lambda s: s.dislikes, True),
        rate("grounding failure rate", lambda s: s.grounding_failed,
             lambda s: s.grounding_checked - s.grounding_failed, False),
        rate("draft thumbs-up rate", lambda s: s.drafts_up, lambda s: s.drafts_down, True),
        sample("latency_ms", lambda s: s.latency_ms),
        sample("prompt_tokens", lambda s: s.prompt_tokens),
        sample("completion_tokens", lambda s: s.completion_tokens),
        sample(EDIT_DISTANCE, lambda s: s.edit_distances),
    )
    return Comparison(name, a, b, alpha, sa.calls, sb.calls, rows)


# =========================================================================== markdown
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def _p_eq(p: float | None) -> str:
    text = _p(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def _frac(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _count_rate(part: int, whole: int) -> str:
    return "–" if not whole else f"{part / whole * 100:.1f}% ({part}/{whole})"


def metrics_markdown(metrics: dict[str, VersionMetrics]) -> str:
    """One row per version: calls, errors, latency, tokens, grounding, likes, drafts."""
    if not metrics:
        return "_No calls of this template yet._"
    lines = ["| version | calls | errors | latency p50 | latency mean | ttft p50 | "
             "prompt tok | completion tok | grounding failed | like rate | drafts final | "
             "edit distance | drafts good/needs work |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v, m in metrics.items():
        likes = m.thumbs_up + m.item_likes
        lines.append(
            f"| {_cell(v)} | {m.calls} | {m.errors} | {_ms(m.latency_ms_p50)} "
            f"| {_ms(m.latency_ms_mean)} | {_ms(m.ttft_ms_p50)} | {_num(m.prompt_tokens_mean)} "
            f"| {_num(m.completion_tokens_mean)} "
            f"| {_count_rate(m.grounding_failed, m.grounding_checked)} "
            f"| {_count_rate(likes, likes + m.thumbs_down + m.item_dislikes)} "
            f"| {m.drafts_final}/{m.drafts} | {_frac(m.edit_distance_mean)} "
            f"| {m.drafts_up}/{m.drafts_down} |")
    return "\n".join(lines)
