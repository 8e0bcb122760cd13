"""The payment tables: each processor event once, customers, checkouts, payments and what
refunds and disputes took back, auto top-up rules and attempts. All their SQL is here."""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.rows import DictRow

from services.common.db import Conn
from services.ledger.payments import rules
from services.ledger.payments.gateway import (
    ChargeOutcome,
    CheckoutOrder,
    DisputeChanged,
    HostedCheckout,
    ReceivedPayment,
)
from services.ledger.payments.retries import NETWORK_TRIES_IN_30_DAYS
from services.ledger.payments.rules import AutoTopUpRule
from services.ledger.records import DisputeHold


async def _one(conn: Conn, sql: str, *, params: list[Any]) -> DictRow | None:
    return await (await conn.execute(sql, params)).fetchone()


async def _all(conn: Conn, sql: str, *, params: list[Any] | dict[str, Any]) -> list[DictRow]:
    return await (await conn.execute(sql, params)).fetchall()


# ---- events -------------------------------------------------------------------------------


async def lock_payment(conn: Conn, payment_key: str) -> None:
    """Events of one payment apply one after another (until the transaction ends): a refund
    committed while its payment's grant is being written is then seen by one of the two."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 54))", [f"payment:{payment_key}"])


async def record_event(conn: Conn, event_id: str, *, kind: str, object_id: str | None) -> bool:
    """True the first time `event_id` is seen; its row commits with what the event did."""
    return await _one(conn, "INSERT INTO payment_events (event_id, type, object_id, outcome) VALUES (%s, %s, %s, '')"
                            " ON CONFLICT DO NOTHING RETURNING event_id", params=[event_id, kind, object_id]) is not None


async def set_event_outcome(conn: Conn, event_id: str, *, outcome: str) -> None:
    await conn.execute("UPDATE payment_events SET outcome = %s WHERE event_id = %s", [outcome, event_id])


async def event_outcome(conn: Conn, event_id: str) -> str | None:
    row = await _one(conn, "SELECT outcome FROM payment_events WHERE event_id = %s", params=[event_id])
    return row["outcome"] if row else None


# ---- customers and checkouts ----------------------------------------------------------------


async def customer_of(conn: Conn, tenant_id: str) -> str | None:
    row = await _one(conn, "SELECT customer_id FROM payment_customers WHERE tenant_id = %s", params=[tenant_id])
    return row["customer_id"] if row else None


async def keep_customer(conn: Conn, tenant_id: str, *, customer_id: str) -> str:
    """The tenant's customer: the one kept first, if two requests made one at once."""
    await conn.execute("INSERT INTO payment_customers (tenant_id, customer_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       [tenant_id, customer_id])
    return await customer_of(conn, tenant_id) or customer_id


async def add_checkout(conn: Conn, order: CheckoutOrder, *, hosted: HostedCheckout) -> None:
    await conn.execute(
        "INSERT INTO checkout_sessions (session_id, tenant_id, pack, credits, amount_minor, currency, save_card, url,"
        " state) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'open') ON CONFLICT DO NOTHING",
        [hosted.session_id, order.tenant_id, order.pack, order.credits, order.amount_minor, order.currency,
         order.save_card, hosted.url])


async def checkout(conn: Conn, session_id: str) -> DictRow | None:
    return await _one(conn, "SELECT * FROM checkout_sessions WHERE session_id = %s FOR UPDATE", params=[session_id])


async def move_checkout(conn: Conn, session_id: str, *, state: str, payment_intent: str | None = None) -> bool:
    """A checkout's new state, where it lies ahead of the one recorded (rules.CHECKOUT_MOVES);
    whether it moved."""
    return await _one(conn, "UPDATE checkout_sessions SET state = %s, payment_intent = coalesce(%s, payment_intent),"
                            " updated_at = now() WHERE session_id = %s AND state = ANY(%s) RETURNING session_id",
                      params=[state, payment_intent, session_id, rules.checkout_states_before(state)]) is not None


async def checkouts_of(conn: Conn, tenant_id: str, *, limit: int = 10) -> list[DictRow]:
    return await _all(conn, "SELECT session_id, pack, credits, amount_minor, currency, state, created_at"
                            " FROM checkout_sessions WHERE tenant_id = %s ORDER BY created_at DESC LIMIT %s",
                      params=[tenant_id, limit])


# ---- payments -----------------------------------------------------------------------------


async def add_payment(conn: Conn, payment: ReceivedPayment) -> bool:
    """True for the first record of the payment `payment_key`: only that one grants."""
    return await _one(conn, "INSERT INTO payments (event_id, payment_intent, tenant_id, credits, amount_minor, currency,"
                            " source) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id",
                      params=[payment.event_id, payment.payment_key, payment.tenant_id, payment.credits,
                       payment.amount_minor, payment.currency, payment.source]) is not None


async def link_grant(conn: Conn, event_id: str, *, grant_id: UUID | None) -> None:
    await conn.execute("UPDATE payments SET grant_id = %s WHERE event_id = %s", [grant_id, event_id])


async def payment_by_intent(conn: Conn, payment_intent: str) -> DictRow | None:
    return await _one(conn, "SELECT * FROM payments WHERE payment_intent = %s FOR UPDATE", params=[payment_intent])


async def add_reclaimed(conn: Conn, event_id: str, *, credits: int) -> None:
    await conn.execute("UPDATE payments SET credits_reclaimed = credits_reclaimed + %s WHERE event_id = %s",
                       [credits, event_id])


async def note_refund(conn: Conn, payment_intent: str, *, charge_id: str, refunded_minor: int) -> None:
    """The cumulative refunded amount: the largest reported is the truth, whatever the order."""
    await conn.execute(
        "INSERT INTO payment_refunds (payment_intent, charge_id, refunded_minor) VALUES (%s, %s, %s)"
        " ON CONFLICT (payment_intent) DO UPDATE SET refunded_minor = GREATEST(payment_refunds.refunded_minor,"
        " excluded.refunded_minor), updated_at = now()", [payment_intent, charge_id, refunded_minor])


async def refunded_minor(conn: Conn, payment_intent: str) -> int:
    row = await _one(conn, "SELECT refunded_minor FROM payment_refunds WHERE payment_intent = %s", params=[payment_intent])
    return row["refunded_minor"] if row else 0


# ---- disputes -----------------------------------------------------------------------------


async def note_dispute(conn: Conn, dispute: DisputeChanged) -> None:
    """A dispute's latest status; a closed one keeps its end."""
    await conn.execute(
        "INSERT INTO disputes (dispute_id, payment_intent, amount_minor, status) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (dispute_id) DO UPDATE SET status = CASE WHEN disputes.status IN ('won', 'lost', 'warning_closed')"
        " THEN disputes.status ELSE excluded.status END, amount_minor = excluded.amount_minor, updated_at = now()",
        [dispute.dispute_id, dispute.payment_intent, dispute.amount_minor, dispute.status])


async def disputes_of(conn: Conn, payment_intent: str) -> list[DictRow]:
    return await _all(conn, "SELECT * FROM disputes WHERE payment_intent = %s ORDER BY dispute_id FOR UPDATE",
                      params=[payment_intent])


async def save_dispute(conn: Conn, dispute_id: str, *, hold: DisputeHold, resolution: str | None) -> None:
    await conn.execute("UPDATE disputes SET credits_held = %s, credits_owed = %s, resolution = %s, updated_at = now()"
                       " WHERE dispute_id = %s", [hold.held, hold.owed, resolution, dispute_id])


# ---- auto top-up --------------------------------------------------------------------------


async def set_rule(conn: Conn, tenant_id: str, *, rule: AutoTopUpRule) -> None:
    """The tenant's rule, set again: on, if asked, with no retry pending (the networks' count
    in 30 days and the cards refused for good still hold)."""
    await conn.execute(
        "INSERT INTO auto_topup_rules (tenant_id, below, pack, max_per_month, enabled) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id) DO UPDATE SET below = excluded.below, pack = excluded.pack,"
        " max_per_month = excluded.max_per_month, enabled = excluded.enabled, paused_reason = NULL, failures = 0,"
        " next_try_at = NULL, updated_at = now()", [tenant_id, rule.below, rule.pack, rule.max_per_month, rule.enabled])


async def rule_of(conn: Conn, tenant_id: str) -> DictRow | None:
    return await _one(conn, "SELECT below, pack, max_per_month, enabled, paused_reason, failures, next_try_at"
                            " FROM auto_topup_rules WHERE tenant_id = %s", params=[tenant_id])


async def pause_rule(conn: Conn, tenant_id: str, *, reason: str) -> None:
    await conn.execute("UPDATE auto_topup_rules SET enabled = false, paused_reason = %s, next_try_at = NULL,"
                       " updated_at = now() WHERE tenant_id = %s AND enabled", [reason, tenant_id])


async def retry_at(conn: Conn, tenant_id: str, *, at: datetime) -> None:
    """A declined charge is tried again at `at`, not before."""
    await conn.execute("UPDATE auto_topup_rules SET next_try_at = %s, updated_at = now() WHERE tenant_id = %s",
                       [at, tenant_id])


async def retries_due(conn: Conn, now: datetime) -> list[str]:
    """The tenants whose declined charge is to be tried again by `now`."""
    return [row["tenant_id"] for row in await _all(
        conn, "SELECT tenant_id FROM auto_topup_rules WHERE enabled AND next_try_at <= %s", params=[now])]


async def declined_lately(conn: Conn, tenant_id: str, *, now: datetime) -> int:
    """The tenant's declined charges in the 30 days before `now`."""
    row = await _one(conn, "SELECT count(*) AS n FROM auto_topup_attempts WHERE tenant_id = %s AND state = 'failed'"
                           " AND updated_at > %s", params=[tenant_id, now - timedelta(days=30)])
    return int(row["n"]) if row else 0


async def refuse_card(conn: Conn, tenant_id: str, *, payment_method: str, code: str) -> None:
    await conn.execute("INSERT INTO refused_cards (tenant_id, payment_method, failure_code) VALUES (%s, %s, %s)"
                       " ON CONFLICT DO NOTHING", [tenant_id, payment_method, code])


async def refused_cards(conn: Conn, tenant_id: str) -> list[str]:
    return [row["payment_method"] for row in await _all(
        conn, "SELECT payment_method FROM refused_cards WHERE tenant_id = %s ORDER BY payment_method", params=[tenant_id])]


async def count_failure(conn: Conn, tenant_id: str) -> int:
    row = await _one(conn, "UPDATE auto_topup_rules SET failures = failures + 1 WHERE tenant_id = %s RETURNING failures",
                     params=[tenant_id])
    return row["failures"] if row else 0


async def reset_failures(conn: Conn, tenant_id: str) -> None:
    await conn.execute("UPDATE auto_topup_rules SET failures = 0, next_try_at = NULL WHERE tenant_id = %s"
                       " AND (failures > 0 OR next_try_at IS NOT NULL)", [tenant_id])


# An attempt for each tenant of `tenants` whose rule is on, whose balance is below it, that
# has not used its month, whose declined charge is not waiting for its next try, and whose
# declines in the last 30 days are fewer than the card networks allow; none where one is in
# flight (the partial unique index).
REQUEST_DUE = (
    "INSERT INTO auto_topup_attempts (id, tenant_id, pack, credits, amount_minor, currency, state)"
    " SELECT gen_random_uuid(), r.tenant_id, r.pack, p.credits, p.amount_minor, p.currency, 'requested'"
    " FROM auto_topup_rules r JOIN accounts a ON a.tenant_id = r.tenant_id"
    " JOIN unnest(%(packs)s::text[], %(credits)s::bigint[], %(amounts)s::bigint[], %(currencies)s::text[])"
    "  AS p(pack, credits, amount_minor, currency) ON p.pack = r.pack"
    " WHERE r.tenant_id = ANY(%(tenants)s) AND r.enabled AND a.posted - a.pending < r.below"
    " AND (r.next_try_at IS NULL OR r.next_try_at <= %(now)s)"
    " AND (SELECT count(*) FROM auto_topup_attempts t WHERE t.tenant_id = r.tenant_id AND t.state <> 'failed'"
    "      AND t.created_at >= date_trunc('month', now())) < r.max_per_month"
    " AND (SELECT count(*) FROM auto_topup_attempts t WHERE t.tenant_id = r.tenant_id AND t.state = 'failed'"
    "      AND t.updated_at > %(now)s - interval '30 days') < %(most_declined)s"
    " ON CONFLICT (tenant_id) WHERE state IN ('requested', 'processing') DO NOTHING RETURNING id")


async def request_due_topups(conn: Conn, tenants: Iterable[str], *, packs: Mapping[str, Any], now: datetime) -> int:
    """Request an auto top-up for the tenants of `tenants` that are due one as of `now`
    (`packs`: the price book's credit packs by name); how many were requested."""
    names, tenants = sorted(packs), sorted(tenants)
    if not names or not tenants:
        return 0
    rows = await _all(conn, REQUEST_DUE, params={
        "packs": names, "credits": [packs[n].credits for n in names], "amounts": [packs[n].amount_minor for n in names],
        "currencies": [packs[n].currency for n in names], "tenants": tenants, "now": now,
        "most_declined": NETWORK_TRIES_IN_30_DAYS})
    return len(rows)


async def claim_attempts(conn: Conn, stale_s: float, *, limit: int = 20) -> list[DictRow]:
    """Attempts to charge now: requested ones, and those a charge left without an answer
    (sent again under the same idempotency key)."""
    return await _all(conn, (
        "UPDATE auto_topup_attempts SET state = 'processing', updated_at = now() WHERE id IN ("
        " SELECT id FROM auto_topup_attempts WHERE state = 'requested'"
        "  OR (state = 'processing' AND payment_intent IS NULL AND updated_at < now() - make_interval(secs => %s))"
        " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING *"), params=[stale_s, limit])


async def attempt_charged(conn: Conn, attempt_id: UUID, *, payment_intent: str) -> None:
    await conn.execute("UPDATE auto_topup_attempts SET payment_intent = %s, updated_at = now() WHERE id = %s"
                       " AND state = 'processing'", [payment_intent, attempt_id])


async def end_attempt(conn: Conn, attempt_id: UUID, *, outcome: ChargeOutcome) -> DictRow | None:
    """The attempt's end (`succeeded` or `failed`), once: None when it had ended already."""
    return await _one(conn, (
        "UPDATE auto_topup_attempts SET state = %s, payment_intent = coalesce(%s, payment_intent),"
        " failure_code = %s, failure_message = %s, updated_at = now()"
        " WHERE id = %s AND state = ANY(%s) RETURNING *"),
        params=[outcome.state, outcome.payment_intent, outcome.failure_code, outcome.failure_message, attempt_id,
         rules.attempt_states_before(outcome.state)])


async def attempt(conn: Conn, attempt_id: UUID) -> DictRow | None:
    return await _one(conn, "SELECT * FROM auto_topup_attempts WHERE id = %s", params=[attempt_id])


async def attempts_of(conn: Conn, tenant_id: str, *, limit: int = 10) -> list[DictRow]:
    return await _all(conn, "SELECT id, pack, credits, amount_minor, currency, state, failure_code, failure_message,"
                            " created_at FROM auto_topup_attempts WHERE tenant_id = %s ORDER BY created_at DESC LIMIT %s",
                      params=[tenant_id, limit])
