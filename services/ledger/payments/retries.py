"""When a declined auto top-up may be charged again, as the card networks allow, without I/O.

A declined off-session charge is a merchant-initiated transaction; the networks limit how
often one may be tried again, charge for excess retries, and forbid retrying some declines:

* Never again off-session (the rule pauses until the tenant acts, and the card is not charged
  again): the declines Visa puts in its Category 1 (issuer will never approve: 04, 07, 12,
  14, 15, 41, 43, 46, 57, R0, R1, R3) and Stripe's decline codes for them (lost, stolen,
  picked-up, closed or invalid cards, stop-payment orders and revoked authorisations);
  Mastercard's merchant advice codes 03 (do not try again) and 21 (payment cancelled);
  Stripe's `advice_code=do_not_try_again`; and what needs the cardholder
  (`authentication_required`, `advice_code=confirm_card_data`), which no off-session retry
  gets past. A card with nothing to charge (none saved, or only refused ones) waits too.
* Every other decline (insufficient funds, a generic decline, processing errors) is tried
  again later, spaced as `RETRY_AFTER` says: hours first, then days (Stripe's Smart Retries
  make 8 tries in 2 weeks by default; these make 8 in under 2 weeks), and the rule pauses
  after the last of them.
* Never more than `NETWORK_TRIES_IN_30_DAYS` declined charges of a tenant in any 30 days:
  Visa's limit on reattempts of a declined transaction (15; Mastercard allows 35, and 10 in
  24 hours), whatever the schedule or a tenant setting the rule again would give.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

# Waits before each retry of a charge declined so many times in a row (1st, 2nd, …): hours,
# then days. 8 tries in all, the last about 13 days after the first.
RETRY_AFTER = (timedelta(hours=3), timedelta(hours=12), timedelta(days=1), timedelta(days=2), timedelta(days=2),
               timedelta(days=3), timedelta(days=4))
NETWORK_TRIES_IN_30_DAYS = 15

# Visa's Category 1 response codes and Mastercard's merchant advice codes that forbid a retry.
VISA_NEVER = frozenset({"04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"})
MASTERCARD_NEVER = frozenset({"03", "21"})
# Stripe's decline codes for those declines.
STRIPE_NEVER = frozenset({"pickup_card", "lost_card", "stolen_card", "invalid_account", "incorrect_number",
                          "invalid_number", "restricted_card", "transaction_not_allowed", "stop_payment_order",
                          "revocation_of_authorization", "revocation_of_all_authorizations"})
# What only the cardholder can get past, or nothing left to charge.
NEEDS_THE_TENANT = frozenset({"authentication_required", "no_saved_card", "card_refused_before"})


@dataclass(frozen=True, kw_only=True)
class Decline:
    """Why a charge failed, as the processor and the card network say it: the error's `code`
    (card_declined, authentication_required, …), Stripe's `decline_code` and `advice_code`,
    and the network's own `network_decline_code` and `network_advice_code` (Mastercard's MAC)."""

    code: str
    decline_code: str | None = None
    advice_code: str | None = None
    network_decline_code: str | None = None
    network_advice_code: str | None = None

    @property
    def shown(self) -> str:
        """The most telling code: the decline's own where the processor gives one."""
        return self.decline_code or self.code


def refusal(decline: Decline) -> str | None:
    """Why the card must not be charged again off-session, or None when it may be retried."""
    if decline.code in NEEDS_THE_TENANT or decline.decline_code in NEEDS_THE_TENANT \
            or decline.advice_code == "confirm_card_data":
        return "the cardholder must act (authenticate, or save a card): no off-session retry gets past it"
    if decline.advice_code == "do_not_try_again":
        return "the processor advises never to try this card again"
    if decline.network_advice_code in MASTERCARD_NEVER:
        return f"Mastercard's advice code {decline.network_advice_code} forbids trying again"
    if decline.network_decline_code in VISA_NEVER or decline.decline_code in STRIPE_NEVER:
        return "the card networks forbid retrying this decline (the issuer will never approve it)"
    return None


def next_try(declined_in_a_row: int, declined_in_30_days: int, *, failed_at: datetime) -> datetime | None:
    """When to charge again after the `declined_in_a_row`th decline in a row (at `failed_at`),
    with `declined_in_30_days` declines of the tenant in the last 30 days, this one counted;
    None once the schedule is spent or the networks' count is reached."""
    if not 1 <= declined_in_a_row <= len(RETRY_AFTER) or declined_in_30_days >= NETWORK_TRIES_IN_30_DAYS:
        return None
    return failed_at + RETRY_AFTER[declined_in_a_row - 1]
