"""Prompts screened at submission, before any hold or provider call: the operator's rules, the
tenant's own (the prompt_screening table), then the hosted moderation adapter when one is
configured, whose outage follows the tenant's policy. A refusal is a 422 naming the category;
nothing is written, held or generated."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.common.db import Conn, Pool
from services.common.problems import Problem
from services.ingest.accounts import store
from services.ingest.accounts.moderation import HostedModeration, ModerationUnavailable
from services.ingest.prompt_rules import OperatorRule, Policy, PromptRule, Refusal, screen


@dataclass(frozen=True)
class TenantScreening:
    rules: list[PromptRule]
    policy: Policy | None  # None: the platform's default


async def read_screening(conn: Conn, tenant_id: str) -> TenantScreening:
    row = await store.read_screening(conn, tenant_id)
    if row is None:
        return TenantScreening([], None)
    return TenantScreening([PromptRule.model_validate(rule) for rule in row["rules"]], row["policy"])


async def write_screening(conn: Conn, tenant_id: str, *, screening: TenantScreening) -> None:
    await store.write_screening(conn, tenant_id, rules=[rule.model_dump() for rule in screening.rules], policy=screening.policy)


def refused(refusal: Refusal) -> Problem:
    whose = {"operator": "the platform's", "tenant": "your", "moderation": "the moderation provider's"}[refusal.source]
    return Problem(status=422, slug="prompt-refused", detail=f"the prompt was refused by {whose} screening: category"
                   f" {refusal.category!r}; nothing was held or generated", extra={"category": refusal.category,
                                                                                   "screened_by": refusal.source})


class PromptGate:
    """The operator's rules, the default policy and the moderation adapter (None: none)."""

    def __init__(self, operator_rules: list[OperatorRule], default_policy: Policy,
                 *, moderation: HostedModeration | None) -> None:
        self.operator_rules, self.default_policy, self.moderation = operator_rules, default_policy, moderation

    async def check(self, pool: Pool, tenant_id: str, *, prompt: str) -> None:
        """Raise the 422 a refused prompt gets, or the 503 of a moderation outage under a
        fail-closed policy; return when the prompt may go on."""
        async with pool.connection() as conn:
            tenant = await read_screening(conn, tenant_id)
        refusal = screen(prompt, self.operator_rules, tenant=tenant.rules)
        if refusal is not None:
            raise refused(refusal)
        if self.moderation is None:
            return
        try:
            category = await self.moderation.category_of(prompt)
        except ModerationUnavailable:
            if (tenant.policy or self.default_policy) == "fail_closed":
                raise Problem(status=503, slug="prompt-screening-unavailable", detail="the moderation provider does not answer and your"
                              " policy is to refuse prompts it has not seen; try again shortly",
                              headers={"Retry-After": "10"}, extra={"retry_after": 10}) from None
            return
        if category is not None:
            raise refused(Refusal(category, "moderation"))


async def get_prompt_gate(request: Request) -> PromptGate:
    prompt_gate: PromptGate = request.app.state.prompt_gate
    return prompt_gate


# The gate as a route's dependency: `prompts: PromptScreen`.
PromptScreen = Annotated[PromptGate, Depends(get_prompt_gate)]
