"""Support figures: FRT, ART, FCR, SLA and the queue per channel over a period of days,
as charts (Chart.js, from JSON the page holds) and as a table with the same numbers; for
a period of up to a month, the totals day by day too (one GET /v1/stats per day)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from aiohttp import web

from gateway.console.pages import Pages, View
from gateway.console.texts import register, translator
from gateway.console.zones import DEFAULT_ZONE, zone
from kernel.errors import Invalid, Malformed, NotFound

pages = Pages()
STATS = ("GET", "/v1/stats")
PRESETS = {"today": 1, "7d": 7, "30d": 30}
DEFAULT_PRESET = "7d"
# Periods of up to this many days also get a series per day (one call for each day).
DAILY_LIMIT = 31
LONGEST = 366

register(
    {
        "figures.title": ("Số liệu hỗ trợ", "Support figures"),
        "figures.period": ("Khoảng thời gian", "Period"),
        "figures.since": ("Từ ngày", "From"),
        "figures.until": ("Đến hết ngày", "Until the end of"),
        "figures.channel": ("Kênh", "Channel"),
        "figures.all_channels": ("Mọi kênh", "Every channel"),
        "figures.timezone": ("Múi giờ", "Time zone"),
        "figures.show": ("Xem", "Show"),
        "figures.preset.today": ("Hôm nay", "Today"),
        "figures.preset.7d": ("7 ngày", "7 days"),
        "figures.preset.30d": ("30 ngày", "30 days"),
        "figures.window": ("Từ {since} đến {until}", "From {since} to {until}"),
        "figures.bad_date": ("Ngày không hợp lệ (YYYY-MM-DD).", "Not a valid date (YYYY-MM-DD)."),
        "figures.until_before": (
            "Ngày kết thúc phải không sớm hơn ngày bắt đầu.",
            "The end date must not be before the start date.",
        ),
        "figures.too_long": (
            "Khoảng thời gian dài nhất là {n} ngày.",
            "The longest period is {n} days.",
        ),
        "figures.bad_zone": ("Múi giờ không rõ.", "Unknown time zone."),
        "figures.unknown_channel": ("Không có kênh này.", "There is no such channel."),
        "figures.fix": (
            "Không tính được số liệu: hãy sửa các ô được đánh dấu.",
            "No figures for this: correct the fields marked.",
        ),
        "figures.total": ("Tổng", "Total"),
        "figures.table": ("Bảng số liệu", "The figures as a table"),
        "figures.created": ("Hội thoại mới", "Conversations opened"),
        "figures.resolved": ("Đã giải quyết", "Resolved"),
        "figures.frt": ("Thời gian phản hồi đầu (FRT)", "First response time (FRT)"),
        "figures.frt_avg": ("FRT trung bình", "FRT average"),
        "figures.frt_median": ("FRT trung vị", "FRT median"),
        "figures.frt_p90": ("FRT p90", "FRT p90"),
        "figures.unanswered": ("Chưa trả lời", "Unanswered"),
        "figures.art": ("Thời gian giải quyết (ART)", "Resolution time (ART)"),
        "figures.art_avg": ("ART trung bình", "ART average"),
        "figures.art_median": ("ART trung vị", "ART median"),
        "figures.fcr": ("Giải quyết ngay lần đầu (FCR)", "First contact resolution (FCR)"),
        "figures.fcr_rate": ("Tỷ lệ FCR", "FCR rate"),
        "figures.fcr_across": ("FCR trên mọi kênh", "FCR across channels"),
        "figures.sla": ("SLA", "SLA"),
        "figures.sla_breaches": ("Lần vi phạm SLA", "SLA breaches"),
        "figures.sla_breached_conversations": (
            "Hội thoại vi phạm SLA",
            "Conversations with a breach",
        ),
        "figures.sla_compliance": ("Tuân thủ SLA theo chính sách", "SLA compliance by policy"),
        "figures.policy": ("Chính sách", "Policy"),
        "figures.conversations": ("Hội thoại", "Conversations"),
        "figures.compliant": ("Tuân thủ", "Compliant"),
        "figures.breached": ("Vi phạm", "Breached"),
        "figures.compliance_rate": ("Tỷ lệ tuân thủ", "Compliance"),
        "figures.no_policies": (
            "Không có hội thoại nào theo chính sách SLA trong khoảng này.",
            "No conversations under an SLA policy in this period.",
        ),
        "figures.queue": ("Hàng đợi", "Queue"),
        "figures.queue_length": ("Đang chờ (bây giờ)", "Queued (now)"),
        "figures.queue_wait": ("Thời gian chờ trung bình", "Average wait"),
        "figures.oldest_wait": ("Chờ lâu nhất (bây giờ)", "Longest wait (now)"),
        "figures.daily": ("Theo ngày", "Day by day"),
        "figures.daily_times": ("FRT và ART theo ngày", "FRT and ART day by day"),
        "figures.day": ("Ngày", "Day"),
        "figures.unit.seconds": ("giây", "seconds"),
        "figures.unit.minutes": ("phút", "minutes"),
        "figures.unit.hours": ("giờ", "hours"),
        "figures.unit.percent": ("%", "%"),
        "figures.unit.count": ("số lượng", "count"),
        "figures.seconds": ("{n} giây", "{n} s"),
        "figures.minutes": ("{n} phút", "{n} min"),
        "figures.hours": ("{n} giờ", "{n} h"),
        "figures.days": ("{n} ngày", "{n} d"),
        "figures.none": ("–", "–"),
        "figures.notes": (
            "FRT: từ khi mở đến câu trả lời đầu tiên của nhân viên, cho các hội thoại mở "
            "trong khoảng. ART: từ khi mở đến khi giải quyết. FCR: tỷ lệ hội thoại giải "
            "quyết không bị mở lại hay chuyển. Hàng đợi: độ dài và thời gian chờ lâu nhất "
            "tính tại thời điểm hiện tại.",
            "FRT: opening to the first agent reply, for conversations opened in the "
            "period. ART: opening to resolution. FCR: the share of resolutions never "
            "reopened nor transferred. Queue length and the longest wait are as of now.",
        ),
    }
)


@dataclass
class Period:
    since: date
    until: date  # the last day, included
    tz: tzinfo
    tz_name: str

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def start(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.tz)

    def bounds(self) -> tuple[str, str]:
        """[since, until) as the API takes them: midnights in the period's time zone."""
        return (
            self.start(self.since).isoformat(),
            self.start(self.until + timedelta(days=1)).isoformat(),
        )


@pages.get("/figures", needs=STATS)
async def figures_page(view: View) -> web.StreamResponse:
    t = translator(view.language)
    query = view.request.query
    values = {
        "since": query.get("since", "").strip(),
        "until": query.get("until", "").strip(),
        "channel_id": query.get("channel_id", "").strip(),
        "tz": (query.get("tz", "") or DEFAULT_ZONE).strip(),
    }
    preset = query.get("preset", "")
    if not values["since"] and not values["until"] and not preset:
        preset = DEFAULT_PRESET
    period, errors = _period(values, preset if preset in PRESETS else "", t)
    if period is not None:
        values["since"], values["until"] = period.since.isoformat(), period.until.isoformat()
    stats: dict[str, Any] | None = None
    everything: dict[str, Any] | None = None
    daily: list[tuple[date, dict[str, Any]]] = []
    if period is not None:
        since, until = period.bounds()
        everything = await view.call(*STATS, query={"since": since, "until": until})
        stats = everything
        if values["channel_id"]:
            try:
                stats = await view.call(
                    *STATS,
                    query={"since": since, "until": until, "channel_id": values["channel_id"]},
                )
            except (NotFound, Malformed):
                errors["channel_id"] = t("figures.unknown_channel")
                stats = None
        if stats is not None and 1 < period.days <= DAILY_LIMIT:
            daily = await _daily(view, period, values["channel_id"])
    channels = [c["channel_id"] for c in everything["channels"]] if everything else []
    if values["channel_id"] and values["channel_id"] not in channels:
        channels.append(values["channel_id"])
    return view.render(
        "figures.html",
        status=400 if errors else 200,
        values=values,
        preset=preset,
        presets=list(PRESETS),
        errors=errors,
        channels=channels,
        stats=stats,
        charts=_charts(stats, daily, t) if stats is not None else [],
        daily=daily,
        duration=duration_words(t),
        share=_share(t),
        local=_local(period.tz) if period is not None else str,
    )


def _period(
    values: dict[str, str], preset: str, t: Callable[..., str]
) -> tuple[Period | None, dict[str, str]]:
    errors: dict[str, str] = {}
    tz = zone(values["tz"])
    if tz is None:
        errors["tz"] = t("figures.bad_zone")
        return None, errors
    if preset:
        today = datetime.now(UTC).astimezone(tz).date()
        return Period(today - timedelta(days=PRESETS[preset] - 1), today, tz, values["tz"]), {}
    found: dict[str, date] = {}
    for name in ("since", "until"):
        try:
            found[name] = date.fromisoformat(values[name])
        except ValueError:
            errors[name] = t("figures.bad_date")
    if errors:
        return None, errors
    if found["until"] < found["since"]:
        return None, {"until": t("figures.until_before")}
    period = Period(found["since"], found["until"], tz, values["tz"])
    if period.days > LONGEST:
        return None, {"since": t("figures.too_long", n=LONGEST)}
    return period, {}


async def _daily(view: View, period: Period, channel_id: str) -> list[tuple[date, dict[str, Any]]]:
    """The totals of each day of the period, one GET /v1/stats per day."""
    days = []
    for n in range(period.days):
        day = period.since + timedelta(days=n)
        query = {
            "since": period.start(day).isoformat(),
            "until": period.start(day + timedelta(days=1)).isoformat(),
            "channel_id": channel_id,
        }
        try:
            answer = await view.call(*STATS, query=query)
        except Invalid:  # a day the clocks changed into nothing: left out
            continue
        days.append((day, answer["total"]))
    return days


# Durations on a chart: in the largest unit that still shows them above 2.
_SCALES = ((7200.0, 3600.0, "figures.unit.hours"), (120.0, 60.0, "figures.unit.minutes"))


def scaled_seconds(
    datasets: list[dict[str, Any]], t: Callable[..., str]
) -> tuple[list[dict[str, Any]], str]:
    """Datasets of seconds in seconds, minutes or hours, with the unit's word."""
    values = [v for d in datasets for v in d["data"] if v is not None]
    largest = max(values, default=0.0)
    divisor, unit = 1.0, "figures.unit.seconds"
    for above, by, word in _SCALES:
        if largest >= above:
            divisor, unit = by, word
            break
    scaled = [
        {**d, "data": [None if v is None else round(v / divisor, 3) for v in d["data"]]}
        for d in datasets
    ]
    return scaled, t(unit)


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


def _local(tz: tzinfo) -> Callable[[str], str]:
    """An instant of the API's answer as a wall clock time of the period's zone."""

    def shown(instant: str) -> str:
        return datetime.fromisoformat(instant).astimezone(tz).strftime("%Y-%m-%d %H:%M")

    return shown


def _share(t: Callable[..., str]) -> Callable[[float | None], str]:
    """A rate as a percentage: 100 %, 66.7 %."""

    def readable(rate: float | None) -> str:
        if rate is None:
            return t("figures.none")
        return f"{rate * 100:.1f}".removesuffix(".0") + " %"

    return readable


def duration_words(t: Callable[..., str]) -> Callable[[float | None], str]:
    """Seconds as a person reads them: 45 s, 12.5 min, 3.2 h, 2.1 d."""

    def readable(seconds: float | None) -> str:
        if seconds is None:
            return t("figures.none")
        if seconds < 60:
            return t("figures.seconds", n=_number(seconds))
        if seconds < 3600:
            return t("figures.minutes", n=_number(seconds / 60))
        if seconds < 86400:
            return t("figures.hours", n=_number(seconds / 3600))
        return t("figures.days", n=_number(seconds / 86400))

    return readable


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}".removesuffix(".0")


def _charts(
    stats: dict[str, Any], daily: list[tuple[date, dict[str, Any]]], t: Callable[..., str]
) -> list[dict[str, Any]]:
    """What each canvas draws: {id, title, spec} with spec as console.js reads it."""
    rows = stats["channels"]
    labels = [c["channel_id"] for c in rows]
    percent, count = t("figures.unit.percent"), t("figures.unit.count")
    seconds = ""  # durations: the unit is picked by scaled_seconds

    def bars(key: str, title: str, unit: str, sets: list[tuple[str, Callable[..., Any]]]) -> None:
        datasets = [{"label": name, "data": [f(c) for c in rows]} for name, f in sets]
        if unit == seconds:
            datasets, unit = scaled_seconds(datasets, t)
        charts.append(
            {
                "id": f"chart-{key}",
                "title": title,
                "spec": {"type": "bar", "labels": labels, "datasets": datasets, "unit": unit},
            }
        )

    charts: list[dict[str, Any]] = []
    bars(
        "frt",
        t("figures.frt"),
        seconds,
        [
            (t("figures.frt_avg"), lambda c: c["frt"]["average_seconds"]),
            (t("figures.frt_median"), lambda c: c["frt"]["median_seconds"]),
            (t("figures.frt_p90"), lambda c: c["frt"]["p90_seconds"]),
        ],
    )
    bars(
        "art",
        t("figures.art"),
        seconds,
        [
            (t("figures.art_avg"), lambda c: c["art"]["average_seconds"]),
            (t("figures.art_median"), lambda c: c["art"]["median_seconds"]),
        ],
    )
    bars(
        "fcr",
        t("figures.fcr"),
        percent,
        [
            (t("figures.fcr_rate"), lambda c: _percent(c["fcr"]["rate"])),
            (t("figures.fcr_across"), lambda c: _percent(c["fcr_across_channels"]["rate"])),
        ],
    )
    bars(
        "sla",
        t("figures.sla"),
        count,
        [
            (t("figures.sla_breaches"), lambda c: c["sla_breaches"]),
            (t("figures.sla_breached_conversations"), lambda c: c["sla_breached_conversations"]),
        ],
    )
    bars(
        "queue",
        t("figures.queue"),
        seconds,
        [
            (t("figures.queue_wait"), lambda c: c["queue_wait"]["average_seconds"]),
            (
                t("figures.oldest_wait"),
                lambda c: c["queue_wait"]["oldest_waiting_seconds"],
            ),
        ],
    )
    bars(
        "queue-length",
        t("figures.queue_length"),
        count,
        [(t("figures.queue_length"), lambda c: c["queue_length"])],
    )
    policies = stats["total"]["sla_compliance"]
    if policies:
        charts.append(
            {
                "id": "chart-sla-compliance",
                "title": t("figures.sla_compliance"),
                "spec": {
                    "type": "bar",
                    "labels": [p["policy"] for p in policies],
                    "datasets": [
                        {
                            "label": t("figures.compliance_rate"),
                            "data": [_percent(p["rate"]) for p in policies],
                        }
                    ],
                    "unit": percent,
                },
            }
        )
    if daily:
        days = [d.isoformat() for d, _ in daily]
        charts.append(
            {
                "id": "chart-daily",
                "title": t("figures.daily"),
                "spec": {
                    "type": "line",
                    "labels": days,
                    "datasets": [
                        {
                            "label": t("figures.created"),
                            "data": [f["conversations_created"] for _, f in daily],
                        },
                        {
                            "label": t("figures.resolved"),
                            "data": [f["conversations_resolved"] for _, f in daily],
                        },
                    ],
                    "unit": count,
                },
            }
        )
        times, unit = scaled_seconds(
            [
                {
                    "label": t("figures.frt_avg"),
                    "data": [f["frt"]["average_seconds"] for _, f in daily],
                },
                {
                    "label": t("figures.art_avg"),
                    "data": [f["art"]["average_seconds"] for _, f in daily],
                },
            ],
            t,
        )
        charts.append(
            {
                "id": "chart-daily-times",
                "title": t("figures.daily_times"),
                "spec": {"type": "line", "labels": days, "datasets": times, "unit": unit},
            }
        )
    return charts
