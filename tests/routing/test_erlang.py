"""Erlang B and C: published table values, and the exact formula where factorials overflow."""

from __future__ import annotations

from fractions import Fraction
from math import factorial

import pytest

from routing.erlang import erlang_b, erlang_c, erlang_c_wait


def erlang_c_exact(c: int, a: Fraction) -> Fraction:
    """The textbook formula in exact arithmetic (no overflow, no rounding)."""
    top = a**c / factorial(c) * Fraction(c) / (c - a)
    return top / (sum(a**k / factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(
    ("c", "a", "expected"),
    [
        (1, 0.5, 0.5),  # M/M/1: P(wait) = rho
        (2, 1.0, 1 / 3),
        (3, 2.0, 4 / 9),
        (5, 4.0, 0.5541),  # published Erlang C tables, 4 digits
        (10, 8.0, 0.4092),
        (20, 15.0, 0.1604),
    ],
)
def test_erlang_c_matches_table_values(c: int, a: float, expected: float) -> None:
    assert erlang_c(c, a) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize(("c", "a"), [(10, "17/2"), (50, "45"), (100, "90"), (1000, "950")])
def test_erlang_c_is_exact_where_factorials_overflow(c: int, a: str) -> None:
    # 950**1000 / 1000! overflows a float: the recursion must not need it.
    exact = erlang_c_exact(c, Fraction(a))
    assert erlang_c(c, float(Fraction(a))) == pytest.approx(float(exact), rel=1e-12)


def test_erlang_b_and_mean_wait() -> None:
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    # M/M/1: Wq = rho / (mu - lambda)
    assert erlang_c_wait(1, 0.5, 1.0) == pytest.approx(1.0)
    # M/M/2, lambda = 1, mu = 1: C = 1/3, Wq = C / (2 - 1)
    assert erlang_c_wait(2, 1.0, 1.0) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="a < c"):
        erlang_c(3, 3.0)
