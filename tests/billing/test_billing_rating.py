"""Rating: the source's own numbers, then the edges."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import rating
from billing.rating import Price, RateRow, RatingError, TariffTerms


def p(first: int, nxt: int, price: str, price_next: str | None = None) -> Price:
    return Price(first, nxt, D(price), D(price_next or price))


def test_source_max_duration_180_for_1_02_at_60_60_and_0_29():
    assert rating.max_duration(D("1.02"), p(60, 60, "0.29")) == 180


def test_source_charge_0_57_for_180s_at_60_60_and_0_19():
    c = rating.charge(180, p(60, 60, "0.19"))
    assert c.amount == D("0.57")
    assert c.explain(p(60, 60, "0.19")) == "(1x60x0.19+2x60x0.19)"


def test_source_vendor_charge_0_27_for_180s_at_30_6_and_0_09():
    c = rating.charge(180, p(30, 6, "0.09"))
    assert c.amount == D("0.27")
    assert (c.first_intervals, c.next_intervals) == (1, 25)


@pytest.mark.parametrize("duration,charged", [(1, 60), (60, 60), (61, 120), (119, 120),
                                              (120, 120), (0, 0)])
def test_whole_intervals_rounded_up(duration, charged):
    assert rating.charge(duration, p(60, 60, "0.60")).charged_duration == charged


def test_charge_is_exact_decimal():
    c = rating.charge(7, p(1, 1, "0.07"))
    assert c.amount == D("0.00817")  # 7 * 0.07 / 60, five places as the source keeps


def test_connect_fee_and_surcharge_and_rounding():
    terms = TariffTerms(connect_fee=D("0.10"), post_call_surcharge=D("10"),
                        round_to=D("0.01"))
    # (0.10 + 0.57) * 1.1 = 0.737 -> rounded up to cents 0.74
    assert rating.charge(180, p(60, 60, "0.19"), terms).amount == D("0.74")


def test_free_seconds_only_after_the_first_interval():
    terms = TariffTerms(free_seconds=30)
    assert rating.charge(20, p(30, 6, "0.60"), terms).amount == D("0.30")  # shorter than first
    assert rating.charge(50, p(30, 6, "0.60"), terms).charged_duration == 30


def test_max_duration_never_costs_more_than_funds():
    for funds in ("0.01", "0.28", "0.29", "0.30", "1.02", "5.55", "100"):
        for price in (p(60, 60, "0.29"), p(30, 6, "0.09"), p(1, 1, "0.07"), p(60, 6, "1.5")):
            terms = TariffTerms(connect_fee=D("0.05"), post_call_surcharge=D("7.5"))
            secs = rating.max_duration(D(funds), price, terms)
            if secs:
                assert rating.charge(secs, price, terms).amount <= D(funds)
                nxt = rating.charge(secs + price.interval_next, price, terms).amount
                assert nxt > D(funds)


def test_max_duration_zero_when_first_interval_unaffordable_and_capped():
    assert rating.max_duration(D("0.28"), p(60, 60, "0.29")) == 0
    assert rating.max_duration(D("0"), p(60, 60, "0.29")) == 0
    assert rating.max_duration(D("-3"), p(60, 60, "0.29")) == 0
    assert rating.max_duration(D("1000"), p(60, 60, "0.01"), cap=3600) == 3600


def test_negative_duration_and_bad_prices_are_refused():
    with pytest.raises(RatingError, match="negative duration"):
        rating.charge(-1, p(60, 60, "0.1"))
    with pytest.raises(RatingError):
        Price(0, 60, D("0.1"), D("0.1"))
    with pytest.raises(RatingError):
        Price(60, 60, D("-0.1"), D("0.1"))


T0 = dt.datetime(2006, 9, 4)


def row(prefix, price="0.1", eff=T0, forbidden=False, rid=0):
    return RateRow(prefix, p(60, 60, price), None, forbidden, eff, rid)


def test_longest_prefix_wins_and_effective_dates_apply():
    rows = [row("4", "0.9", rid=1), row("420", "0.05", rid=2), row("420602", "0.09", rid=3),
            row("420602", "0.07", eff=T0 + dt.timedelta(days=10), rid=4)]
    assert rating.select_rate(rows, "420602111", T0 + dt.timedelta(days=1)).rate_id == 3
    assert rating.select_rate(rows, "420602111", T0 + dt.timedelta(days=11)).rate_id == 4
    assert rating.select_rate(rows, "420111", T0).rate_id == 2
    assert rating.select_rate(rows, "49", T0).rate_id == 1
    with pytest.raises(RatingError, match="no rate"):
        rating.select_rate(rows, "420602", T0 - dt.timedelta(days=1))  # nothing effective yet
    with pytest.raises(RatingError, match="no rate"):
        rating.select_rate(rows, "1212", T0)


def test_not_yet_effective_rate_falls_back_to_shorter_prefix():
    rows = [row("420", rid=1), row("420602", eff=T0 + dt.timedelta(days=5), rid=2)]
    assert rating.select_rate(rows, "4206021", T0).rate_id == 1


def test_forbidden_destination_and_non_digit_numbers():
    rows = [row("1", rid=1), row("1900", forbidden=True, rid=2)]
    with pytest.raises(RatingError, match="forbidden"):
        rating.select_rate(rows, "19005551212", T0)
    with pytest.raises(RatingError, match="not all digits"):
        rating.select_rate(rows, "1-800", T0)
    with pytest.raises(RatingError):
        rating.select_rate(rows, "", T0)


def test_off_peak_price_chosen_only_when_defined():
    r = RateRow("1", p(60, 60, "0.10"), p(60, 60, "0.02"), False, T0)
    assert rating.price_at(r, True).price_first == D("0.02")
    assert rating.price_at(r, False).price_first == D("0.10")
    r2 = RateRow("1", p(60, 60, "0.10"), None, False, T0)
    assert rating.price_at(r2, True).price_first == D("0.10")


# ------------------------------------------------------------ longest call
_money = st.decimals(min_value=D("-1"), max_value=D("50"), places=3)


@given(
    price=st.builds(Price, st.integers(1, 120), st.integers(1, 120),
                    st.decimals(min_value=D("0"), max_value=D("3"), places=4),
                    st.decimals(min_value=D("0"), max_value=D("3"), places=4)),
    terms=st.builds(TariffTerms, st.integers(0, 30),
                    st.decimals(min_value=D("0"), max_value=D("1"), places=2),
                    st.decimals(min_value=D("-50"), max_value=D("50"), places=1),
                    st.sampled_from([None, D("0.01"), D("0.1")])),
    cap=st.one_of(st.none(), st.integers(1, 7200)),
    funds=st.lists(_money, min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_the_longest_call_is_max_duration_and_its_charge_whatever_came_before(
        price, terms, cap, funds):
    """The kept answer for funds that pay the cap is exactly what
    max_duration and charge compute, for any funds in any order (it relies on
    max_duration never falling as funds grow)."""
    for f in funds:
        seconds = rating.max_duration(f, price, terms, cap=cap)
        want = (seconds, rating.charge(seconds, price, terms)) if seconds > 0 else None
        assert rating.longest_call(f, price, terms, cap=cap) == want
