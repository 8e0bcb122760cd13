"""Keys and accounts, one feature package: tenants and the plans they are on, their API keys
(issued, listed, rotated, revoked, capped), what a plan limits at submission, the spend caps
judged on the ledger's quote, and prompt screening (the operator's rules, the tenant's own, the
hosted moderation). Their routes, their rules and their SQL. The kernel authenticates a
request: it looks a key up by its hash (session_auth.py, store/callers.py), gives a role its
scopes (roles.py) and counts the request against the plan's rate (plans.py, deps.py); this
package makes the keys and the tenants it reads.

Its face, what other features and the frame may use: tenants made and moved between plans, a
key issued (the admin API, the CLI, the launcher); a plan's limits at submission and the usage
they count (jobs, billing); the spend caps' refusals (jobs, batches, evaluations, the
OpenAI-compatible API); the prompt gate, as a route's dependency (`PromptScreen`).

    routes/              `/v1/api-keys`: a tenant's own keys (keys.py); `/v1/account/prompt-screening`
                         (prompt_screening.py)
    store.py             the accounts' SQL: tenants, keys, plans' counters, prompt screening
    tenants.py           creating a tenant or moving its plan from outside the service
    keys.py              API keys: making a key, issuing and rotating it, its grant and caps
    limits.py            a plan's limits at submission, on the database (jobs in progress, images a day)
    spend_caps.py        what a job is refused at the door for with a 402, as ingest judges it on
                         the ledger's quote
    prompt_screening.py  prompts screened at submission, before any hold or provider call
    moderation.py        the hosted moderation adapter (OpenAI-style) behind its breaker
"""

from services.ingest.accounts.keys import OPERATOR_KEY_NAME, KeyGrant, issue_key
from services.ingest.accounts.limits import LimitCounts, check_order_size, check_submission, count_usage
from services.ingest.accounts.moderation import Breaker, HostedModeration
from services.ingest.accounts.prompt_screening import PromptGate, PromptScreen
from services.ingest.accounts.spend_caps import Submitter, evaluation_refusal, refusal
from services.ingest.accounts.store import tenant_plan
from services.ingest.accounts.tenants import (
    TENANT_ID_PATTERN,
    Tenant,
    create_tenant,
    ensure_tenant,
    insert_tenant,
    set_plan,
    set_tenant_plan,
)

__all__ = ["OPERATOR_KEY_NAME", "TENANT_ID_PATTERN", "Breaker", "HostedModeration", "KeyGrant", "LimitCounts",
           "PromptGate", "PromptScreen", "Submitter", "Tenant", "check_order_size", "check_submission", "count_usage",
           "create_tenant", "ensure_tenant", "evaluation_refusal", "insert_tenant", "issue_key", "refusal", "set_plan",
           "set_tenant_plan", "tenant_plan"]
