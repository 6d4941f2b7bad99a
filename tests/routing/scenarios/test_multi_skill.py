"""The multi-skill helpdesk's sanity: conservation, utilisation, stickiness, escalation."""

from __future__ import annotations

import pytest

from routing.scenarios.helpdesk import GROUPS
from routing.scenarios.multi_skill import MultiSkillResult, VariantResult, simulate_multi_skill


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
