"""SLA policies and clocks (routing/sla.py): due times in business time against tables
worked out by hand, warnings and breaches once each."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.stats import compliance
from routing.hours import BusinessHoursSettings, Calendar
from routing.sla import SlaClock, SlaPolicySettings, match

VN = ZoneInfo("Asia/Ho_Chi_Minh")
H = 3600
OFFICE = Calendar(
    BusinessHoursSettings(
        id="office",
        hours={d: ["08:00-12:00", "13:30-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")},
        holidays="VN",
    )
)
POLICY = SlaPolicySettings(
    id="standard", first_response="2h", next_response="1h", resolution="16h", warn_at=0.8
)


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=VN).timestamp()  # type: ignore[misc]


def local(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, VN).strftime("%Y-%m-%d %H:%M")


# start -> (first response warn, due; resolution warn, due), by hand on 8-hour days
# (08:00-12:00, 13:30-17:30) with warnings at 0.8 of each target.
TABLE = [
    (
        OFFICE,
        (2027, 2, 3, 16, 0),  # Tết 2027 closes 4-10 February
        ("2027-02-11 08:06", "2027-02-11 08:30", "2027-02-12 11:18", "2027-02-12 16:00"),
    ),
    (
        OFFICE,
        (2027, 3, 1, 11, 0),  # across lunch
        ("2027-03-01 14:06", "2027-03-01 14:30", "2027-03-02 17:18", "2027-03-03 11:00"),
    ),
    (
        OFFICE,
        (2027, 4, 15, 17, 0),  # Giỗ Tổ, Friday 16 April
        ("2027-04-19 09:06", "2027-04-19 09:30", "2027-04-20 13:48", "2027-04-20 17:00"),
    ),
    (
        Calendar.always(),  # a channel with no business hours: 24/7
        (2027, 2, 6, 3, 0),
        ("2027-02-06 04:36", "2027-02-06 05:00", "2027-02-06 15:48", "2027-02-06 19:00"),
    ),
]


@pytest.mark.parametrize(("calendar", "start", "expected"), TABLE)
def test_due_times_against_a_hand_computed_table(
    calendar: Calendar, start: tuple[int, ...], expected: tuple[str, ...]
) -> None:
    clock = SlaClock.start(POLICY, calendar, at(*start))
    first, resolution = clock.targets["first_response"], clock.targets["resolution"]
    assert (local(first.warn), local(first.due), local(resolution.warn), local(resolution.due)) == (
        expected
    )
    assert "next_response" not in clock.targets


def test_warnings_and_breaches_fire_once_each_and_name_the_target() -> None:
    clock = SlaClock.start(POLICY, OFFICE, at(2027, 3, 1, 11, 0))
    assert clock.check(at(2027, 3, 1, 14, 0)) == []
    warned = clock.check(at(2027, 3, 1, 14, 6))
    assert [(a.kind, a.target) for a in warned] == [("warning", "first_response")]
    assert clock.check(at(2027, 3, 1, 14, 10)) == []
    assert local(clock.next_check()) == "2027-03-01 14:30"
    breached = clock.check(at(2027, 3, 1, 14, 30))
    assert [(a.kind, a.target) for a in breached] == [("breached", "first_response")]
    assert clock.check(at(2027, 3, 1, 15, 0)) == []
    assert clock.breached == ["first_response"]
    # the late answer ends it; a later customer message starts the next response clock
    assert clock.answered(at(2027, 3, 1, 15, 0))
    assert clock.met("first_response") is False
    assert clock.customer_waits(POLICY, OFFICE, at(2027, 3, 1, 17, 0))
    nxt = clock.targets["next_response"]
    assert (local(nxt.warn), local(nxt.due)) == ("2027-03-02 08:18", "2027-03-02 08:30")
    # a second customer message while it runs does not restart it
    assert not clock.customer_waits(POLICY, OFFICE, at(2027, 3, 1, 17, 20))
    assert clock.targets["next_response"].start == at(2027, 3, 1, 17, 0)
    # both the resolution warning (17:18) and the next response warning are due at 08:20
    alerts = clock.check(at(2027, 3, 2, 17, 20))
    assert sorted((a.kind, a.target) for a in alerts) == [
        ("breached", "next_response"),
        ("warning", "resolution"),
    ]
    clock.resolved(at(2027, 3, 2, 17, 25))
    assert clock.met("resolution") is True
    assert clock.next_check() is None
    again = SlaClock.from_json(clock.to_json())
    assert again == clock
    assert again.breached == ["first_response", "next_response"]


def test_a_customer_message_before_the_first_answer_starts_nothing_new() -> None:
    clock = SlaClock.start(POLICY, OFFICE, at(2027, 3, 1, 9, 0))
    assert not clock.customer_waits(POLICY, OFFICE, at(2027, 3, 1, 9, 5))
    clock.answered(at(2027, 3, 1, 9, 30))
    assert clock.met("first_response") is True
    assert clock.due_times()["next_response"] is None
    clock.customer_waits(POLICY, OFFICE, at(2027, 3, 1, 11, 30))
    assert local(clock.due_times()["next_response"]) == "2027-03-01 14:00"


def test_policies_match_by_channel_priority_and_contact_attributes() -> None:
    gold = SlaPolicySettings(id="gold", contact={"tier": "gold"}, first_response="30m")
    urgent = SlaPolicySettings(id="urgent", min_priority=5, first_response="1h")
    zalo = SlaPolicySettings(id="zalo", channels=["zalo"], resolution="2d")
    policies = [gold, urgent, zalo]
    assert match(policies, "oa-1", "zalo", 0, {"tier": "gold"}) is gold
    assert match(policies, "oa-1", "zalo", 7, {}) is urgent
    assert match(policies, "oa-1", "zalo", 0, {"tier": "silver"}) is zalo
    assert match(policies, "web", "webchat", 0, {}) is None
    with pytest.raises(ValidationError, match="needs first_response"):
        SlaPolicySettings(id="empty")
    with pytest.raises(ValidationError):
        SlaPolicySettings(id="x", first_response="1h", warn_at=1.5)


def test_compliance_counts_targets_kept_and_missed_per_policy() -> None:
    kept = SlaClock.start(POLICY, OFFICE, at(2027, 3, 1, 9, 0))
    kept.answered(at(2027, 3, 1, 9, 30))
    kept.resolved(at(2027, 3, 1, 16, 0))
    missed = SlaClock.start(POLICY, OFFICE, at(2027, 3, 1, 9, 0))
    missed.check(at(2027, 3, 1, 11, 0))  # first response breached at 11:00
    running = SlaClock.start(POLICY, OFFICE, at(2027, 3, 1, 9, 0))
    (standard,) = compliance([kept.to_json(), missed.to_json(), running.to_json()])
    assert standard.policy == "standard"
    assert (standard.conversations, standard.compliant, standard.breached) == (3, 1, 1)
    assert standard.rate == 0.5
    assert (standard.first_response.kept, standard.first_response.missed) == (1, 1)
    assert (standard.resolution.kept, standard.resolution.missed) == (1, 0)
    assert standard.next_response.rate is None
