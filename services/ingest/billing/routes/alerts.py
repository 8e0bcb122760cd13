"""`/v1/account/alerts`: what a tenant is told before its money runs out, and when. The
ledger raises each alert once per crossing and keeps them; delivery sends each to the
tenant's endpoints subscribed to it, as a Standard Webhook."""

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.api import RequestModel
from services.common.contracts import AlertEvent
from services.ingest.deps import AccountReader, Scoped, Settings
from services.ingest.ledger_calls import Ledger, call_ledger, pb

router = APIRouter(prefix="/v1/account", tags=["account"], responses=problems.responses(503))
# The caller's tenant, when its key holds `webhooks:manage`: who chooses what the tenant's
# endpoints receive (a dependency FastAPI reads from the annotation; to the type checker, the
# tenant's id it yields).
if TYPE_CHECKING:
    AccountWriter: TypeAlias = str
else:
    AccountWriter = Scoped("webhooks:manage")


class AlertSettings(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"balance_low_below": 500, "grant_expiring_days": 7}]})

    balance_low_below: int | None = Field(None, ge=0, le=10**12, description="alert when available credits fall"
                                                                            " below this; null: never")
    grant_expiring_days: int = Field(7, ge=0, le=365, description="alert this many days before a grant with credits"
                                                                  " left expires; 0: never")


class Alert(BaseModel):
    id: str = Field(description="the crossing's id; the webhook's data carries it too")
    alert: AlertEvent
    details: dict[str, Any] = Field(description="what was crossed: the balance and threshold, the grant, the key and"
                                                " its cap, the payment")
    raised_at: datetime
    cleared_at: datetime | None = Field(description="a low balance back at its threshold; null while open")


class Alerts(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "settings": {"balance_low_below": 500, "grant_expiring_days": 7},
        "alerts": [{"id": "alrt_5b0f9c7e8d1a4e529a573f1c2b7d6e40", "alert": "account.balance_low",
                    "details": {"available": 420, "threshold": 500}, "raised_at": "2026-11-02T10:00:00Z",
                    "cleared_at": None}]}]})

    settings: AlertSettings
    alerts: list[Alert] = Field(description="the latest alerts, newest first")


def settings_of(answer: Any) -> AlertSettings:
    below = answer.balance_low_below if answer.HasField("balance_low_below") else None
    return AlertSettings(balance_low_below=below, grant_expiring_days=answer.grant_expiring_days)


@router.get("/alerts", response_model=Alerts)
async def list_alerts(tenant: AccountReader, ledger: Ledger, settings: Settings) -> Alerts:
    """Your alert settings and your latest alerts (balance low, grant expiring, an API key's
    spend cap reached, a top-up failed), newest first. Each is raised once per crossing and
    sent to your webhook endpoints subscribed to it."""
    answer = await call_ledger(ledger.GetAlerts, pb.GetAlertsRequest(tenant_id=tenant, limit=50),
                               timeout_s=settings.ledger_grpc_timeout_s)
    return Alerts(settings=settings_of(answer.settings), alerts=[
        Alert(id=a.id, alert=a.alert, details=json.loads(a.details_json), raised_at=a.raised_at,
              cleared_at=a.cleared_at or None) for a in answer.alerts])


@router.put("/alerts/settings", response_model=AlertSettings)
async def set_alert_settings(body: AlertSettings, tenant: AccountWriter, ledger: Ledger,
                             settings: Settings) -> AlertSettings:
    """When you are alerted: below how many available credits (null: never), and how many days
    before a grant with credits left expires. A balance already below a new threshold is
    alerted at the ledger's next look (seconds)."""
    answer = await call_ledger(ledger.SetAlertSettings, pb.AlertSettings(
        tenant_id=tenant, balance_low_below=body.balance_low_below, grant_expiring_days=body.grant_expiring_days),
        timeout_s=settings.ledger_grpc_timeout_s)
    return settings_of(answer)
