"""Ledger rules, without I/O: the state one batch of events touches, and how each event
changes it.

Credits move by two-phase transfers (TigerBeetle's model): a *pending* transfer holds
credits for a job; it is *posted* for what was delivered (possibly less than held) and the
rest released, or *voided* when the job fails or the hold times out. A tenant's posted
credits are the sum of its grants' remaining credits; charges consume grants
earliest-expiring first. Every movement is a double-entry journal line between named
accounts (`tenant:<id>`, `platform:issued`, `platform:holds`, `platform:revenue`,
`platform:expired`), so the books of all accounts always sum to zero.

The database enforces the same invariants (available ≥ 0, one settlement per reservation);
this module decides, the transaction around it makes the decision atomic.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from services.common.contracts import (
    CreditsExpired,
    CreditsGranted,
    CreditsReclaimed,
    CreditsRefunded,
    CreditsReserved,
    Event,
    JobCanceled,
    JobClosed,
    JobSpec,
    OutputReported,
    ReportDeclined,
    ReservationSettled,
    RetryTokenIssued,
)
from services.ledger.key_caps import KeyHold, KeySpend
from services.ledger.pricebook import PriceBook
from services.ledger.pricing import PriceAsk, Unpriced, price_of, settle_amounts
from services.ledger.records import (
    CHARGEBACKS,
    DISPUTES,
    EXPIRED,
    HOLDS,
    ISSUED,
    RECLAIMED,
    REVENUE,
    Account,
    CreditGrant,
    DeliveryRecord,
    DisputeHold,
    Entry,
    Grant,
    ProviderCost,
    Rejection,
    Takeback,
    Trainings,
    Transfer,
    tenant_account,
)


def insufficient_credits_reason(required: int, available: int) -> str:
    return f"the job costs {required} credits but only {available} are available"


def owed_credits_reason(owed: int) -> str:
    return (f"the account owes {owed} credits that a refund or a dispute took back after they were spent;"
            " new jobs are refused until a top-up settles the debt")


@dataclass(kw_only=True)
class Book:
    """The accounts, transfers and grants a batch touches, loaded by the caller, and what the
    batch changed: the caller writes back exactly the `changed_*` and `new_*` rows."""

    price_book: PriceBook
    credit_value_micro_usd: int
    reservation_timeout: timedelta
    report_window: timedelta
    accounts: dict[str, Account] = field(default_factory=dict)
    transfers: dict[UUID, Transfer] = field(default_factory=dict)  # by job id
    grants: dict[str, list[Grant]] = field(default_factory=dict)  # by tenant id
    provider_costs: dict[UUID, int] = field(default_factory=dict)  # by job id
    reported: set[tuple[UUID, int]] = field(default_factory=set)
    closed: set[UUID] = field(default_factory=set)  # jobs that ended before any reservation
    new_closed: list[tuple[UUID, str, str]] = field(default_factory=list)
    new_accounts: set[str] = field(default_factory=set)
    changed_accounts: set[str] = field(default_factory=set)
    new_transfers: list[Transfer] = field(default_factory=list)
    changed_transfers: list[Transfer] = field(default_factory=list)
    new_grants: list[Grant] = field(default_factory=list)
    changed_grants: dict[UUID, Grant] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    new_costs: list[ProviderCost] = field(default_factory=list)
    new_reports: list[tuple[UUID, int, str, str, int]] = field(default_factory=list)
    # What was loaded, so the changes can be written as deltas: concurrent batches then
    # add up, and the database's CHECKs refuse a sum that would overdraw.
    loaded_accounts: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    loaded_grants: dict[UUID, int] = field(default_factory=dict)
    # Changes to what tenants owe, written apart from the batch's balance deltas (only
    # payments change them, never a job's batch).
    owed_changes: dict[str, int] = field(default_factory=dict)
    key_spend: KeySpend = field(default_factory=KeySpend)
    trainings: Trainings = field(default_factory=Trainings)  # jobs' training lines (training.py)

    def account_deltas(self) -> list[tuple[str, int, int, int]]:
        """(tenant, Δposted, Δpending, Δretry tokens) of every account the batch changed."""
        deltas = []
        for tenant in sorted(self.changed_accounts | self.new_accounts):
            a = self.accounts[tenant]
            posted, pending, tokens = self.loaded_accounts.get(tenant, (0, 0, 0))
            deltas.append((tenant, a.posted - posted, a.pending - pending, a.retry_tokens - tokens))
        return deltas

    def grants_taken(self) -> list[tuple[UUID, int]]:
        return [(g.id, self.loaded_grants[g.id] - g.remaining) for g in self.changed_grants.values()]

    # ---- reservations ----------------------------------------------------------------

    def reserve(self, job: JobSpec, now: datetime) -> Event | None:
        if job.job_id in self.transfers:
            return None  # the same job submitted again under another event id
        if job.job_id in self.closed:
            return Rejection(code="job_closed", reason="the job was canceled before credits were reserved").of(job)
        prices = self.price_book.at(job.submitted_at)  # the price in force when the client submitted
        price = price_of(prices, PriceAsk.of(job))
        if isinstance(price, Unpriced):
            return Rejection(code=price.code, reason=price.reason).of(job)
        account = self.accounts.get(job.tenant_id)
        if account is None:
            return Rejection(code="unknown_account", reason=f"tenant {job.tenant_id!r} has no credit account").of(job)
        if account.owed > 0:
            return Rejection(code="account_in_debt", reason=owed_credits_reason(account.owed), required=0, available=account.available).of(job)
        tokens = min(account.retry_tokens, job.images) if job.use_retry_tokens else 0
        amount = (job.images - tokens) * price.unit
        if amount > account.available:
            reason = insufficient_credits_reason(amount, account.available)
            return Rejection(code="insufficient_credits", reason=reason, required=amount, available=account.available).of(job)
        spent_on = now.date()
        if job.api_key_id is not None and amount:
            key_hold = KeyHold(tenant_id=job.tenant_id, api_key_id=job.api_key_id, day=spent_on, amount=amount, caps=job.key_caps)
            beyond = self.key_spend.beyond_cap(key_hold)
            if beyond is not None:
                self.key_spend.refuse(key_hold, beyond)
                return Rejection(code="key_cap_reached", reason=beyond.reason, required=amount, available=max(beyond.cap - beyond.spent, 0)).of(job)
            self.key_spend.hold(key_hold)
        assert 0 <= amount <= account.available and 0 <= tokens <= job.images, (amount, tokens, account)
        account.pending += amount
        account.retry_tokens -= tokens
        self.changed_accounts.add(job.tenant_id)
        transfer = Transfer(id=uuid4(), job_id=job.job_id, tenant_id=job.tenant_id, amount=amount, unit_price=price.unit, images=job.images, tokens_held=tokens, tier=job.tier,
                            pricebook_version=prices.version, max_provider_spend=price.spend_cap, timeout_at=now + self.reservation_timeout,
                            api_key_id=job.api_key_id, spent_on=spent_on, second_price=price.second_price,
                            clip_seconds=price.clip_seconds)
        self.transfers[job.job_id] = transfer
        self.new_transfers.append(transfer)
        self._journal(Entry(tenant_id=job.tenant_id, kind="reserve", amount=amount, debit_account=tenant_account(job.tenant_id), credit_account=HOLDS, transfer_id=transfer.id))
        assert_holds_covered(account)
        return CreditsReserved(job_id=job.job_id, tenant_id=job.tenant_id, job=job, transfer_id=transfer.id,
                               amount=amount, unit_price=price.unit, tokens_held=tokens,
                               pricebook_version=prices.version,
                               max_provider_spend_micro_usd=transfer.max_provider_spend, spent_on=spent_on)

    def settle(self, job_id: UUID, delivery: DeliveryRecord, *, now: datetime) -> Event | None:
        """Post what was delivered (images; a video job's clips by their lengths) and release
        the rest of the hold."""
        transfer = self.transfers.get(job_id)
        if transfer is None or transfer.state != "pending":
            return None  # never reserved, or settled already: settlement happens once
        s = settle_amounts(transfer, delivery.images, clip_ms=delivery.clip_ms)
        assert 0 <= s.charged <= transfer.amount and s.charged + s.released == transfer.amount, (transfer, s)
        assert 0 <= s.tokens_used <= transfer.tokens_held, (transfer, s)
        transfer.state = "posted" if s.charged or s.tokens_used else "voided"
        transfer.charged, transfer.delivered, transfer.settled_at = s.charged, min(delivery.images, transfer.images), now
        transfer.delivered_seconds = s.seconds
        self.changed_transfers.append(transfer)
        account = self.accounts[transfer.tenant_id]
        account.pending -= transfer.amount
        account.retry_tokens += s.tokens_returned
        self._consume_grants(account, s.charged)
        self.changed_accounts.add(account.tenant_id)
        if transfer.api_key_id is not None and transfer.spent_on is not None and s.released:
            self.key_spend.give_back(KeyHold(tenant_id=transfer.tenant_id, api_key_id=transfer.api_key_id, day=transfer.spent_on, amount=s.released))
        tenant = tenant_account(account.tenant_id)
        self._journal(Entry(tenant_id=account.tenant_id, kind="charge", amount=s.charged, debit_account=HOLDS, credit_account=REVENUE, transfer_id=transfer.id))
        self._journal(Entry(tenant_id=account.tenant_id, kind="release", amount=s.released, debit_account=HOLDS, credit_account=tenant, transfer_id=transfer.id))
        assert_holds_covered(account)
        outcome = delivery.outcome
        if outcome == "charged" and transfer.state == "voided":
            outcome = "voided"
        return ReservationSettled(
            job_id=job_id, tenant_id=transfer.tenant_id, transfer_id=transfer.id, reserved=transfer.amount,
            charged=s.charged, released=s.released, delivered_images=transfer.delivered, outcome=outcome,
            tokens_used=s.tokens_used, tokens_returned=s.tokens_returned,
            provider_cost_micro_usd=self.provider_costs.get(job_id, 0),
            revenue_micro_usd=s.charged * self.credit_value_micro_usd, delivered_seconds=s.seconds or 0,
        )

    def close(self, ended: JobCanceled | JobClosed, now: datetime) -> Event | None:
        """A job ended without delivering (canceled, expired): release its hold, or, when the
        ledger has not reserved for it yet, remember it so that it never will."""
        if ended.job_id in self.transfers:
            return self.settle(ended.job_id, DeliveryRecord(outcome=ended.final_state), now=now)
        if ended.job_id not in self.closed:
            self.closed.add(ended.job_id)
            self.new_closed.append((ended.job_id, ended.tenant_id, ended.final_state))
        return None

    def record_provider_cost(self, cost: ProviderCost) -> None:
        self.provider_costs[cost.job_id] = self.provider_costs.get(cost.job_id, 0) + cost.cost_micro_usd
        self.new_costs.append(cost)

    # ---- grants ------------------------------------------------------------------------

    def open_account(self, tenant_id: str) -> Account:
        if tenant_id not in self.accounts:
            self.accounts[tenant_id] = Account(tenant_id=tenant_id)
            self.new_accounts.add(tenant_id)
        return self.accounts[tenant_id]

    def grant(self, given: CreditGrant, now: datetime) -> CreditsGranted:
        if given.amount <= 0:
            raise ValueError("a grant must be a positive number of credits")
        account, grant = self.open_account(given.tenant_id), given.issued(now)
        self.grants.setdefault(grant.tenant_id, []).append(grant)
        self.new_grants.append(grant)
        account.posted += grant.amount
        self.changed_accounts.add(grant.tenant_id)
        assert_holds_covered(account)
        # A refund gives back revenue, a won dispute what it held; any other grant issues new credits.
        kind, debit = {"refund": ("refund", REVENUE), "dispute_won": ("grant", DISPUTES)}.get(grant.source,
                                                                                             ("grant", ISSUED))
        self._journal(Entry(tenant_id=grant.tenant_id, kind=kind, amount=grant.amount, debit_account=debit, credit_account=tenant_account(grant.tenant_id),
                            grant_id=grant.id, reason=given.reason))
        return CreditsGranted(tenant_id=grant.tenant_id, amount=grant.amount, reason=given.reason,
                              available_after=account.available, grant_id=grant.id, source=grant.source,
                              expires_at=grant.expires_at, payment_id=grant.payment_id)

    # ---- money taken back by the payment processor --------------------------------------

    def reclaim(self, takeback: Takeback) -> CreditsReclaimed:
        """Take `amount` credits back: what is available leaves the balance (to the dispute
        hold, or as reclaimed), the rest is owed. Credits held for running jobs stay held, so
        nothing already running is lost."""
        assert takeback.amount >= 0
        tenant_id = takeback.tenant_id
        account = self.open_account(tenant_id)
        taken = min(takeback.amount, max(account.available, 0))
        self._consume_grants(account, taken)
        self.changed_accounts.add(tenant_id)
        to = DISPUTES if takeback.cause == "dispute_held" else RECLAIMED
        self._journal(Entry(tenant_id=tenant_id, kind="reclaim", amount=taken, debit_account=tenant_account(tenant_id), credit_account=to,
                            reason=f"{takeback.cause} {takeback.payment_id}"))
        return self._owe(takeback, taken, owed_change=takeback.amount - taken)

    def forgive(self, takeback: Takeback) -> CreditsReclaimed:
        """A debt that no longer stands (a dispute won) is cancelled."""
        account = self.open_account(takeback.tenant_id)
        return self._owe(takeback, 0, owed_change=-min(takeback.amount, account.owed))

    def charge_back(self, lost: DisputeHold) -> CreditsReclaimed:
        """A lost dispute: the credits it held are gone for good; the debt stays."""
        self.open_account(lost.tenant_id)
        self._journal(Entry(tenant_id=lost.tenant_id, kind="chargeback", amount=lost.held, debit_account=DISPUTES, credit_account=CHARGEBACKS,
                            reason=f"dispute lost {lost.payment_id}"))
        return self._owe(Takeback(tenant_id=lost.tenant_id, amount=0, cause="dispute_lost", payment_id=lost.payment_id), 0, owed_change=0)

    def pay_debt(self, tenant_id: str, payment_id: str | None) -> CreditsReclaimed | None:
        """A grant to a tenant that owes pays the debt first, as far as it goes."""
        account = self.accounts.get(tenant_id)
        if account is None or account.owed <= 0 or account.available <= 0:
            return None
        paid = min(account.owed, account.available)
        self._consume_grants(account, paid)
        self.changed_accounts.add(tenant_id)
        self._journal(Entry(tenant_id=tenant_id, kind="reclaim", amount=paid, debit_account=tenant_account(tenant_id), credit_account=RECLAIMED, reason="debt paid"))
        return self._owe(Takeback(tenant_id=tenant_id, amount=paid, cause="debt_paid", payment_id=payment_id), paid, owed_change=-paid)

    def _owe(self, takeback: Takeback, taken: int, *, owed_change: int) -> CreditsReclaimed:
        account = self.accounts[takeback.tenant_id]
        account.owed += owed_change
        assert_holds_covered(account)
        if owed_change:
            self.owed_changes[account.tenant_id] = self.owed_changes.get(account.tenant_id, 0) + owed_change
        return CreditsReclaimed(tenant_id=account.tenant_id, amount=taken, owed_change=owed_change,
                                cause=takeback.cause, payment_id=takeback.payment_id,
                                available_after=account.available, owed_after=account.owed)

    def _consume_grants(self, account: Account, amount: int) -> None:
        account.posted -= amount
        for grant in sorted(self.grants.get(account.tenant_id, []), key=Grant.order_key):
            if amount == 0:
                return
            taken = min(grant.remaining, amount)
            if taken:
                grant.remaining -= taken
                amount -= taken
                self._touch(grant)
        if amount:
            raise AssertionError(f"grants of {account.tenant_id} do not cover its posted credits")

    def _touch(self, grant: Grant) -> None:
        if grant not in self.new_grants:
            self.changed_grants[grant.id] = grant

    def expire_grant(self, grant: Grant, now: datetime) -> list[Event]:
        """Expire what is not held; what holds still need expires once they are settled.
        A rollover grant's unused credits move once into a new grant instead."""
        account = self.accounts[grant.tenant_id]
        amount = min(grant.remaining, account.available)
        if amount <= 0:
            return []
        assert amount <= grant.remaining, (grant, amount)  # a grant expires only what it has left
        grant.remaining -= amount
        account.posted -= amount
        self._touch(grant)
        self.changed_accounts.add(grant.tenant_id)
        self._journal(Entry(tenant_id=grant.tenant_id, kind="expire", amount=amount, debit_account=tenant_account(grant.tenant_id), credit_account=EXPIRED,
                            grant_id=grant.id))
        assert_holds_covered(account)
        events: list[Event] = [CreditsExpired(tenant_id=grant.tenant_id, grant_id=grant.id, amount=amount,
                                              available_after=account.available)]
        if grant.rollover_days and grant.source != "rollover" and grant.expires_at is not None:
            until = grant.expires_at + timedelta(days=grant.rollover_days)
            rollover = CreditGrant(tenant_id=grant.tenant_id, amount=amount, source="rollover", reason=f"rollover of grant {grant.id}", expires_at=until)
            events.append(self.grant(rollover, now))
        return events

    def expire_due(self, now: datetime) -> list[Event]:
        """Void holds past their timeout, then expire grants past their date."""
        events: list[Event] = []
        for transfer in list(self.transfers.values()):
            if transfer.state == "pending" and transfer.timeout_at <= now:
                settled = self.settle(transfer.job_id, DeliveryRecord(outcome="expired"), now=now)
                events += [settled] if settled is not None else []
        for grants in list(self.grants.values()):
            for grant in list(grants):
                if grant.expires_at and grant.expires_at <= now and grant.remaining > 0:
                    events += self.expire_grant(grant, now)
        return events

    # ---- reports of bad images ---------------------------------------------------------

    def report(self, reported: OutputReported) -> Event:
        job_id, n = reported.job_id, reported.n
        transfer = self.transfers.get(job_id)
        if transfer is not None and transfer.tenant_id != reported.tenant_id:
            transfer = None  # another tenant's job is as unknown as no job
        declined = self._report_declined(transfer, reported)
        if declined or transfer is None or transfer.charged is None or not transfer.delivered:
            return ReportDeclined(job_id=job_id, tenant_id=reported.tenant_id, n=n, reason=declined or "")
        account = self.accounts[transfer.tenant_id]
        if account.report_policy == "retry_token":
            account.retry_tokens += 1
            self.changed_accounts.add(account.tenant_id)
            self.new_reports.append((job_id, n, transfer.tenant_id, "retry_token", 0))
            self.reported.add((job_id, n))
            return RetryTokenIssued(job_id=job_id, tenant_id=transfer.tenant_id, n=n, reason=reported.reason,
                                    tokens_after=account.retry_tokens)
        refund = transfer.charged // transfer.delivered  # what one delivered image cost, tokens aside
        granted = self.grant(CreditGrant(tenant_id=transfer.tenant_id, amount=refund, source="refund", reason=f"refund for image {n} of job {job_id}"),
                             reported.reported_at)
        self.new_reports.append((job_id, n, transfer.tenant_id, "refund", refund))
        self.reported.add((job_id, n))
        return CreditsRefunded(job_id=job_id, tenant_id=transfer.tenant_id, n=n, amount=refund, reason=reported.reason,
                               grant_id=granted.grant_id)

    def _report_declined(self, transfer: Transfer | None, reported: OutputReported) -> str | None:
        n = reported.n
        if transfer is None or transfer.state != "posted" or not transfer.delivered:
            return "the job has no delivered, charged images"
        if not 1 <= n <= transfer.delivered:
            return f"image {n} was not delivered (the job delivered {transfer.delivered})"
        if (reported.job_id, n) in self.reported:
            return f"image {n} was reported before"
        if transfer.settled_at is None or reported.reported_at > transfer.settled_at + self.report_window:
            return f"reports are accepted within {self.report_window} of delivery"
        if self.accounts[transfer.tenant_id].report_policy == "refund" and not transfer.charged:
            return "the images were paid with retry tokens; there is nothing to refund"
        return None

    def _journal(self, entry: Entry) -> None:
        if entry.amount:
            assert entry.amount > 0, f"a journal line moves a positive amount: {entry.kind} {entry.amount}"
            self.entries.append(entry)


def assert_holds_covered(account: Account) -> None:
    """What every decision keeps true of an account: its holds never exceed its balance
    (available ≥ 0), and it holds no negative retry tokens or debt. (Pending alone may read
    below zero in a batch that settles a hold reserved after its balances were read: the
    change is written as a delta, and the database's CHECKs judge the sum at commit.)"""
    assert account.available >= 0, f"holds beyond the balance: {account}"
    assert account.retry_tokens >= 0 and account.owed >= 0, f"negative tokens or debt: {account}"
