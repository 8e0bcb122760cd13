"""The alerts' rows: crossings cleared and raised in one round, one alert a caller saw, and
a tenant's alert settings."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from services.common.db import Conn
from services.ledger.key_caps import period_start
from services.ledger.store.rows import row_of, rows_of

# A balance alert is cleared once the tenant's available credits are back at its threshold
# (or it set none), so the next fall below is a new crossing.
CLEAR_BALANCE_ALERTS = (
    "UPDATE alerts AS o SET cleared_at = %(now)s FROM accounts AS a LEFT JOIN alert_settings AS s USING (tenant_id)"
    " WHERE o.alert = 'account.balance_low' AND o.cleared_at IS NULL AND a.tenant_id = o.tenant_id"
    " AND (s.balance_low_below IS NULL OR a.posted - a.pending >= s.balance_low_below)")
# Every line a tenant is across now, one row each: the balance below its threshold, a grant
# with credits left expiring within its notice, a key's period whose cap refused a hold or is
# spent; each raised at most once while open (the partial unique index one_open_alert).
RAISE_ALERTS = """
INSERT INTO alerts (id, tenant_id, alert, subject, details, raised_at)
SELECT 'alrt_' || replace(gen_random_uuid()::text, '-', ''), tenant_id, alert, subject, details, %(now)s FROM (
  SELECT a.tenant_id, 'account.balance_low' AS alert, '' AS subject,
         jsonb_build_object('available', a.posted - a.pending, 'threshold', s.balance_low_below) AS details
  FROM accounts AS a JOIN alert_settings AS s USING (tenant_id) WHERE a.posted - a.pending < s.balance_low_below
  UNION ALL
  SELECT g.tenant_id, 'account.grant_expiring', g.id::text,
         jsonb_build_object('grant_id', g.id, 'remaining', g.remaining, 'expires_at', g.expires_at,
                            'notice_days', coalesce(s.grant_expiring_days, %(notice)s))
  FROM grants AS g LEFT JOIN alert_settings AS s USING (tenant_id)
  WHERE g.remaining > 0 AND g.expires_at > %(now)s
    AND g.expires_at <= %(now)s + make_interval(days => coalesce(s.grant_expiring_days, %(notice)s))
  UNION ALL
  SELECT k.tenant_id, 'account.key_cap_reached', k.api_key_id || ':' || k.period || ':' || k.starts_on,
         jsonb_build_object('api_key_id', k.api_key_id, 'period', k.period, 'period_start', k.starts_on,
                            'cap', k.cap, 'spent', k.spent)
  FROM key_spend AS k WHERE k.cap IS NOT NULL AND (k.refused OR k.spent >= k.cap)
    AND ((k.period = 'day' AND k.starts_on = %(day)s) OR (k.period = 'month' AND k.starts_on = %(month)s))
) AS crossed
ON CONFLICT (tenant_id, alert, subject) WHERE cleared_at IS NULL DO NOTHING
RETURNING id, tenant_id, alert, details, raised_at"""
RAISE_ONE_ALERT = (
    "INSERT INTO alerts (id, tenant_id, alert, subject, details, raised_at)"
    " VALUES ('alrt_' || replace(gen_random_uuid()::text, '-', ''), %s, %s, %s, %s, %s)"
    " ON CONFLICT (tenant_id, alert, subject) WHERE cleared_at IS NULL DO NOTHING"
    " RETURNING id, tenant_id, alert, details, raised_at")


@dataclass(frozen=True, kw_only=True)
class Crossing:
    """A line a tenant crossed that the caller saw: the alert it raises, what it is about
    (`subject`: a failed payment's id), and the alert's details."""

    tenant_id: str
    alert: str
    subject: str
    details: dict[str, Any]


async def raise_due_alerts(conn: Conn, now: datetime, *, notice_days: int) -> list[DictRow]:
    """Clear the balance alerts whose balance is back, then raise every crossing not raised yet
    (key caps: of `now`'s day and month); the alerts raised (id, tenant_id, alert, details,
    raised_at)."""
    await conn.execute(CLEAR_BALANCE_ALERTS, {"now": now})
    day = now.date()
    return await rows_of(conn, RAISE_ALERTS, params={"now": now, "day": day, "month": period_start("month", day),
                                              "notice": notice_days})


async def raise_alert(conn: Conn, crossing: Crossing, *, now: datetime) -> DictRow | None:
    """One alert of a crossing the caller saw (a failed top-up); None when it was raised before."""
    return await row_of(conn, RAISE_ONE_ALERT, params=[crossing.tenant_id, crossing.alert, crossing.subject,
                                               Jsonb(crossing.details), now])


async def set_alert_settings(conn: Conn, tenant_id: str, *, balance_low_below: int | None,
                             grant_expiring_days: int) -> None:
    await conn.execute(
        "INSERT INTO alert_settings (tenant_id, balance_low_below, grant_expiring_days) VALUES (%s, %s, %s)"
        " ON CONFLICT (tenant_id) DO UPDATE SET balance_low_below = EXCLUDED.balance_low_below,"
        " grant_expiring_days = EXCLUDED.grant_expiring_days, updated_at = now()",
        [tenant_id, balance_low_below, grant_expiring_days])


async def alert_settings(conn: Conn, tenant_id: str) -> DictRow | None:
    return await row_of(conn, "SELECT balance_low_below, grant_expiring_days FROM alert_settings WHERE tenant_id = %s",
                        params=[tenant_id])


async def recent_alerts(conn: Conn, tenant_id: str, *, limit: int) -> list[DictRow]:
    return await rows_of(conn, "SELECT id, alert, details, raised_at, cleared_at FROM alerts WHERE tenant_id = %s"
                             " ORDER BY raised_at DESC, id LIMIT %s", params=[tenant_id, limit])
