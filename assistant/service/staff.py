"""Staff use cases: sign-in and roles, the Agent desk, the Segments tab, the Prompt studio.

Every operation takes the acting user first and checks the role itself (agent: the desk;
ops: segments and the studio; admin holds every role), so a front end cannot forget it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from assistant.core.errors import AssistantError, InputError
from assistant.infra.users import User, UserStore, has_role, normalize_name
from assistant.prompts.serving import ProductionTemplates
from assistant.recommend.personal import Profile
from assistant.segments.model import Progress, build_segment_model, dashboard_data
from assistant.service.limits import AttemptLimiter, Limit
from assistant.service.parts import Parts
from assistant.service.samples import ShopSamples
from assistant.service.studio import PromptStudio
from assistant.support.desk import DraftRun, SupportDesk


class Staff:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    # -- users and roles ----------------------------------------------------------------
    @cached_property
    def users(self) -> UserStore:
        return UserStore.from_settings(self.parts.settings, self.parts.store)

    @cached_property
    def login_limiter(self) -> AttemptLimiter:
        return AttemptLimiter(self.parts.store, self.parts.settings.lockout_minutes)

    def _account_limit(self, name: str) -> Limit:
        try:
            key = normalize_name(name)
        except InputError:
            key = "-"
        return Limit(f"login:user:{key}", self.parts.settings.login_attempts)

    def _client_limit(self, client: str) -> Limit:
        return Limit(f"login:client:{client}", self.parts.settings.login_attempts_per_client)

    def authenticate(self, name: str, password: str) -> bool:
        """Gradio's login check for the staff app: any known user with the right password
        (what each role may do is checked per action by ``require_role``). An account with
        too many wrong passwords in a row is locked out for a while: it fails at once,
        without hashing (the reply stays the generic one)."""
        limit = self._account_limit(name)
        if self.login_limiter.locked_for([limit]) > 0:
            return False
        try:
            ok = self.users.verify(name, password) is not None
        except AssistantError:
            ok = False
        if ok:
            self.login_limiter.clear(limit.key)
        else:
            self.login_limiter.fail([limit])
        return ok

    def login_wait(self, client: str | None) -> float:
        """Seconds a client address must wait before signing in again (0: it may)."""
        return self.login_limiter.locked_for([self._client_limit(client)]) if client else 0.0

    def login_failed(self, client: str | None) -> None:
        if client:
            self.login_limiter.fail([self._client_limit(client)])

    def require_role(self, name: str | None, role: str) -> User:
        """The signed-in staff user, if they hold ``role`` (admin holds every role)."""
        user = self.users.get(name) if name else None
        if user is None:
            raise InputError("Please sign in.", "Open /staff/ and sign in with your account.")
        if not has_role(user, role):
            raise InputError(
                f"Your account '{user.name}' has the role {user.role}; this needs {role}.",
                f"Ask an admin: assistant users add NAME --role {role} (or sign in with an "
                f"{role} account).")
        return user

    # -- Prompt studio ------------------------------------------------------------------
    @cached_property
    def studio(self) -> PromptStudio:
        """The prompt studio: versions, preview, tests, rollout, metrics. It gets the narrow
        parts it uses, never the service itself."""
        parts = self.parts
        templates = parts.templates
        versions = templates.versions if isinstance(templates, ProductionTemplates) else None
        samples = ShopSamples(segments=parts.segment_model, recommender=parts.recommender,
                              desk=lambda: self.desk, spec=parts.spec, settings=parts.settings)
        return PromptStudio(versions, templates, parts.llm, parts.store, samples)

    def studio_for(self, actor: str | None) -> tuple[PromptStudio, str]:
        """The prompt studio for ``actor`` if they hold the ops role (else ``InputError``),
        with their checked user name: what the studio's writes record as the actor."""
        user = self.require_role(actor, "ops")
        return self.studio, user.name

    # -- Agent desk -----------------------------------------------------------------------
    @cached_property
    def desk(self) -> SupportDesk:
        """Drafting with the customer's facts, help passages, intent and segment policy."""
        p = self.parts
        return SupportDesk(p.settings, p.store, p.templates, p.llm,
                           policies=p.policies, policy_for=p.experiments.policy_for,
                           segments=p.segment_model, help_base=p.help_base(),
                           intents=p.intent_classifier, orders=p.orders,
                           similarity=p.similarity, spec=p.spec)

    def desk_customer(self, actor: str | None, customer_id: str) -> dict[str, Any]:
        """The Agent desk sidebar (``/customer``), with the customer's recommendations."""
        self.require_role(actor, "agent")
        out = self.desk.customer(customer_id)
        try:
            recs = self.parts.recommender().recommend(
                Profile(customer_id=str(out["id"]), segment=out.get("segment")), 5,
                exclude_seen=self.parts.settings.exclude_seen)
            out["recommendations"] = [{**r.as_dict(), "id": r.item} for r in recs]
        except AssistantError as err:
            out["recommendations"] = []
            out.setdefault("notes", []).append(f"recommendations: {err.message}")
        out["value"] = self._value_of(str(out["id"]))
        return out

    def _value_of(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's predicted purchases, value and churn risk (None: not predicted)."""
        try:
            model = self.parts.customer_value()
        except AssistantError:
            return None
        if customer_id not in model.table.index:
            return None
        row = model.table.loc[customer_id]
        return {"horizon_days": model.horizon_days,
                "expected_purchases": float(row["expected_purchases"]),
                "expected_value": float(row["expected_value"]),
                "churn_risk": float(row["churn_risk"]), "repeat_buyer": bool(row["x"] > 0)}

    def start_draft(self, *, agent: str, customer_id: str | None, ticket: str,
                    tone: str = "neutral", revise: str | None = None,
                    previous: str | None = None) -> DraftRun:
        """A streamed draft by the signed-in ``agent`` (role agent)."""
        agent = self.require_role(agent, "agent").name
        run = self.desk.start_draft(agent=agent, customer_id=customer_id, ticket=ticket,
                                    tone=tone, revise=revise, previous=previous)
        policy, facts = run.context.policy, run.context.customer
        if policy.variant and facts is not None:  # a policy experiment's arm was used
            self.parts.events.exposure(facts.id, variant=policy.variant,
                                       segment=policy.segment)
        return run

    def save_final_draft(self, draft_id: str, agent: str, text: str) -> dict[str, Any]:
        agent = self.require_role(agent, "agent").name
        return self.desk.save_final(draft_id, agent, text)

    def resolve_ticket(self, actor: str | None, draft_id: str) -> dict[str, Any]:
        agent = self.require_role(actor, "agent").name
        return self.desk.resolve(draft_id, agent)

    def rate_draft(self, actor: str | None, draft_id: str, liked: bool, reason: str = ""
                   ) -> dict[str, Any]:
        self.require_role(actor, "agent")
        return self.desk.feedback(draft_id, liked, reason)

    # -- segments ---------------------------------------------------------------------------
    def rebuild_segments(self, orders_path: Path, mapping: dict[str, str] | None = None,
                         progress: Progress = None) -> dict[str, Any]:
        """Build new segments; the ones in use stay until the new build has succeeded."""
        summary = build_segment_model(Path(orders_path), self.parts.settings.artifacts_dir,
                                      mapping=mapping, progress=progress)
        self.parts.forget_models()  # the recommender refits with the new segments on use
        return summary

    def segments_dashboard(self, actor: str | None) -> dict[str, Any]:
        """The Segments tab's data, its projection's customers with their predicted value
        and churn risk (``_with_value``), and the recommender's weights."""
        self.require_role(actor, "ops")
        return {**self._with_value(dashboard_data(self.parts.segment_model())),
                "recommender": self.parts.served_weights()}

    def _with_value(self, data: dict[str, Any]) -> dict[str, Any]:
        """``expected_value`` and ``churn_risk`` joined onto the projection's customers (NaN
        where a customer has no prediction), so the tab can colour them by it; when the value
        model cannot be fitted the projection stays as it is and ``value_note`` says why."""
        try:
            value = self.parts.customer_value()
        except AssistantError as err:
            return {**data, "value_note": f"No predicted value: {err.message}"}
        proj = data["projection"]
        cols = value.table[["expected_value", "churn_risk"]].reindex(proj.index.astype(str))
        return {**data, "projection": proj.join(cols.set_axis(proj.index)), "value_note": None,
                "value_horizon_days": value.horizon_days}

    def staff_rebuild_segments(self, actor: str | None, orders_path: Path,
                               mapping: dict[str, str] | None = None,
                               progress: Progress = None) -> dict[str, Any]:
        """``rebuild_segments`` for a signed-in ops user (the Segments tab's upload)."""
        self.require_role(actor, "ops")
        return self.rebuild_segments(orders_path, mapping, progress)

    def segment_of_customer(self, actor: str | None, customer_id: str) -> dict[str, Any]:
        self.require_role(actor, "ops")
        return self.parts.segment_model().of_customer(customer_id)

    def segment_from_answers(self, actor: str | None, answers: dict[str, Any],
                             customer_id: str | None = None) -> dict[str, Any]:
        self.require_role(actor, "ops")
        return self.parts.segment_model().from_answers(answers, customer_id)
