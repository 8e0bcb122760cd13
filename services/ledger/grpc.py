"""The ledger's gRPC server: GetBalance, Quote, ListEntries, GetKeySpend, GetAlerts,
SetAlertSettings, plus standard health checking
and server reflection. Internal only."""

import json
from datetime import UTC, datetime
from typing import Any, NoReturn
from uuid import UUID

import grpc
from psycopg.rows import DictRow
from pydantic import ValidationError

from services.common import grpc_server
from services.common.contracts import VideoSpec
from services.common.db import Pool
from services.common.internal_calls import verifier_of
from services.common.protos import load
from services.ledger.alerts import DEFAULT_GRANT_NOTICE_DAYS
from services.ledger.pricebook import PriceBook
from services.ledger.pricing import PriceAsk, Unpriced, price_of
from services.ledger.settings import LedgerSettings
from services.ledger.store import accounts, key_spend_of
from services.ledger.store import alerts as alert_store
from services.ledger.store.training import photo_set_trained

pb, rpc = load("genline.ledger.v1")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name
MAX_PAGE = 500


# The generated messages and servicer base have no types: requests, answers and the call's
# context are Any here.
Context = Any


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


async def _refuse(context: Context, code: grpc.StatusCode, *, message: str) -> NoReturn:
    """End the call with `code`: the context's abort raises."""
    await context.abort(code, message)
    raise AssertionError("abort raises")


async def _quoted_video(request: Any, context: Context) -> VideoSpec | None:
    """The clips a quote asks about, or None for images; INVALID_ARGUMENT for a shape no clip has."""
    if not request.video_duration_s and not request.video_resolution:
        return None
    try:
        return VideoSpec(duration_s=request.video_duration_s, resolution=request.video_resolution or "720p")
    except ValidationError as error:
        await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message=f"no such clip: {error.errors()[0]['msg']}")


class LedgerService(rpc.LedgerServiceServicer):  # type: ignore[name-defined,misc]  # generated at start-up
    def __init__(self, pool: Pool, price_book: PriceBook) -> None:
        self.pool, self.price_book = pool, price_book

    async def _account(self, tenant_id: str) -> DictRow | None:
        async with self.pool.connection() as conn:
            return await accounts.account_of(conn, tenant_id)

    async def GetBalance(self, request: Any, context: Context) -> Any:
        account = await self._account(request.tenant_id)
        if account is None:
            await _refuse(context, grpc.StatusCode.NOT_FOUND, message=f"tenant {request.tenant_id!r} has no credit account")
        async with self.pool.connection() as conn:
            grants = await accounts.live_grants(conn, request.tenant_id)
        return pb.Balance(
            tenant_id=request.tenant_id, available=account["posted"] - account["pending"], posted=account["posted"],
            pending=account["pending"], retry_tokens=account["retry_tokens"], report_policy=account["report_policy"],
            owed=account["owed"], grants=[pb.Grant(id=str(g["id"]), source=g["source"], amount=g["amount"], remaining=g["remaining"],
                             expires_at=_iso(g["expires_at"])) for g in grants],
        )

    async def Quote(self, request: Any, context: Context) -> Any:
        if request.images < 1:
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message="images must be at least 1")
        prices, tier = self.price_book.at(datetime.now(UTC)), request.tier or "stable"
        video = await _quoted_video(request, context)
        price = price_of(prices, PriceAsk(template=request.template, tier=tier, images=request.images, video=video))
        if isinstance(price, Unpriced):
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message=price.reason)
        account = await self._account(request.tenant_id) or {"posted": 0, "pending": 0, "retry_tokens": 0, "owed": 0}
        tokens = min(account["retry_tokens"], request.images) if request.use_retry_tokens else 0
        credits, available = (request.images - tokens) * price.unit, account["posted"] - account["pending"]
        training = await self._training_credits(request, prices.training_price())
        return pb.QuoteResponse(credits=credits, unit_price=price.unit, pricebook_version=prices.version,
                                available=available,
                                affordable=credits + training <= available and not account["owed"],
                                owed=account["owed"], retry_tokens_applied=tokens, training_credits=training,
                                max_provider_spend_micro_usd=price.spend_cap, second_price=price.second_price or 0,
                                clip_seconds=price.clip_seconds or 0,
                                second_prices=prices.video_second_prices.get(tier, {}))

    async def _training_credits(self, request: Any, price: int) -> int:
        """A quote's training line: a job of a subject whose identity is not by reference and
        whose photo set the ledger has not seen trained."""
        if not request.subject_id or request.identity == "reference" or not price:
            return 0
        async with self.pool.connection() as conn:
            trained = await photo_set_trained(conn, request.tenant_id, subject=(request.subject_id, request.photo_set_sha256))
        return 0 if trained else price

    async def ListEntries(self, request: Any, context: Context) -> Any:
        size = request.page_size or 50
        if not 1 <= size <= MAX_PAGE or (request.page_token and not request.page_token.isdigit()):
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT,
                          message=f"page_size must be 1..{MAX_PAGE} and page_token one returned by a previous page")
        before = int(request.page_token) if request.page_token else 2**63 - 1
        async with self.pool.connection() as conn:
            rows = await accounts.entries_before(conn, request.tenant_id, before=before, limit=size + 1)
        if not rows and not request.page_token and await self._account(request.tenant_id) is None:
            await _refuse(context, grpc.StatusCode.NOT_FOUND, message=f"tenant {request.tenant_id!r} has no credit account")
        entries = [pb.Entry(id=r["id"], kind=r["kind"], amount=r["amount"], debit_account=r["debit_account"],
                            credit_account=r["credit_account"], transfer_id=str(r["transfer_id"] or ""),
                            grant_id=str(r["grant_id"] or ""), reason=r["reason"] or "",
                            created_at=_iso(r["created_at"])) for r in rows[:size]]
        token = str(rows[size - 1]["id"]) if len(rows) > size else ""
        return pb.ListEntriesResponse(entries=entries, next_page_token=token)

    async def GetKeySpend(self, request: Any, context: Context) -> Any:
        try:
            keys = [UUID(key) for key in request.api_key_ids]
        except ValueError:
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message="api_key_ids must be UUIDs")
        if len(keys) > MAX_PAGE:
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message=f"at most {MAX_PAGE} api_key_ids")
        today = datetime.now(UTC).date()
        async with self.pool.connection() as conn:
            rows = await key_spend_of(conn, request.tenant_id, api_key_ids=keys, day=today)
        spent = {(r["api_key_id"], r["period"]): r["spent"] for r in rows}
        return pb.GetKeySpendResponse(
            keys=[pb.KeySpend(api_key_id=str(key), spent_today=spent.get((key, "day"), 0),
                              spent_this_month=spent.get((key, "month"), 0)) for key in keys],
            day=today.isoformat(), month=today.isoformat()[:7])

    async def GetAlerts(self, request: Any, context: Context) -> Any:
        limit = request.limit or 50
        if not 1 <= limit <= 200:
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message="limit must be 1..200")
        async with self.pool.connection() as conn:
            settings = await alert_store.alert_settings(conn, request.tenant_id)
            rows = await alert_store.recent_alerts(conn, request.tenant_id, limit=limit)
        return pb.Alerts(settings=self._settings(request.tenant_id, settings), alerts=[
            pb.Alert(id=r["id"], alert=r["alert"], details_json=json.dumps(r["details"]), raised_at=_iso(r["raised_at"]),
                     cleared_at=_iso(r["cleared_at"])) for r in rows])

    async def SetAlertSettings(self, request: Any, context: Context) -> Any:
        below = request.balance_low_below if request.HasField("balance_low_below") else None
        if (below is not None and below < 0) or not 0 <= request.grant_expiring_days <= 365:
            await _refuse(context, grpc.StatusCode.INVALID_ARGUMENT,
                          message="balance_low_below must be at least 0 and grant_expiring_days 0..365")
        async with self.pool.connection() as conn:
            await alert_store.set_alert_settings(conn, request.tenant_id, balance_low_below=below, grant_expiring_days=request.grant_expiring_days)
            settings = await alert_store.alert_settings(conn, request.tenant_id)
        return self._settings(request.tenant_id, settings)

    @staticmethod
    def _settings(tenant_id: str, row: DictRow | None) -> Any:
        row = row or {"balance_low_below": None, "grant_expiring_days": DEFAULT_GRANT_NOTICE_DAYS}
        return pb.AlertSettings(tenant_id=tenant_id, balance_low_below=row["balance_low_below"],
                                grant_expiring_days=row["grant_expiring_days"])


async def start_grpc_server(service: LedgerService, settings: LedgerSettings) -> grpc.aio.Server:
    """The ledger's gRPC service, on its settings' host and port, open to the callers its
    verifier admits."""
    return await grpc_server.start_grpc_server(grpc_server.GrpcService(
        SERVICE_NAME, lambda server: rpc.add_LedgerServiceServicer_to_server(service, server)),
        f"{settings.grpc_host}:{settings.grpc_port}", verifier=verifier_of(settings))
