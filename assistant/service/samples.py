"""Preview contexts for the prompt studio from the shop's real data (``SampleSource``),
built by the functions the app itself uses: the recommendation message's variables and
facts come from ``Recommendations.message_context`` (as ``suggest`` renders them), the
support template's from ``SupportDesk.prompt_context`` (as a draft gets them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.core.config import Settings
from assistant.prompts.grounding import Facts
from assistant.questionnaire.spec import QuestionnaireSpec
from assistant.recommend.personal import Profile, Recommendations
from assistant.recommend.profiles import describe
from assistant.segments.model import SegmentModel
from assistant.support.desk import SupportDesk


@dataclass(frozen=True)
class ShopSamples:
    """The collaborators are passed as getters: the app builds them lazily (segments after
    the first-run build, the recommender on first use)."""

    segments: Callable[[], SegmentModel]
    recommender: Callable[[], Recommendations]
    desk: Callable[[], SupportDesk]
    spec: QuestionnaireSpec
    settings: Settings

    def customers_by_segment(self) -> dict[str, list[str]]:
        customers = self.segments().customers
        names = customers["rfm_segment"].astype(str)
        return {seg: [str(c) for c in customers.index[names == seg]]
                for seg in names.unique()}

    def recommendation_context(self, segment: str, customer_id: str
                               ) -> tuple[dict[str, Any], Facts]:
        answers = self.segments().observed_answers(customer_id)
        engine = self.recommender()
        profile = Profile(answers=answers, segment=segment, customer_id=customer_id,
                          description=describe(self.spec, answers))
        recs = engine.recommend(profile, self.settings.recommendations,
                                exclude_seen=self.settings.exclude_seen)
        return engine.message_context(profile, recs, self.settings.shop_name)

    def support_context(self, customer_id: str | None, ticket: str
                        ) -> tuple[dict[str, Any], Facts]:
        return self.desk().prompt_context(customer_id, ticket)
