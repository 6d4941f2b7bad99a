"""The routing simulator: Erlang C exactly, the engine against Erlang C by simulation, and
the multi-skill helpdesk's sanity (conservation, utilisation, stickiness, escalation)."""

from __future__ import annotations

import json
from fractions import Fraction
from math import factorial

import pytest

from gateway.cli import main
from routing.simulator import (
    GROUPS,
    TOLERANCE,
    MultiSkillResult,
    VariantResult,
    batch_means,
    erlang_b,
    erlang_c,
    erlang_c_wait,
    percentile,
    simulate_erlang_c,
    simulate_multi_skill,
)

# --- Erlang C -----------------------------------------------------------------------------


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


def test_statistics_helpers() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 90) == 5.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    est = batch_means([float(i % 2) for i in range(4000)])
    assert est.value == pytest.approx(0.5)
    assert est.half_width == pytest.approx(0.0, abs=1e-12)


def test_engine_reproduces_erlang_c() -> None:
    """M/M/2 at occupancy 0.5 through the real engine: converges fast enough to make a
    5 % comparison meaningful with 300,000 arrivals (its 95 % intervals are ~1 % and ~3 %)."""
    r = simulate_erlang_c(agents=2, load=0.5, arrivals=300_000, seed=11)
    assert r.theory_p_wait == pytest.approx(1 / 3)
    # the comparison means something only if the simulation's own noise is well below 5 %
    assert r.p_wait.half_width < TOLERANCE / 2 * r.theory_p_wait
    assert r.mean_wait.half_width < TOLERANCE * r.theory_mean_wait
    assert r.p_wait_error <= TOLERANCE, r.as_dict()
    assert r.mean_wait_error <= TOLERANCE, r.as_dict()
    assert r.passed


# --- multi-skill --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helpdesk() -> MultiSkillResult:
    return simulate_multi_skill(arrivals=8_000, seed=3)


def variant(result: MultiSkillResult, name: str) -> VariantResult:
    return next(v for v in result.variants if v.name == name)


def test_every_arrival_is_served_or_queued_and_nobody_over_capacity(
    helpdesk: MultiSkillResult,
) -> None:
    assert [v.name for v in helpdesk.variants] == [
        "baseline",
        "+stickiness",
        "+escalation",
        "+both",
    ]
    for v in helpdesk.variants:
        assert v.arrivals > 8_000  # returning customers come on top of the new ones
        assert v.balanced_at_horizon, v.name
        assert v.served + v.queued_at_end == v.arrivals, v.name
        assert v.over_capacity == 0, v.name
    assert helpdesk.sane


def test_utilisation_is_a_share_of_slot_time(helpdesk: MultiSkillResult) -> None:
    for v in helpdesk.variants:
        assert set(v.utilisation) == {"all", *GROUPS}
        for team, u in v.utilisation.items():
            assert 0.0 <= u <= 1.0, (v.name, team, u)
        # the arrival rate is set for 78 % busy slots
        assert 0.65 < v.utilisation["all"] < 0.9, v.name


def test_first_response_includes_the_wait(helpdesk: MultiSkillResult) -> None:
    for v in helpdesk.variants:
        for group in ("all", *GROUPS):
            frt, wait = v.first_response[group], v.wait[group]
            assert frt.n == wait.n > 0
            assert frt.mean > wait.mean
            assert frt.p90 >= wait.p90


def test_stickiness_raises_the_same_agent_share(helpdesk: MultiSkillResult) -> None:
    base = variant(helpdesk, "baseline")
    sticky = variant(helpdesk, "+stickiness")
    assert base.returning_in_window > 500
    assert sticky.same_agent_share > base.same_agent_share + 0.15
    assert variant(helpdesk, "+both").same_agent_share > (
        variant(helpdesk, "+escalation").same_agent_share + 0.15
    )


def test_escalation_lowers_the_wait_of_the_scarce_group(helpdesk: MultiSkillResult) -> None:
    base = variant(helpdesk, "baseline")
    escalated = variant(helpdesk, "+escalation")
    # VIP conversations need level 3, which four agents have: the scarce group
    assert base.wait["vip"].p90 > 2 * base.wait["all"].p90
    assert escalated.wait["vip"].p90 < 0.5 * base.wait["vip"].p90
    assert base.escalated == 0
    assert escalated.escalated > 0


def test_multi_skill_is_deterministic_for_a_seed() -> None:
    one = simulate_multi_skill(arrivals=1_500, seed=5, variants=("+both",))
    two = simulate_multi_skill(arrivals=1_500, seed=5, variants=("+both",))
    other = simulate_multi_skill(arrivals=1_500, seed=6, variants=("+both",))
    assert one.as_dict() == two.as_dict()
    assert one.as_dict() != other.as_dict()


# --- command line -------------------------------------------------------------------------


def test_cli_prints_a_report_and_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["simulate", "multi-skill", "--arrivals", "1500", "--seed", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert status == 0
    assert summary["scenario"] == "multi-skill"
    assert set(summary["variants"]) == {"baseline", "+stickiness", "+escalation", "+both"}
    assert any("first response = wait until assigned" in line for line in out)


def test_cli_erlang_c_exit_status_follows_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["simulate", "erlang-c", "--agents", "1", "--load", "0.5", "--arrivals", "20000"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["p_wait"]["theory"] == pytest.approx(0.5)
    assert status == (0 if summary["pass"] else 1)
    assert main(["simulate", "erlang-c", "--load", "1.5"]) == 2
