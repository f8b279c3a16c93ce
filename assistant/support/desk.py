"""Support-reply drafting for the Agent desk: retrieve, assemble context, compose, let the
model polish, check, save the draft.

``SupportDesk.start_draft(...)`` validates the input (nothing is saved for a bad ticket),
then assembles the context in code: the customer's facts and orders, the detected intent
(``IntentClassifier``), the top help passages (``HelpBase``; numbered [1] [2] [3] for
citations, customer slots filled) and the segment policy (``data/policies.yaml``). It then
composes the draft without the model (``support/compose.py``: the order the ticket is about,
the best clean passage, cited, the policy's sentence for the customer). The template
``prompts/support_draft.yaml`` keeps the ticket in the user message, as data, and gives the
model the composed draft to rewrite (``texts.task_polish``).

The returned ``DraftRun`` streams the model's rewrite. While streaming, a leak guard holds
back the last few words and stops the model as soon as the text repeats the prompt's own
words (six words in a row of its instructions or labels, not of the data). The rewrite is
shown only when ``polish_verdict`` accepts it (it passes ``check_draft``, keeps every order
number, date, amount and citation of the text it rewrote, stays close in meaning) and the
ticket does not try to steer the assistant; otherwise, and when the model leaks, fails or
is off (``TAILOR_DRAFT_POLISH``), the composed draft is shown, and ``shown`` /
``shown_reason`` say which and why. The model's own text is judged in the LLM call log. The
draft is saved as a server-side record (``drafts`` table): ``clean`` only when nothing in the
shown text is flagged and the ticket did not try to steer the model; ``flagged`` otherwise;
``discarded`` when cancelled (the ticket changed) or closed early; ``final`` after the agent
saves their edit (a unified diff against the draft is stored).

Text is never turned into markup here: tickets and drafts are plain strings; the UI escapes.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from assistant.core.config import Settings
from assistant.core.errors import AssistantError, InputError
from assistant.core.schemas import Message
from assistant.core.text import clean_text
from assistant.infra.llm import LLMClient
from assistant.infra.store import Store
from assistant.prompts.grounding import Facts, allowed_contacts
from assistant.prompts.leaks import LeakGuard
from assistant.prompts.templates import PromptTemplate, ServedTemplates
from assistant.questionnaire.parsing import describe_answers
from assistant.questionnaire.spec import QuestionnaireSpec, load_spec
from assistant.support.checks import _CITATION, check_draft
from assistant.support.compose import compose_draft, polish_verdict
from assistant.support.context import (
    RECENT_ORDERS,
    CustomerFacts,
    DraftContext,
    Prompt,
    _customer_line,
    _cut,
    _defuse,
    _prompt_orders,
    _strings,
    slot_values,
)
from assistant.support.helpbase import fill_slots
from assistant.support.injection import detect_injection
from assistant.support.policies import Policies, Policy, load_policies

log = logging.getLogger(__name__)

TEMPLATE = "support_draft"
MAX_TICKET_CHARS = 20_000
MAX_FINAL_CHARS = 20_000
MAX_REASON_CHARS = 500
#: a model whose context holds at most this many tokens gets the short ticket and passages
SMALL_CONTEXT_TOKENS = 4096
SMALL_PROMPT_TICKET_CHARS = 3000
DEFAULT_PROMPT_TICKET_CHARS = 12_000
PASSAGES = 3
# characters per passage in the prompt (the agent sees the whole passage)
SMALL_PASSAGE_CHARS = 300
DEFAULT_PASSAGE_CHARS = 600
INTENT_CONFIDENCE = 0.5  # below this the help search is not filtered by the intent
PREVIEW_CHARS = 120

Tone = Literal["neutral", "friendlier", "more formal"]
Revise = Literal["shorter", "longer", "regenerate"]
TONES: tuple[str, ...] = ("neutral", "friendlier", "more formal")
REVISIONS: tuple[str, ...] = ("shorter", "longer", "regenerate")
STATUSES = ("clean", "flagged", "discarded", "final")


Lazy = Callable[[], Any]


def _resolve(value: Any) -> Any:
    """An object, or a callable returning it (None when it fails: the part is left out)."""
    if value is None or not callable(value):
        return value
    try:
        return value()
    except AssistantError as err:
        log.info("support desk: a part is unavailable (%s)", err.message)
        return None


def _norm_id(customer_id: str | None) -> str:
    return str(customer_id or "").strip().removesuffix(".0")


# =========================================================================== the desk
class SupportDesk:
    """Drafting for the Agent desk. Collaborators are passed in: ``segments`` (SegmentModel),
    ``help_base`` (HelpBase), ``intents`` (IntentClassifier) may be None or a callable that
    returns one (or raises AssistantError when it is not built; the part is then left out).
    Such a callable is called on every use, so it should be cheap (a cached getter like
    ``AssistantService.segment_model``, which also sees a rebuild). ``orders`` is the frame of
    clean orders (``behaviour.load_orders(...).orders``) or a callable returning it, called
    once, on first use."""

    def __init__(self, settings: Settings, store: Store, templates: ServedTemplates,
                 llm: LLMClient, *, segments: Any = None, help_base: Any = None,
                 intents: Any = None, orders: pd.DataFrame | Lazy | None = None,
                 policies: Policies | Path | str | None = None,
                 policy_for: Callable[[str | None, str | None], Policy] | None = None,
                 template_name: str = TEMPLATE,
                 similarity: Callable[[str, str], float] | None = None,
                 spec: QuestionnaireSpec | None = None) -> None:
        self.settings = settings
        self.spec = spec or load_spec()
        self.store = store
        self.templates = templates
        self.llm = llm
        self._segments = segments
        self._help_base = help_base
        self._intents = intents
        self._orders_source = orders
        self.policies = policies if isinstance(policies, Policies) else load_policies(policies)
        # (customer, segment) -> the policy a draft follows: the segment's, or a policy
        # experiment's arm (service/experiments.py)
        self.policy_for = policy_for or (lambda _cid, segment:
                                         self.policies.for_segment(segment))
        self.template_name = template_name
        self.similarity = similarity  # meaning kept by a rewrite (None: not checked)
        self.template()  # fail fast: the template exists and is valid
        self._lock = threading.Lock()
        self._orders: pd.DataFrame | None = None
        self._by_customer: dict[str, Any] | None = None
        self._catalog: list[str] | None = None

    # -- collaborators ------------------------------------------------------------------
    def template(self) -> PromptTemplate:
        return self.templates.get(self.template_name)

    def segments(self) -> Any:
        return _resolve(self._segments)

    def help_base(self) -> Any:
        return _resolve(self._help_base)

    def intents(self) -> Any:
        return _resolve(self._intents)

    def orders(self) -> pd.DataFrame | None:
        with self._lock:
            if self._orders is None and self._orders_source is not None:
                frame = _resolve(self._orders_source)
                if frame is not None:
                    self._orders = frame
                    self._by_customer = {str(k): v for k, v in frame.groupby(
                        "customer", observed=True, sort=False).indices.items()}
            return self._orders

    def catalog(self) -> list[str]:
        """Product names of the order data (multi-word, upper-case: the shop's items), to
        spot a product the customer never bought."""
        frame = self.orders()
        if frame is None:
            return []
        with self._lock:
            if self._catalog is None:
                names = frame["description"].dropna().astype(str).str.strip().unique()
                self._catalog = sorted(n for n in names
                                       if n.isupper() and len(n.split()) >= 2)
            return self._catalog

    # -- customers ----------------------------------------------------------------------
    def _known(self, cid: str) -> bool:
        frame = self.orders()
        if frame is not None and self._by_customer is not None:
            return cid in self._by_customer
        segments = self.segments()
        return segments is not None and cid in segments.customers.index

    def _require_customer(self, customer_id: str) -> str:
        cid = _norm_id(customer_id)
        if not cid or not self._known(cid):
            raise InputError(f"No customer '{customer_id}' in the order data.",
                             "Check the number (e.g. 17850), or draft from the ticket alone "
                             "with no customer selected.")
        return cid

    def _customer_orders(self, cid: str) -> list[dict[str, Any]]:
        frame = self.orders()
        if frame is None or self._by_customer is None or cid not in self._by_customer:
            return []
        lines = frame.iloc[self._by_customer[cid]]
        out = []
        for order_id, group in lines.groupby("order_id", observed=True, sort=False):
            when = pd.Timestamp(group["timestamp"].min())
            out.append({
                "order_id": str(order_id), "date": when.date().isoformat(),
                "timestamp": when.isoformat(),
                "items": [str(d).strip() for d in group["description"].dropna()],
                "amount": round(float(group["amount"].sum()), 2),
                "line_amounts": [round(float(a), 2) for a in group["amount"]],
                "unit_prices": [round(float(p), 2) for p in group["unit_price"]],
                "returned": bool(group["is_return"].any()),
            })
        out.sort(key=lambda o: (o["timestamp"], o["order_id"]), reverse=True)
        return out

    def customer_facts(self, cid: str) -> CustomerFacts:
        """The facts of a known customer: orders (newest first), segment, behaviour."""
        return self._facts_of(cid)

    def _facts_of(self, cid: str) -> CustomerFacts:
        orders = self._customer_orders(cid)
        segments = self.segments()
        segment = behaviour = None
        if segments is not None and cid in segments.customers.index:
            segment = segments.of_customer(cid)
            row = segments.behaviour_of(cid)
            behaviour = {"recency_days": int(row["recency_days"]),
                         "frequency": int(row["frequency"]),
                         "monetary": round(float(row["monetary"]), 2)}
        elif orders:
            behaviour = self._behaviour_from_orders(orders)
        amounts: set[float] = set()
        for o in orders:
            for x in [o["amount"], *o["line_amounts"], *o["unit_prices"]]:
                amounts |= {round(x, 2), round(abs(x), 2)}
        products = list(dict.fromkeys(i for o in orders for i in o["items"]))
        return CustomerFacts(cid, segment, behaviour, orders, amounts, products)

    def _behaviour_from_orders(self, orders: list[dict[str, Any]]) -> dict[str, Any]:
        frame = self.orders()
        end = pd.Timestamp(frame["timestamp"].max()) if frame is not None else None
        bought = [o for o in orders if not o["returned"]]
        last = pd.Timestamp(bought[0]["timestamp"]) if bought else None
        return {"recency_days": (end - last).days if end is not None and last is not None
                else None, "frequency": len(bought),
                "monetary": round(sum(o["amount"] for o in orders), 2)}

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The desk's sidebar: segment, RFM, recent orders, chat answers, earlier drafts."""
        cid = self._require_customer(customer_id)
        facts = self._facts_of(cid)
        seg = facts.segment or {}
        behaviour = facts.behaviour or {}
        rfm = dict(seg.get("rfm") or {"r": None, "f": None, "m": None})
        rfm.update({k: behaviour.get(k) for k in ("recency_days", "frequency", "monetary")})
        policy = self.policy_for(cid, seg.get("segment"))
        return {
            "id": cid, "segment": seg.get("segment"), "probability": seg.get("probability"),
            "reasons": list(seg.get("reasons") or []), "rfm": rfm,
            "recent_orders": [{"order_id": o["order_id"], "date": o["date"],
                               "items": o["items"], "amount": o["amount"],
                               "returned": o["returned"]}
                              for o in facts.orders[:RECENT_ORDERS]],
            "orders_total": len(facts.orders),
            "answers": [{"session_id": p["session_id"], "updated_at": p["updated_at"],
                         "segment": p["segment"], "summary": p["document"],
                         "facts": p["facts"]}
                        for p in self.store.profiles_of_customer(cid)],
            "drafts": self.drafts_for(cid),
            "policy": policy.as_dict(),
        }

    # -- drafting -----------------------------------------------------------------------
    def start_draft(self, *, agent: str, customer_id: str | None, ticket: str,
                    tone: str = "neutral", revise: str | None = None,
                    previous: str | None = None) -> DraftRun:
        """Validate, assemble the context and render the prompt; iterate the returned run
        for the streamed text, then read ``run.result``. Raises InputError (nothing saved)
        for an empty or too long ticket, an unknown customer, tone or revision."""
        agent = (agent or "").strip()
        if not agent:
            raise InputError("No agent is signed in for this draft.", "Log in again.")
        ticket = self._valid_ticket(ticket)
        tone = (tone or "neutral").strip().lower()
        if tone not in TONES:
            raise InputError(f"Unknown tone '{tone}'.", "Use one of: " + ", ".join(TONES) + ".")
        revise = (revise or "").strip().lower() or None
        if revise is not None and revise not in REVISIONS:
            raise InputError(f"Unknown revision '{revise}'.",
                             "Use shorter, longer or regenerate (or none).")
        previous = clean_text(previous)
        if revise in ("shorter", "longer") and not previous:
            raise InputError(f"There is no draft to make {revise}.",
                             "Generate a draft first, then ask for a shorter or longer one.")
        if len(previous) > MAX_TICKET_CHARS:
            raise InputError("The earlier draft is too long to rewrite.",
                             f"Keep drafts under {MAX_TICKET_CHARS:,} characters.")
        cid = self._require_customer(customer_id) if _norm_id(customer_id) else None
        injection = detect_injection(ticket)
        ctx = self._context(cid, ticket)
        segment = (ctx.customer.segment or {}).get("segment") if ctx.customer else None
        tpl = self.templates.route(self.template_name, cid or ticket, segment=segment)
        # a passage that states what this customer's policy does not allow (a refund) is
        # used only when no other one is clean
        usable = sorted(ctx.citations, key=lambda c: bool(
            check_draft(c["text"], ctx.facts, len(ctx.citations))))
        composed, _ = compose_draft(ticket=ticket, customer=ctx.customer,
                                    citations=usable, policy_reply=ctx.policy.reply,
                                    shop_name=self.settings.shop_name, tone=tone, revise=revise)
        base = previous if revise in ("shorter", "longer") and previous else composed
        prompt = self._prompt(tpl, ctx, ticket, tone, revise, base, bool(injection))
        return DraftRun(self, tpl, prompt, ctx, agent=agent, ticket=ticket, tone=tone,
                        injection=injection, composed=composed, reference=base,
                        polish=self.settings.draft_polish == "on")

    def _valid_ticket(self, ticket: str | None) -> str:
        text = clean_text(ticket)
        if not text:
            raise InputError("The ticket is empty.",
                             "Paste the customer's message into the ticket box.")
        if len(text) > MAX_TICKET_CHARS:
            raise InputError(
                f"The ticket is {len(text):,} characters long; the limit is "
                f"{MAX_TICKET_CHARS:,}.",
                "Paste only the customer's latest message (leave out quoted earlier mails "
                "and signatures). Nothing was saved.")
        return text

    def _context(self, cid: str | None, ticket: str) -> DraftContext:
        notes: list[str] = []
        facts = self._facts_of(cid) if cid else None
        segment = (facts.segment or {}).get("segment") if facts else None
        if cid and segment is None:
            notes.append("No segment for this customer (segments not built): default policy.")
        policy = self.policy_for(cid, segment)
        intent, confidence = self._intent(ticket, notes)
        citations = self._citations(ticket, intent, confidence, facts, notes)
        bought = set(facts.products) if facts else set()
        grounding = Facts(
            catalog=[n for n in self.catalog() if n not in bought],
            amounts=sorted(facts.amounts) if facts else [],
            order_ids=[o["order_id"] for o in facts.orders] if facts else [],
            dates=[o["date"] for o in facts.orders] if facts else [],
            contacts=allowed_contacts(*(c["text"] for c in citations)),
            promises=dict(policy.promises))
        return DraftContext(facts, policy, intent, confidence, citations, grounding, notes)

    def _intent(self, ticket: str, notes: list[str]) -> tuple[str | None, float]:
        classifier = self.intents()
        if classifier is None:
            notes.append("No intent classifier (train it with: assistant help train).")
            return None, 0.0
        pred = classifier.predict(ticket)
        return pred.intent, float(pred.confidence)

    def _citations(self, ticket: str, intent: str | None, confidence: float,
                   facts: CustomerFacts | None, notes: list[str]) -> list[dict[str, Any]]:
        base = self.help_base()
        if base is None:
            notes.append("No help base (build it with: assistant help build).")
            return []
        use = intent if intent and confidence >= INTENT_CONFIDENCE else None
        try:
            if use is not None and use not in base.intents():
                use = None
            hits = base.search(ticket, k=PASSAGES, intent=use)
        except AssistantError as err:
            notes.append(f"No help passages: {err.message}")
            return []
        values = slot_values(facts)
        if values:  # a known customer: a passage that uses their order facts comes first
            hits = sorted(hits, key=lambda p: not set(p.slots) & set(values))
        return [{"n": i, "id": p.id, "title": p.title, "intent": p.intent,
                 "text": fill_slots(p.text, values), "score": p.score}
                for i, p in enumerate(hits, start=1)]

    def prompt_context(self, customer_id: str | None, ticket: str, tone: str = "neutral"
                       ) -> tuple[dict[str, Any], Facts]:
        """(the template's variables, the facts a reply is checked against) for a customer
        and ticket, as a draft would get them: the prompt studio previews templates and
        turns agents' edits into test cases with these."""
        ticket = self._valid_ticket(ticket)
        cid = self._require_customer(customer_id) if _norm_id(customer_id) else None
        ctx = self._context(cid, ticket)
        fixed, data = self._vars(self.template(), ctx, ticket, tone,
                                 bool(detect_injection(ticket)))
        return {**fixed, **data, "revision": []}, ctx.facts

    def _vars(self, tpl: PromptTemplate, ctx: DraftContext, ticket: str, tone: str,
              injection: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the template's own settings, the data) for rendering."""
        window = self.llm.model.context_window
        small = window is not None and window <= SMALL_CONTEXT_TOKENS
        limit = SMALL_PROMPT_TICKET_CHARS if small else DEFAULT_PROMPT_TICKET_CHARS
        passage_chars = SMALL_PASSAGE_CHARS if small else DEFAULT_PASSAGE_CHARS
        if len(ticket) > limit:
            ctx.notes.append(f"The model read the first {limit:,} of {len(ticket):,} "
                             "characters of the ticket.")
            ticket = ticket[:limit] + " […]"
        fixed = dict(shop_name=self.settings.shop_name, policy=ctx.policy.text,
                     style=tpl.text("tone_" + tone.replace(" ", "_")), injection=injection)
        data: dict[str, Any] = dict(
            intent=(f"{ctx.topic} (confidence {ctx.intent_confidence:.2f})" if ctx.intent
                    else "unknown"),
            customer=_customer_line(ctx.customer), orders=_prompt_orders(ctx.customer),
            answers=self._answers_line(ctx.customer),
            passages=[{"n": c["n"], "title": c["title"],
                       "text": _cut(c["text"], passage_chars)} for c in ctx.citations],
            ticket=_defuse(ticket))
        return fixed, data

    def _prompt(self, tpl: PromptTemplate, ctx: DraftContext, ticket: str, tone: str,
                revise: str | None, previous: str, injection: bool) -> Prompt:
        fixed, data = self._vars(tpl, ctx, ticket, tone, injection)
        task = _task(tpl, "task_" + revise if revise in ("shorter", "longer") else "task_polish")
        revision = [Message(role="assistant", content=_defuse(previous)),
                    Message(role="user", content=task)] if task and previous else []
        messages = tpl.render(**fixed, **data, revision=revision)
        # the template's own words: every message rendered without the data
        blank = dict(intent="", customer="", orders=[], answers="", passages=[], ticket="",
                     revision=[Message(role="user", content=task)] if task else [])
        secret = "\n".join(m.content for m in tpl.render(**fixed, **blank))
        params = tpl.parameters
        if revise == "regenerate":
            params = params.model_copy(update={"temperature": min(params.temperature + 0.4,
                                                                   1.0)})
        # what the customer typed (the ticket) is never allowed text: a ticket that quotes
        # these instructions must not make a draft repeating them pass the leak guard
        allowed = [ctx.policy.text, self.fallback_text(ctx), previous,
                   *_strings({k: v for k, v in data.items() if k != "ticket"})]
        return Prompt(messages, params, secret, allowed)

    def _answers_line(self, facts: CustomerFacts | None) -> str:
        """What a verified customer said in the chat, as the questionnaire's vetted values
        only ("Shopping: as gifts. Interests: candles and lights."): their free text never
        reaches the model's instructions (it is data the customer typed)."""
        if facts is None:
            return ""
        profiles = self.store.profiles_of_customer(facts.id)
        if not profiles:
            return ""
        said = {q: f["value"] for q, f in (profiles[0].get("facts") or {}).items()
                if q in self.spec.ids and self.spec.question(q).type != "text"
                and isinstance(f, dict) and f.get("value") not in (None, "", [])}
        return _cut(describe_answers(self.spec, said), 300)

    def fallback_text(self, ctx: DraftContext) -> str:
        """The template's standard reply for this context (used instead of a leaking or
        empty draft); without the help article's title when that title would be flagged
        (a title such as "Get refund" reads as a promise)."""
        latest = ctx.customer.latest if ctx.customer else None
        order_id = latest["order_id"] if latest else ""
        title = ctx.citations[0]["title"] if ctx.citations else ""
        text = self.template().text("fallback", shop_name=self.settings.shop_name,
                                    order_id=order_id, first_title=title).strip()
        if title and check_draft(text, ctx.facts, len(ctx.citations)):
            text = self.template().text("fallback", shop_name=self.settings.shop_name,
                                        order_id=order_id, first_title="").strip()
        return text

    # -- records ------------------------------------------------------------------------
    def draft(self, draft_id: str) -> dict[str, Any]:
        record = self.store.draft(str(draft_id or "").strip())
        if record is None:
            raise InputError(f"No draft '{draft_id}'.", "Open the draft from the sidebar.")
        return record

    def drafts_for(self, customer_id: str) -> list[dict[str, Any]]:
        return [{"id": d["id"], "created_at": d["created_at"], "intent": d["intent"],
                 "status": d["status"], "agent": d["agent"],
                 "preview": (d["final_text"] or d["draft"] or "")[:PREVIEW_CHARS]}
                for d in self.store.drafts_for(_norm_id(customer_id))]

    def save_final(self, draft_id: str, agent: str, final_text: str) -> dict[str, Any]:
        """The agent's text as final; their edits are kept as a unified diff of the draft."""
        record = self.draft(draft_id)
        if record["status"] == "discarded":
            raise InputError("This draft was discarded (the ticket changed while it was "
                             "written).", "Generate a new draft for the current ticket.")
        text = clean_text(final_text)
        if not text:
            raise InputError("The final text is empty.", "Write or keep the reply, then save.")
        if len(text) > MAX_FINAL_CHARS:
            raise InputError(f"The final text is {len(text):,} characters; the limit is "
                             f"{MAX_FINAL_CHARS:,}.", "Shorten the reply.")
        diff = "".join(difflib.unified_diff(
            record["draft"].splitlines(keepends=True), _with_newline(text).splitlines(
                keepends=True), fromfile="draft", tofile=f"final ({agent.strip()})"))
        self.store.update_draft(record["id"], status="final", final_text=text,
                                edit_diff=diff, final_agent=(agent or "").strip() or None)
        return self.draft(record["id"])

    def resolve(self, draft_id: str, agent: str) -> dict[str, Any]:
        """Mark the ticket of a sent draft resolved (a desk outcome the Insights tab counts);
        once: resolving again is refused with when and by whom it was."""
        record = self.draft(draft_id)
        if record["status"] != "final":
            raise InputError("This reply has not been sent yet.",
                             "Save it as final first, then mark the ticket resolved.")
        if record.get("resolved_at"):
            raise InputError(f"This ticket was already marked resolved by "
                             f"{record['resolved_by']} at {record['resolved_at'][:16]}.",
                             "Nothing to do.")
        self.store.update_draft(record["id"], resolved_by=(agent or "").strip() or "agent",
                                resolved_at=datetime.now(UTC).isoformat(
                                    timespec="milliseconds"))
        return self.draft(record["id"])

    def feedback(self, draft_id: str, liked: bool, reason: str = "") -> dict[str, Any]:
        record = self.draft(draft_id)
        reason = clean_text(reason)
        if len(reason) > MAX_REASON_CHARS:
            raise InputError(f"The reason is {len(reason):,} characters; the limit is "
                             f"{MAX_REASON_CHARS}.", "Say it in a sentence or two.")
        self.store.update_draft(record["id"], feedback=1 if liked else -1,
                                feedback_reason=reason or None)
        return self.draft(record["id"])


POLISH_TASK = ("Rewrite your reply above for the customer in the tone asked: keep every "
               "order number, date, amount and citation number exactly, add no new facts, "
               "offers or promises, and keep it about as long.")


def _task(tpl: PromptTemplate, key: str) -> str:
    """A task text of the template (an older version without ``task_polish`` gets the
    built-in one)."""
    try:
        return tpl.text(key)
    except AssistantError:
        return POLISH_TASK if key == "task_polish" else ""


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


# =========================================================================== the run
class DraftRun:
    """One draft being written. Iterate it for text deltas (the last few words are held
    back until they are known not to repeat the prompt's own words); afterwards ``result``
    holds the record as a dict. ``cancel()`` (from any thread) stops it and marks the
    record ``discarded``; closing the iterator early does the same."""

    def __init__(self, desk: SupportDesk, tpl: PromptTemplate, prompt: Prompt,
                 ctx: DraftContext, *, agent: str, ticket: str, tone: str,
                 injection: list[str], composed: str, reference: str | None = None,
                 polish: bool = True) -> None:
        self.desk = desk
        self.template = tpl
        self.prompt = prompt
        self.messages = prompt.messages
        self.params = prompt.params
        self.context = ctx
        self.agent = agent
        self.ticket = ticket
        self.tone = tone
        self.injection = injection
        self.result: dict[str, Any] | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._guard = LeakGuard(prompt.secret, [*prompt.allowed, composed])
        self.composed = composed  # the draft written without the model
        self.reference = reference or composed  # what the model rewrote (facts to keep)
        self.model_flags: list[dict[str, Any]] = []  # the checks of the model's own text
        self.polish = polish  # let the model rewrite it (shown only when it passes)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Discard this draft (the ticket changed while it was being written)."""
        with self._lock:
            self._cancelled.set()
            if self.result is not None and self.result["status"] != "discarded":
                self.desk.store.update_draft(self.result["id"], status="discarded")
                self.result["status"] = "discarded"

    def collect(self) -> dict[str, Any]:
        """Run to the end without streaming; the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("A DraftRun can be iterated once; start a new draft.")
        self._started = True
        if not self.polish:
            try:
                if not self.cancelled:
                    yield self.composed
            except GeneratorExit:
                self._cancelled.set()
                raise
            finally:
                self._finish(None, None)
            return
        gen = self.desk.llm.generate(self.messages, self.params,
                                     template_name=self.template.name,
                                     template_version=self.template.version)
        stream = iter(gen)
        error: AssistantError | None = None
        finished = False
        try:
            if not self.cancelled:
                for delta in stream:
                    if self.cancelled:
                        break
                    safe = self._guard.feed(delta)
                    if self._guard.leaked:
                        break
                    if safe:
                        yield safe
                else:
                    finished = not self.cancelled
                if finished and (rest := self._guard.finish()):
                    yield rest
        except GeneratorExit:
            self._cancelled.set()  # closed by the reader: a stale draft
            raise
        except AssistantError as exc:
            error = exc  # the model failed: the composed draft stands
        except Exception as exc:  # noqa: BLE001 - the composed draft stands; logged
            log.exception("drafting: the model's rewrite failed")
            error = AssistantError(f"The model's rewrite failed ({type(exc).__name__}).",
                                   "The composed draft is shown; check the app's log.")
        finally:
            stream.close()  # a stopped model call is logged as "stopped"
            self._finish(gen, error)

    # -- the record -----------------------------------------------------------------------
    def _choose(self, error: AssistantError | None) -> tuple[str, str, str]:
        """(the text shown, "polished" | "composed", why)."""
        ctx = self.context
        if not self.polish:
            return self.composed, "composed", "polishing by the model is off (TAILOR_DRAFT_POLISH)"
        if error is not None:
            return self.composed, "composed", f"the model failed ({error.message})"
        if self._guard.leaked:
            return self.composed, "composed", ("the rewrite repeated the assistant's "
                                               "instructions")
        # only what the guard released: a stopped stream may hold back a few prompt words
        polished = self._guard.text[:self._guard.released].strip()
        flags = check_draft(polished, ctx.facts, len(ctx.citations))
        self.model_flags = flags
        if self.injection:
            return self.composed, "composed", ("the ticket tries to steer the assistant, so "
                                               "the model's rewrite is not used")
        ok, why = polish_verdict(self.reference, polished, flags, self.desk.similarity)
        return (polished, "polished", why) if ok else (self.composed, "composed", why)

    def _finish(self, gen: Any, error: AssistantError | None) -> None:
        ctx = self.context
        text, shown, why = self._choose(error)
        if shown == "composed" and self.polish:
            ctx.notes.append(f"Showing the composed draft: {why}.")
        flags = self.model_flags if shown == "polished" else \
            check_draft(text, ctx.facts, len(ctx.citations))
        with self._lock:
            if self.cancelled:
                status = "discarded"
            elif flags or self.injection:
                status = "flagged"
            else:
                status = "clean"
            self.result = self._save(gen, text, flags, status)
            self.result.update(shown=shown, shown_reason=why, composed=self.composed)
        call_id = getattr(gen, "call_id", None)
        if call_id is not None:  # the call log judges the model's own text
            leak = [{"kind": "prompt_leak", "text": ""}] if self._guard.leaked else []
            self.desk.store.set_grounding(call_id, _grounding_summary(
                self.model_flags + leak, self.injection))

    def _save(self, gen: Any, text: str, flags: list[dict[str, Any]],
              status: str) -> dict[str, Any]:
        ctx = self.context
        cited = {int(m.group(1)) for m in _CITATION.finditer(text)}
        citations = [{**c, "used": c["n"] in cited} for c in ctx.citations]
        if citations and not cited and status != "discarded":
            ctx.notes.append("The draft cites no help passage.")
        record = dict(
            agent=self.agent, customer_id=ctx.customer.id if ctx.customer else None,
            ticket=self.ticket, intent=ctx.intent, intent_confidence=ctx.intent_confidence,
            tone=self.tone, template_name=self.template.name,
            template_version=self.template.version, model=self.desk.llm.model.model,
            llm_call_id=getattr(gen, "call_id", None), draft=text, flags=flags, citations=citations,
            injection=self.injection, status=status)
        draft_id = self.desk.store.add_draft(**record)
        saved = self.desk.store.draft(draft_id) or {}
        return {
            "id": draft_id, "text": text, "citations": citations, "intent": ctx.intent,
            "intent_confidence": round(ctx.intent_confidence, 4), "flags": flags,
            "injection": bool(self.injection), "injection_phrases": list(self.injection),
            "template_name": self.template.name, "template_version": self.template.version,
            "model": self.desk.llm.model.model, "status": status,
            "customer_id": record["customer_id"],
            "segment": (ctx.customer.segment or {}).get("segment") if ctx.customer else None,
            "policy": ctx.policy.as_dict(), "tone": self.tone, "notes": list(ctx.notes),
            "created_at": saved.get("created_at"),
        }


def _grounding_summary(flags: list[dict[str, Any]], injection: list[str]) -> str:
    parts = [f"{f['kind']} '{f['text']}'" if f["text"] else f["kind"] for f in flags]
    if injection:
        parts.append(f"injection ({len(injection)})")
    return "ok" if not parts else f"{len(parts)} flagged: " + "; ".join(parts)
