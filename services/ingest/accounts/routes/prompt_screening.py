"""`/v1/account/prompt-screening`: a tenant's own prompt rules, checked at submission after the
platform's and before anything is held or generated, and its policy while the hosted
moderation provider is down."""

from typing import TYPE_CHECKING, TypeAlias

from fastapi import APIRouter
from pydantic import ConfigDict, Field

from services.common.api import RequestModel
from services.ingest.accounts.prompt_screening import TenantScreening, read_screening, write_screening
from services.ingest.deps import Runtime, Scoped
from services.ingest.prompt_rules import Policy, PromptRule

router = APIRouter(prefix="/v1/account", tags=["account"])
# The caller's tenant, when its key holds the scope (a dependency FastAPI reads from the
# annotation; to the type checker, the tenant's id it yields).
if TYPE_CHECKING:
    ScreeningReader: TypeAlias = str
    ScreeningWriter: TypeAlias = str
else:
    ScreeningReader = Scoped("account:read")
    ScreeningWriter = Scoped("keys:manage")  # who may decide what the tenant's keys may submit


class PromptScreening(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "rules": [{"category": "competitors", "terms": ["acme corp"], "patterns": ["acme*"]}],
        "policy": "fail_closed"}]})

    rules: list[PromptRule] = Field([], max_length=50, description="refuse a prompt naming any term (whole words, any"
                                                                   " case) or a word matching a pattern (`*`, `?`)")
    policy: Policy | None = Field(None, description="while the moderation provider is down: fail_open (jobs go on)"
                                                    " or fail_closed (503); null: the platform's default")


@router.get("/prompt-screening", response_model=PromptScreening)
async def get_prompt_screening(tenant: ScreeningReader, runtime: Runtime) -> PromptScreening:
    """Your prompt rules and your policy while the moderation provider is down."""
    async with runtime.pool.connection() as conn:
        screening = await read_screening(conn, tenant)
    return PromptScreening(rules=screening.rules, policy=screening.policy)


@router.put("/prompt-screening", response_model=PromptScreening)
async def set_prompt_screening(body: PromptScreening, tenant: ScreeningWriter, runtime: Runtime) -> PromptScreening:
    """Replace your prompt rules and policy; jobs submitted from now on are screened with them.
    A refused prompt gets 422 `prompt-refused` naming the rule's category."""
    async with runtime.pool.connection() as conn:
        await write_screening(conn, tenant, screening=TenantScreening(body.rules, body.policy))
    return body
