"""Rating: pure functions with exact decimal arithmetic.

A rate has a first interval (seconds) priced at ``price_first`` per minute
and next intervals priced at ``price_next`` per minute; a call is charged in
whole intervals, rounded up. The tariff adds free seconds (only when the call
lasts at least the first interval), a connect fee for connected calls, and a
post-call surcharge in percent. The source's own numbers:

- funds 1.02 at 60/60 and 0.29/min: 180 s (1x60x0.29 + 2x60x0.29 = 0.87;
  a fourth minute would cost 1.16);
- a 180 s call at 60/60 and 0.19/min costs 0.57 (1x60x0.19 + 2x60x0.19);
- a 180 s call at 30/6 and 0.09/min costs 0.27 (1x30x0.09 + 25x6x0.09).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from functools import cached_property

SIXTY = Decimal(60)
AMOUNT_PLACES = Decimal("0.00001")


class RatingError(ValueError):
    """A call that cannot be rated (no rate, forbidden destination, bad input)."""


@dataclass(frozen=True)
class Price:
    """The price of one destination at one moment: peak or off-peak already chosen."""

    interval_first: int
    interval_next: int
    price_first: Decimal  # per minute
    price_next: Decimal  # per minute

    def __post_init__(self) -> None:
        if self.interval_first <= 0 or self.interval_next <= 0:
            raise RatingError("rate intervals must be positive")
        if self.price_first < 0 or self.price_next < 0:
            raise RatingError("rate prices must not be negative")

    # Cached: a rate row's Price lives as long as the catalog, and each
    # authorization read these four to six times (Decimal division each).
    @cached_property
    def cost_first(self) -> Decimal:
        return self.interval_first * self.price_first / SIXTY

    @cached_property
    def cost_next(self) -> Decimal:
        return self.interval_next * self.price_next / SIXTY


@dataclass(frozen=True)
class TariffTerms:
    free_seconds: int = 0
    connect_fee: Decimal = Decimal(0)
    post_call_surcharge: Decimal = Decimal(0)  # percent
    round_to: Decimal | None = None  # e.g. Decimal("0.01"): round the amount up to cents

    @cached_property
    def surcharge_factor(self) -> Decimal:
        """What the post-call surcharge multiplies an amount by (one decimal
        division per tariff, not per call)."""
        return 1 + self.post_call_surcharge / 100


@dataclass(frozen=True)
class Charge:
    duration: int
    charged_duration: int
    amount: Decimal
    first_intervals: int
    next_intervals: int

    def explain(self, price: Price) -> str:
        """As the source's log writes it: ``(1x60x0.19+2x60x0.19)``."""
        parts = []
        if self.first_intervals:
            parts.append(f"{self.first_intervals}x{price.interval_first}x{price.price_first}")
        if self.next_intervals:
            parts.append(f"{self.next_intervals}x{price.interval_next}x{price.price_next}")
        return "(" + "+".join(parts) + ")"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _finish(amount: Decimal, terms: TariffTerms) -> Decimal:
    if terms.post_call_surcharge:
        amount = amount * terms.surcharge_factor
    if terms.round_to is not None:
        return amount.quantize(terms.round_to, rounding=ROUND_CEILING)
    return amount.quantize(AMOUNT_PLACES, rounding=ROUND_HALF_UP)


def charge(duration: int, price: Price, terms: TariffTerms = TariffTerms()) -> Charge:
    """What a call of ``duration`` seconds costs."""
    if duration < 0:
        raise RatingError(f"negative duration {duration}")
    if duration == 0:
        return Charge(0, 0, Decimal(0), 0, 0)
    billable = duration
    # Free seconds count only once the call lasted a full first interval.
    if terms.free_seconds and duration >= price.interval_first:
        billable = max(0, duration - terms.free_seconds)
    if billable == 0:
        amount = terms.connect_fee
        return Charge(duration, 0, _finish(amount, terms), 0, 0)
    first = 1
    rest = max(0, billable - price.interval_first)
    nxt = _ceil_div(rest, price.interval_next)
    charged = price.interval_first + nxt * price.interval_next
    amount = terms.connect_fee + price.cost_first + nxt * price.cost_next
    return Charge(duration, charged, _finish(amount, terms), first, nxt)


def max_duration(funds: Decimal, price: Price, terms: TariffTerms = TariffTerms(),
                 cap: int | None = None) -> int:
    """The longest call the funds pay for, in seconds (0: not even the first interval).

    Whole intervals only: the gateway disconnects at this time, so the
    announced duration must never cost more than ``funds``.
    """
    if funds <= 0:
        return 0
    factor = terms.surcharge_factor
    if factor <= 0:
        raise RatingError("post-call surcharge below -100%")
    # Work in pre-surcharge money so rounding cannot push the cost over funds.
    budget = funds / factor - terms.connect_fee
    if budget < price.cost_first:
        return 0
    budget -= price.cost_first
    seconds = price.interval_first
    if price.cost_next == 0:
        nxt = None
    else:
        nxt = int((budget / price.cost_next).to_integral_value(rounding="ROUND_FLOOR"))
        seconds += nxt * price.interval_next
    if terms.free_seconds:
        seconds += terms.free_seconds
    if nxt is None:
        # Free next intervals: unlimited by money.
        return cap if cap is not None else 86400
    # Guard against rounding of the surcharge: step back until affordable.
    while seconds > 0 and charge(seconds, price, terms).amount > funds:
        seconds -= price.interval_next
    if cap is not None:
        seconds = min(seconds, cap)
    return max(0, seconds)


# What the longest call costs, once the funds are known to pay for the cap:
# (price, terms, cap) -> (the least funds seen that gave the cap, its charge).
_FULL_GRANTS: dict[tuple[Price, TariffTerms, int | None], tuple[Decimal, Charge]] = {}
_FULL_GRANTS_KEPT = 4096


def longest_call(funds: Decimal, price: Price, terms: TariffTerms = TariffTerms(),
                 cap: int | None = None) -> tuple[int, Charge] | None:
    """``max_duration`` and what that call costs (None: not even the first
    interval): the reservation an authorization asks for.

    Most accounts can pay for the cap (``[Radius] Max_Credit_Time``), and
    for them the answer is always the same: max_duration never falls as
    funds grow, so once some funds gave the cap, any as large do too. That
    answer is kept per price, terms and cap, which saves the two exact
    decimal computations per authorization (a tenth of the packet loop's
    CPU, py-spy); every other case is computed in full, as before."""
    key = (price, terms, cap) if cap is not None else None
    kept = _FULL_GRANTS.get(key) if key is not None else None
    if cap is not None and kept is not None and funds >= kept[0]:
        return cap, kept[1]
    seconds = max_duration(funds, price, terms, cap=cap)
    if seconds <= 0:
        return None
    c = charge(seconds, price, terms)
    if key is not None and seconds == cap and (kept is None or funds < kept[0]):
        if len(_FULL_GRANTS) >= _FULL_GRANTS_KEPT:
            _FULL_GRANTS.clear()  # tariffs reloaded many times: start again
        _FULL_GRANTS[key] = (funds, c)
    return seconds, c


# ------------------------------------------------------------ prefix match


@dataclass(frozen=True)
class RateRow:
    prefix: str
    price: Price
    off_price: Price | None
    forbidden: bool
    effective_from: dt.datetime
    rate_id: int = 0


def select_rate(rows: list[RateRow] | dict[str, list[RateRow]], number: str,
                at: dt.datetime) -> RateRow:
    """Longest-prefix match among the rates effective at ``at``.

    ``rows`` may be a plain list or a dict prefix -> rows (faster for big
    tariffs). Of the rates for one prefix, the latest effective one wins.
    """
    if not number or not number.isdigit():
        raise RatingError(f"called number {number!r} is not all digits")
    index: dict[str, list[RateRow]]
    index = rows if isinstance(rows, dict) else index_rates(rows)
    for n in range(len(number), 0, -1):
        candidates = index.get(number[:n])
        if not candidates:
            continue
        if len(candidates) == 1:  # one rate for the prefix: most tariffs
            best = candidates[0]
            if best.effective_from > at:
                continue
        else:
            effective = [r for r in candidates if r.effective_from <= at]
            if not effective:
                continue
            best = max(effective, key=lambda r: r.effective_from)
        if best.forbidden:
            raise RatingError(f"destination {number} is forbidden (prefix {best.prefix})")
        return best
    raise RatingError(f"no rate for {number}")


def index_rates(rows: list[RateRow]) -> dict[str, list[RateRow]]:
    index: dict[str, list[RateRow]] = {}
    for r in rows:
        index.setdefault(r.prefix, []).append(r)
    return index


def price_at(row: RateRow, off_peak: bool) -> Price:
    if off_peak and row.off_price is not None:
        return row.off_price
    return row.price
