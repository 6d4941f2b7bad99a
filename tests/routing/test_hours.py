"""Business hours (routing/hours.py) with a controlled clock: the instants are given."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.schema import Settings
from routing.hours import BusinessHoursSettings, Calendar, Calendars, parse_interval

VN = ZoneInfo("Asia/Ho_Chi_Minh")
PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
H = 3600


def at(zone: ZoneInfo, *parts: int) -> float:
    return datetime(*parts, tzinfo=zone).timestamp()  # type: ignore[misc]


def local(t: float | None, zone: ZoneInfo = VN) -> str:
    assert t is not None
    return datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M")


def office(**changes: object) -> Calendar:
    fields: dict[str, object] = {
        "id": "office",
        "hours": {d: ["08:00-12:00", "13:30-17:30"] for d in WEEKDAYS},
        "holidays": "VN",
    }
    fields.update(changes)
    return Calendar(BusinessHoursSettings.model_validate(fields))


def test_tet_2027_and_gio_to_2027_come_from_the_holidays_package() -> None:
    cal = office()
    # Tết Nguyên Đán 2027: the package closes 4 to 10 February (lunar dates).
    assert cal.holiday(date(2027, 2, 6)) == "Lunar New Year"
    assert cal.holiday(date(2027, 2, 3)) is None
    assert cal.is_open(at(VN, 2027, 2, 3, 10, 0))
    for day in (4, 5, 8, 9, 10):
        assert not cal.is_open(at(VN, 2027, 2, day, 10, 0)), day
    # Giỗ Tổ Hùng Vương 2027: 10th day of the 3rd lunar month, Friday 16 April.
    assert "Hung Kings" in (cal.holiday(date(2027, 4, 16)) or "")
    assert not cal.is_open(at(VN, 2027, 4, 16, 9, 0))
    assert cal.is_open(at(VN, 2027, 4, 15, 9, 0))


# (start, business seconds) -> due, worked out by hand on the office's hours.
DUE_TABLE = [
    # lunch break: 1 h before it, 1 h after it
    ((2027, 3, 1, 11, 0), 2 * H, "2027-03-01 14:30"),
    # starting in the lunch break counts from 13:30
    ((2027, 3, 1, 12, 15), 30 * 60, "2027-03-01 14:00"),
    # evening: nothing until 08:00 the next day
    ((2027, 3, 1, 19, 0), H, "2027-03-02 09:00"),
    # Friday 17:00 -> Monday
    ((2027, 3, 5, 17, 0), H, "2027-03-08 08:30"),
    # Tết: 1.5 h on 3 Feb, then nothing until Thursday 11 Feb
    ((2027, 2, 3, 16, 0), 4 * H, "2027-02-11 10:30"),
    # Giỗ Tổ: Thursday 17:00, Friday 16 April closed -> Monday 19 April
    ((2027, 4, 15, 17, 0), H, "2027-04-19 08:30"),
    # a whole week of business time: five 8-hour days
    ((2027, 3, 1, 8, 0), 40 * H, "2027-03-05 17:30"),
    # an exact end of day stays at the end of that day
    ((2027, 3, 1, 8, 0), 8 * H, "2027-03-01 17:30"),
]


@pytest.mark.parametrize(("start", "seconds", "due"), DUE_TABLE)
def test_due_times_in_business_time(start: tuple[int, ...], seconds: float, due: str) -> None:
    cal = office()
    t = at(VN, *start)
    found = cal.due(t, seconds)
    assert local(found) == due
    assert found is not None
    assert cal.business_seconds(t, found) == pytest.approx(seconds)


def test_business_seconds_skip_lunch_nights_and_tet() -> None:
    cal = office()
    assert cal.business_seconds(at(VN, 2027, 3, 1, 11, 0), at(VN, 2027, 3, 1, 14, 0)) == 1.5 * H
    assert cal.business_seconds(at(VN, 2027, 2, 3, 16, 0), at(VN, 2027, 2, 11, 9, 0)) == 2.5 * H
    assert cal.business_seconds(at(VN, 2027, 3, 1, 18, 0), at(VN, 2027, 3, 1, 20, 0)) == 0
    assert cal.business_seconds(at(VN, 2027, 3, 2, 9, 0), at(VN, 2027, 3, 1, 9, 0)) == 0


def test_next_opening_and_how_a_customer_reads_it() -> None:
    cal = office()
    opening = cal.next_opening(at(VN, 2027, 2, 3, 17, 45))
    assert local(opening) == "2027-02-11 08:00"
    assert opening is not None
    assert cal.describe(opening, "vi") == "08:00 thứ Năm, 11/02"
    assert cal.describe(opening, "vi-VN") == "08:00 thứ Năm, 11/02"
    assert cal.describe(opening, "en") == "08:00 on Thursday, 11/02"
    lunch = cal.next_opening(at(VN, 2027, 3, 1, 12, 10))
    assert local(lunch) == "2027-03-01 13:30"
    inside = at(VN, 2027, 3, 1, 9, 0)
    assert cal.next_opening(inside) == inside


def test_a_make_up_saturday_is_worked_and_an_extra_closed_date_is_not() -> None:
    plain = office()
    made_up = office(make_up_days=["2027-02-20"], closed_dates=["2027-03-02"])
    friday_evening = at(VN, 2027, 2, 19, 17, 0)
    assert not plain.is_open(at(VN, 2027, 2, 20, 9, 0))
    assert made_up.is_open(at(VN, 2027, 2, 20, 9, 0))
    assert not made_up.is_open(at(VN, 2027, 2, 20, 12, 30))  # the Monday's lunch break
    assert local(plain.due(friday_evening, H)) == "2027-02-22 08:30"
    assert local(made_up.due(friday_evening, H)) == "2027-02-20 08:30"
    assert made_up.business_seconds(friday_evening, at(VN, 2027, 2, 22, 8, 0)) == 8.5 * H
    assert not made_up.is_open(at(VN, 2027, 3, 2, 9, 0))
    assert local(made_up.due(at(VN, 2027, 3, 1, 17, 0), H)) == "2027-03-03 08:30"
    # a make-up day also opens a public holiday, with its own hours
    tet = office(make_up_days=["2027-02-08"], make_up_hours=["09:00-11:00"])
    assert local(tet.next_opening(at(VN, 2027, 2, 5, 9, 0))) == "2027-02-08 09:00"
    assert tet.business_seconds(at(VN, 2027, 2, 8, 0, 0), at(VN, 2027, 2, 9, 0, 0)) == 2 * H


def test_another_time_zone_with_its_summer_time_and_holidays() -> None:
    cal = Calendar(
        BusinessHoursSettings(
            id="paris",
            timezone="Europe/Paris",
            hours={d: ["09:00-17:00"] for d in WEEKDAYS},
            holidays="FR",
        )
    )
    friday = at(PARIS, 2027, 3, 26, 16, 0)  # CET (UTC+1)
    # Summer time starts on Sunday 28 March; Easter Monday 29 March is a holiday.
    opening = cal.next_opening(at(PARIS, 2027, 3, 26, 17, 0))
    assert opening == datetime(2027, 3, 30, 7, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert local(cal.due(friday, 2 * H), PARIS) == "2027-03-30 10:00"
    assert cal.business_seconds(friday, at(PARIS, 2027, 3, 30, 10, 0)) == 2 * H
    # the same instant, in Vietnam's hours: 22:00 there, closed
    assert cal.is_open(friday)
    assert not office().is_open(friday)


def test_around_the_clock_counts_every_second() -> None:
    cal = Calendar.always()
    t = at(VN, 2027, 2, 6, 3, 0)
    assert cal.is_open(t)
    assert cal.due(t, 90) == t + 90
    assert cal.business_seconds(t, t + 5000) == 5000
    assert cal.next_opening(t) == t


@settings(max_examples=150, deadline=None)
@given(
    start=st.floats(min_value=at(VN, 2026, 1, 1, 0, 0), max_value=at(VN, 2028, 12, 1, 0, 0)),
    seconds=st.floats(min_value=0, max_value=300 * H),
)
def test_due_and_business_seconds_agree(start: float, seconds: float) -> None:
    cal = office(make_up_days=["2027-02-20"])
    due = cal.due(start, seconds)
    assert due is not None and due >= start
    assert cal.business_seconds(start, due) == pytest.approx(seconds, abs=1e-3)
    if seconds >= 0.01:
        # the due instant is inside (or at the end of) an opening interval
        assert cal.is_open(due - 1e-3)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hours": {"mon": ["8:00-12:00"]}}, "not an interval"),
        ({"hours": {"mon": ["12:00-08:00"]}}, "ends before it starts"),
        ({"hours": {"mon": ["08:00-12:00", "11:00-13:00"]}}, "overlap"),
        ({"hours": {"monday": ["08:00-12:00"]}}, "unknown weekdays"),
        ({"timezone": "Asia/Hanoi_City"}, "unknown time zone"),
        ({"holidays": "XX"}, "no public holidays"),
        ({"texts": {"vi": "mở lúc {gio}"}}, "only {opening}"),
    ],
)
def test_bad_business_hours_are_refused_with_a_reason(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        BusinessHoursSettings.model_validate({"id": "x", **fields})


def test_a_conversation_follows_its_rules_hours_else_its_channels() -> None:
    hours = Calendars(
        [
            BusinessHoursSettings(id="team", rules=["billing"]),
            BusinessHoursSettings(id="oa", channels=["zalo-shop"]),
            BusinessHoursSettings(id="zalo", channels=["zalo"]),
        ]
    )

    def found(channel_id: str, channel_type: str, rule: str | None) -> str | None:
        cal = hours.of(channel_id, channel_type, rule)
        return None if cal is None else cal.id

    assert found("zalo-shop", "zalo", "billing") == "team"
    assert found("zalo-shop", "zalo", "sales") == "oa"
    assert found("zalo-2", "zalo", None) == "zalo"
    assert found("web", "webchat", None) is None
    with pytest.raises(ValueError, match="routing rule 'billing' follows two"):
        Calendars([BusinessHoursSettings(id=i, rules=["billing"]) for i in ("a", "b")])
    with pytest.raises(ValidationError, match="no routing rule named billing"):
        Settings.model_validate({"business_hours": [{"id": "team", "rules": ["billing"]}]})


def test_a_channel_follows_one_business_hours() -> None:
    entry = {"hours": {"mon": ["08:00-12:00"]}, "channels": ["webchat"]}
    with pytest.raises(ValidationError, match="follows two business hours"):
        Settings.model_validate({"business_hours": [{"id": "a", **entry}, {"id": "b", **entry}]})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20) | st.from_regex(r"\d\d:\d\d-\d\d:\d\d", fullmatch=True))
def test_any_interval_text_parses_or_is_refused_with_a_reason(text: str) -> None:
    outcome: tuple[int, int] | str
    try:
        outcome = parse_interval(text)
    except ValueError as exc:
        outcome = str(exc)
    if isinstance(outcome, str):
        assert repr(text) in outcome
    else:
        assert 0 <= outcome[0] < outcome[1] <= 86400
