"""The prompt studio's service (staff app, role ``ops``): list, edit, validate, diff and
save template versions; preview a draft body for sample customers of each segment and run
it on the configured model; tests; staged rollout with per-version metrics; the audit log;
agents' draft edits turned into test cases. The rules (immutable versions, labels, gates)
live in ``prompts/versions.py``; this module wires them to the app's data and model.

The studio gets only what it uses (no back door into ``AssistantService``): the versions,
the served templates (to show and refresh what runs), the model client, the store (call
log and drafts) and a ``SampleSource`` for preview contexts built by the same functions the
app uses."""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Protocol

import pandas as pd
import yaml

from assistant.core.errors import AssistantError, ConfigError, InputError
from assistant.core.schemas import Message
from assistant.infra.llm import Generation, LLMClient
from assistant.infra.store import Store
from assistant.prompts.cases import Assertion, TemplateTestCase, TestRun, check_assertion
from assistant.prompts.checks import Problem, TemplateValidationError, analyse
from assistant.prompts.grounding import Facts
from assistant.prompts.grounding import check as grounding_check
from assistant.prompts.metrics import PREVIEW_SESSION, compare, metrics_markdown, version_metrics
from assistant.prompts.records import LabelEvent, Version, dump_body, unified_diff
from assistant.prompts.templates import PromptTemplate, ServedTemplates
from assistant.prompts.versions import PRODUCTION, STAGING, PromptVersions

log = logging.getLogger(__name__)

RECOMMEND = "recommendation"
SUPPORT = "support_draft"
SAMPLE_TICKET = "Hello, my last order hasn't arrived yet. Where is it, and when will it come?"
MAX_SAMPLES = 6
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Sample:
    """One context to preview a template with: a real customer of a segment, or the inputs
    of a test case (templates that do not depend on the customer)."""

    key: str
    title: str
    vars: dict[str, Any]
    segment: str | None = None
    customer_id: str | None = None
    facts: Facts | None = None  # what a reply is checked against (None: from the vars)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "segment": self.segment,
                "customer_id": self.customer_id, "vars": self.vars}


@dataclass(frozen=True)
class Rendered:
    sample: Sample
    messages: list[Message]
    error: str = ""


@dataclass
class PreviewResult:
    """A preview run's outcome: the text, tokens, latency and the grounding verdict."""

    sample: Sample
    version: str
    text: str = ""
    outcome: str = "pending"
    error: str = ""
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    grounded: bool | None = None
    grounding: str = ""
    flags: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sample": self.sample.title, "segment": self.sample.segment,
                "version": self.version, "text": self.text, "outcome": self.outcome,
                "error": self.error, "latency_ms": self.latency_ms, "ttft_ms": self.ttft_ms,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "grounded": self.grounded,
                "grounding": self.grounding, "flags": self.flags}


class PreviewRun:
    """Iterate for the streamed text; ``result`` is complete once the iterator ends."""

    def __init__(self, studio: PromptStudio, tpl: PromptTemplate, sample: Sample) -> None:
        self.result = PreviewResult(sample, tpl.version)
        self._tpl = tpl
        self._studio = studio
        self._messages = tpl.render(**sample.vars)

    def __iter__(self) -> Iterator[str]:
        llm = self._studio.llm
        gen: Generation = llm.generate(self._messages, self._tpl.parameters,
                                       template_name=self._tpl.name,
                                       template_version=f"{self._tpl.version} (preview)",
                                       session_id=PREVIEW_SESSION)
        res = self.result
        try:
            for delta in gen:
                res.text += delta
                yield delta
        except AssistantError as err:
            res.error = err.for_user()
        finally:
            res.outcome = gen.outcome
            if gen.call is not None:
                res.latency_ms, res.ttft_ms = gen.call.latency_ms, gen.call.ttft_ms
                res.prompt_tokens = gen.call.prompt_tokens
                res.completion_tokens = gen.call.completion_tokens
        if res.text.strip():
            self._check(res)

    def _check(self, res: PreviewResult) -> None:
        sample = res.sample
        if sample.facts is not None:
            verdict = grounding_check(res.text, sample.facts)
            res.grounded, res.grounding = verdict.ok, verdict.summary()
            res.flags = [{"kind": f.kind, "text": f.text, "reason": f.reason}
                         for f in verdict.flags]
            return
        ok, detail = check_assertion(Assertion(type="grounding"), res.text, self._messages,
                                     sample.vars)
        res.grounded, res.grounding = ok, detail

    def collect(self) -> PreviewResult:
        for _ in self:
            pass
        return self.result


class SampleSource(Protocol):
    """Real contexts to preview templates with (``service/samples.py`` builds them from the
    shop's data with the functions the chat and the desk use)."""

    def customers_by_segment(self) -> dict[str, list[str]]:
        """Customer ids per segment name (raises ``AssistantError`` when none are built)."""

    def recommendation_context(self, segment: str, customer_id: str
                               ) -> tuple[dict[str, Any], Facts]:
        """The recommendation template's variables and facts for a customer, as the chat
        would render them for a person with the answers their orders show."""

    def support_context(self, customer_id: str | None, ticket: str
                        ) -> tuple[dict[str, Any], Facts]:
        """The support template's variables and facts, as a draft would get them."""


class PromptStudio:
    """What the studio tab and the ``/prompt*`` API call; ``actor`` is the signed-in user."""

    def __init__(self, versions: PromptVersions | None, served: ServedTemplates,
                 llm: LLMClient, store: Store, samples: SampleSource) -> None:
        if versions is None:
            raise ConfigError("The prompt studio needs the template store.",
                              "Start the app with `assistant serve` (templates from SQLite).")
        self.versions = versions
        self.served = served
        self.llm = llm
        self.store = store
        self.sample_source = samples

    # -- reading ------------------------------------------------------------------------
    def names(self) -> list[str]:
        return self.versions.names()

    def overview(self) -> list[dict[str, Any]]:
        """Per template: description, variables, labels (with rollout), last change, and the
        latest version's last test run."""
        serving = self.served.serving()
        out = []
        for s in self.versions.list():
            run = self.versions.last_test_run(s.name, s.latest_version)
            out.append({
                "name": s.name, "description": s.description,
                "variables": sorted(s.variables), "labels": s.labels,
                "latest_version": s.latest_version, "last_change": s.last_change,
                "last_author": s.last_author, "serving": serving.get(s.name, {}),
                "latest_tests": (f"{run.cases_passed}/{run.cases_total} cases"
                                 if run else "not run")})
        return out

    def get(self, name: str, version: int | None = None, label: str | None = None
            ) -> dict[str, Any]:
        v = self.versions.get(name, version, label)
        out = v.as_dict()
        out["tests"] = [c.model_dump(by_alias=True) for c in self.versions.tests(name)]
        out["all_labels"] = {lab.label: {"version": lab.version, "share": lab.share,
                                         "segment": lab.segment}
                             for lab in self.versions.labels(name)}
        return out

    def version(self, name: str, version: int | None = None) -> Version:
        return self.versions.get(name, version)

    def history(self, name: str) -> list[Version]:
        return self.versions.history(name)

    def audit(self, name: str | None = None) -> list[LabelEvent]:
        """The label moves of one template (or all), oldest first."""
        names = [name] if name else self.names()
        events = [e for n in names for e in self.versions.label_history(n)]
        return sorted(events, key=lambda e: e.id)

    # -- editing --------------------------------------------------------------------------
    def validate(self, name: str, body: str) -> list[Problem]:
        return self.versions.validate(name, body)

    def diff(self, name: str, body: str, against: int) -> str:
        """The draft body against a stored version (text and parameters)."""
        old = self.versions.get(name, against)
        return unified_diff(old.body, body, f"{name} v{against}", f"{name} (your edit)")

    @staticmethod
    def with_parameters(name: str, body: str, params: dict[str, Any]) -> str:
        """``body`` with its ``parameters`` updated from ``params`` (the API's separate
        field); the body unchanged when there are none."""
        if not params:
            return body
        data = _parse_body(name, body)
        data["parameters"] = {**(data.get("parameters") or {}), **params}
        return dump_body(data)

    def save(self, name: str, body: str, *, note: str, base_version: int | None,
             actor: str) -> Version:
        return self.versions.save(name, body, author=actor, note=note,
                                  base_version=base_version)

    # -- labels and rollout ---------------------------------------------------------------
    def set_label(self, name: str, label: str, version: int, *, actor: str,
                  share: float = 1.0, segment: str | None = None, override: bool = False,
                  reason: str = "") -> LabelEvent | None:
        event = self.versions.set_label(name, label, version, actor=actor, reason=reason,
                                        override=override, share=share, segment=segment)
        self._refresh()
        return event

    def remove_label(self, name: str, label: str, *, actor: str, reason: str = ""
                     ) -> LabelEvent:
        event = self.versions.remove_label(name, label, actor=actor, reason=reason)
        self._refresh()
        return event

    def rollback(self, name: str, *, actor: str, reason: str, label: str = PRODUCTION
                 ) -> LabelEvent:
        event = self.versions.rollback(name, actor=actor, reason=reason, label=label)
        self._refresh()
        return event

    def promote_staging(self, name: str, *, actor: str, override: bool = False,
                        reason: str = "") -> LabelEvent | None:
        """Production takes the staging version (the tests gate it); staging is removed."""
        labels = {lab.label: lab for lab in self.versions.labels(name)}
        if STAGING not in labels:
            raise InputError(f"'{name}' has no staging version to promote.",
                             "Label a version 'staging' first.")
        reason = (reason or "").strip() or ("" if override else "promoted from staging")
        event = self.versions.set_label(name, PRODUCTION, labels[STAGING].version,
                                        actor=actor, override=override, reason=reason)
        self.versions.remove_label(name, STAGING, actor=actor,
                                   reason=f"promoted to production (v{labels[STAGING].version})")
        self._refresh()
        return event

    def _refresh(self) -> None:
        self.served.refresh()

    def rollout(self, name: str) -> dict[str, Any]:
        labels = {lab.label: {"version": lab.version, "share": lab.share,
                              "segment": lab.segment, "updated_at": lab.updated_at}
                  for lab in self.versions.labels(name)}
        return {"labels": labels}

    def metrics(self, name: str) -> dict[str, Any]:
        """Per-version metrics from the call log and feedback, and a significance test
        between production and staging; without staging, between production and the
        newest other version that had traffic (e.g. the one just rolled back)."""
        store = self.store
        per_version = version_metrics(store, name)
        found = {lab.label: lab for lab in self.versions.labels(name)}
        out: dict[str, Any] = {"versions": {k: v.as_dict() for k, v in per_version.items()},
                               "table": metrics_markdown(per_version), "comparison": None}
        prod = f"v{found[PRODUCTION].version}" if PRODUCTION in found else None
        other = f"v{found[STAGING].version}" if STAGING in found else None
        # a rollout to one segment is judged within that segment (like for like)
        segment = found[STAGING].segment if other is not None else None
        if other is None or other == prod:
            others = [v for v in per_version if v != prod and per_version[v].calls]
            other, segment = (others[-1] if others else None), None
        if prod is not None and other is not None and prod in per_version:
            comp = compare(store, name, prod, other, segment=segment)
            out["comparison"] = comp.as_dict()
            out["comparison_markdown"] = comp.markdown()
            out["compared"] = (prod, other)
            out["segment"] = segment
        return out

    # -- tests ----------------------------------------------------------------------------
    def tests(self, name: str) -> list[TemplateTestCase]:
        return self.versions.tests(name)

    def set_tests(self, name: str, text: str, *, actor: str) -> list[TemplateTestCase]:
        return self.versions.set_tests(name, text, author=actor)

    def run_tests(self, name: str, version: int | None, *, actor: str) -> TestRun:
        return self.versions.run_tests(name, version, self.llm, actor=actor)

    def last_test_run(self, name: str, version: int) -> TestRun | None:
        return self.versions.last_test_run(name, version)

    # -- preview --------------------------------------------------------------------------
    def draft_template(self, name: str, body: str) -> PromptTemplate:
        """The editor's body as a template (not saved), or TemplateValidationError."""
        tpl, problems = analyse(name, body, version="draft",
                                contract=self.versions.contract(name))
        if tpl is None:
            raise TemplateValidationError(name, problems)
        return tpl

    def samples(self, name: str, segments: list[str] | None = None, *,
                ticket: str = SAMPLE_TICKET, seed: int = 0) -> tuple[list[Sample], list[str]]:
        """Contexts to preview ``name`` with, and notes on what was left out. The
        recommendation and support templates get one real customer of each chosen segment
        (drawn with ``seed``); other templates do not depend on the customer and get their
        test cases' inputs."""
        notes: list[str] = []
        if name in (RECOMMEND, SUPPORT):
            try:
                by_segment = self.sample_source.customers_by_segment()
            except AssistantError as err:
                notes.append(f"No segments yet ({err.message}); showing the test inputs.")
            else:
                out = self._segment_samples(name, by_segment, segments, ticket, seed, notes)
                if out:
                    return out, notes
        elif segments:
            notes.append(f"'{name}' does not depend on the customer's segment: the test "
                         "cases' inputs are shown instead.")
        cases = self.versions.tests(name)[:MAX_SAMPLES]
        if not cases:
            notes.append(f"'{name}' has no test cases to take sample inputs from.")
        return [Sample(f"test:{c.name}", f"test: {c.name}", dict(c.vars)) for c in cases], notes

    def _segment_samples(self, name: str, by_segment: dict[str, list[str]],
                         segments: list[str] | None, ticket: str, seed: int,
                         notes: list[str]) -> list[Sample]:
        present = list(by_segment)
        chosen = [s for s in (segments or present) if s in present][:MAX_SAMPLES]
        missing = [s for s in (segments or []) if s not in present]
        if missing:
            notes.append("No customers in: " + ", ".join(missing) + ".")
        out = []
        for seg in chosen:
            pool = by_segment[seg]
            # the same draw as pandas' DataFrame.sample over the segment's rows
            cid = str(pd.Series(pool).sample(1, random_state=seed).iloc[0])
            try:
                if name == RECOMMEND:
                    vars_, facts = self.sample_source.recommendation_context(seg, cid)
                else:
                    vars_, facts = self.sample_source.support_context(cid, ticket)
            except AssistantError as err:
                notes.append(f"{seg} (customer {cid}): {err.message}")
                continue
            out.append(Sample(f"{seg}:{cid}", f"{seg} · customer {cid}", vars_, seg, cid,
                              facts))
        return out

    def render(self, name: str, body: str, samples: list[Sample]) -> list[Rendered]:
        """The draft body rendered for each sample (a render error is shown per sample)."""
        tpl = self.draft_template(name, body)
        out = []
        for sample in samples:
            try:
                out.append(Rendered(sample, tpl.render(**own_texts(tpl, sample.vars))))
            except AssistantError as err:
                out.append(Rendered(sample, [], err.for_user()))
        return out

    def run_preview(self, name: str, body: str, sample: Sample) -> PreviewRun:
        """Run the draft body on the configured model for one sample (streamed; the call
        is logged under the preview session, so it never counts in the metrics)."""
        tpl = self.draft_template(name, body)
        return PreviewRun(self, tpl, replace(sample, vars=own_texts(tpl, sample.vars)))

    # -- agents' edits as test cases -----------------------------------------------------
    def agent_edits(self, limit: int = 30) -> list[dict[str, Any]]:
        """Support drafts an agent changed before saving them as final, newest first."""
        rows = sorted(self.store.template_drafts(SUPPORT),
                      key=lambda r: r["updated_at"], reverse=True)
        return list(islice((e for e in map(_edit_of, rows) if e is not None), limit))

    def case_from_draft(self, draft_id: str, *, actor: str) -> TemplateTestCase:
        """Turn an agent's edit into a test case of the support template: the same customer
        and ticket as inputs; the sentences the agent deleted must not come back; the reply
        stays grounded, leaks nothing, and (if the agent shortened it) stays as short."""
        row = self.store.draft(draft_id) if draft_id else None
        edit = _edit_of(row) if row and row["template_name"] == SUPPORT else None
        if edit is None:
            raise InputError(f"Draft '{draft_id}' has no saved edit by an agent.",
                             "Pick a draft from the list of agents' edits.")
        vars_, facts = self.sample_source.support_context(edit["customer_id"], edit["ticket"])
        asserts: list[dict[str, Any]] = [
            {"type": "not_contains", "value": s} for s in edit["removed"][:3]]
        if len(edit["final"]) < 0.8 * len(edit["draft"]):
            asserts.append({"type": "max_length", "value": int(len(edit["final"]) * 1.3) + 20})
        asserts.append({"type": "grounding", "value": {
            "amounts": list(facts.amounts), "order_ids": list(facts.order_ids),
            "dates": [str(d) for d in facts.dates], "promises": dict(facts.promises)}})
        asserts.append({"type": "no_prompt_leak"})
        case = {"name": f"agent edit {draft_id[:8]}", "vars": vars_, "assert": asserts}
        existing = [c.model_dump(by_alias=True) for c in self.versions.tests(SUPPORT)
                    if c.name != case["name"]]
        saved = self.versions.set_tests(SUPPORT, [*existing, case], author=actor)
        return saved[-1]


def _edit_of(d: dict[str, Any]) -> dict[str, Any] | None:
    """A final support draft the agent changed, as the studio lists it (else None)."""
    final = d.get("final_text")
    if d.get("status") != "final" or not final or final.strip() == d["draft"].strip():
        return None
    return {"id": d["id"], "agent": d.get("final_agent") or d["agent"],
            "customer_id": d.get("customer_id"), "ticket": d["ticket"],
            "version": d["template_version"], "updated_at": d["updated_at"],
            "draft": d["draft"], "final": final, "removed": removed_sentences(d["draft"], final),
            "diff": d.get("edit_diff") or ""}


def own_texts(tpl: PromptTemplate, values: dict[str, Any]) -> dict[str, Any]:
    """Sample values with the wording that comes from the template's own texts taken from
    the edited body (the support template's tone line), so a preview shows the edit."""
    if "style" in values and "tone_neutral" in tpl.texts:
        return {**values, "style": tpl.text("tone_neutral")}
    return values


def _parse_body(name: str, body: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(body or "")
    except yaml.YAMLError as exc:
        raise TemplateValidationError(name, [Problem("body", f"Not valid YAML: {exc}")]) \
            from None
    if not isinstance(data, dict):
        raise TemplateValidationError(name, [Problem("body", "The template must be a YAML "
                                                     "mapping (messages, variables, ...).")])
    return data


def removed_sentences(draft: str, final: str, *, max_chars: int = 120) -> list[str]:
    """Sentences of ``draft`` the agent deleted (absent from ``final``), in order."""
    def sentences(text: str) -> list[str]:
        return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) >= 8]

    old, new = sentences(draft), sentences(final)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    out = []
    for op, i1, i2, _, _ in matcher.get_opcodes():
        if op in ("delete", "replace"):
            out += [s[:max_chars] for s in old[i1:i2] if s not in final]
    return out
