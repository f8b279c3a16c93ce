"""Prompt studio, domain half: immutable template versions in SQLite, labels with an audit
log, optimistic saves and per-template tests (``PromptVersions``). Bodies are checked by
``checks.py``, test cases run by ``cases.py``; the running app reads the production view
of ``serving.py``.

Rules
-----
- **Seeding.** The files in ``prompts/`` seed version 1 of each template (author ``files``),
  labelled ``production``; ``prompts/tests/<name>.yaml`` seeds its test cases. ``seed()`` is
  idempotent: it only adds templates (and tests) that have nothing stored yet, so a newly
  shipped template appears on the next start. A *changed* shipped file is never picked up
  by itself (ops' versions win): it becomes a new version, authored ``files``, only through
  an explicit ``sync_files()`` (``assistant prompts sync``), which compares each file with
  the last version imported from files (never with ops' edits). Promoting that version is
  a separate step, or ``sync_files(promote=True)``.
- **Versions are immutable**: every save is a new row (``version`` = 1, 2, ... per name);
  rows are never updated or deleted (SQLite triggers refuse it). A save names the version
  it was based on; if another save landed in between, it raises ``ConflictError`` with a
  unified diff and saves nothing (``BEGIN IMMEDIATE`` makes check-and-insert atomic).
- **Validation** (``validate``, ``checks.analyse``): a version is validated against the
  template schema and the app's contract (the shipped file) before it is saved.
- **Labels** point at versions; every move is an audit event (actor, reason, override).
  A version that fails validation cannot be labelled. Promotion to ``production`` needs a
  passing test run of that version with the template's current tests, unless overridden
  with a reason. ``rollback`` undoes the last move of ``production`` (repeatable).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from assistant.core.errors import AssistantError, TemplateError
from assistant.infra.llm import LLMClient
from assistant.infra.store import Store
from assistant.prompts.cases import (
    TemplateTestCase,
    TestResult,
    TestRun,
    _cases_json,
    _read_cases,
    _run_case,
    _run_of,
    _same_cases,
)
from assistant.prompts.checks import (
    FieldError,
    Problem,
    TemplateValidationError,
    _check_label,
    _check_name,
    _required,
    analyse,
)
from assistant.prompts.records import (
    ConflictError,
    Label,
    LabelEvent,
    PromotionBlockedError,
    TemplateSummary,
    Version,
    _as_text,
    body_sha,
    dump_body,
    unified_diff,
)
from assistant.prompts.templates import PromptTemplate, load_template

log = logging.getLogger(__name__)

PRODUCTION = "production"
STAGING = "staging"
FILES_AUTHOR = "files"


def default_actor() -> str:
    """The OS user (for ``--as`` defaults)."""
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return os.environ.get("USER") or "unknown"


class PromptVersions:
    """Template versions, labels, audit log and tests over the SQLite ``Store``;
    ``directory`` holds the shipped files (seeds and the app's contract)."""

    def __init__(self, store: Store, directory: Path) -> None:
        self.store = store
        self.directory = Path(directory)
        self._contracts: dict[tuple[str, int, int], PromptTemplate | None] = {}

    @classmethod
    def from_settings(cls, settings: Any, *, seed: bool = True) -> PromptVersions:
        versions = cls(Store.from_settings(settings), settings.prompts_dir)
        if seed:
            versions.seed()
        return versions

    # -- seeding and files --------------------------------------------------------
    def seed(self, directory: Path | None = None) -> list[str]:
        """Version 1 (author ``files``, labelled production) of every shipped template not
        stored yet, and its tests from ``tests/<name>.yaml``; returns the names seeded.
        Idempotent; a changed file is only imported by ``sync_files``."""
        directory = Path(directory or self.directory)
        existing = set(self.store.template_names())
        seeded = []
        for path in sorted(directory.glob("*.yaml")):
            if path.stem in existing:
                continue
            load_template(path)  # a broken shipped file: error with file and line
            text = path.read_text(encoding="utf-8")
            if self.store.add_template_version(
                    path.stem, text, sha=body_sha(text), author=FILES_AUTHOR,
                    note=f"seeded from {path.name}", base_version=0, label=PRODUCTION,
                    label_kind="seed"):
                seeded.append(path.stem)
        for name in self.store.template_names():
            tests_file = directory / "tests" / f"{name}.yaml"
            if tests_file.is_file() and self.store.template_tests(name) is None:
                try:  # a bad test file must not stop the app: it only blocks promotion
                    cases = _read_cases(tests_file.read_text(encoding="utf-8"),
                                        str(tests_file))
                    self.set_tests(name, cases, author=FILES_AUTHOR)
                except AssistantError as exc:
                    log.warning("tests in %s not seeded: %s", tests_file, exc.message)
        if seeded:
            log.info("prompt studio: seeded %s from %s", ", ".join(seeded), directory)
        return seeded

    def sync_files(self, *, author: str = FILES_AUTHOR, promote: bool = False) -> list[Version]:
        """Import every shipped file that changed since it was last imported (compared with
        the newest version authored ``files``) as a new version; with ``promote``, label it
        production too (logged as a ``sync`` move). Everything is validated first."""
        self.seed()
        changed: list[tuple[str, str]] = []
        for path in sorted(self.directory.glob("*.yaml")):
            load_template(path)
            text = path.read_text(encoding="utf-8")
            imported = [r for r in self.store.template_versions(path.stem)
                        if r["author"] == FILES_AUTHOR]
            if not imported or imported[-1]["sha"] != body_sha(text):
                changed.append((path.stem, text))
        out = []
        for name, text in changed:
            latest = self.store.latest_template_version(name)
            version = self.store.add_template_version(
                name, text, sha=body_sha(text), author=author,
                note=f"shipped file {name}.yaml changed", base_version=latest)
            if version is None:
                raise self._conflict(name, text, latest)
            if promote:
                self.store.move_template_label(
                    name, PRODUCTION, version, actor=author, kind="sync", override=True,
                    reason="shipped file changed (sync_files promote=True)")
            out.append(self.get(name, version))
        return out

    def contract(self, name: str) -> PromptTemplate | None:
        """What the app relies on (variables it passes, texts it reads): the shipped file,
        else version 1."""
        path = self.directory / f"{name}.yaml"
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is not None:
            key = (name, stat.st_mtime_ns, stat.st_size)
            if key not in self._contracts:
                try:
                    self._contracts[key] = load_template(path)
                except TemplateError:
                    log.warning("shipped template %s does not load; using version 1 as the "
                                "contract", path)
                    self._contracts[key] = None
            if self._contracts[key] is not None:
                return self._contracts[key]
        row = self.store.template_version(name, 1)
        if row is None:
            return None
        return analyse(name, row["body"])[0]

    # -- validation and saving ------------------------------------------------------
    def validate(self, name: str, body: str | Mapping[str, Any]) -> list[Problem]:
        """Every problem of a draft body, each at its field (errors and warnings); for live
        validation while typing. An empty list (or warnings only) means it can be saved."""
        _check_name(name)
        return analyse(name, _as_text(body), contract=self.contract(name))[1]

    def save(self, name: str, body: str | Mapping[str, Any], *, author: str, note: str,
             base_version: int | None) -> Version:
        """Save a new version (latest + 1) after full validation. ``base_version`` is the
        version the edit started from (0/None for a new template): if it is not the latest
        any more, ``ConflictError`` (with a diff) and nothing is saved."""
        _check_name(name)
        note = _required("note", note, "A note is required: say what changed and why.",
                         "Fill in the note field.")
        author = _required("author", author, "The author is missing.", "Pass --as NAME.")
        if base_version is not None and (isinstance(base_version, bool)
                                         or not isinstance(base_version, int)
                                         or base_version < 0):
            raise FieldError("base_version", f"base_version must be a version number, got "
                             f"{base_version!r}.")
        text = _as_text(body)
        tpl, problems = analyse(name, text, contract=self.contract(name))
        if tpl is None:
            raise TemplateValidationError(name, problems)
        latest = self.store.latest_template_version(name)
        if (base_version or 0) > latest:
            raise FieldError("base_version", f"Template '{name}' has no version {base_version} "
                             f"(latest is {latest}).", "Start from the latest version.")
        if latest and (base_version or 0) == latest:
            row = self.store.template_version(name, latest)
            if row and row["sha"] == body_sha(text):
                raise FieldError("body", f"Nothing changed since version {latest} of '{name}'.",
                                 "Edit the template before saving.")
        version = self.store.add_template_version(name, text, sha=body_sha(text),
                                                  author=author, note=note,
                                                  base_version=base_version)
        if version is None:
            raise self._conflict(name, text, base_version)
        log.info("template %s v%s saved by %s: %s", name, version, author, note)
        return self.get(name, version)

    def _conflict(self, name: str, text: str, base_version: int | None) -> ConflictError:
        latest = self.get(name)
        diff = unified_diff(latest.body, text, f"{name} v{latest.version} (latest)",
                            f"{name} (your edit, based on v{base_version or 0})")
        return ConflictError(name, base_version, latest, diff)

    # -- reading ----------------------------------------------------------------------
    def names(self) -> list[str]:
        return self.store.template_names()

    def labels(self, name: str) -> list[Label]:
        return [Label(r["name"], r["label"], r["version"], r["share"], r["segment"],
                      r["updated_at"]) for r in self.store.template_labels(name)]

    def _unknown(self, name: str) -> TemplateError:
        return TemplateError(f"No template named '{name}'.",
                             f"Available: {', '.join(self.names()) or 'none'}.")

    def get(self, name: str, version: int | None = None, label: str | None = None) -> Version:
        """A version by number, by label, or the latest."""
        if version is not None and label is not None:
            raise FieldError("version", "Give a version or a label, not both.")
        latest = self.store.latest_template_version(name)
        if latest == 0:
            raise self._unknown(name)
        labels = {lab.label: lab.version for lab in self.labels(name)}
        if label is not None:
            if label not in labels:
                raise FieldError("label", f"Template '{name}' has no label '{label}'.",
                                 f"Labels: {', '.join(sorted(labels)) or 'none'}.")
            version = labels[label]
        version = latest if version is None else version
        row = self.store.template_version(name, version)
        if row is None:
            raise FieldError("version", f"Template '{name}' has no version {version} "
                             f"(it has versions 1 to {latest}).",
                             f"See: assistant prompts history {name}")
        return self._version(row, labels)

    def _version(self, row: Mapping[str, Any], labels: Mapping[str, int]) -> Version:
        name, number = row["name"], int(row["version"])
        tpl, problems = analyse(name, row["body"], version=f"v{number}",
                                contract=self.contract(name))
        return Version(name=name, version=number, body=row["body"], sha=row["sha"],
                       author=row["author"], note=row["note"], created_at=row["created_at"],
                       base_version=row["base_version"],
                       labels=tuple(sorted(k for k, v in labels.items() if v == number)),
                       template=tpl, problems=tuple(problems))

    def history(self, name: str) -> list[Version]:
        """Every version, oldest first."""
        rows = self.store.template_versions(name)
        if not rows:
            raise self._unknown(name)
        labels = {lab.label: lab.version for lab in self.labels(name)}
        return [self._version(r, labels) for r in rows]

    def label_history(self, name: str, label: str | None = None) -> list[LabelEvent]:
        """The audit log of label moves, oldest first."""
        return [LabelEvent(r["id"], r["name"], r["label"], r["from_version"], r["to_version"],
                           r["actor"], r["reason"], r["kind"], bool(r["override"]), r["share"],
                           r["segment"], r["created_at"])
                for r in self.store.template_label_events(name, label)]

    def list(self) -> list[TemplateSummary]:
        """Per template: description, variables, labels, latest version, last change."""
        out = []
        for name in self.names():
            latest = self.get(name)
            labels = {lab.label: lab.version for lab in self.labels(name)}
            events = self.store.template_label_events(name)
            last_change, last_author = latest.created_at, latest.author
            if events and events[-1]["created_at"] > last_change:
                last_change, last_author = events[-1]["created_at"], events[-1]["actor"]
            tpl = latest.template
            out.append(TemplateSummary(
                name=name, description=tpl.description.strip() if tpl else "(invalid)",
                variables={k: v.model_dump() for k, v in tpl.variables.items()} if tpl else {},
                labels=labels, latest_version=latest.version, last_change=last_change,
                last_author=last_author))
        return out

    def diff(self, name: str, a: int, b: int) -> str:
        """Unified diff of the bodies of versions a and b (text and parameters)."""
        old, new = self.get(name, a), self.get(name, b)
        return unified_diff(old.body, new.body, f"{name} v{a}", f"{name} v{b}")

    # -- labels ---------------------------------------------------------------------------
    def set_label(self, name: str, label: str, version: int, *, actor: str, reason: str = "",
                  override: bool = False, share: float = 1.0,
                  segment: str | None = None) -> LabelEvent | None:
        """Point ``label`` at ``version`` (audit event); None when it already did.
        ``share``/``segment`` (non-production labels) are the staged-rollout traffic."""
        _check_label(label)
        actor = _required("actor", actor, "The actor is missing.", "Pass --as NAME.")
        reason = (reason or "").strip()
        if override and not reason:
            raise FieldError("reason", "An override needs a reason (it goes into the audit "
                             "log).", "Pass --reason '...'.")
        share, segment = self._rollout(label, share, segment)
        target = self.get(name, version)
        if not target.valid:
            raise TemplateValidationError(
                name, target.problems, f"Version {version} cannot be labelled '{label}': ")
        current = {lab.label: lab for lab in self.labels(name)}.get(label)
        if current and (current.version, current.share, current.segment) == (
                version, share, segment):
            return None
        if label == PRODUCTION:
            self._gate(name, version, override=override)
        self.store.move_template_label(name, label, version, actor=actor, reason=reason,
                                       kind="set", override=override and label == PRODUCTION,
                                       share=share, segment=segment)
        log.info("template %s: label %s -> v%s by %s%s", name, label, version, actor,
                 " (override)" if override else "")
        return self.label_history(name, label)[-1]

    @staticmethod
    def _rollout(label: str, share: float, segment: str | None) -> tuple[float, str | None]:
        if label == PRODUCTION:
            if share != 1.0 or segment:
                raise FieldError("share", "production always serves all remaining traffic.",
                                 "Give a share or segment to a staging label instead.")
            return 1.0, None
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise FieldError("share", f"share must be between 0 and 1, got {share!r}.",
                             "0.5 routes half of the sessions to this label.")
        return float(share), (segment or "").strip() or None

    def _gate(self, name: str, version: int, *, override: bool) -> None:
        """Production needs a passing run of this version with the current tests."""
        if override:
            return
        stored = self.store.template_tests(name)
        hint = (f"Run: assistant prompts test {name} --version {version}; or promote with "
                "--override --reason '...' (logged).")
        if stored is None or not json.loads(stored["cases"]):
            raise PromotionBlockedError(
                f"Template '{name}' has no tests, so version {version} cannot be promoted to "
                "production.", "Add tests (assistant prompts set-tests), or promote with "
                "--override --reason '...' (logged).")
        run = self.last_test_run(name, version)
        if run is None or run.cases_sha != stored["sha"]:
            raise PromotionBlockedError(
                f"Version {version} of '{name}' has not been tested with its current tests; "
                "promotion to production is blocked.", hint, run)
        if not run.passed:
            failed = [r for r in run.results if not r.passed]
            first = f"{failed[0].case}: {failed[0].assertion}: {failed[0].detail}"
            raise PromotionBlockedError(
                f"Version {version} of '{name}' fails its tests (pass rate "
                f"{run.pass_rate or 0:.0%}; {len(failed)} failing, e.g. {first}); promotion "
                "to production is blocked.", hint, run)

    def remove_label(self, name: str, label: str, *, actor: str, reason: str = "") -> LabelEvent:
        """Remove a label (not production: move it instead)."""
        _check_label(label)
        actor = _required("actor", actor, "The actor is missing.", "Pass --as NAME.")
        if label == PRODUCTION:
            raise FieldError("label", "The production label cannot be removed.",
                             "Move it to another version, or roll back.")
        if label not in {lab.label for lab in self.labels(name)}:
            raise FieldError("label", f"Template '{name}' has no label '{label}'.")
        self.store.move_template_label(name, label, None, actor=actor,
                                       reason=(reason or "").strip(), kind="remove")
        return self.label_history(name, label)[-1]

    def rollback(self, name: str, *, actor: str, reason: str,
                 label: str = PRODUCTION) -> LabelEvent:
        """Move ``label`` back to the version it pointed at before its last move (a second
        rollback goes one step further back). No test gate: it was live before."""
        actor = _required("actor", actor, "The actor is missing.", "Pass --as NAME.")
        reason = _required("reason", reason, "A rollback needs a reason (it goes into the "
                           "audit log).", "Pass --reason '...'.")
        stack: list[int] = []
        for event in self.label_history(name, label):
            if event.to_version is None:
                stack.clear()
            elif event.kind == "rollback":
                stack.pop() if stack else None
            else:
                stack.append(event.to_version)
        if len(stack) < 2:
            raise FieldError("label", f"'{label}' of '{name}' has no earlier version to roll "
                             "back to.", f"See: assistant prompts history {name}")
        current, target = stack[-1], stack[-2]
        version = self.get(name, target)
        if not version.valid:
            raise TemplateValidationError(
                name, version.problems, f"Cannot roll back to version {target}: ")
        moved, now = self.store.move_template_label(
            name, label, target, actor=actor, reason=reason, kind="rollback",
            expected_from=current, check_from=True)
        if not moved:
            raise FieldError("label", f"'{label}' of '{name}' moved meanwhile (now v{now}).",
                             "Look at the history and try again.")
        log.info("template %s: %s rolled back v%s -> v%s by %s (%s)", name, label, current,
                    target, actor, reason)
        return self.label_history(name, label)[-1]

    # -- tests ----------------------------------------------------------------------------
    def set_tests(self, name: str,
                  cases: Sequence[Mapping[str, Any]] | Mapping[str, Any] | str, *,
                  author: str) -> list[TemplateTestCase]:
        """Replace a template's test cases after validating them (assertion types, regexes,
        schemas, and that each case's vars render with the latest version)."""
        author = _required("author", author, "The author is missing.", "Pass --as NAME.")
        if isinstance(cases, Mapping):
            cases = cases.get("cases", [])
        raw = _read_cases(cases, "the test cases") if isinstance(cases, str) else list(cases)
        parsed: list[TemplateTestCase] = []
        for i, case in enumerate(raw):
            try:
                parsed.append(TemplateTestCase.model_validate(case))
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                msg = str(err.get("ctx", {}).get("error") or err["msg"])
                raise FieldError(f"cases[{i}]" + (f".{where}" if where else ""),
                                 f"Test case {i + 1} of '{name}', {where or 'case'}: {msg}",
                                 "Fix that case; nothing was saved.") from None
        seen = [c.name for c in parsed]
        dupes = sorted({n for n in seen if seen.count(n) > 1})
        if dupes:
            raise FieldError("cases", f"Test case names must be unique: {', '.join(dupes)}.")
        latest = self.get(name)
        if latest.template is not None:
            for i, case in enumerate(parsed):
                try:
                    latest.template.render(**case.vars)
                except TemplateError as exc:
                    raise FieldError(f"cases[{i}].vars", f"Test case '{case.name}' of "
                                     f"'{name}': {exc.message}", exc.hint) from None
        text = _cases_json(parsed)
        self.store.set_template_tests(name, text, sha=body_sha(text), author=author)
        return parsed

    def tests(self, name: str) -> list[TemplateTestCase]:
        stored = self.store.template_tests(name)
        if stored is None:
            return []
        return [TemplateTestCase.model_validate(c) for c in json.loads(stored["cases"])]

    def run_tests(self, name: str, version: int | None, llm: LLMClient, *,
                  actor: str = "tests") -> TestRun:
        """Run every test case of ``name`` on ``version`` (latest if None) through ``llm``,
        check each assertion, store the run and return it."""
        target = self.get(name, version)
        if target.template is None:
            raise TemplateValidationError(name, target.problems,
                                          f"Version {target.version} cannot be tested: ")
        stored = self.store.template_tests(name)
        cases = self.tests(name)
        if stored is None or not cases:
            raise FieldError("tests", f"Template '{name}' has no test cases.",
                             "Add some: assistant prompts set-tests NAME FILE.")
        results: list[TestResult] = []
        for case in cases:
            results += _run_case(target.template, case, llm)
        passed = sum(r.passed for r in results)
        rate = round(passed / len(results), 4) if results else None
        row = self.store.add_template_test_run(
            name, target.version, cases_sha=stored["sha"], model=llm.model.model,
            results_json=json.dumps([asdict(r) for r in results], ensure_ascii=False),
            pass_rate=rate, actor=actor)
        return _run_of(row)

    def last_test_run(self, name: str, version: int) -> TestRun | None:
        row = self.store.last_template_test_run(name, version)
        return _run_of(row) if row else None

    # -- export -------------------------------------------------------------------------
    def export(self, directory: Path | None = None, *, label: str = PRODUCTION) -> list[Path]:
        """Write each template's ``label`` version to ``<directory>/<name>.yaml`` (and its
        tests to ``tests/<name>.yaml``) for code review; returns the files changed."""
        directory = Path(directory or self.directory)
        written = []
        for name in self.names():
            labels = {lab.label: lab.version for lab in self.labels(name)}
            if label not in labels:
                continue
            body = self.get(name, labels[label]).body
            if _write_if_changed(directory / f"{name}.yaml", body):
                written.append(directory / f"{name}.yaml")
            cases = self.tests(name)
            path = directory / "tests" / f"{name}.yaml"
            if cases and not _same_cases(path, cases):
                data = {"cases": [c.model_dump(by_alias=True) for c in cases]}
                _write_if_changed(path, dump_body(data))
                written.append(path)
        return written


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return True
